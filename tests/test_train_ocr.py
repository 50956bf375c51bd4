"""The OCR task: CRNN + CTC lowers its loss; metrics and decoding behave as specified."""

import numpy as np
import pytest
import torch

from solutions.crnn import CRNN
from solutions.train import ocr

SMALL = dict(steps=40, batch_size=16, eval_size=16, eval_every=20, log_every=10, height=32,
             width=64, max_len=4, channels=(8, 8, 16, 16), hidden_size=16, beam_width=3,
             lr=5e-3, progress=False, threads=1)


def test_short_cpu_run_lowers_the_ctc_loss_and_reports_both_decoders(tmp_path):
    result = ocr.train(ocr.Config(out=str(tmp_path), **SMALL))
    _, loss = result.train_curve()
    assert loss[-1] < 0.5 * loss[0]
    for decoder in ("greedy", "beam"):
        assert 0.0 <= result.final[f"seq_acc_{decoder}"] <= 1.0
        assert result.final[f"cer_{decoder}"] >= 0.0  # can exceed 1 with many insertions
    assert (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "heldout_samples.png").exists()


def test_reference_ctc_and_lstm_give_the_same_first_losses_as_torch(tmp_path):
    knobs = {**SMALL, "steps": 2, "log_every": 1, "eval_size": 2}
    torch_run = ocr.train(ocr.Config(out=str(tmp_path / "t"), **knobs))
    ref_run = ocr.train(ocr.Config(out=str(tmp_path / "r"), ctc="reference", lstm="reference",
                                   **knobs))
    np.testing.assert_allclose(ref_run.train_curve()[1], torch_run.train_curve()[1], rtol=1e-4)


def test_crnn_emits_a_frame_per_four_columns():
    logits = CRNN(11, height=32, channels=(4, 4, 4, 4), hidden_size=8)(torch.rand(2, 1, 32, 96))
    assert logits.shape == (24, 2, 11)
    with pytest.raises(ValueError, match="images"):
        CRNN(11)(torch.rand(2, 3, 32, 96))


def test_score_counts_exact_strings_and_edit_distance():
    assert ocr.edit_distance([1, 2, 3], [1, 3]) == 1
    assert ocr.edit_distance([], [4, 4]) == 2
    assert ocr.edit_distance([1, 2], [2, 1]) == 2
    scores = ocr.score([[1, 2, 3], [5]], [[1, 2, 3], [5, 6]])
    assert scores == {"seq_acc": 0.5, "cer": pytest.approx(1 / 5)}


def test_decode_greedy_and_beam_agree_on_a_confident_path():
    path = [0, 3, 3, 0, 0, 5, 0, 5]  # collapses to 3 5 5
    log_probs = np.full((len(path), 1, 11), np.log(0.01 / 10))
    log_probs[np.arange(len(path)), 0, path] = np.log(0.99)
    assert ocr.decode(log_probs) == [[3, 5, 5]]
    assert ocr.decode(log_probs, beam_width=4) == [[3, 5, 5]]
