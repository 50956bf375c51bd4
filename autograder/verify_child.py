"""The untrusted half of the trusted re-verification: runs a submission's code on the given cases.

This file is copied into the sandbox's own folder and started there as a plain script
(``python -I -S verify_child.py DIR``), with a private copy of ``autograder/checks`` next to it and
the interpreter's site-packages added without processing ``.pth`` files: ``solutions`` (installed
editable) is not importable, and in a mount namespace its files are not even visible.

Protocol (all under DIR): ``input.json`` (the code cells, the checks to run, the case layout),
``cases.npz`` (the case arrays). For each check it writes ``<out_dir>/<check>.npz`` (the outputs of
each case, ``c<i>/<key>``) and ``<check>.json`` (``{"error": reason or null}``) before going on to
the next one, and ``<out_dir>/progress`` names the check being run, so that the parent can
attribute a crash and go on without it. Nothing here is trusted: the parent compares the arrays
with the reference.
"""

import json
import os
import signal
import sys
import warnings


class _CellTimeout(BaseException):
    """Raised by the alarm; a BaseException: ``except Exception`` in student code misses it."""


def _alarm(signum, frame):
    raise _CellTimeout()


class _FakeIPython:
    """Enough of ``get_ipython()`` for the magics that IPython's transformer leaves in the code."""

    def __init__(self, namespace):
        self.user_ns = namespace

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, name, line, body):
        # Timing and capturing magics still define the cell's functions.
        if name in ("time", "timeit", "capture"):
            exec(compile(body, "<cell>", "exec"), self.user_ns)

    def system(self, *args, **kwargs):
        return None

    def getoutput(self, *args, **kwargs):
        return []


def _load_cases(spec, arrays):
    cases = {}
    for name, layout in spec["cases"].items():
        cases[name] = [
            {k: (arrays[v["array"]] if "array" in v else v["value"]) for k, v in case.items()}
            for case in layout
        ]
    return cases


class _OperatorLog:
    """The ATen operators executed while it is open, recorded by PyTorch's profiler (at the
    dispatcher, so every spelling of a call is seen); nothing to record while ``torch`` is not
    loaded. ``names`` is None if the code inside switched the profiler off."""

    def __enter__(self):
        self.names = set()
        self.torch = sys.modules.get("torch")
        self.profiler = None
        if self.torch is not None:
            self.profiler = self.torch.autograd.profiler.profile()
            self.profiler.__enter__()
        return self

    def __exit__(self, *exc):
        if self.profiler is None:
            return False
        try:
            still_on = self.torch.autograd._profiler_enabled()
            self.profiler.__exit__(None, None, None)
            events = self.profiler.kineto_results.events()
            self.names = {event.name() for event in events} if still_on else None
        except Exception:  # noqa: BLE001 -- a profiler that cannot be read was tampered with
            self.names = None
        return False


def _run_check(check, check_cases, namespace, timeout):
    """Run ``check`` on every case: ``(error or None, outputs, operators executed or None)``."""
    import numpy as np

    from autograder import checks as checks_module

    error, outputs = None, {}
    log = _OperatorLog()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with log:
            for i, case in enumerate(check_cases):
                got, reason = checks_module.run_case(check, namespace, case)
                if reason is not None:
                    if reason.endswith("not defined") or reason.startswith("not implemented"):
                        error = f"{reason} in the notebook"
                    else:
                        error = f"{reason} at case {i} ({checks_module.describe_case(case)})"
                    break
                if not isinstance(got, dict):
                    error = f"the check returned {type(got).__name__} at case {i}"
                    break
                for key, value in got.items():
                    try:
                        outputs[f"c{i}/{key}"] = np.asarray(value, dtype=np.float64)
                    except (TypeError, ValueError):
                        error = f"output {key!r} is not numeric at case {i}"
                        break
                if error:
                    break
    except _CellTimeout:
        error = f"ran longer than {timeout:g} s (infinite loop?)"
    except BaseException as error_:  # noqa: BLE001 -- e.g. SystemExit from student code
        error = f"raised {type(error_).__name__}: {str(error_)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return error, outputs, log.names


def main(folder):
    import numpy as np

    with open(os.path.join(folder, "input.json")) as f:
        spec = json.load(f)
    with np.load(os.path.join(folder, "cases.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    cases = _load_cases(spec, arrays)
    from autograder import checks as checks_module

    wanted = {c.name: c for c in checks_module.CHECKS[spec["assignment"]]}
    out_dir = spec["out_dir"]
    progress = os.path.join(out_dir, "progress")
    timeout = spec["timeout"]

    signal.signal(signal.SIGALRM, _alarm)
    warnings.simplefilter("ignore")
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    namespace["get_ipython"] = lambda: _FakeIPython(namespace)
    cell_errors = []
    with open(progress, "w") as f:
        f.write("<cells>")
    for i, source in enumerate(spec["cells"]):
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            exec(compile(source, f"<cell {i}>", "exec"), namespace)
        except _CellTimeout:
            cell_errors.append(f"cell {i} ran longer than {timeout:g} s")
        except BaseException as error:  # noqa: BLE001 -- the notebook goes on after a failing cell
            cell_errors.append(f"cell {i} raised {type(error).__name__}: {str(error)[:200]}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    with open(os.path.join(out_dir, "_cells.json"), "w") as f:
        json.dump(cell_errors, f)

    if any("torch" in source for source in spec["cells"]):
        # Imported here, outside any check's time limit (it takes seconds), so that the first
        # check does not pay for it and its operators are recorded from the first call.
        try:
            import torch  # noqa: F401
        except BaseException:  # noqa: BLE001 -- the checks then fail with the student's error
            pass
    for name in spec["checks"]:
        check = wanted[name]
        with open(progress, "w") as f:
            f.write(name)
        torch_loaded = "torch" in sys.modules
        error, outputs, operators = _run_check(check, cases[name], namespace, timeout)
        if not torch_loaded and "torch" in sys.modules:
            # The graded call imported PyTorch itself: run it again with its operators recorded.
            error, outputs, operators = _run_check(check, cases[name], namespace, timeout)
        forbidden = checks_module.forbidden_operator_calls(check, operators or ())
        if forbidden:
            shown = ", ".join(forbidden[:3]) + (", ..." if len(forbidden) > 3 else "")
            error, outputs = f"must be written from scratch, but runs {shown}", {}
        elif operators is None:
            error, outputs = "switched off the grader's record of the PyTorch operators it ran", {}
        np.savez(os.path.join(out_dir, f"{name}.npz"), **outputs)
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump({"error": error, "cases": len(cases[name])}, f)
    with open(progress, "w") as f:
        f.write("<done>")


if __name__ == "__main__":
    folder = sys.argv[1]
    sys.path[:0] = [os.path.join(folder, "pkg")]
    sys.path.extend(json.loads(sys.argv[2]))
    # Like a kernel started in the notebook's folder: helper modules shipped with it import.
    sys.path.append(os.getcwd())
    sys.setrecursionlimit(10_000)
    main(folder)
    # Skip interpreter teardown: student code may have left threads or atexit hooks behind.
    os._exit(0)
