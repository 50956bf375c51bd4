"""The character language model task: run folder, exact resume with the carried state,
perplexity against the baselines, sampling."""

import json

import numpy as np
import pytest
import torch

from solutions.train import charlm, common

TINY = dict(models=("lstm",), steps=10, batch_size=4, seq_len=16, hidden_size=16, embed_size=8,
            log_every=1, eval_every=5, eval_rows=4, sample_len=20, temperatures=(0.5, 1.0),
            progress=False, threads=1)


@pytest.fixture(scope="module")
def small_text(tmp_path_factory):
    """The first 20,000 characters of the book's prose: evaluations take a fraction of a second."""
    path = tmp_path_factory.mktemp("text") / "book.txt"
    path.write_text(charlm.textdata.book_text()[:20_000], encoding="utf-8")
    return str(path)


def _curve(records):
    return [(r["step"], r.get("loss"), r.get("ppl"), r.get("ppl_reset")) for r in records]


def test_short_run_writes_the_run_folder_and_beats_the_unigram_baseline(tmp_path, small_text):
    knobs = {**TINY, "steps": 80, "batch_size": 16, "seq_len": 32, "hidden_size": 64,
             "lr": 1e-2, "eval_every": 40, "text": small_text}
    result = charlm.train(charlm.Config(out=str(tmp_path), **knobs))
    baselines = result.final["baselines"]
    assert baselines["bigram"] < baselines["unigram"]
    assert result.final["lstm"]["ppl"] < baselines["unigram"]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["baselines"] == baselines and meta["corpus"]["source"] == small_text
    assert meta["final"]["lstm"]["step"] == 80
    samples = json.loads((tmp_path / "samples.json").read_text())["lstm"]
    assert set(samples) == {"0.5", "1.0"}
    assert all(s.startswith("The ") and len(s) == 4 + 20 for s in samples.values())
    assert (tmp_path / "perplexity.png").stat().st_size > 1000
    assert [r["step"] for r in common.read_metrics(tmp_path / "lstm") if r.get("eval")] == [40, 80]


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_resume_with_the_carried_state_continues_exactly(tmp_path, model, small_text):
    knobs = {**TINY, "models": (model,), "text": small_text}
    whole = charlm.train(charlm.Config(out=str(tmp_path / "whole"), **knobs))
    charlm.train(charlm.Config(out=str(tmp_path / "split"), stop_after=6, **knobs))
    resumed = charlm.train(charlm.Config(out=str(tmp_path / "split"), resume=True, **knobs))
    assert _curve(resumed.metrics) == _curve(whole.metrics)


def test_the_reset_model_differs_from_the_carrying_one_only_in_the_state():
    rt = common.Runtime(torch.device("cpu"))
    batch = (torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))
    for carry_state, expect_same in ((True, False), (False, True)):
        torch.manual_seed(0)
        model = charlm.CharLM("lstm", "torch", 8, 4, 6)
        carried = common.CarriedState(rt.device)
        first, _ = model(batch[0], carried.value if carry_state else None)
        carried.keep(model(batch[0])[1])
        second, _ = model(batch[0], carried.value if carry_state else None)
        assert torch.equal(first, second) == expect_same


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    model = charlm.CharLM("gru", "torch", vocab_size=7, embed_size=3, hidden_size=5)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    ids = np.arange(200) % 7
    for carry in (True, False):
        ppl = charlm.perplexity(model, ids, rows=4, seq_len=8, device="cpu", carry=carry)
        assert ppl == pytest.approx(7.0, rel=1e-5)


def test_reference_and_torch_modules_start_alike():
    for cell in ("lstm", "gru", "rnn"):
        torch.manual_seed(0)
        ref = charlm.CharLM(cell, "reference", 9, 4, 6)
        torch.manual_seed(0)
        mine = charlm.CharLM(cell, "torch", 9, 4, 6)
        mine.load_state_dict({k.replace("rnn.cell.", "rnn.").replace("_ih", "_ih_l0")
                              .replace("_hh", "_hh_l0") if "cell" in k else k: v
                              for k, v in ref.state_dict().items()})
        x = torch.randint(0, 9, (2, 5))
        torch.testing.assert_close(ref(x)[0], mine(x)[0], rtol=1e-5, atol=1e-6)


def test_sampling_is_seeded_and_colder_samples_repeat_more():
    torch.manual_seed(0)
    model = charlm.CharLM("lstm", "torch", 30, 4, 8)
    vocab = charlm.textdata.CharVocab("?" + "abcdefghijklmnopqrstuvwxyz .,")
    draw = [charlm.sample(model, vocab, "ab", 50, t, seed=1, device="cpu") for t in (1.0, 1.0)]
    assert draw[0] == draw[1] and draw[0].startswith("ab") and len(draw[0]) == 52
    cold = charlm.sample(model, vocab, "ab", 200, 0.05, seed=1, device="cpu")
    hot = charlm.sample(model, vocab, "ab", 200, 5.0, seed=1, device="cpu")
    assert len(set(cold)) < len(set(hot))


@pytest.mark.parametrize("knobs, message", [(dict(temperatures=(0.0,)), "--temperatures"),
                                            (dict(text="/no/such/file"), "--text"),
                                            (dict(prompt=""), "--prompt")])
def test_bad_options_are_refused_naming_them(knobs, message):
    with pytest.raises(ValueError, match=message):
        charlm.Config(**knobs).check()


def test_resume_on_a_changed_text_is_refused(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("a small text to model, " * 1000, encoding="utf-8")
    knobs = {**TINY, "text": str(text), "out": str(tmp_path / "run")}
    charlm.train(charlm.Config(stop_after=2, **knobs))
    text.write_text("another text altogether. " * 1000, encoding="utf-8")
    with pytest.raises(ValueError, match="--resume: the text of the run .* has changed"):
        charlm.train(charlm.Config(resume=True, **knobs))


def test_a_text_too_short_to_hold_out_is_refused(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("too short. " * 100, encoding="utf-8")
    with pytest.raises(ValueError, match="--text"):
        charlm.train(charlm.Config(text=str(text), out=str(tmp_path / "run"), **TINY))


@pytest.mark.slow
def test_torchrun_two_processes_carry_their_own_rows_state_like_one_process(tmp_path, small_text):
    from test_train_common import torchrun_two_processes

    from solutions.train import __main__ as cli

    args = ["charlm", "--models", "lstm", "--steps", "6", "--batch-size", "4", "--seq-len", "16",
            "--hidden-size", "16", "--embed-size", "8", "--log-every", "1", "--eval-every", "3",
            "--eval-rows", "4", "--sample-len", "10", "--no-progress", "--threads", "1",
            "--text", small_text]
    torchrun_two_processes(args, tmp_path / "ddp")
    assert cli.main([*args, "--out", str(tmp_path / "single")]) == 0
    ddp = common.read_metrics(tmp_path / "ddp" / "lstm")
    single = common.read_metrics(tmp_path / "single" / "lstm")
    assert [r["step"] for r in ddp] == [r["step"] for r in single]
    # each rank carries the states of its own rows; up to float32 summation order, the same run
    for a, b in zip(ddp, single, strict=True):
        for key in ("loss", "ppl"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4)
