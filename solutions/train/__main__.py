"""Command line: ``python -m solutions.train TASK [options]``; ``--help`` lists every option.

The options of each task are generated from the fields of its ``Config`` dataclass (name,
default, help text, accepted values), so the command line and the Python API cannot drift apart.
Launch several processes with ``torchrun --nproc_per_node=N -m solutions.train TASK ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing

import torch.distributed as dist

from solutions.train import TASKS, load_task
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


def add_config_options(parser: argparse.ArgumentParser, config_cls) -> None:
    """One ``--option`` per field of ``config_cls``, typed, with its default and help."""
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        kind, meta = hints[f.name], f.metadata
        help_text = meta.get("help", "")
        default = f.default
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
        "OCR (CRNN + CTC), moving digits (ConvLSTM vs FC-LSTM). Runs on CPU or CUDA, with "
        "torchrun for several processes.",
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
        add_config_options(p, module.Config)
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
        cfg = module.Config.preset(preset, **values) if preset else module.Config(**values)
        cfg.check()
    except ValueError as err:
        parser.error(f"{task}: {err}")
    try:
        result = module.train(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}")
        for key, value in result.final.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
