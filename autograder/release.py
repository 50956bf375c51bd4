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
# Fixtures of the visible tests: small inputs and the reference outputs, seeded. A group of cases is
# stored under keys "<group><i>_<name>" (e.g. "step0_x"), which ``gradcheck.fixture_cases`` reads
# back as a list of dicts. Each group covers the edge cases of the hidden tests (batch of one, one
# time step, D != H, saturated units, a blank other than 0, ...), so a student sees them too.


def _layer_weights(rng, D, H, gates, scale):
    """Weights scaled like 1/sqrt(fan_in): pre-activations of order ``scale``."""
    return (rng.normal(0, scale / np.sqrt(D), (D, gates * H)),
            rng.normal(0, scale / np.sqrt(H), (H, gates * H)))


# (N, T, D, H, scale) of the layer fixtures: a moderate case, a batch of one with one time step,
# and a longer one whose large weights saturate tanh and the sigmoids.
_LAYER_CASES = [(3, 5, 4, 6, 1.0), (1, 1, 2, 3, 1.0), (2, 12, 3, 3, 2.5)]


def _store(f: dict, group: str, i: int, **arrays) -> None:
    for name, value in arrays.items():
        f[f"{group}{i}_{name}"] = np.asarray(value)


def _rnn_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.rnn import birnn_forward, clip_grad_norm, rnn_forward, rnn_step_forward

    f: dict[str, np.ndarray] = {}
    for i, (N, T, D, H, scale) in enumerate(_LAYER_CASES):
        Wx, Wh = _layer_weights(rng, D, H, 1, scale)
        x, h_prev, b = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H)), rng.normal(0, 0.5, H)
        h_next, _ = rnn_step_forward(x, h_prev, Wx, Wh, b)
        _store(f, "step", i, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, b=b, h_next=h_next)
        Wx, Wh = _layer_weights(rng, D, H, 1, scale)
        x, h0, b = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H)), rng.normal(0, 0.5, H)
        h, _ = rnn_forward(x, h0, Wx, Wh, b)
        _store(f, "seq", i, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b, h=h)
        x, h0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (2, N, H))
        weights = {}
        for direction in ("f", "b"):
            weights[f"Wx_{direction}"], weights[f"Wh_{direction}"] = _layer_weights(
                rng, D, H, 1, scale)
            weights[f"b_{direction}"] = rng.normal(0, 0.5, H)
        h, _ = birnn_forward(x, h0, *(weights[k] for k in ("Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b",
                                                           "b_b")))
        _store(f, "bi", i, x=x, h0=h0, **weights, h=h)
    # Clipping: a list that needs it, one that does not, and all zeros (norm 0: unchanged, no NaN).
    for i, (shapes, factor) in enumerate([([(3, 4), (5,)], 0.3), ([(2, 2, 2)], 4.0),
                                          ([(2, 3), (4,)], 0.0)]):
        grads = [rng.normal(size=s) * (factor > 0) for s in shapes]
        norm = float(np.sqrt(sum(np.sum(g**2) for g in grads)))
        max_norm = norm * factor if factor else 1.0
        clipped, total_norm = clip_grad_norm(grads, max_norm)
        arrays = {f"g{k}": g for k, g in enumerate(grads)}
        arrays.update({f"clipped{k}": c for k, c in enumerate(clipped)})
        _store(f, "clip", i, max_norm=max_norm, total_norm=total_norm, **arrays)
    return f


def _lstm_gru_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.gru import gru_forward, gru_step_forward
    from solutions.lstm import lstm_forward, lstm_step_forward

    f: dict[str, np.ndarray] = {}
    for i, (N, T, D, H, scale) in enumerate(_LAYER_CASES):
        Wx, Wh = _layer_weights(rng, D, H, 4, scale)
        x, h_prev, c_prev = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H)), rng.normal(
            size=(N, H))
        b = rng.normal(0, 0.5, 4 * H)
        h_next, c_next, _ = lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
        _store(f, "lstm_step", i, x=x, h_prev=h_prev, c_prev=c_prev, Wx=Wx, Wh=Wh, b=b,
               h_next=h_next, c_next=c_next)
        Wx, Wh = _layer_weights(rng, D, H, 4, scale)
        x, h0, c0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H)), rng.normal(size=(N, H))
        b = rng.normal(0, 0.5, 4 * H)
        h, _ = lstm_forward(x, h0, c0, Wx, Wh, b)
        _store(f, "lstm_seq", i, x=x, h0=h0, c0=c0, Wx=Wx, Wh=Wh, b=b, h=h)
        Wx, Wh = _layer_weights(rng, D, H, 3, scale)
        x, h_prev = rng.normal(size=(N, D)), rng.uniform(-1, 1, (N, H))
        bx, bh = rng.normal(0, 0.5, 3 * H), rng.normal(0, 0.5, 3 * H)
        h_next, _ = gru_step_forward(x, h_prev, Wx, Wh, bx, bh)
        _store(f, "gru_step", i, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, bx=bx, bh=bh, h_next=h_next)
        Wx, Wh = _layer_weights(rng, D, H, 3, scale)
        x, h0 = rng.normal(size=(N, T, D)), rng.uniform(-1, 1, (N, H))
        bx, bh = rng.normal(0, 0.5, 3 * H), rng.normal(0, 0.5, 3 * H)
        h, _ = gru_forward(x, h0, Wx, Wh, bx, bh)
        _store(f, "gru_seq", i, x=x, h0=h0, Wx=Wx, Wh=Wh, bx=bx, bh=bh, h=h)
    return f


def _convlstm_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    import torch

    from solutions.convlstm import ConvLSTM, ConvLSTMCell

    def randomise(module):
        # Random peephole weights too (they start at zero), so that the fixtures test them; the
        # convolution's weights scaled like 1/sqrt(fan_in).
        with torch.no_grad():
            for name, param in module.named_parameters():
                fan_in = param[0].numel() if name.endswith("conv.weight") else 1
                scale = 1.5 / np.sqrt(fan_in) if fan_in > 1 else 0.5
                param.copy_(torch.from_numpy(rng.normal(0, scale, tuple(param.shape))))
        return module

    def gradients(loss, leaves):
        grads = torch.autograd.grad(loss, list(leaves.values()))
        return {f"grad.{name}": g.numpy() for name, g in zip(leaves, grads, strict=True)}

    f: dict[str, np.ndarray] = {}
    # (N, C, C_h, height, width, k, bias, peephole, given state)
    cells = [(2, 2, 3, 5, 6, 3, 1, 1, 1), (1, 1, 2, 4, 7, 5, 0, 1, 0), (2, 3, 2, 3, 3, 1, 1, 0, 1)]
    for i, (N, C, Ch, height, width, k, bias, peephole, given) in enumerate(cells):
        cell = randomise(ConvLSTMCell(C, Ch, k, bias=bool(bias), peephole=bool(peephole)).double())
        x = torch.tensor(rng.normal(size=(N, C, height, width)), requires_grad=True)
        leaves = {"x": x}
        if given:
            leaves["h0"] = torch.tensor(rng.uniform(-1, 1, (N, Ch, height, width)),
                                        requires_grad=True)
            leaves["c0"] = torch.tensor(rng.normal(size=(N, Ch, height, width)),
                                        requires_grad=True)
        h, c = cell(x, (leaves["h0"], leaves["c0"]) if given else None)
        dh, dc = rng.normal(size=h.shape), rng.normal(size=c.shape)
        loss = (h * torch.from_numpy(dh)).sum() + (c * torch.from_numpy(dc)).sum()
        params = dict(cell.named_parameters())
        _store(f, "cell", i, config=[C, Ch, k, bias, peephole],
               **{k_: v.detach().numpy() for k_, v in leaves.items()},
               **{f"param.{n}": p.detach().numpy() for n, p in params.items()},
               h=h.detach().numpy(), c=c.detach().numpy(), dh=dh, dc=dc,
               **gradients(loss, {**leaves, **params}))
    # (N, T, C, hidden channels, height, width, k, given state)
    stacks = [(2, 3, 2, [3, 2], 4, 5, 3, 0), (1, 1, 1, [2], 3, 4, 3, 1),
              (1, 2, 1, [2, 2, 2], 3, 3, 1, 1)]
    for i, (N, T, C, channels, height, width, k, given) in enumerate(stacks):
        model = randomise(ConvLSTM(C, channels, k).double())
        x = torch.tensor(rng.normal(size=(N, T, C, height, width)), requires_grad=True)
        leaves, state = {"x": x}, None
        if given:
            state = []
            for layer, Ch in enumerate(channels):
                for name in ("h0", "c0"):
                    leaves[f"{name}_{layer}"] = torch.tensor(
                        rng.uniform(-1, 1, (N, Ch, height, width)), requires_grad=True)
                state.append((leaves[f"h0_{layer}"], leaves[f"c0_{layer}"]))
        outputs, states = model(x, state)
        d_outputs = rng.normal(size=outputs.shape)
        loss = (outputs * torch.from_numpy(d_outputs)).sum()
        finals = {}
        for layer, (h, c) in enumerate(states):
            finals[f"h{layer}"], finals[f"c{layer}"] = h.detach().numpy(), c.detach().numpy()
        params = dict(model.named_parameters())
        _store(f, "stack", i, config=[C, k, *channels],
               **{k_: v.detach().numpy() for k_, v in leaves.items()},
               **{f"param.{n}": p.detach().numpy() for n, p in params.items()},
               outputs=outputs.detach().numpy(), d_outputs=d_outputs, **finals,
               **gradients(loss, {**leaves, **params}))
    return f


def _ctc_fixtures(rng: np.random.Generator) -> dict[str, np.ndarray]:
    from solutions.ctc import ctc_backward, ctc_forward, ctc_grad, ctc_loss
    from solutions.decode import prefix_beam_search

    def log_softmax(logits):
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    f: dict[str, np.ndarray] = {}
    long_labels = [int(k) for k in rng.integers(1, 6, 25)]
    # (T, C, labels, blank, scale of the logits)
    cases = [
        (8, 4, [1, 3, 3], 0, 1.0),  # a repeated label: the blank between the 3s is compulsory
        (10, 5, [0, 4, 4, 1], 2, 1.0),  # a blank other than 0, and label 0
        (6, 3, [], 0, 1.0),  # the empty labelling: only blanks
        (1, 3, [2], 0, 1.0),  # one frame
        (2, 3, [1, 1], 0, 1.0),  # impossible: [1, 1] needs 3 frames; loss inf
        (300, 6, long_labels, 0, 6.0),  # long and peaky: p(l|x) underflows float64
    ]
    for i, (T, C, labels, blank, scale) in enumerate(cases):
        log_probs = log_softmax(rng.normal(0, scale, (T, C)))
        _store(f, "ctc", i, log_probs=log_probs, labels=np.array(labels, dtype=np.int64),
               blank=blank, log_alpha=ctc_forward(log_probs, labels, blank),
               log_beta=ctc_backward(log_probs, labels, blank),
               loss=ctc_loss(log_probs, labels, blank), grad=ctc_grad(log_probs, labels, blank))
    # Beam search: two exact cases (a beam wider than the number of prefixes) and a pruned one.
    for i, (T, C, blank, width) in enumerate([(4, 3, 0, 100), (5, 3, 2, 100), (12, 4, 0, 3)]):
        log_probs = log_softmax(rng.normal(0, 1.5, (T, C)))
        beams = prefix_beam_search(log_probs, beam_width=width, blank=blank)
        prefixes = np.full((len(beams), T), -1, dtype=np.int64)
        for k, (prefix, _) in enumerate(beams):
            prefixes[k, :len(prefix)] = prefix
        _store(f, "beam", i, log_probs=log_probs, blank=blank, beam_width=width,
               prefixes=prefixes, scores=[score for _, score in beams])
    return f


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
