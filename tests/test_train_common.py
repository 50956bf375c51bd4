"""Specifications of the shared training machinery: resume, DDP, NaN guard, command line.

Runs are tiny (a few steps of small models, one CPU thread): these tests check bookkeeping, not
learning. Comparisons of a resumed run with an uninterrupted one are exact, because on CPU the
same operations in the same order give the same bits.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from solutions.convlstm import EncoderForecaster
from solutions.fc_lstm import FCLSTM
from solutions.train import __main__ as cli
from solutions.train import adding, common, load_task, ocr

TINY_ADDING = dict(cells=("lstm",), seq_len=8, hidden_size=8, batch_size=8, steps=12,
                   log_every=1, eval_every=4, eval_size=16, progress=False, threads=1)
TINY_OCR = dict(steps=6, batch_size=4, eval_size=4, eval_every=3, log_every=1, height=16,
                width=48, max_len=3, channels=(4, 4, 4, 4), hidden_size=8, beam_width=2,
                progress=False, threads=1)


def _train_curve(records):
    return [(r["step"], r.get("loss"), r.get("mse"), r.get("seq_acc_greedy")) for r in records]


@pytest.mark.parametrize("task, knobs", [(adding, TINY_ADDING), (ocr, TINY_OCR)],
                         ids=["adding", "ocr"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, task, knobs):
    whole = task.train(task.Config(out=str(tmp_path / "whole"), **knobs))
    task.train(task.Config(out=str(tmp_path / "split"), stop_after=5, checkpoint_every=100,
                           **knobs))
    resumed = task.train(task.Config(out=str(tmp_path / "split"), resume=True, **knobs))
    assert _train_curve(resumed.metrics) == _train_curve(whole.metrics)
    assert len([r for r in whole.metrics if not r.get("eval")]) == knobs["steps"]


def test_resume_with_stop_between_log_records_keeps_the_window(tmp_path):
    knobs = {**TINY_ADDING, "log_every": 4}
    whole = adding.train(adding.Config(out=str(tmp_path / "whole"), **knobs))
    adding.train(adding.Config(out=str(tmp_path / "split"), stop_after=6, **knobs))
    resumed = adding.train(adding.Config(out=str(tmp_path / "split"), resume=True, **knobs))
    assert _train_curve(resumed.metrics) == _train_curve(whole.metrics)


def test_run_folder_holds_config_metrics_meta_and_plot(tmp_path):
    result = adding.train(adding.Config(out=str(tmp_path / "run"), **TINY_ADDING))
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["seq_len"] == 8
    meta = json.loads((run / "meta.json").read_text())
    assert meta["torch"] == torch.__version__ and "wall_s" in meta and meta["world_size"] == 1
    assert common.read_metrics(run / "lstm") == [{k: v for k, v in r.items() if k != "model"}
                                                 for r in result.metrics]
    assert (run / "learning_curves.png").stat().st_size > 1000


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return (self.w * x).sum()


def test_nan_guard_stops_before_the_update_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = common.BaseConfig(steps=10, checkpoint_every=2, log_every=1, progress=False, threads=1)
    rt = common.setup_runtime(cfg)
    model = _Toy()
    optimizer, scheduler = common.make_optimizer(model, cfg, schedule="constant")

    def loss_fn(net, step):
        scale = float("nan") if step == 5 else 1.0  # the 6th step goes bad
        return net(torch.full((3,), scale)), {}

    with pytest.raises(common.NonFiniteLossError, match=r"nan at step 6.*step 4\)"):
        common.fit(cfg=cfg, rt=rt, run_dir=tmp_path, model=model, optimizer=optimizer,
                   scheduler=scheduler, make_batch=lambda step: step, loss_fn=loss_fn)
    assert torch.isfinite(model.w).all()
    saved = torch.load(tmp_path / common.CHECKPOINT, weights_only=False)
    assert saved["step"] == 4 and torch.isfinite(saved["model"]["w"]).all()
    assert [r["step"] for r in common.read_metrics(tmp_path)] == [1, 2, 3, 4, 5]


def torchrun_two_processes(args: list[str], out) -> None:
    """``python -m solutions.train ARGS --out OUT`` as two gloo processes under torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "solutions.train", *args, "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    args = ["adding", "--cells", "lstm", "--seq-len", "8", "--hidden-size", "8",
            "--batch-size", "16", "--steps", "6", "--log-every", "1", "--eval-size", "16",
            "--no-progress", "--threads", "1"]
    torchrun_two_processes(args, tmp_path / "ddp")
    assert json.loads((tmp_path / "ddp" / "meta.json").read_text())["world_size"] == 2
    ddp = common.read_metrics(tmp_path / "ddp" / "lstm")
    assert cli.main([*args, "--out", str(tmp_path / "single")]) == 0
    single = common.read_metrics(tmp_path / "single" / "lstm")
    assert [r["step"] for r in ddp] == [r["step"] for r in single]
    # two half-batches averaged by DDP equal the full batch up to float32 summation order
    for a, b in zip(ddp, single, strict=True):
        for key in ("loss", "mse"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["adding", "--steps", "0"], "--steps"),
        (["adding", "--cells", "lstm,transformer"], "--cells"),
        (["adding", "--device", "tpu"], "--device"),
        (["adding", "--resume"], "--resume"),
        (["adding", "--seq-len", "1"], "--seq-len"),
        (["adding", "--lr", "-1"], "--lr"),
        (["ocr", "--max-len", "40"], "--width"),
        (["ocr", "--height", "20"], "--height"),
        (["moving", "--patch-size", "3"], "--patch-size"),
        (["moving", "--preset", "huge"], "--preset"),
        (["moving", "--head-bias", "one"], "--head-bias"),
        (["charlm", "--temperatures", "0"], "--temperatures"),
        (["charlm", "--models", "lstm,transformer"], "--models"),
        (["seq2seq", "--test-max-digits", "9"], "--test-max-digits"),
        (["seq2seq", "--direction", "en2zh"], "--direction"),
    ],
)
def test_bad_arguments_fail_with_a_message_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only messages")
@pytest.mark.parametrize("option, message", [("--amp", "--amp"), ("--device=cuda", "no CUDA")])
def test_gpu_options_on_a_cpu_machine_fail_clearly(option, message, capsys):
    assert cli.main(["adding", option, "--steps", "1"]) == 2
    assert message in capsys.readouterr().err


def test_a_used_run_folder_is_refused_without_resume(tmp_path, capsys):
    adding.train(adding.Config(out=str(tmp_path), **{**TINY_ADDING, "steps": 1}))
    assert cli.main(["adding", "--out", str(tmp_path), "--steps", "1"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_with_changed_options_is_refused(tmp_path, capsys):
    adding.train(adding.Config(out=str(tmp_path), **{**TINY_ADDING, "steps": 2}))
    argv = ["adding", "--out", str(tmp_path), "--resume", "--cells", "lstm", "--seq-len", "9"]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "--seq-len (was 8, now 9)" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["adding", "ocr", "moving", "charlm", "seq2seq"])
def test_help_lists_every_config_option(task, capsys):
    with pytest.raises(SystemExit):
        cli.main([task, "--help"])
    text = capsys.readouterr().out
    module = load_task(task)
    for f in dataclasses.fields(module.Config):
        assert "--" + f.name.replace("_", "-") in text


@pytest.mark.parametrize("name", ["fc", "convlstm"])
def test_fit_runs_under_autocast(tmp_path, name):
    # CUDA is not available here; CPU bfloat16 autocast exercises the same mixed-precision path
    # of the loop and the models (half-precision activations, float32 loss)
    torch.set_num_threads(1)
    cfg = common.BaseConfig(steps=3, log_every=1, progress=False)
    rt = common.Runtime(torch.device("cpu"), autocast_dtype=torch.bfloat16)
    if name == "fc":
        model = FCLSTM((1, 8, 8), (8,), future=2)
    else:
        model = EncoderForecaster(in_channels=1, hidden_channels=[4], kernel_size=3,
                                  state_kernel_size=1, future_steps=2)
    optimizer, scheduler = common.make_optimizer(model, cfg)
    seqs = torch.rand(2, 5, 1, 8, 8)

    def loss_fn(net, batch):
        logits = net(batch[:, :3])
        assert logits.dtype == torch.bfloat16
        return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(),
                                                                    batch[:, 3:]), {}

    records = common.fit(cfg=cfg, rt=rt, run_dir=tmp_path, model=model, optimizer=optimizer,
                         scheduler=scheduler, make_batch=lambda step: seqs, loss_fn=loss_fn)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in records)


TINY_ADDING_ARGS = ["adding", "--cells", "lstm", "--seq-len", "8", "--hidden-size", "8",
                    "--batch-size", "8", "--steps", "12", "--log-every", "1", "--eval-every",
                    "4", "--eval-size", "16", "--no-progress", "--threads", "1"]


def test_stop_after_says_the_run_is_incomplete_and_how_to_continue(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([*TINY_ADDING_ARGS, "--out", str(run), "--stop-after", "5"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("incomplete: stopped at step 5 of 12")
    assert str(run / "lstm" / common.CHECKPOINT) in last_line
    assert last_line.endswith(f"continue with: python -m solutions.train adding --out {run} "
                              f"--resume")
    assert json.loads((run / "meta.json").read_text())["complete"] is False


def test_resume_takes_the_options_from_the_run_folder_and_continues_exactly(tmp_path, capsys):
    assert cli.main([*TINY_ADDING_ARGS, "--out", str(tmp_path / "whole")]) == 0
    assert cli.main([*TINY_ADDING_ARGS, "--out", str(tmp_path / "split"),
                     "--stop-after", "5"]) == 0
    capsys.readouterr()
    # only the folder: every option, --seq-len 8 included, comes from its config.json
    assert cli.main(["adding", "--out", str(tmp_path / "split"), "--resume"]) == 0
    assert "incomplete" not in capsys.readouterr().out
    whole = common.read_metrics(tmp_path / "whole" / "lstm")
    assert common.read_metrics(tmp_path / "split" / "lstm") == whole
    assert json.loads((tmp_path / "split" / "meta.json").read_text())["complete"] is True


def test_resume_reports_every_conflicting_option_at_once(tmp_path, capsys):
    assert cli.main([*TINY_ADDING_ARGS, "--out", str(tmp_path), "--stop-after", "2"]) == 0
    argv = ["adding", "--out", str(tmp_path), "--resume", "--seq-len", "9", "--lr", "0.5",
            "--hidden-size", "8", "--threads", "2"]  # agreeing and runtime options are fine
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seq-len (was 8, now 9)" in err and "--lr (was 0.003, now 0.5)" in err
    assert "--hidden-size" not in err and "--threads" not in err


def test_resume_of_a_folder_without_a_run_names_the_missing_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["adding", "--out", str(tmp_path), "--resume"])
    assert "config.json does not exist" in capsys.readouterr().err


def test_ctrl_c_prints_one_line_naming_the_last_checkpoint_and_the_resume_command(
        tmp_path, capsys, monkeypatch):
    make = adding.adding_batch

    def interrupted_at_step_7(seed, step, *args):
        if step == 7:
            raise KeyboardInterrupt
        return make(seed, step, *args)

    monkeypatch.setattr(adding, "adding_batch", interrupted_at_step_7)
    argv = [*TINY_ADDING_ARGS, "--out", str(tmp_path / "split"), "--checkpoint-every", "5"]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err == (f"interrupted: the last checkpoint is {tmp_path / 'split/lstm/checkpoint.pt'}"
                   f" (step 5 of 12); continue with: python -m solutions.train adding --out "
                   f"{tmp_path / 'split'} --resume")
    monkeypatch.setattr(adding, "adding_batch", make)
    assert cli.main(["adding", "--out", str(tmp_path / "split"), "--resume"]) == 0
    assert cli.main([*TINY_ADDING_ARGS, "--out", str(tmp_path / "whole")]) == 0
    assert (common.read_metrics(tmp_path / "split" / "lstm")
            == common.read_metrics(tmp_path / "whole" / "lstm"))
    history = json.loads((tmp_path / "split" / "meta.json").read_text())["history"]
    assert history[0]["interrupted"] is True and history[0]["steps"] == {"adding lstm": [0, 7]}


def test_resuming_keeps_the_history_of_commands_times_and_steps_in_meta(tmp_path):
    run = str(tmp_path)
    assert cli.main([*TINY_ADDING_ARGS, "--out", run, "--stop-after", "5"]) == 0
    assert cli.main(["adding", "--out", run, "--resume", "--stop-after", "4"]) == 0
    assert cli.main(["adding", "--out", run, "--resume"]) == 0
    meta = json.loads((tmp_path / "meta.json").read_text())
    history = meta["history"]
    assert [h["steps"] for h in history] == [{"adding lstm": [0, 5]}, {"adding lstm": [5, 9]},
                                             {"adding lstm": [9, 12]}]
    assert history[0]["command"] == meta["command"]  # the command that started the run
    assert "--stop-after 5" in meta["command"]
    assert [h["command"].split("--out")[1] for h in history[1:]] == [
        f" {run} --resume --stop-after 4", f" {run} --resume"]
    for h in history:
        assert h["started"] <= h["ended"] and h["device"] == meta["device"]
    assert meta["wall_s"] == pytest.approx(sum(h["wall_s"] for h in history), abs=0.2)


@pytest.mark.parametrize("task", ["adding", "ocr"])
def test_help_of_out_shows_the_real_default(task, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse would wrap the default at its hyphen
    with pytest.raises(SystemExit):
        cli.main([task, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default: runs/{task}/YYYYmmdd-HHMMSS)" in help_text
