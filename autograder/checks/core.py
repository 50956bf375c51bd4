"""The grading machinery every assignment shares: the :class:`Check` record, running a namespace
on a case, comparing outputs with the reference, and the "from scratch" rule.

A :class:`Check` says how to grade one function (or class) of an assignment: which names the
submission must define, how to make test cases, how to run a namespace on one case, and the
tolerance. The per-assignment modules (``rnn.py``, ``ctc.py``, ...) declare their checks with it;
the registry (:mod:`autograder.assignments`) collects them. This module imports neither.

A case is a dict of numpy arrays, ints, floats, strings and lists of ints (so it can be sent to
another process with ``np.savez``); ``check.run`` returns plain float64 arrays, outputs and
gradients alike.
Cases are generated from a seed fixed per check, so every submission sees the same cases.
"""

from __future__ import annotations

import ast
import functools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Importing these anywhere in a submission is forbidden for every check: ``solutions`` holds the
# answers and ``autograder.checks.reference_namespace`` hands them out.
ALWAYS_FORBIDDEN = ("solutions", "autograder")


@dataclass(frozen=True)
class Check:
    """How to grade one function or class of an assignment (see the module docstring)."""

    name: str
    points: int
    needs: tuple[str, ...]
    cases: Callable[[np.random.Generator], list[dict]]
    run: Callable[[Mapping[str, Any], dict], dict[str, np.ndarray]]
    rtol: float
    atol: float
    forbidden: tuple[str, ...] = ()

    @property
    def grade_id(self) -> str:
        """The nbgrader ``grade_id`` of the hidden test cell of this check."""
        return f"test_{self.name}"

    @property
    def seed(self) -> int:
        """The fixed seed of this check's cases (a hash of its name, stable across runs)."""
        return zlib.crc32(self.name.encode())

    def make_cases(self) -> list[dict]:
        """This check's cases, the same on every call."""
        return self.cases(np.random.default_rng(self.seed))


def describe_case(case: Mapping[str, Any]) -> str:
    """A short description of a case from its scalar entries, e.g. ``N=1, T=5, D=3, H=2``."""
    parts = []
    for key, value in case.items():
        if isinstance(value, (bool, int, float, str, np.integer, np.floating)):
            parts.append(f"{key}={value}")
        elif isinstance(value, list) and len(value) <= 12:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _integral(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def _format_values(a: np.ndarray) -> str:
    """Small integer arrays (labellings) by value, anything else by shape."""
    if a.size <= 12 and _integral(a):
        return str(a.astype(np.int64).tolist())
    return f"shape {a.shape}"


def _compare_one(student: Mapping, reference: Mapping, check: Check) -> str | None:
    if not isinstance(student, Mapping):
        return f"the check returned {type(student).__name__}, expected a dict of arrays"
    for key, ref in reference.items():
        if key not in student:
            return f"missing output {key!r}"
        try:
            got = np.asarray(student[key], dtype=np.float64)
        except (TypeError, ValueError):
            return f"output {key!r} is not numeric ({type(student[key]).__name__})"
        ref = np.asarray(ref, dtype=np.float64)
        if got.shape != ref.shape:
            if got.ndim == ref.ndim == 1 and max(got.size, ref.size) <= 12:
                return f"{key} is {_format_values(got)}, expected {_format_values(ref)}"
            return f"{key} has shape {got.shape}, expected {ref.shape}"
        ref_nan, got_nan = np.isnan(ref), np.isnan(got)
        if np.any(got_nan & ~ref_nan):
            return f"NaN in {key}"
        if np.any(ref_nan & ~got_nan):
            return f"{key} should be NaN where the reference is undefined"
        ref_inf, got_inf = np.isinf(ref), np.isinf(got)
        if np.any(ref_inf != got_inf) or np.any(ref[ref_inf] != got[ref_inf]):
            where = np.argwhere((ref_inf != got_inf) | (ref_inf & (ref != got)))[0]
            index = tuple(int(i) for i in where)
            return (
                f"{key}{list(index) if index else ''} is {got[tuple(where)]}, "
                f"expected {ref[tuple(where)]}"
            )
        finite = ~(ref_inf | ref_nan)
        diff = np.abs(got[finite] - ref[finite])
        if diff.size and np.any(diff > check.atol + check.rtol * np.abs(ref[finite])):
            scale = np.maximum(np.abs(got[finite]) + np.abs(ref[finite]), 1e-12)
            if got.ndim <= 1 and got.size <= 12 and _integral(got) and _integral(ref):
                return f"{key} is {_format_values(got)}, expected {_format_values(ref)}"
            return f"{key} differs: max rel error {np.max(diff / scale):.1e}"
    return None


def compare(
    name: str,
    student_out: Mapping | Sequence[Mapping],
    reference_out: Mapping | Sequence[Mapping],
    check: Check,
    cases: Mapping | Sequence[Mapping] | None = None,
) -> str | None:
    """Compare the outputs of the check ``name`` on one case (dicts) or on all cases (lists).

    Returns None if every output matches within the check's tolerance
    (``|s - r| <= atol + rtol |r|``, with NaN and infinities required at the same places), else a
    short reason such as ``"dWh differs: max rel error 3e-01 at case 4 (N=1, T=5, D=3, H=2)"``.
    ``cases`` (the case dict, or the list of them) only adds the case's description to the reason.
    """
    if isinstance(reference_out, Mapping):
        reason = _compare_one(student_out, reference_out, check)
        if reason is not None and isinstance(cases, Mapping):
            reason += f" ({describe_case(cases)})"
        return reason
    if not isinstance(student_out, Sequence) or len(student_out) != len(reference_out):
        return f"{name}: expected outputs for {len(reference_out)} cases"
    for i, (got, ref) in enumerate(zip(student_out, reference_out, strict=True)):
        reason = _compare_one(got, ref, check)
        if reason is not None:
            where = f"case {i}"
            if cases is not None:
                where += f" ({describe_case(cases[i])})"
            return f"{reason} at {where}"
    return None


def _copy_case(case: Mapping[str, Any]) -> dict:
    """A deep copy, so that a function that writes into its inputs cannot change later runs."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v)
            for k, v in case.items()}


def run_case(check: Check, namespace: Mapping[str, Any], case: Mapping[str, Any]):
    """``check.run`` on a copy of ``case``; returns ``(outputs, None)`` or ``(None, reason)``."""
    missing = [n for n in check.needs if n not in namespace]
    if missing:
        return None, f"{', '.join(missing)} not defined"
    try:
        return check.run(namespace, _copy_case(case)), None
    except NotImplementedError:
        return None, "not implemented (raises NotImplementedError)"
    except Exception as error:  # noqa: BLE001 -- any failure of student code is a grading result
        message = str(error).splitlines()[0] if str(error) else ""
        return None, f"raised {type(error).__name__}: {message}"[:300]

def solution_source(namespace: Mapping[str, Any]) -> str | None:
    """The cells that the kernel ran so far and that define functions or classes (IPython keeps
    the code in ``In``): the solution cells, for the forbidden-name scan."""
    cells = namespace.get("In")
    if not (isinstance(cells, list) and all(isinstance(c, str) for c in cells)):
        return None
    kept = []
    for cell in cells:
        try:
            body = ast.parse(cell).body
        except SyntaxError:
            continue
        if any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in body):
            kept.append(cell)
    return "\n".join(kept)

# ------------------------------------------------------------------------------------------------
# The "from scratch" rule, checked twice: an AST scan for forbidden library functions (below), and,
# in the re-verification, the PyTorch operators a graded call actually executes
# (:func:`forbidden_operators`), which no spelling of the call can hide.

# ATen operators (what every PyTorch call ends in) that implement the forbidden library functions,
# by a word of the forbidden name: ``nn.LSTM`` and ``LSTMCell`` forbid every operator whose name
# contains ``lstm`` (``lstm``, ``lstm_cell``, ``_thnn_fused_lstm_cell``, ...) and the fused
# cuDNN/MIOpen/oneDNN recurrent kernels.
_FUSED_RNN = ("_cudnn_rnn", "miopen_rnn", "mkldnn_rnn")
_OPERATOR_FAMILIES = {
    "ctc": ("ctc_loss",),
    "lstm": ("lstm", *_FUSED_RNN),
    "gru": ("gru", *_FUSED_RNN),
    "rnn": ("rnn_tanh", "rnn_relu", *_FUSED_RNN),
}


def forbidden_operators(check: Check) -> tuple[str, ...]:
    """Parts of ATen operator names that a function graded by ``check`` must not execute.

    ``""`` (every operator) when the whole of ``torch`` is forbidden, as for the numpy layers.
    """
    if "torch" in check.forbidden:
        return ("",)
    parts: list[str] = []
    for entry in check.forbidden:
        word = entry.rsplit(".", 1)[-1].lower()
        for family, operators in _OPERATOR_FAMILIES.items():
            if family in word:
                parts += [op for op in operators if op not in parts]
    return tuple(parts)


def forbidden_operator_calls(check: Check, operator_names) -> list[str]:
    """The operators among ``operator_names`` (profiler names such as ``aten::lstm``) that
    ``check`` forbids; the recurrent and CTC ones first, then by name."""
    parts = forbidden_operators(check)
    if not parts:
        return []
    found = set()
    for name in operator_names:
        namespace, _, op = str(name).rpartition("::")
        if namespace in ("aten", "prims", "quantized") and any(p in op for p in parts):
            found.add(f"{namespace}::{op}")
    telling = {op for ops in _OPERATOR_FAMILIES.values() for op in ops}
    return sorted(found, key=lambda n: (not any(t in n for t in telling), n))


class _References(ast.NodeVisitor):
    """Collects the dotted names a piece of code refers to, with import aliases resolved."""

    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases
        self.found: list[tuple[tuple[str, ...], bool]] = []  # (components, resolved root?)
        self.names: set[str] = set()

    def _chain(self, node) -> tuple[list[str], str | None] | None:
        parts = []
        while True:
            if isinstance(node, ast.Attribute):
                parts.append(node.attr)
                node = node.value
            elif (isinstance(node, ast.Call) and _is_getattr(node)
                  and _constant_text(node.args[1]) is not None):
                parts.append(_constant_text(node.args[1]))
                node = node.args[0]
            else:
                break
        if isinstance(node, ast.Name):
            return parts[::-1], node.id
        module = _imported_module(node)
        if module is not None:
            # __import__("torch").nn... and import_module("torch.nn")...: rooted at the module.
            return module.split(".")[1:] + parts[::-1], f"\0{module.split('.')[0]}"
        return None

    def _record(self, root: str, attrs: list[str]) -> None:
        if root.startswith("\0"):
            self.found.append(((root[1:], *attrs), True))
        elif root in self.aliases:
            self.found.append((tuple(self.aliases[root].split(".") + attrs), True))
        else:
            self.found.append(((root, *attrs), False))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self._chain(node)
        if chain is not None:
            attrs, root = chain
            self._record(root, attrs)
            self.names.add(root)
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)
        self._record(node.id, [])

    def visit_Call(self, node: ast.Call) -> None:
        # getattr(torch.nn, "LSTM") is torch.nn.LSTM; import_module("x") and __import__("x")
        # import x; the names may be spelled as sums of strings ("tor" + "ch").
        if _is_getattr(node):
            chain = self._chain(node)
            if chain is not None:
                attrs, root = chain
                self._record(root, attrs)
                self.names.add(root)
        module = _imported_module(node)
        if module is not None:
            self.found.append((tuple(module.split(".")), True))
        self.generic_visit(node)


def _constant_text(node) -> str | None:
    """The string ``node`` always evaluates to, when it is built of literals only: ``"a"``,
    ``"tor" + "ch"``, ``f"{'ctc'}_loss"``, ``"".join(["ctc", "_loss"])``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_text(node.left), _constant_text(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            inner = value.value if isinstance(value, ast.FormattedValue) else value
            text = _constant_text(inner)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "join" and len(node.args) == 1
            and isinstance(node.args[0], (ast.List, ast.Tuple))):
        separator = _constant_text(node.func.value)
        parts = [_constant_text(e) for e in node.args[0].elts]
        if separator is not None and None not in parts:
            return separator.join(parts)
    return None


def _is_getattr(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "getattr" and len(node.args) >= 2)


def _imported_module(node) -> str | None:
    """``"x"`` for a call ``__import__("x")``, ``import_module("x")`` or ``m.import_module("x")``
    whose argument is a constant string."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    if not ((isinstance(func, ast.Name) and func.id in ("__import__", "import_module"))
            or (isinstance(func, ast.Attribute) and func.attr in ("__import__", "import_module"))):
        return None
    return _constant_text(node.args[0])


def _import_aliases(tree: ast.AST) -> tuple[dict[str, str], list[str]]:
    """The dotted path each imported name stands for, and the list of imported paths."""
    aliases: dict[str, str] = {}
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported.append(alias.name)
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                path = f"{node.module}.{alias.name}"
                imported.append(path)
                aliases[alias.asname or alias.name] = path
    return aliases, imported


def _matches(entry: str, components: tuple[str, ...], resolved: bool) -> bool:
    want = tuple(entry.split("."))
    # An unresolved root is a local variable (or the student's own function): only its attributes
    # can name a library object.
    have = components if resolved else components[1:]
    return any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


def _module_level_statements(body, conditional: bool = False):
    """``(statement, inside a compound statement?)`` for every statement that runs at module
    level: the top-level ones and those nested in ``if``/``try``/``with``/``for``/``while``."""
    for node in body:
        yield node, conditional
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        blocks = [getattr(node, field, None) or [] for field in ("body", "orelse", "finalbody")]
        blocks += [handler.body for handler in getattr(node, "handlers", [])]
        blocks += [case.body for case in getattr(node, "cases", [])]
        for block in blocks:
            if block and isinstance(block[0], ast.stmt):
                yield from _module_level_statements(block, True)


@functools.lru_cache(maxsize=2)
def _parse(source: str) -> ast.Module:
    """The syntax tree of a submission's code, parsed once for all its checks (read only)."""
    return ast.parse(source)


def find_forbidden(source: str, check: Check) -> list[str]:
    """Forbidden library names that the code graded by ``check`` uses, e.g. ``["torch.nn.LSTM"]``.

    Scanned: the top-level definitions (functions, classes, assignments) of the names in
    ``check.needs`` and of every top-level name they refer to, transitively.
    Import aliases are resolved (``import torch.nn.functional as F`` makes ``F.ctc_loss`` the
    forbidden ``torch.nn.functional.ctc_loss``), ``getattr(module, "name")`` counts as an attribute,
    and importing ``solutions`` or ``autograder`` anywhere is always forbidden. A submission that
    does not parse yields no names (its checks fail when they run).
    """
    try:
        tree = _parse(source)
    except SyntaxError:
        return []
    aliases, imported = _import_aliases(tree)
    found: list[str] = []
    for path in imported:
        for entry in ALWAYS_FORBIDDEN:
            if _matches(entry, tuple(path.split(".")), True) and path not in found:
                found.append(path)

    # Module-level assignments count as definitions: `helper = F.ctc_loss` is in scope if used.
    # Definitions inside top-level `if`, `try`, `with` and loops count too, every branch of them.
    definitions: dict[str, list[ast.AST]] = {}
    for node, conditional in _module_level_statements(tree.body):
        names = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for target in targets for n in ast.walk(target)
                     if isinstance(n, ast.Name)]
        for name in names:
            # The last unconditional binding of a name wins, as when the cells run in order; a
            # binding in a branch may or may not be the one that counts: scan them all.
            if conditional:
                definitions.setdefault(name, []).append(node)
            else:
                definitions[name] = [node]
    collector = _References(aliases)
    todo = [n for n in check.needs if n in definitions]
    seen = set(todo)
    while todo:
        for node in definitions[todo.pop()]:
            collector.visit(node)
        for name in sorted(collector.names & set(definitions) - seen):
            seen.add(name)
            todo.append(name)

    entries = (*ALWAYS_FORBIDDEN, *check.forbidden)
    for components, resolved in collector.found:
        if any(_matches(entry, components, resolved) for entry in entries):
            dotted = ".".join(components)
            if dotted not in found:
                found.append(dotted)
    # `getattr(torch.nn, "LSTM")` names torch.nn and torch.nn.LSTM: report the longest only.
    return [d for d in found if not any(other.startswith(d + ".") for other in found)]

