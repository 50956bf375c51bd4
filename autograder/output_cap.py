"""A cap on what one cell may print, installed inside the grading kernel.

The worker also drops output beyond the cap as it arrives (``CappedExecute``), but that is too
late for a flood: IPython keeps its own copy of everything a cell prints, and ipykernel buffers
output faster than it can send it, so ``print`` in a tight loop exhausts the sandbox's memory limit
and the kernel dies, taking the autograded notebook with it. This cap drops the text in the kernel,
before anything keeps it. The kernel starts with::

    --IPKernelApp.exec_lines=["__import__('autograder.output_cap').output_cap.install(N)"]

Student code can undo it (it runs in the same process); that only costs the student their own
notebook's outputs, since the grade comes from the trusted re-verification.
"""

from __future__ import annotations

import contextlib
import sys


def truncation_note(max_bytes: int) -> str:
    return f"\n[output truncated: more than {max_bytes // 1000} kB]\n"


class _CellBudget:
    """Characters printed since the current cell started, shared by stdout and stderr."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self.noted: set[str] = set()

    def reset(self, *args) -> None:
        self.used = 0
        self.noted.clear()

    def capped(self, write, name: str):
        def capped_write(text, *args, **kwargs):
            self.used += len(text)
            if self.used <= self.max_bytes:
                return write(text, *args, **kwargs)
            if name not in self.noted:
                self.noted.add(name)
                write(truncation_note(self.max_bytes))
            return len(text)

        return capped_write


def install(max_bytes: int) -> None:
    from IPython import get_ipython

    shell = get_ipython()
    budget = _CellBudget(max_bytes)
    shell.events.register("pre_run_cell", budget.reset)
    tee = getattr(shell, "_tee", None)
    if tee is None:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            stream.write = budget.capped(stream.write, name)
        return

    # IPython 9 keeps a copy of everything a cell prints in its history (``_tee``), in memory:
    # the cap must sit in front of that copy, so it wraps the write that ``_tee`` installs.
    @contextlib.contextmanager
    def capped_tee(channel):
        with tee(channel=channel):
            stream = getattr(sys, channel)
            teed = stream.write
            stream.write = budget.capped(teed, channel)
            try:
                yield
            finally:
                stream.write = teed

    shell._tee = capped_tee
