"""Command line: ``python -m solutions.train TASK [options]``; ``--help`` lists every option.

The options of each task are generated from the fields of its ``Config`` dataclass (name,
default, help text, accepted values), so the command line and the Python API cannot drift apart.
Launch several processes with ``torchrun --nproc_per_node=N -m solutions.train TASK ...``.

``--resume --out RUN`` continues a run with the options saved in ``RUN/config.json``; options given
beside it must agree with the saved ones, except those that do not change what is computed
(``common.RUNTIME_OPTIONS``: device, threads, workers, progress, checkpoint interval, ...).
``--stop-after`` and Ctrl-C end with one line naming the last checkpoint and the command that
continues the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path

import torch.distributed as dist

from solutions.train import TASKS, common, load_task
from solutions.train.common import COMMAND, NonFiniteLossError


def _parse_tuple(item_type, choices):
    def parse(text: str):
        items = [s.strip() for s in text.split(",") if s.strip()]
        try:
            values = tuple(item_type(s) for s in items)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of "
                                             f"{item_type.__name__}, got {text!r}") from err
        bad = [v for v in values if choices and v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(map(str, choices or ()))}"
                f", got {text!r}" if choices else f"expected a non-empty list, got {text!r}")
        return values

    return parse


def add_config_options(parser: argparse.ArgumentParser, config_cls, task: str = "TASK") -> None:
    """One ``--option`` per field of ``config_cls``, typed, with its default and help.

    A field whose real default is computed at run time (``out``) names it in its
    ``shown_default`` metadata, formatted with ``task``.
    """
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        kind, meta = hints[f.name], f.metadata
        help_text = meta.get("help", "")
        default = meta.get("shown_default", f.default)
        if isinstance(default, str):
            default = default.format(task=task)
        # options left out stay out of the namespace, so a preset can supply them
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS,
                                help=f"{help_text} (default: {default})")
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            shown = ",".join(map(str, default))
            parser.add_argument(flag, type=_parse_tuple(item, meta.get("choices")),
                                default=argparse.SUPPRESS, metavar="A,B,...",
                                help=f"{help_text} (default: {shown})")
        else:
            if isinstance(kind, types.UnionType):
                raise TypeError(f"{f.name}: union types are not supported on the command line")
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS,
                                choices=meta.get("choices"),
                                help=f"{help_text} (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m solutions.train",
        description="Train the course's models: the adding problem (RNN/LSTM/GRU), digit-string "
        "OCR (CRNN + CTC), moving digits (ConvLSTM vs FC-LSTM), a character language model, "
        "an encoder-decoder for Chinese numerals. Runs on CPU or CUDA, with torchrun for "
        "several processes.",
    )
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, summary in TASKS.items():
        module = load_task(name)
        p = sub.add_parser(name, help=summary, description=module.__doc__.split("\n\n")[0])
        presets = module.Config.PRESETS
        if presets:
            p.add_argument("--preset", choices=tuple(presets), default=None,
                           help="start from a named set of defaults, which the other options "
                           "override. " + "; ".join(f"{k}: {v['about']}" for k, v in
                                                    presets.items()))
        add_config_options(p, module.Config, name)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    words = sys.argv[1:] if argv is None else argv
    launcher = "torchrun ... -m" if "LOCAL_RANK" in os.environ else "python -m"
    COMMAND["line"] = f"{launcher} solutions.train " + " ".join(words)
    values = dict(vars(args))
    task = values.pop("task")
    module = load_task(task)
    preset = values.pop("preset", None)
    try:
        if values.get("resume"):
            values = saved_options(module.Config, task, values, preset)
            preset = None
        cfg = module.Config.preset(preset, **values) if preset else module.Config(**values)
        cfg.check()
    except ValueError as err:
        parser.error(f"{task}: {err}")
    is_main = int(os.environ.get("RANK", "0")) == 0
    common.INVOCATION.clear()
    try:
        result = module.train(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        message = common.record_interruption()
        if is_main:
            print(message, file=sys.stderr)
        return 130
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if is_main:
        print(f"run folder: {result.run_dir}")
        for key, value in result.final.items():
            print(f"  {key}: {value}")
        if not common.run_complete():
            last = common.INVOCATION["last_checkpoint"]
            print(f"incomplete: stopped at step {last['step']} of {last['steps']} (--stop-after "
                  f"{cfg.stop_after}), checkpoint {last['path']}; continue with: "
                  f"{common.resume_command()}")
    return 0


def saved_options(config_cls, task: str, given: dict, preset: str | None) -> dict:
    """The options of the run to resume (``--out``'s ``config.json``), with ``given`` on top.

    Raises ``ValueError`` listing every given option (or preset value) that differs from the
    saved run, except the runtime options, which may change.
    """
    if not given.get("out"):
        raise ValueError("--resume: needs --out, the folder of the run to continue")
    path = Path(given["out"]) / "config.json"
    if not path.exists():
        raise ValueError(f"--resume: {path} does not exist; --out must be the folder of a run")
    saved = json.loads(path.read_text())
    if saved.get("task") != task:
        raise ValueError(f"--resume: {given['out']} holds a {saved.get('task')!r} run, "
                         f"not {task!r}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    if preset:
        given = {**config_cls.PRESETS[preset], **given}
        given.pop("about", None)
    tuples = {f.name for f in dataclasses.fields(config_cls)
              if typing.get_origin(typing.get_type_hints(config_cls)[f.name]) is tuple}
    # --stop-after belongs to the invocation that gave it, not to the run
    values = {k: tuple(v) if k in tuples else v for k, v in saved.items()
              if k in fields and k != "stop_after"}
    changed = [f"--{k.replace('_', '-')} (was {values.get(k)!r}, now {v!r})"
               for k, v in given.items()
               if k not in common.RUNTIME_OPTIONS and values.get(k) != v]
    if changed:
        raise ValueError(f"--resume: the run in {given['out']} was started with other options; "
                         f"drop these or start a new run: " + ", ".join(changed))
    return {**values, **given}


if __name__ == "__main__":
    sys.exit(main())
