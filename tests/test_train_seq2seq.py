"""The encoder-decoder task: data encoding, beam search against greedy, a short run that beats
the empty-output baseline, exact resume."""

import json

import pytest
import torch
import torch.nn.functional as F

from solutions.train import seq2seq

TINY = dict(steps=8, batch_size=8, eval_size=6, eval_every=4, log_every=1, hidden_size=16,
            embed_size=8, max_digits=3, test_max_digits=4, beam_width=2, progress=False,
            threads=1)


def _curve(records):
    return [tuple(sorted((k, v) for k, v in r.items() if not isinstance(v, dict)))
            for r in records]


def test_pairs_are_left_padded_sources_with_a_language_token_and_bos_eos_targets():
    source, target = seq2seq.encode_pairs([1024, 7], ["zh2ar", "ar2zh"])
    index = seq2seq.INDEX
    assert source.tolist() == [[seq2seq.TO_AR] + [index[c] for c in "一千零二十四"],
                               [seq2seq.PAD] * 5 + [seq2seq.TO_ZH, index["7"]]]
    assert target.tolist() == [[seq2seq.BOS] + [index[c] for c in "1024"] + [seq2seq.EOS],
                               [seq2seq.BOS, index["七"], seq2seq.EOS, seq2seq.PAD,
                                seq2seq.PAD, seq2seq.PAD]]
    assert seq2seq.tokens_to_text(target[0, 1:]) == "1024"


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_search_of_width_one_is_greedy(cell):
    torch.manual_seed(0)
    model = seq2seq.Seq2Seq(cell, "torch", embed_size=8, hidden_size=16).eval()
    source, _ = seq2seq.encode_pairs(list(range(100, 130)), ["zh2ar"] * 30)
    greedy = seq2seq.beam_search(model, source, beam_width=1, max_len=6)
    with torch.no_grad():  # greedy by hand: the argmax fed back, one step at a time
        state, context = model.encode(source)
        tokens, by_hand = torch.full((30, 1), seq2seq.BOS), []
        for _ in range(6):
            logits, state = model.decode(tokens, state, context)
            tokens = logits[:, -1].argmax(-1, keepdim=True)
            by_hand.append(tokens[:, 0])
    by_hand = torch.stack(by_hand, 1).tolist()
    assert greedy == [row[: row.index(seq2seq.EOS)] if seq2seq.EOS in row else row
                      for row in by_hand]


def test_a_beam_that_holds_every_prefix_finds_the_most_probable_output():
    # with two steps and a beam of V * V hypotheses nothing is pruned: the search is exhaustive
    torch.manual_seed(1)
    model = seq2seq.Seq2Seq("gru", "torch", embed_size=8, hidden_size=16).eval()
    source, _ = seq2seq.encode_pairs([5, 47, 300], ["zh2ar"] * 3)
    vocab = len(seq2seq.VOCAB)
    with torch.no_grad():
        state, context = model.encode(source)
        logits, state = model.decode(torch.full((3, 1), seq2seq.BOS), state, context)
        first = logits[:, -1].log_softmax(-1)  # (3, V)
        second = []
        for token in range(vocab):
            step, _ = model.decode(torch.full((3, 1), token), state, context)
            second.append(step[:, -1].log_softmax(-1))
        second = torch.stack(second, 1)  # (3, V, V)
    totals = first[:, :, None] + second
    totals[:, seq2seq.EOS, :] = first[:, seq2seq.EOS, None]  # <eos> ends the output
    best = totals.view(3, -1).argmax(1)
    expected = [[] if b // vocab == seq2seq.EOS else
                [b // vocab] + ([] if b % vocab == seq2seq.EOS else [b % vocab])
                for b in best.tolist()]
    assert seq2seq.beam_search(model, source, beam_width=vocab * vocab, max_len=2) == expected


def test_short_run_beats_the_empty_output_baseline_and_writes_the_run_folder(tmp_path):
    knobs = {**TINY, "direction": "zh2ar", "steps": 150, "batch_size": 64, "hidden_size": 64,
             "embed_size": 16, "lr": 1e-2, "eval_every": 75, "eval_size": 100, "log_every": 25}
    result = seq2seq.train(seq2seq.Config(out=str(tmp_path), **knobs))
    final = result.final["zh2ar"]
    # the empty output (or any wrong-length guess) has CER 1 and no exact match
    assert final["in_range"]["cer_greedy"] < 0.5
    assert final["in_range"]["cer_beam"] < 0.5
    assert set(final["exact_by_digits"]) == {"2", "3", "4"}
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["final"]["zh2ar"] == final
    for name in ("config.json", "metrics.jsonl", "learning_curves.png",
                 "accuracy_by_length.png"):
        assert (tmp_path / name).exists(), name


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    whole = seq2seq.train(seq2seq.Config(out=str(tmp_path / "whole"), **TINY))
    seq2seq.train(seq2seq.Config(out=str(tmp_path / "split"), stop_after=5, **TINY))
    resumed = seq2seq.train(seq2seq.Config(out=str(tmp_path / "split"), resume=True, **TINY))
    assert _curve(resumed.metrics) == _curve(whole.metrics)


def test_teacher_forcing_predicts_each_target_character_from_the_true_previous_one():
    torch.manual_seed(0)
    model = seq2seq.Seq2Seq("gru", "torch", embed_size=8, hidden_size=16)
    source, target = seq2seq.encode_pairs([12, 345], ["zh2ar", "zh2ar"])
    logits = model(source, target)
    assert logits.shape == (2, target.shape[1] - 1, len(seq2seq.VOCAB))
    changed = target.clone()
    changed[0, 2] = seq2seq.INDEX["9"]  # a later input changes only the later predictions
    other = model(source, changed)
    torch.testing.assert_close(other[0, :2], logits[0, :2])
    assert not torch.allclose(other[0, 2:], logits[0, 2:])
    loss = F.cross_entropy(logits.reshape(-1, len(seq2seq.VOCAB)), target[:, 1:].reshape(-1),
                           ignore_index=seq2seq.PAD)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("knobs, message", [(dict(min_digits=4, max_digits=3), "--min-digits"),
                                            (dict(max_digits=5, test_max_digits=5),
                                             "--test-max-digits"),
                                            (dict(test_max_digits=9), "--test-max-digits")])
def test_bad_digit_ranges_are_refused_naming_the_option(knobs, message):
    with pytest.raises(ValueError, match=message):
        seq2seq.Config(**knobs).check()


@pytest.mark.parametrize("impl", ["torch", "reference"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_both_text_models_run_under_autocast(cell, impl):
    # CPU bfloat16 autocast exercises the mixed-precision path that --amp takes on CUDA
    from solutions.train import charlm, common

    torch.manual_seed(0)
    lm = charlm.CharLM(cell, impl, vocab_size=20, embed_size=8, hidden_size=16)
    translator = seq2seq.Seq2Seq(cell, impl, embed_size=8, hidden_size=16)
    carried = common.CarriedState(torch.device("cpu"))
    source, target = seq2seq.encode_pairs([12, 3456], ["zh2ar", "ar2zh"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(2):
            logits, state = lm(torch.randint(0, 20, (3, 5)), carried.value)
            carried.keep(state)
        assert logits.dtype == torch.bfloat16
        translated = translator(source, target)
        assert translated.dtype == torch.bfloat16
        (logits.float().sum() + translated.float().sum()).backward()
        outputs = seq2seq.beam_search(translator, source, beam_width=3, max_len=5)
    assert [len(o) <= 5 for o in outputs] == [True, True]
