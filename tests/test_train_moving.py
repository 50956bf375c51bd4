"""The moving-digits task: every model lowers its loss; the data file path works."""

import numpy as np
import pytest
import torch

from solutions.data.moving_digits import moving_digits_batch
from solutions.fc_lstm import FCLSTM
from solutions.train import moving


def best_constant_bce(cfg) -> float:
    """Cross-entropy per held-out sequence of the best constant guess: the frames' mean pixel."""
    seqs = moving_digits_batch(cfg.seed + 10_000, 0, range(cfg.eval_size), 20,
                               speed=(cfg.speed_min, cfg.speed_max), split="heldout")
    future = torch.from_numpy(np.ascontiguousarray(seqs))[:, cfg.input_frames :]
    guess = torch.full_like(future, torch.logit(future.mean()).item())
    return moving.sequence_bce(guess, future).item()


def test_smoke_run_beats_the_best_constant_guess(tmp_path):
    # Every model starts at the training frames' mean pixel (init_head_bias), so a falling training
    # loss would prove little; beating the held-out frames' own mean shows it learned the digits.
    cfg = moving.Config.preset("smoke", out=str(tmp_path), models=("fc", "conv2", "conv1x1"),
                               steps=20, lr=1e-2, progress=False)
    result = moving.train(cfg)
    baseline = best_constant_bce(cfg)
    for name in cfg.models:
        assert result.final[name]["bce"] < 0.99 * baseline, (name, result.final[name], baseline)
    assert (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "predictions.png").exists()


def test_head_bias_starts_at_the_mean_pixel():
    future = torch.rand(3, 10, 1, 64, 64) * 0.2
    for name in moving.MODELS:
        model = moving.build_model(name, moving.Config.preset("smoke"))
        moving.init_head_bias(model, future)
        assert torch.allclose(torch.sigmoid(model.head.bias), future.mean(), atol=1e-6), name


def test_every_model_maps_ten_frames_to_ten_frame_logits():
    cfg = moving.Config.preset("smoke")
    past = torch.rand(2, 10, 1, 64, 64)
    for name in moving.MODELS:
        assert moving.build_model(name, cfg)(past).shape == (2, 10, 1, 64, 64), name


def test_fc_lstm_rejects_frames_of_the_wrong_size():
    model = FCLSTM((1, 8, 8), (4,), future=3)
    assert model(torch.rand(2, 5, 1, 8, 8)).shape == (2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="frames"):
        model(torch.rand(2, 5, 1, 8, 9))


def test_training_reads_a_mnist_test_seq_file(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, size=(20, 10, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", raw)
    cfg = moving.Config.preset("smoke", out=str(tmp_path / "run"), models=("conv1",), steps=2,
                               data=str(tmp_path / "mnist_test_seq.npy"), eval_size=2,
                               progress=False)
    result = moving.train(cfg)
    assert np.isfinite(result.final["conv1"]["bce"])
