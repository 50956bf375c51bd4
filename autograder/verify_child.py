"""The untrusted half of the trusted re-verification: runs a submission's notebook, then the checks.

This file is copied into the sandbox's own folder and started there as a plain script
(``python -I -S verify_child.py DIR``), with the interpreter's site-packages added without
processing ``.pth`` files: ``solutions`` (installed editable) is not importable, and in a mount
namespace its files are not even visible.

It runs the notebook once, as a Jupyter kernel would: every code cell in order in an IPython
shell (magics, ``display``, rich results, tracebacks), each with a time limit. With ``capture``
in the input, each cell's outputs (streams, displays, results, errors; at most ``capture`` bytes
of it) are written to ``<out_dir>/_out<i>.json`` as the cell ends: they become the autograded
notebook's outputs. Then it writes ``<cells-done>`` to ``<out_dir>/progress`` and waits for
``DIR/checks/ready``: only then does the parent, having read the outputs, put the checks
(``autograder/checks``, the cases ``cases.npz`` and their layout ``cases.json``) into
``DIR/checks``. Nothing printed while the notebook ran can show a hidden test.

For each check it writes ``<out_dir>/<check>.npz`` (the outputs of each case, ``c<i>/<key>``) and
``<check>.json`` (``{"error": reason or null}``) before going on to the next one, and
``<out_dir>/progress`` names the check being run, so that the parent can attribute a crash and go
on without it. Nothing here is trusted: the parent compares the arrays with the reference.
"""

import contextlib
import json
import os
import signal
import sys
import time
import warnings


class _CellTimeout(BaseException):
    """Raised by the alarm; a BaseException: ``except Exception`` in student code misses it."""


def _alarm(signum, frame):
    raise _CellTimeout()


class _CellOutputs:
    """What one cell printed and displayed, as notebook outputs, within a budget of bytes shared
    by every kind of output (0: nothing is kept)."""

    def __init__(self, max_bytes, execution_count=None):
        self.max_bytes = max_bytes
        self.execution_count = execution_count
        self.outputs = []
        self.used = 0
        self.truncated = False

    def _fits(self, size):
        self.used += size
        if self.used <= self.max_bytes:
            return True
        if self.max_bytes and not self.truncated:
            self.truncated = True
            self.stream("stderr", f"\n[output truncated: more than {self.max_bytes // 1000} kB]\n",
                        force=True)
        return False

    def stream(self, name, text, force=False):
        if not force and not self._fits(len(text)):
            return
        last = self.outputs[-1] if self.outputs else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def rich(self, output):
        if self._fits(len(json.dumps(output, default=str))):
            self.outputs.append(output)


class _Stream:
    """``sys.stdout`` or ``sys.stderr`` while a cell runs: into the cell's outputs."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, name, sink):
        self.name, self.sink = name, sink

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.sink().stream(self.name, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        import io

        raise io.UnsupportedOperation("fileno")


def _shell(cell_outputs):
    """An IPython shell whose displays, results and tracebacks go to ``cell_outputs()``, as in a
    kernel; nothing is written to IPython's history."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs):
            cell_outputs().rich({"output_type": "display_data", "data": data,
                                 "metadata": metadata or {}})

        def clear_output(self, wait=False):
            cell_outputs().outputs.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            cell_outputs().rich({"output_type": "execute_result", "data": format_dict,
                                 "metadata": md_dict or {},
                                 "execution_count": cell_outputs().execution_count})

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        display_pub_class = Type(Publisher)
        displayhook_class = Type(Hook)

        @contextlib.contextmanager
        def _tee(self, channel):
            # IPython 9 keeps a copy of everything printed in memory: not here.
            yield

        def _showtraceback(self, etype, evalue, stb):
            cell_outputs().rich({"output_type": "error", "ename": getattr(etype, "__name__", "?"),
                                 "evalue": str(evalue)[:2000], "traceback": stb[-100:]})

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    return Shell.instance(config=config)


def _run_cells(cells, timeout, capture, out_dir):
    """Run the notebook's cells in one IPython shell; returns its namespace and notes on the
    cells that raised or ran too long."""
    current = [_CellOutputs(capture or 0)]
    shell = _shell(lambda: current[0])
    notes = []
    real_streams = sys.stdout, sys.stderr
    sys.stdout = _Stream("stdout", lambda: current[0])
    sys.stderr = _Stream("stderr", lambda: current[0])
    try:
        for i, source in enumerate(cells):
            current[0] = _CellOutputs(capture or 0, shell.execution_count)
            with open(os.path.join(out_dir, "progress"), "w") as f:
                f.write(f"<cell {i}>")
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                result = shell.run_cell(source, store_history=True)
                error = result.error_before_exec or result.error_in_exec
            except _CellTimeout as raised:  # between IPython's own handlers
                error = raised
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(error, _CellTimeout):
                notes.append(f"code cell {i + 1} ran longer than {timeout:g} s")
                current[0].outputs.append({"output_type": "error", "ename": "CellTimeoutError",
                                           "evalue": f"ran longer than {timeout:g} s",
                                           "traceback": []})
            elif error is not None:
                notes.append(f"code cell {i + 1} raised {type(error).__name__}: {str(error)[:200]}")
            if capture is not None:
                with open(os.path.join(out_dir, f"_out{i}.json"), "w") as f:
                    json.dump({"execution_count": current[0].execution_count,
                               "outputs": current[0].outputs}, f, default=str)
    finally:
        sys.stdout, sys.stderr = real_streams
    return shell.user_ns, notes


def _wait_for(path):
    """Until the parent has put the checks in place (it kills this process if it never does)."""
    while not os.path.exists(path):
        time.sleep(0.01)


def _load_cases(layouts, arrays):
    cases = {}
    for name, layout in layouts.items():
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
    with open(os.path.join(folder, "input.json")) as f:
        spec = json.load(f)
    out_dir = spec["out_dir"]
    progress = os.path.join(out_dir, "progress")
    timeout = spec["timeout"]

    signal.signal(signal.SIGALRM, _alarm)
    namespace, cell_notes = _run_cells(spec["cells"], timeout, spec.get("capture"), out_dir)
    with open(os.path.join(out_dir, "_cells.json"), "w") as f:
        json.dump(cell_notes, f)
    with open(progress, "w") as f:
        f.write("<cells-done>")

    checks_dir = os.path.join(folder, "checks")
    _wait_for(os.path.join(checks_dir, "ready"))
    warnings.simplefilter("ignore")
    sys.path.insert(0, checks_dir)
    import importlib

    importlib.invalidate_caches()
    import numpy as np

    with open(os.path.join(checks_dir, "cases.json")) as f:
        layout = json.load(f)
    with np.load(os.path.join(checks_dir, "cases.npz"), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    cases = _load_cases({n: layout[n] for n in spec["checks"]}, arrays)
    from autograder import checks as checks_module

    wanted = {c.name: c for c in checks_module.CHECKS[spec["assignment"]]}
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
    sys.path.extend(json.loads(sys.argv[2]))
    # Like a kernel started in the notebook's folder: helper modules shipped with it import.
    sys.path.append(os.getcwd())
    sys.setrecursionlimit(10_000)
    main(folder)
    # Skip interpreter teardown: student code may have left threads or atexit hooks behind.
    os._exit(0)
