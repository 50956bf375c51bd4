"""Generate the student versions of the assignments into ``notebooks/<assignment>/``.

For each assignment this

1. computes the fixtures of the visible tests from the reference package with a fixed seed and
   writes them, with a copy of ``solutions/gradcheck.py``, next to the instructor's notebook in
   ``autograder/source/<assignment>/`` (nbgrader releases the files of that folder with the notebook
   and restores them, unmodified, before it autogrades a submission);
2. runs nbgrader's ``generate_assignment`` in a temporary copy of the course, so that no runtime
   folder or gradebook is left in the tree: solutions become stubs, hidden tests disappear, outputs
   are cleared;
3. makes each stub name its function, and copies the result to ``notebooks/<assignment>/``.

``python -m autograder release [ID ...]`` (or ``python -m autograder.release``) runs it;
:func:`check_release_up_to_date` regenerates into a temporary folder and lists what differs.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import nbformat
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "source"
NOTEBOOKS = ROOT / "notebooks"
GRADCHECK = ROOT / "solutions" / "gradcheck.py"
ASSIGNMENTS = ("rnn", "lstm_gru", "convlstm", "ctc")

GENERIC_STUB = 'raise NotImplementedError("Replace this line with your code (see the docstring).")'
_STUB_LINE = re.compile(r"^(\s*)" + re.escape(GENERIC_STUB) + r"\s*$")
_DEFINITION = re.compile(r"^(\s*)(def|class)\s+(\w+)")


# ------------------------------------------------------------------------------------------------
# Fixtures of the visible tests: small inputs and the reference outputs, seeded.


def _rnn_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.rnn import birnn_forward, clip_grad_norm, rnn_forward, rnn_step_forward

    N, T, D, H = 3, 5, 4, 6
    f = {"step_x": rng.normal(size=(N, D)), "step_h_prev": rng.normal(size=(N, H)),
         "step_Wx": rng.normal(size=(D, H)) * 0.5, "step_Wh": rng.normal(size=(H, H)) * 0.5,
         "step_b": rng.normal(size=H)}
    f["step_h_next"], _ = rnn_step_forward(f["step_x"], f["step_h_prev"], f["step_Wx"],
                                           f["step_Wh"], f["step_b"])
    f.update({"seq_x": rng.normal(size=(N, T, D)), "seq_h0": rng.normal(size=(N, H)),
              "seq_Wx": rng.normal(size=(D, H)) * 0.5, "seq_Wh": rng.normal(size=(H, H)) * 0.5,
              "seq_b": rng.normal(size=H)})
    f["seq_h"], _ = rnn_forward(f["seq_x"], f["seq_h0"], f["seq_Wx"], f["seq_Wh"], f["seq_b"])
    f["clip_g0"], f["clip_g1"] = rng.normal(size=(3, 4)), rng.normal(size=5)
    f["clip_max_norm"] = np.array(1.5)
    clipped, total_norm = clip_grad_norm([f["clip_g0"], f["clip_g1"]], 1.5)
    f["clip_clipped_0"], f["clip_clipped_1"] = clipped
    f["clip_total_norm"] = np.array(total_norm)
    names = ["bi_Wx_f", "bi_Wh_f", "bi_b_f", "bi_Wx_b", "bi_Wh_b", "bi_b_b"]
    shapes = [(D, H), (H, H), (H,)] * 2
    f.update({"bi_x": rng.normal(size=(N, T, D)), "bi_h0": rng.normal(size=(2, N, H))})
    f.update({name: rng.normal(size=shape) * 0.5 for name, shape in zip(names, shapes,
                                                                       strict=True)})
    f["bi_h"], _ = birnn_forward(f["bi_x"], f["bi_h0"], *(f[name] for name in names))
    return f


def _lstm_gru_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.gru import gru_forward, gru_step_forward
    from solutions.lstm import lstm_forward, lstm_step_forward

    N, T, D, H = 3, 5, 4, 6
    f = {}
    for prefix, gates in (("lstm", 4), ("gru", 3)):
        for kind, x_shape in (("step", (N, D)), ("seq", (N, T, D))):
            key = f"{prefix}_{kind}_"
            f[key + "x"] = rng.normal(size=x_shape)
            f[key + "h0"] = rng.normal(size=(N, H))
            f[key + "Wx"] = rng.normal(size=(D, gates * H)) * 0.5
            f[key + "Wh"] = rng.normal(size=(H, gates * H)) * 0.5
            if prefix == "lstm":
                f[key + "c0"] = rng.normal(size=(N, H))
                f[key + "b"] = rng.normal(size=gates * H)
            else:
                f[key + "bx"] = rng.normal(size=gates * H)
                f[key + "bh"] = rng.normal(size=gates * H)
    k = "lstm_step_"
    f[k + "h"], f[k + "c"], _ = lstm_step_forward(f[k + "x"], f[k + "h0"], f[k + "c0"],
                                                  f[k + "Wx"], f[k + "Wh"], f[k + "b"])
    k = "lstm_seq_"
    f[k + "h"], _ = lstm_forward(f[k + "x"], f[k + "h0"], f[k + "c0"], f[k + "Wx"], f[k + "Wh"],
                                 f[k + "b"])
    k = "gru_step_"
    f[k + "h"], _ = gru_step_forward(f[k + "x"], f[k + "h0"], f[k + "Wx"], f[k + "Wh"],
                                     f[k + "bx"], f[k + "bh"])
    k = "gru_seq_"
    f[k + "h"], _ = gru_forward(f[k + "x"], f[k + "h0"], f[k + "Wx"], f[k + "Wh"], f[k + "bx"],
                                f[k + "bh"])
    return f


def _convlstm_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    import torch

    from solutions.convlstm import ConvLSTM, ConvLSTMCell

    def randomise(module):
        # Random peephole weights too (they start at zero), so that the fixtures test them.
        with torch.no_grad():
            for param in module.parameters():
                param.copy_(torch.from_numpy(rng.normal(0, 0.4, tuple(param.shape))))
        return module

    f = {}
    cell = randomise(ConvLSTMCell(2, 3, 3).double())
    for name, value in cell.state_dict().items():
        f[f"cell_{name}"] = value.numpy()
    x = rng.normal(size=(2, 2, 5, 6))
    h0, c0 = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(2, 3, 5, 6))
    with torch.no_grad():
        h, c = cell(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    f.update({"cell_x": x, "cell_h0": h0, "cell_c0": c0, "cell_h": h.numpy(), "cell_c": c.numpy()})
    model = randomise(ConvLSTM(2, [4, 3], 3).double())
    for name, value in model.state_dict().items():
        f[f"seq_{name}"] = value.numpy()
    x = rng.normal(size=(2, 4, 2, 5, 6))
    with torch.no_grad():
        outputs, states = model(torch.from_numpy(x))
    f["seq_x"], f["seq_outputs"] = x, outputs.numpy()
    for layer, (h, c) in enumerate(states):
        f[f"seq_h{layer}"], f[f"seq_c{layer}"] = h.numpy(), c.numpy()
    return f


def _ctc_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.ctc import ctc_backward, ctc_forward, ctc_grad, ctc_loss

    logits = rng.normal(size=(8, 4))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    labels = np.array([1, 3, 3])
    return {"log_probs": log_probs, "labels": labels,
            "log_alpha": ctc_forward(log_probs, labels),
            "log_beta": ctc_backward(log_probs, labels),
            "loss": np.array(ctc_loss(log_probs, labels)), "grad": ctc_grad(log_probs, labels)}


FIXTURES: dict[str, Callable[[np.random.Generator], dict[str, np.ndarray]]] = {
    "rnn": _rnn_fixtures,
    "lstm_gru": _lstm_gru_fixtures,
    "convlstm": _convlstm_fixtures,
    "ctc": _ctc_fixtures,
}


def make_fixtures(assignment: str) -> dict[str, np.ndarray]:
    """The fixtures of ``assignment``'s visible tests (seed 0, float64)."""
    return {k: np.asarray(v) for k, v in FIXTURES[assignment](np.random.default_rng(0)).items()}


# ------------------------------------------------------------------------------------------------
# Generating the student versions.


def _name_stubs(source: str) -> str:
    """Replace the generic stub message by one that names the function (``Class.method``)."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        match = _STUB_LINE.match(line)
        if not match:
            continue
        indent, names = len(match.group(1)), []
        for previous in reversed(lines[:i]):
            definition = _DEFINITION.match(previous)
            if definition and len(definition.group(1)) < indent:
                names.insert(0, definition.group(3))
                indent = len(definition.group(1))
        name = ".".join(names) or "this cell"
        lines[i] = (f'{match.group(1)}raise NotImplementedError("{name}: not implemented yet; '
                    'replace this line with your code (see the docstring).")')
    return "\n".join(lines)


def nbgrader_env() -> dict[str, str]:
    """The environment for an nbgrader subprocess: the interpreter's ``bin`` folder first on PATH,
    because nbgrader runs ``alembic`` (installed there) to open its gradebook."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed timestamps, so that the same arrays give the same bytes (and
    regenerating unchanged fixtures leaves git clean)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                             buffer.getvalue())


def _write_extras(assignment: str, folder: Path) -> None:
    """Write ``fixtures.npz`` and ``gradcheck.py`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_npz(folder / "fixtures.npz", make_fixtures(assignment))
    shutil.copyfile(GRADCHECK, folder / "gradcheck.py")


def build(ids: Iterable[str], dest: Path) -> None:
    """Generate the student versions of ``ids`` into ``dest/<id>/`` (replaced if present)."""
    ids = list(ids)
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = Path(tmp)
        shutil.copyfile(HERE / "nbgrader_config.py", course / "nbgrader_config.py")
        for assignment in ids:
            shutil.copytree(SOURCE / assignment, course / "source" / assignment,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            _write_extras(assignment, course / "source" / assignment)
            result = subprocess.run(
                [sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force",
                 "--no-db"],
                cwd=course, capture_output=True, text=True, check=False, env=nbgrader_env(),
            )
            if result.returncode != 0:
                raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n"
                                   f"{result.stdout}\n{result.stderr}")
            released = course / "release" / assignment
            target = dest / assignment
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(released, target)
            notebook_path = target / f"{assignment}.ipynb"
            notebook = nbformat.read(notebook_path, as_version=4)
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.source = _name_stubs(cell.source)
                    cell.outputs = []
                    cell.execution_count = None
            nbformat.write(notebook, notebook_path)


def release(ids: Iterable[str] | None = None) -> list[Path]:
    """Regenerate the fixtures in ``autograder/source/<id>/`` and the student versions in
    ``notebooks/<id>/``; returns the folders written."""
    ids = list(ids or ASSIGNMENTS)
    unknown = [i for i in ids if i not in ASSIGNMENTS]
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; expected some of {list(ASSIGNMENTS)}")
    for assignment in ids:
        _write_extras(assignment, SOURCE / assignment)
    build(ids, NOTEBOOKS)
    return [NOTEBOOKS / assignment for assignment in ids]


def _same_arrays(a: Path, b: Path) -> bool:
    with np.load(a) as fa, np.load(b) as fb:
        return sorted(fa.files) == sorted(fb.files) and all(
            fa[k].shape == fb[k].shape and np.allclose(fa[k], fb[k], rtol=1e-12, atol=1e-14)
            for k in fa.files
        )


def _compare_folder(fresh: Path, current: Path, problems: list[str]) -> None:
    fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
    current_files = {p.relative_to(current) for p in current.rglob("*") if p.is_file()}
    for name in sorted(fresh_files ^ current_files):
        where = "missing from" if name in fresh_files else "not generated for"
        problems.append(f"{name} is {where} {current}")
    for name in sorted(fresh_files & current_files):
        a, b = fresh / name, current / name
        if name.suffix == ".npz":
            same = _same_arrays(a, b)
        elif name.suffix == ".ipynb":
            same = [(c.cell_type, c.source) for c in nbformat.read(a, as_version=4).cells] == [
                (c.cell_type, c.source) for c in nbformat.read(b, as_version=4).cells]
        else:
            same = a.read_bytes() == b.read_bytes()
        if not same:
            problems.append(f"{current / name} is out of date")


def check_release_up_to_date(ids: Iterable[str] | None = None) -> list[str]:
    """What differs between the committed student versions (and the fixtures next to the source
    notebooks) and a fresh generation; an empty list when everything is up to date."""
    ids = list(ids or ASSIGNMENTS)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        build(ids, Path(tmp))
        for assignment in ids:
            _compare_folder(Path(tmp) / assignment, NOTEBOOKS / assignment, problems)
            for extra in ("fixtures.npz", "gradcheck.py"):
                fresh, current = Path(tmp) / assignment / extra, SOURCE / assignment / extra
                if not current.exists():
                    problems.append(f"{current} is missing")
                elif extra.endswith(".npz") and not _same_arrays(fresh, current):
                    problems.append(f"{current} is out of date")
                elif extra.endswith(".py") and fresh.read_bytes() != current.read_bytes():
                    problems.append(f"{current} is out of date")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.release",
        description="Generate the student versions of the assignments into notebooks/<id>/.",
    )
    parser.add_argument("ids", nargs="*", metavar="ID",
                        help=f"assignments to release (default: all of {', '.join(ASSIGNMENTS)})")
    args = parser.parse_args(argv)
    try:
        folders = release(args.ids or None)
    except ValueError as error:
        parser.error(str(error))
    for folder in folders:
        print(f"wrote {folder.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
