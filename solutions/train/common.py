"""What every training task shares: device, mixed precision, DDP, seeds, run folder, checkpoints.

The training loop :func:`fit` is written once here; a task supplies its model, optimiser, a
function that makes batch ``step`` and a function that computes the loss. The loop adds:

- **device** chosen at run time (``auto`` takes CUDA when present) and **mixed precision** on
  CUDA (``torch.autocast``; float16 with a ``GradScaler``, or bfloat16);
- **several processes** through ``torchrun``: each process reads ``RANK``, ``WORLD_SIZE`` and
  ``LOCAL_RANK``, joins a process group (NCCL on GPU, gloo on CPU), wraps the model in
  ``DistributedDataParallel`` and computes its own rows of each global batch;
- a **run folder** with ``config.json``, ``meta.json`` (versions, device, wall time, and a
  ``history`` of every invocation: command, start and end, steps covered, device),
  ``metrics.jsonl`` (one JSON record per line) and the task's PNG plots;
- a **checkpoint** every ``checkpoint_every`` steps with the model, optimiser, scheduler, scaler
  and the random states of every rank. Batches are pure functions of the step number (see
  :mod:`solutions.data`), so the step is the whole position in the data stream and ``resume``
  continues exactly: the loss curve equals that of an uninterrupted run with the same seed;
- a **guard** that stops at the first non-finite loss with a clear message, before the bad
  update, leaving the last good checkpoint in place.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from solutions.language import tr

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
COMMAND = {"line": None}  # the command line, set by ``python -m solutions.train``, for meta.json
# What this invocation did so far: the run folder, the steps each ``fit`` covered, the last
# checkpoint. ``meta.json``'s history and the command line's stop and Ctrl-C messages read it.
INVOCATION: dict = {}


def knob(default, help: str, **metadata):
    """A config field with its default and the help text that ``--help`` shows."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("knob: use a tuple for sequence defaults (dataclass fields are shared)")
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class BaseConfig:
    """Knobs shared by every task. Each task's ``Config`` adds its own.

    ``PRESETS`` (a class attribute, not a field) names sets of defaults, each with an ``about``
    line; ``Config.preset(name, **overrides)`` builds one, ``--preset name`` on the command line.
    """

    PRESETS: ClassVar[dict[str, dict]] = {}

    out: str = knob("", "run folder (with --resume: the run to continue, whose saved options "
                        "are used)", shown_default="runs/{task}/YYYYmmdd-HHMMSS")
    device: str = knob("auto", "where to train; auto takes CUDA when present",
                       choices=("auto", "cpu", "cuda"))
    amp: bool = knob(False, "mixed precision (CUDA only): autocast to --amp-dtype")
    amp_dtype: str = knob("float16", "autocast dtype; float16 also scales the loss",
                          choices=("float16", "bfloat16"))
    seed: int = knob(0, "seed of the initial weights and of the training data stream")
    steps: int = knob(1000, "optimiser steps in the whole run")
    batch_size: int = knob(64, "global batch size, split evenly across the processes")
    lr: float = knob(1e-3, "peak learning rate")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    grad_clip: float = knob(1.0, "clip the global gradient norm to this; 0 turns clipping off")
    log_every: int = knob(10, "steps between records of the training loss")
    eval_every: int = knob(0, "steps between evaluations; 0 evaluates only at the end")
    checkpoint_every: int = knob(100, "steps between checkpoints (one is also kept at the end)")
    resume: bool = knob(False, "continue the run in --out from its checkpoint")
    stop_after: int = knob(0, "stop after this many steps of this invocation, as if "
                              "interrupted (0: run to --steps); continue later with --resume")
    workers: int = knob(0, "data-loading processes that prepare batches ahead (0: in the loop)")
    threads: int = knob(0, "CPU threads per process (0: the cores divided among local ranks)")
    progress: bool = knob(True, "show a tqdm progress bar")

    @classmethod
    def preset(cls, name: str, **overrides):
        """The config of preset ``name``, with ``overrides`` applied on top."""
        if name not in cls.PRESETS:
            raise ValueError(f"preset (--preset): expected one of {tuple(cls.PRESETS)}, "
                             f"got {name!r}")
        values = {k: v for k, v in cls.PRESETS[name].items() if k != "about"}
        return cls(**{**values, **overrides})

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option with a bad value."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and isinstance(value, tuple):
                if not value or any(v not in choices for v in value):
                    raise ValueError(f"{_opt(f.name)}: expected a non-empty selection of "
                                     f"{choices}, got {value!r}")
            elif choices and value not in choices:
                raise ValueError(f"{_opt(f.name)}: expected one of {choices}, got {value!r}")
            if "minimum" in f.metadata and value < f.metadata["minimum"]:
                raise ValueError(
                    f"{_opt(f.name)}: expected at least {f.metadata['minimum']}, got {value!r}"
                )
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_opt(name)}: expected a positive integer, "
                                 f"got {getattr(self, name)!r}")
        for name in ("eval_every", "stop_after", "workers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{_opt(name)}: expected 0 or more, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                sign = "positive" if name == "lr" else "non-negative"
                raise ValueError(f"{_opt(name)}: expected a finite {sign} number, got {value!r}")
        if self.resume and not self.out:
            raise ValueError("--resume: needs --out, the folder of the run to continue")


def _opt(name: str) -> str:
    return f"{name} (--{name.replace('_', '-')})"


# ----------------------------------------------------------------------------- runtime


@dataclass
class Runtime:
    """Where this process runs and which part of the work it does."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    autocast_dtype: torch.dtype | None = None  # None: full precision

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def rows(self, batch_size: int) -> range:
        """This rank's rows of a global batch of ``batch_size`` rows."""
        per_rank = batch_size // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def autocast(self):
        """The mixed-precision context of this run (disabled when ``autocast_dtype`` is None)."""
        enabled = self.autocast_dtype is not None
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)


def setup_runtime(cfg: BaseConfig) -> Runtime:
    """Pick the device, join the process group when launched by ``torchrun``, set threads.

    ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in every process it starts;
    without them this is a single process. On CUDA each process takes GPU ``LOCAL_RANK``.
    """
    cfg.check()
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device (--device): cuda was asked for but torch sees no CUDA device; "
                         "use --device cpu or auto")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.amp and not use_cuda:
        raise ValueError("amp (--amp): mixed precision needs a CUDA device; this run is on CPU")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    if cfg.batch_size % world_size:
        raise ValueError(f"batch_size (--batch-size): {cfg.batch_size} does not split evenly "
                         f"across {world_size} processes")
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // local_world))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.amp_dtype]
    return Runtime(device, rank, world_size, local_rank, dtype if cfg.amp else None)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices): the initial weights depend only on ``seed``."""
    random.seed(seed)
    # our data uses its own Generators; the legacy global state is seeded for any other code
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- run folder


def make_run_dir(cfg: BaseConfig, task: str, rt: Runtime) -> Path:
    """Create (or, with ``resume``, find) the run folder and write ``config.json``, ``meta.json``.

    A fresh run refuses a folder that already holds one, so results are never mixed up.
    """
    if cfg.out:
        run_dir = Path(cfg.out)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / task / stamp
        if rt.distributed:  # every rank must agree on the folder: take rank 0's name
            names = [str(run_dir)]
            dist.broadcast_object_list(names, src=0)
            run_dir = Path(names[0])
    problem = None
    if rt.is_main:
        if cfg.resume:
            if not (run_dir / CHECKPOINT).exists() and not any(run_dir.glob(f"*/{CHECKPOINT}")):
                problem = FileNotFoundError(f"--resume: no {CHECKPOINT} in {run_dir}")
            else:
                problem = _config_change(run_dir, cfg)
        elif (run_dir / METRICS).exists() or (run_dir / CHECKPOINT).exists() or any(
            run_dir.glob(f"*/{METRICS}")
        ):
            problem = FileExistsError(
                f"--out: {run_dir} already holds a run; pass --resume to continue it "
                f"or choose another folder"
            )
    if rt.distributed:  # every rank raises, or the others would wait for rank 0 forever
        shared = [problem]
        dist.broadcast_object_list(shared, src=0)
        problem = shared[0]
    if problem is not None:
        raise problem
    INVOCATION.update(task=task, run_dir=run_dir, rt=rt, parts={}, last_checkpoint=None)
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {"task": task, **dataclasses.asdict(cfg)}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        _start_history(run_dir, rt, resumed=cfg.resume)
    _barrier(rt)
    return run_dir


def _start_history(run_dir: Path, rt: Runtime, resumed: bool) -> None:
    """Open this invocation's entry in ``meta.json``'s ``history``.

    The top-level ``command`` and ``started`` stay those of the invocation that started the run
    (the command that reproduces it); a continuation only appends to the history.
    """
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text()) if resumed and path.exists() else {}
    now = time.time()
    entry = {"command": COMMAND["line"], "started": now, "device": describe_device(rt.device),
             "world_size": rt.world_size}
    history = meta.get("history")
    if history is None and "wall_s" in meta:  # a run from before the history was kept
        history = [{k: meta[k] for k in ("command", "started", "device", "wall_s", "cpu_s")
                    if k in meta}]
    history = [*(history or []), entry]
    if not meta:
        meta = {"started": now, "command": COMMAND["line"]}
    path.write_text(json.dumps({**meta, "history": history}, indent=2) + "\n")
    write_meta(run_dir, rt)


def _close_history(run_dir: Path, rt: Runtime, wall_s: float, cpu_s: float,
                   interrupted: bool = False, **extra) -> None:
    """Complete this invocation's entry; the top-level times become the sums over the history."""
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text())
    history = meta.get("history") or [{}]
    history[-1].update(ended=time.time(), wall_s=wall_s, cpu_s=cpu_s,
                       steps={name: [p["start"], p["done"]]
                              for name, p in INVOCATION.get("parts", {}).items()})
    if interrupted:
        history[-1]["interrupted"] = True
    total = {key: round(sum(h.get(key, 0.0) for h in history), 1) for key in ("wall_s", "cpu_s")}
    path.write_text(json.dumps({**meta, "history": history}, indent=2) + "\n")
    write_meta(run_dir, rt, **total, complete=run_complete(), **extra)


def run_complete() -> bool:
    """Whether every ``fit`` of this invocation reached its config's ``steps``."""
    return all(p["done"] >= p["steps"] for p in INVOCATION.get("parts", {}).values())


def resume_command(run_dir: Path | None = None) -> str:
    """The command line that continues this invocation's run (its options come from the folder)."""
    run_dir = run_dir or INVOCATION["run_dir"]
    rt = INVOCATION.get("rt")
    launcher = (f"torchrun --nproc_per_node={rt.world_size} -m" if rt is not None
                and rt.distributed else "python -m")
    return f"{launcher} solutions.train {INVOCATION['task']} --out {run_dir} --resume"


def record_interruption() -> str:
    """Close the history entry of an interrupted invocation; returns the one-line message."""
    if not INVOCATION:
        return "interrupted before the run folder was made; nothing to resume"
    rt, run_dir = INVOCATION["rt"], INVOCATION["run_dir"]
    started = INVOCATION.get("clock")
    if rt.is_main and started is not None:
        _close_history(run_dir, rt, wall_s=round(time.time() - started[0], 1),
                       cpu_s=round(time.process_time() - started[1], 1), interrupted=True)
    last = INVOCATION["last_checkpoint"]
    if last is None:
        return (f"interrupted before the first checkpoint of {run_dir}; "
                f"continue (from step 0) with: {resume_command()}")
    return (f"interrupted: the last checkpoint is {last['path']} (step {last['step']} of "
            f"{last['steps']}); continue with: {resume_command()}")


# options that may change when a run is resumed: they do not change what is computed
RUNTIME_OPTIONS = {"out", "device", "resume", "stop_after", "workers", "threads", "progress",
                    "checkpoint_every"}


def _config_change(run_dir: Path, cfg: BaseConfig) -> ValueError | None:
    """A ``ValueError`` naming the options that differ from the run being resumed, if any."""
    path = run_dir / "config.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    now = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples -> lists, as saved
    changed = [f"--{k.replace('_', '-')} (was {saved.get(k)!r}, now {v!r})"
               for k, v in now.items() if k not in RUNTIME_OPTIONS and saved.get(k) != v]
    if changed:
        return ValueError("--resume: the run in " + str(run_dir) + " was started with other "
                          "options; a continuation must use the same: " + ", ".join(changed))
    return None


def write_meta(run_dir: Path, rt: Runtime, **extra) -> None:
    """Merge ``extra`` into ``meta.json``, which also names the software and the hardware."""
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    meta.update(
        torch=torch.__version__,
        python=platform.python_version(),
        device=describe_device(rt.device),
        world_size=rt.world_size,
        threads_per_process=torch.get_num_threads() if rt.device.type == "cpu" else None,
        amp=str(rt.autocast_dtype).replace("torch.", "") if rt.autocast_dtype else None,
    )
    meta.update(extra)
    path.write_text(json.dumps(meta, indent=2) + "\n")


def _cpu_models() -> list[str]:
    """The model name of every logical core in ``/proc/cpuinfo`` (none where it is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            return [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        return []


def describe_device(device: torch.device) -> str:
    """A human-readable name: the GPU model, or the CPU model from ``/proc/cpuinfo``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    models = _cpu_models()
    return f"{models[0]} ({len(models)} logical cores)" if models else platform.processor() or "CPU"


def cpu_environment() -> dict:
    """The machine and software of a CPU run, for its results file (the load average is read
    now: call it when the run ends)."""
    models = _cpu_models()
    return {
        "device": "cpu",
        "cpu": models[0] if models else platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


class MetricsLog:
    """Appends one JSON record per line to ``metrics.jsonl``; only rank 0 writes."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: int | None = None) -> None:
        self.path, self.enabled = path, enabled
        self.records: list[dict] = []
        if path.exists() and keep_until_step is not None:
            # resuming: records written after the checkpoint will be written again
            old = [json.loads(line) for line in path.read_text().splitlines() if line]
            self.records = [r for r in old if r["step"] <= keep_until_step]
        if enabled:
            path.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    def write(self, record: dict) -> None:
        self.records.append(record)
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def read_metrics(run_dir) -> list[dict]:
    """The records of ``metrics.jsonl`` in ``run_dir``."""
    text = (Path(run_dir) / METRICS).read_text()
    return [json.loads(line) for line in text.splitlines() if line]


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: Path, rt: Runtime, step: int, model, optimizer, scheduler, scaler, pending: dict,
    carry=None,
):
    """Write the state after ``step`` steps; atomic, so a crash never leaves half a file.

    ``pending`` holds the logged scalars of the steps since the last metrics record, so a
    resumed run writes the same next record as an uninterrupted one. ``carry`` (see
    :func:`fit`) is saved per rank, like the random states.
    """
    rng = [None] * rt.world_size
    carried = [None] * rt.world_size
    mine = carry.state_dict() if carry is not None else None
    if rt.distributed:
        dist.all_gather_object(rng, _rng_state())
        dist.all_gather_object(carried, mine)
    else:
        rng[0], carried[0] = _rng_state(), mine
    if rt.is_main:
        state = {
            "step": step,
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "rng": rng,
            "carry": carried,
            "pending": pending,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    _barrier(rt)


def load_checkpoint(path: Path, rt: Runtime, model, optimizer, scheduler, scaler, carry=None):
    """Restore the state saved by :func:`save_checkpoint`; returns ``(step, pending)``."""
    # on the CPU: random states must stay CPU tensors; load_state_dict moves the rest to
    # the device of the parameters
    state = torch.load(path, map_location="cpu", weights_only=False)
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    if len(rng) != rt.world_size:
        raise ValueError(
            f"--resume: the checkpoint was written by {len(rng)} process(es), this run has "
            f"{rt.world_size}; resume with the same number so the continuation is exact"
        )
    _set_rng_state(rng[rt.rank])
    if carry is not None:
        carry.load_state_dict(state["carry"][rt.rank])
    return int(state["step"]), state["pending"]


class CarriedState:
    """A recurrent state handed from one training step to the next (truncated BPTT).

    ``value`` is ``None`` (start from zeros), a tensor, or a tuple of tensors (an LSTM's
    ``(h, c)``). :meth:`keep` stores it detached: gradients stop at the batch boundary while the
    values flow on. Pass it to :func:`fit` as ``carry`` so checkpoints hold it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.value = device, None

    def keep(self, state) -> None:
        self.value = _map_tensors(state, lambda t: t.detach())

    def state_dict(self) -> dict:
        return {"value": _map_tensors(self.value, lambda t: t.cpu())}

    def load_state_dict(self, state: dict) -> None:
        self.value = _map_tensors(state["value"], lambda t: t.to(self.device))


def _map_tensors(state, fn):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(_map_tensors(s, fn) for s in state)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; raised before the update that would spread it."""


# ----------------------------------------------------------------------------- training loop


@dataclass
class StepBatches:
    """Batch ``step`` for ``step`` in ``[start, stop)``, optionally prepared by worker processes.

    ``make(step)`` must be a pure function of ``step`` (it draws its randomness from
    ``(seed, step, row)``), which makes prefetching and resuming safe.
    """

    make: Callable[[int], object]
    start: int
    stop: int
    workers: int = 0

    def __iter__(self):
        if self.workers == 0:
            return (self.make(step) for step in range(self.start, self.stop))
        loader = torch.utils.data.DataLoader(
            _StepDataset(self.make, self.start, self.stop),
            batch_size=None,
            num_workers=self.workers,
            prefetch_factor=4,
            persistent_workers=False,
        )
        return iter(loader)


class _StepDataset(torch.utils.data.Dataset):
    def __init__(self, make, start, stop):
        self.make, self.start, self.stop = make, start, stop

    def __len__(self):
        return self.stop - self.start

    def __getitem__(self, i):
        return self.make(self.start + i)


def fit(
    *,
    cfg: BaseConfig,
    rt: Runtime,
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    make_batch: Callable[[int], object],
    loss_fn: Callable[[nn.Module, object], tuple[torch.Tensor, dict]],
    eval_fn: Callable[[nn.Module, int], dict] | None = None,
    desc: str = "",
    carry=None,
) -> list[dict]:
    """Train ``model`` for ``cfg.steps`` steps; returns the metric records of the whole run.

    Args:
        make_batch: ``step -> batch``, this rank's rows of global batch ``step`` (CPU tensors;
            ``loss_fn`` moves them to the device).
        loss_fn: ``(model, batch) -> (loss, extra)``: the mean loss over this rank's rows
            (so that DDP's gradient average is the gradient of the global-batch mean) and a
            dict of extra scalars to log.
        eval_fn: ``(model, step) -> dict`` of scalars, run on rank 0 with the unwrapped model
            every ``cfg.eval_every`` steps and at the end.
        carry: state that ``loss_fn`` hands from one step to the next on each rank (the hidden
            state of truncated BPTT), an object with ``state_dict()`` and
            ``load_state_dict(d)``; checkpoints hold every rank's, so resuming stays exact.

    Records in ``metrics.jsonl``: ``{"step", "loss", "lr", ...}`` for training (the loss is
    the mean over the last ``log_every`` steps and over all ranks) and ``{"step", "eval": true,
    ...}`` for evaluations.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CHECKPOINT
    net = model
    if rt.distributed:
        ids = [rt.device.index] if rt.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    use_scaler = rt.autocast_dtype == torch.float16
    scaler = torch.amp.GradScaler(rt.device.type, enabled=use_scaler)

    start, pending = 0, {}
    if cfg.resume and ckpt.exists():
        start, pending = load_checkpoint(ckpt, rt, net, optimizer, scheduler, scaler, carry)
    log = MetricsLog(run_dir / METRICS, rt.is_main, keep_until_step=start if cfg.resume else None)
    stop = cfg.steps if not cfg.stop_after else min(cfg.steps, start + cfg.stop_after)
    part = {"start": start, "done": start, "steps": cfg.steps}
    INVOCATION.setdefault("parts", {})[desc or run_dir.name] = part
    if start >= cfg.steps:
        return log.records

    bar = None
    if cfg.progress and rt.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc=desc or run_dir.name, leave=False)
    net.train()
    try:
        _loop(cfg, rt, net, model, optimizer, scheduler, scaler, make_batch, loss_fn, eval_fn,
              desc, ckpt, log, start, stop, pending, part, bar, carry)
    finally:
        if bar is not None:
            bar.close()
    return log.records


def _loop(cfg, rt, net, model, optimizer, scheduler, scaler, make_batch, loss_fn, eval_fn,
          desc, ckpt, log, start, stop, pending, part, bar, carry) -> None:
    """The steps ``[start, stop)`` of :func:`fit`."""
    batches = StepBatches(make_batch, start, stop, cfg.workers)
    for step, batch in zip(range(start, stop), batches, strict=True):
        with rt.autocast():
            loss, extra = loss_fn(net, batch)
        _check_finite(loss, rt, step, ckpt, desc)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()

        done = step + 1
        # the scalars of the steps since the last record; averaged over ranks when written
        for key, value in {"loss": loss.item(), **extra}.items():
            pending.setdefault(key, []).append(float(value))
        if done % cfg.log_every == 0 or done == cfg.steps:
            means = _mean_over_ranks(pending, rt)
            log.write({"step": done, "lr": lr, **means})
            pending = {}
            if bar is not None:
                bar.set_postfix(loss=f"{means['loss']:.4g}")
        if eval_fn is not None and (
            (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.steps
        ):
            _evaluate(eval_fn, model, rt, done, log)
            net.train()
        if done % cfg.checkpoint_every == 0 or done in (stop, cfg.steps):
            save_checkpoint(ckpt, rt, done, net, optimizer, scheduler, scaler,
                            _pending_over_ranks(pending, rt), carry)
            INVOCATION["last_checkpoint"] = {"path": ckpt, "step": done, "steps": cfg.steps}
        part["done"] = done
        if bar is not None:
            bar.update(1)


def _check_finite(loss: torch.Tensor, rt: Runtime, step: int, ckpt: Path, desc: str) -> None:
    bad = (~torch.isfinite(loss.detach())).float()
    if rt.distributed:  # every rank must stop together, or the others hang in all-reduce
        dist.all_reduce(bad)
    if bad.item() > 0:
        if ckpt.exists():
            saved = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
            kept = f"the last good checkpoint, {ckpt} (step {saved}), is kept"
        else:
            kept = "no checkpoint was written yet"
        where = f"{desc}: " if desc else ""
        raise NonFiniteLossError(
            f"{where}the loss is {loss.item()} at step {step + 1}; training stopped before the "
            f"update. {kept}. Try a lower --lr, --grad-clip, or running without --amp."
        )


def _pending_over_ranks(pending: dict, rt: Runtime) -> dict:
    """Each pending scalar averaged over the ranks, step by step (a checkpoint holds one copy)."""
    if not rt.distributed:
        return pending
    out = {}
    for key, values in pending.items():
        t = torch.tensor(values, dtype=torch.float64, device=rt.device)
        dist.all_reduce(t)
        out[key] = (t / rt.world_size).tolist()
    return out


def _mean_over_ranks(pending: dict, rt: Runtime) -> dict:
    """The mean of each pending scalar over its steps and over all ranks."""
    keys = sorted(pending)
    t = torch.tensor([np.mean(pending[k]) for k in keys], dtype=torch.float64, device=rt.device)
    if rt.distributed:
        dist.all_reduce(t)
        t /= rt.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def _evaluate(eval_fn, model: nn.Module, rt: Runtime, step: int, log: MetricsLog) -> None:
    if rt.is_main:
        model.eval()
        with torch.no_grad(), rt.autocast():
            result = eval_fn(model, step)
        log.write({"step": step, "eval": True, **result})
    _barrier(rt)


def _barrier(rt: Runtime) -> None:
    if rt.distributed:
        dist.barrier()


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def make_optimizer(model: nn.Module, cfg: BaseConfig, schedule: str = "onecycle"):
    """AdamW and its learning-rate schedule: ``onecycle`` (warm up, then anneal) or ``constant``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if schedule == "constant":
        return optimizer, None
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15
    )
    return optimizer, scheduler


@dataclass
class Result:
    """What ``train`` returns: the run folder, all metric records, and the final evaluation."""

    run_dir: Path
    metrics: list[dict]
    final: dict

    def train_curve(self, key: str = "loss", model: str | None = None):
        """``(steps, values)`` arrays of a training metric (of one ``model`` for multi-model
        tasks)."""
        rows = [r for r in self.metrics if not r.get("eval") and key in r
                and (model is None or r.get("model") == model)]
        return np.array([r["step"] for r in rows]), np.array([r[key] for r in rows])


def start_clock() -> tuple[float, float]:
    """``(wall, cpu)`` times now, for :func:`finish`."""
    clock = time.time(), time.process_time()
    INVOCATION.clear()
    INVOCATION["clock"] = clock
    return clock


def finish(run_dir: Path, rt: Runtime, started: tuple[float, float], **extra) -> None:
    """Record the wall and CPU time of this invocation (and ``extra``) in ``meta.json``.

    The invocation's own times go to its ``history`` entry; the top-level ``wall_s`` and
    ``cpu_s`` are the sums over the history, the cost of the whole run.

    The CPU time (of this process, all its threads) is the fairer measure on a shared machine,
    where the wall time also counts the waits for other programs.
    """
    if rt.is_main:
        _close_history(run_dir, rt, wall_s=round(time.time() - started[0], 1),
                       cpu_s=round(time.process_time() - started[1], 1), **extra)
    _barrier(rt)


def new_figure(width: float = 6.0, height: float = 4.0):
    """A matplotlib ``Figure`` that does not touch pyplot's global state (safe in notebooks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_training_loss(ax, metrics: list[dict], ylabel: str) -> None:
    """The training loss of every logged step (evaluation records left out), on a log scale."""
    rows = [r for r in metrics if not r.get("eval")]
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
    ax.set_yscale("log")
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(ylabel)
