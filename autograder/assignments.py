"""The registry of the graded assignments: each one is declared once, here, and everything else
reads it.

An :class:`Assignment` holds what the release and the grader need to know about it: its id and
title, the modules of ``solutions`` that hold its reference objects, its checks (one per graded
function, each with its points and forbidden library calls), the function that computes the
fixtures of its visible tests, and the files of the reference package released with its
notebook. The checks and the fixture functions live in the assignment's module of
:mod:`autograder.checks`; the instructor's notebook is ``autograder/source/<id>/<id>.ipynb``.

The release (``python -m autograder release``), the grading pipeline, the command line's choices
and the test suite all read :data:`REGISTRY`, through the views :data:`ASSIGNMENTS` (the ids, in
the book's order), :data:`CHECKS` (id -> list of checks), :func:`get_check` and
:func:`reference_namespace`, which :mod:`autograder.checks` also exports.

Another assignment (a course's own, or a test's) is declared the same way, as ``ASSIGNMENT =
Assignment(...)`` in a module of its own, and named in the environment variable
``AUTOGRADER_EXTRA_ASSIGNMENTS`` (module names, comma-separated): every process of the grader
registers it when it imports this module, the sandboxed re-verification included (it receives a
copy of the module, see :func:`extra_assignment_files`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograder.checks import convlstm, ctc, lstm_gru, rnn
from autograder.checks.core import Check

EXTRA_ASSIGNMENTS_ENV = "AUTOGRADER_EXTRA_ASSIGNMENTS"


@dataclass(frozen=True)
class Assignment:
    """One graded assignment (see the module docstring)."""

    id: str
    title: str
    # Modules of the reference package, searched in this order for the names the checks need.
    reference_modules: tuple[str, ...]
    # One per graded function or class, in the notebook's order.
    checks: tuple[Check, ...]
    # rng -> {key: array}: the fixtures of the visible tests, stored as fixtures.npz; None if the
    # visible tests need none.
    fixtures: Callable[[np.random.Generator], dict[str, np.ndarray]] | None = None
    # Files of the repository (paths from its root) copied next to the notebook on release.
    released_files: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.id.isidentifier():
            raise ValueError(f"Assignment id: expected a Python identifier, got {self.id!r}")
        if not self.checks:
            raise ValueError(f"Assignment {self.id!r}: expected at least one check")
        names = [check.name for check in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"Assignment {self.id!r}: check names must be unique, got {names}")
        for check in self.checks:
            if not (isinstance(check, Check) and check.points > 0):
                raise ValueError(f"Assignment {self.id!r}: expected Checks with positive points, "
                                 f"got {check!r}")

    @property
    def points(self) -> int:
        """The assignment's maximum score."""
        return sum(check.points for check in self.checks)

    @property
    def forbidden(self) -> tuple[str, ...]:
        """The library names that some function of this assignment may not use."""
        return tuple(dict.fromkeys(entry for check in self.checks for entry in check.forbidden))


REGISTRY: dict[str, Assignment] = {}


def register(assignment: Assignment) -> Assignment:
    """Add ``assignment`` to the registry; an id may be registered once."""
    if not isinstance(assignment, Assignment):
        raise TypeError(f"register: expected an Assignment, got {type(assignment).__name__}")
    if REGISTRY.get(assignment.id, assignment) is not assignment:
        raise ValueError(f"register: an assignment {assignment.id!r} is already registered")
    REGISTRY[assignment.id] = assignment
    return assignment


def get(assignment_id: str) -> Assignment:
    """The assignment ``assignment_id``; ``KeyError`` naming the valid ids otherwise."""
    if assignment_id not in REGISTRY:
        raise KeyError(f"unknown assignment {assignment_id!r}; expected one of {list(REGISTRY)}")
    return REGISTRY[assignment_id]


# Read by the visible tests of every assignment: released with each notebook.
GRADCHECK = "solutions/gradcheck.py"

for _assignment in (
    Assignment("rnn", "Recurrent neural networks", ("solutions.rnn",), tuple(rnn.CHECKS),
               rnn.fixtures, (GRADCHECK,)),
    Assignment("lstm_gru", "LSTM and GRU",
               ("solutions.lstm", "solutions.gru", "solutions.modules"), tuple(lstm_gru.CHECKS),
               lstm_gru.fixtures, (GRADCHECK,)),
    Assignment("convlstm", "Convolutional LSTM", ("solutions.convlstm",),
               tuple(convlstm.CHECKS), convlstm.fixtures, (GRADCHECK,)),
    Assignment("ctc", "Connectionist temporal classification (CTC)",
               ("solutions.ctc", "solutions.decode"), tuple(ctc.CHECKS), ctc.fixtures,
               (GRADCHECK,)),
):
    register(_assignment)


def _extra_modules(names: str | None = None) -> list[str]:
    names = os.environ.get(EXTRA_ASSIGNMENTS_ENV, "") if names is None else names
    return [name.strip() for name in names.split(",") if name.strip()]


def load_extra_assignments(names: str | None = None) -> list[Assignment]:
    """Register the ``ASSIGNMENT`` of each module in ``names`` (comma-separated; default: the
    environment variable ``AUTOGRADER_EXTRA_ASSIGNMENTS``)."""
    loaded = []
    for name in _extra_modules(names):
        declared = getattr(importlib.import_module(name), "ASSIGNMENT", None)
        if not isinstance(declared, Assignment):
            raise TypeError(f"{EXTRA_ASSIGNMENTS_ENV}: module {name!r} must define ASSIGNMENT, "
                            "an autograder.assignments.Assignment")
        loaded.append(register(declared))
    return loaded


def extra_assignment_files() -> list[str]:
    """The source files of the modules named in ``AUTOGRADER_EXTRA_ASSIGNMENTS``, to be copied
    next to the checks wherever they run (the re-verification's sandbox)."""
    return [importlib.import_module(name).__file__ for name in _extra_modules()]


load_extra_assignments()


# ------------------------------------------------------------------------------------------------
# Views of the registry (also exported by autograder.checks): they follow later registrations.


class _Ids(Sequence[str]):
    """The registered ids, in the order of registration (the book's)."""

    def __getitem__(self, index):
        return list(REGISTRY)[index]

    def __len__(self) -> int:
        return len(REGISTRY)

    def __contains__(self, value) -> bool:
        return value in REGISTRY

    def __repr__(self) -> str:
        return repr(tuple(REGISTRY))


class _Checks(Mapping[str, list[Check]]):
    """Assignment id -> its checks, in the notebook's order."""

    def __getitem__(self, assignment_id: str) -> list[Check]:
        return list(REGISTRY[assignment_id].checks)

    def __iter__(self) -> Iterator[str]:
        return iter(list(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


ASSIGNMENTS: Sequence[str] = _Ids()
CHECKS: Mapping[str, list[Check]] = _Checks()


def get_check(assignment_id: str, name: str) -> Check:
    """The check ``name`` of an assignment; ``KeyError`` naming the valid choices otherwise."""
    checks = get(assignment_id).checks
    for check in checks:
        if check.name == name:
            return check
    raise KeyError(f"assignment {assignment_id!r} has no check {name!r}; expected one of "
                   f"{[c.name for c in checks]}")


def reference_namespace(assignment_id: str) -> dict[str, Any]:
    """The reference objects (from ``solutions``) of the names the checks of an assignment need."""
    assignment = get(assignment_id)
    modules = [importlib.import_module(m) for m in assignment.reference_modules]
    namespace = {}
    for check in assignment.checks:
        for name in check.needs:
            for module in modules:
                if hasattr(module, name):
                    namespace[name] = getattr(module, name)
                    break
            else:
                raise ImportError(f"the reference package defines no {name!r} in "
                                  f"{assignment.reference_modules}")
    return namespace
