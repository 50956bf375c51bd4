"""Per-function grading checks shared by the hidden tests and the trusted re-verification.

A :class:`Check` (in :mod:`autograder.checks.core`) says how to grade one function (or class) of an
assignment: which names the submission must define, how to make test cases, how to run a namespace
on one case, and the tolerance. Each assignment's module here (``rnn.py``, ``lstm_gru.py``,
``convlstm.py``, ``ctc.py``) lists its checks and computes the fixtures of its visible tests; the
registry :mod:`autograder.assignments` declares the assignments. The same check is used in three
places:

* in the instructor's notebook, each hidden test cell calls :func:`run_check`, which compares the
  student's ``globals()`` with the reference package ``solutions`` on every case;
* the grading pipeline runs ``check.run`` on the submission in an isolated child process and
  compares the returned arrays with :func:`compare` in the trusted parent;
* the test suite grades mutated reference implementations in-process to show that plausible bugs
  lose the points of exactly the functions they touch.

``ASSIGNMENTS``, ``CHECKS``, ``get_check`` and ``reference_namespace`` are the registry's views,
looked up on first use: the registry imports this package's modules, and nothing here imports it
back at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autograder.checks.core import (
    ALWAYS_FORBIDDEN,
    Check,
    compare,
    describe_case,
    find_forbidden,
    forbidden_operator_calls,
    forbidden_operators,
    run_case,
    solution_source,
)

__all__ = [
    "ALWAYS_FORBIDDEN", "ASSIGNMENTS", "CHECKS", "Check", "compare", "describe_case", "evaluate",
    "find_forbidden", "forbidden_operator_calls", "forbidden_operators", "get_check",
    "reference_namespace", "run_case", "run_check", "solution_source",
]

_REGISTRY_VIEWS = ("ASSIGNMENTS", "CHECKS", "get_check", "reference_namespace")


def __getattr__(name: str):
    if name in _REGISTRY_VIEWS:
        from autograder import assignments

        return getattr(assignments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def evaluate(
    assignment: str,
    name: str,
    namespace: Mapping[str, Any],
    reference: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> str | None:
    """Grade ``namespace`` on every case of one check; None if it passes, else the reason.

    ``reference`` defaults to :func:`reference_namespace`; ``source`` (the solution code) is also
    scanned by :func:`find_forbidden` when given.
    """
    from autograder import assignments as registry

    check = registry.get_check(assignment, name)
    if source is not None:
        found = find_forbidden(source, check)
        if found:
            return f"{name} must be written from scratch: it uses {', '.join(found)}"
    reference = registry.reference_namespace(assignment) if reference is None else reference
    for i, case in enumerate(check.make_cases()):
        expected, error = run_case(check, reference, case)
        if error is not None:
            raise RuntimeError(f"the reference fails on case {i} of {name}: {error}")
        got, reason = run_case(check, namespace, case)
        if reason is None:
            reason = compare(name, got, expected, check)
        if reason is not None:
            return f"{name}: {reason} at case {i} ({describe_case(case)})"
    return None


def run_check(assignment: str, name: str, namespace: Mapping[str, Any]) -> None:
    """The hidden test of one graded function: raises ``AssertionError`` with the reason on failure.

    In a notebook, pass ``globals()``; the code of the kernel's earlier cells is scanned for
    forbidden names too.
    """
    from autograder import assignments as registry

    reason = evaluate(assignment, name, namespace, source=solution_source(namespace))
    if reason is not None:
        raise AssertionError(reason)
    print(f"{name}: all {len(registry.get_check(assignment, name).make_cases())} hidden cases pass")
