"""Reading what the student side wrote, as the trusted grader: nothing in it is believed.

Student code controls the files in its output folders and in the notebook's folder: a name there
may be a symbolic link to a file only the grader can read (the grader would copy its content into
the grades: a confused deputy), a FIFO (``open`` blocks until the grading slot times out), a device,
or a huge file; an ``.npz`` may declare gigabytes of compressed zeros. Every read here therefore

* opens the last path component with ``O_NOFOLLOW | O_NONBLOCK`` (a link is refused, a FIFO does
  not block) and checks with ``fstat`` that it is a regular file;
* checks the size before reading, and reads at most the bound;
* for ``.npz`` archives, reads the zip directory and each member's ``.npy`` header first and refuses
  any array whose shape, dtype or byte count is out of bounds before anything is decompressed.

A refusal raises :class:`UntrustedFileError`, whose message says what was wrong (it ends up in the
student's reason, so it names the file, not the grader's paths).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile

import numpy as np

# An output array is at most this big; the largest reference output of any check is ~100 kB.
MAX_ARRAY_BYTES = 16 * 2**20
MAX_NPZ_BYTES = 64 * 2**20       # the archive on disk, and the sum of its arrays decompressed
MAX_NPZ_ARRAYS = 10_000


class UntrustedFileError(OSError):
    """A file written by student code that the grader refuses to read (the message says why)."""


def open_regular(path: str, max_bytes: int | None, dir_fd: int | None = None) -> int:
    """A read-only descriptor of the regular file ``path`` of at most ``max_bytes`` bytes
    (None: any size, for a file that is then read in bounded pieces)."""
    name = os.path.basename(path)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == 40:  # ELOOP: the last component is a symbolic link
            raise UntrustedFileError(f"{name} is a symbolic link, not a file") from None
        raise UntrustedFileError(f"{name} cannot be opened ({error.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UntrustedFileError(f"{name} is not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        os.close(fd)
        raise UntrustedFileError(f"{name} is larger than {max_bytes} bytes")
    return fd


def read_bytes(path: str, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The content of the regular file ``path``, refused if it holds more than ``max_bytes``."""
    fd = open_regular(path, max_bytes, dir_fd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after fstat
        raise UntrustedFileError(f"{os.path.basename(path)} is larger than {max_bytes} bytes")
    return data


def read_text(path: str, max_bytes: int) -> str:
    return read_bytes(path, max_bytes).decode("utf-8", errors="replace")


def printable(text: str) -> str:
    """``text`` (e.g. a student's exception message) safe to print on a terminal: control
    characters, escape sequences included, become ``?``."""
    return "".join(ch if ch.isprintable() or ch == " " else "?" for ch in text)


def _npy_header(member, name: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"npy format {version}")
    except ValueError as error:
        raise UntrustedFileError(f"array {name!r} has a malformed header ({error})") from None
    return shape, dtype, fortran


def load_npz(path: str, max_file_bytes: int = MAX_NPZ_BYTES,
             max_array_bytes: int = MAX_ARRAY_BYTES, max_total_bytes: int = MAX_NPZ_BYTES,
             max_arrays: int = MAX_NPZ_ARRAYS) -> dict[str, np.ndarray]:
    """The numeric arrays of the ``.npz`` at ``path``, every bound checked before decompressing.

    Only plain numeric dtypes (bool, integers, floats, complex) are accepted: no objects, so no
    pickle. A member whose declared size does not match its header, or whose data is shorter or
    longer than declared, is refused.
    """
    data = read_bytes(path, max_file_bytes)
    name_of_file = os.path.basename(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise UntrustedFileError(f"{name_of_file} is not an npz archive ({error})") from None
    members = archive.infolist()
    if len(members) > max_arrays:
        raise UntrustedFileError(f"{name_of_file} holds more than {max_arrays} arrays")
    declared = sum(m.file_size for m in members)
    if declared > max_total_bytes:
        raise UntrustedFileError(
            f"{name_of_file} declares {declared} bytes of arrays (at most {max_total_bytes})")
    arrays: dict[str, np.ndarray] = {}
    for info in members:
        key = info.filename.removesuffix(".npy")
        if info.file_size > max_array_bytes + 4096:
            raise UntrustedFileError(f"array {key!r} is larger than {max_array_bytes} bytes")
        try:
            with archive.open(info) as member:
                shape, dtype, fortran = _npy_header(member, key)
                if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields is not None:
                    raise UntrustedFileError(f"array {key!r} has the non-numeric dtype {dtype}")
                count = 1
                for extent in shape:
                    count *= int(extent)
                nbytes = count * dtype.itemsize
                if nbytes > max_array_bytes:
                    raise UntrustedFileError(
                        f"array {key!r} of shape {shape} is larger than {max_array_bytes} bytes")
                body = member.read(nbytes + 1)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as error:
            if isinstance(error, UntrustedFileError):
                raise
            raise UntrustedFileError(f"array {key!r} cannot be read ({error})") from None
        if len(body) != nbytes:
            raise UntrustedFileError(f"array {key!r} holds {len(body)} bytes, its header says "
                                     f"{nbytes}")
        array = np.frombuffer(body, dtype=dtype, count=count)
        arrays[key] = array.reshape(shape, order="F" if fortran else "C").copy()
    return arrays


def copy_files(source: str, target: str, max_files: int = 200,
               max_bytes: int = 256 * 2**20) -> list[str]:
    """Copy the regular files under ``source`` into the new folder ``target``; returns the
    relative paths copied.

    Links (to files or folders) and special files are skipped; nothing is followed. At most
    ``max_files`` files and ``max_bytes`` bytes are copied; the rest is skipped.
    """
    copied: list[str] = []
    total = 0
    os.makedirs(target)
    for folder, dirs, files, dir_fd in os.fwalk(source, follow_symlinks=False):
        relative = os.path.relpath(folder, source)
        dirs.sort()
        for name in sorted(files):
            if len(copied) >= max_files:
                return copied
            try:
                fd = open_regular(name, max_bytes - total, dir_fd=dir_fd)
            except UntrustedFileError:
                continue
            path = os.path.normpath(os.path.join(relative, name))
            os.makedirs(os.path.dirname(os.path.join(target, path)), exist_ok=True)
            with os.fdopen(fd, "rb") as src, open(os.path.join(target, path), "xb") as dst:
                remaining = max_bytes - total
                while remaining > 0:
                    chunk = src.read(min(1 << 20, remaining))
                    if not chunk:
                        break
                    dst.write(chunk)
                    remaining -= len(chunk)
                    total += len(chunk)
            copied.append(path)
    return copied
