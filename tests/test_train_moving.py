"""The moving-digits task: every model lowers its loss; the data file path works."""

import numpy as np
import pytest
import torch

from solutions.fc_lstm import FCLSTM
from solutions.train import moving


def test_smoke_run_lowers_the_loss_of_fc_lstm_and_convlstm(tmp_path):
    cfg = moving.Config.preset("smoke", out=str(tmp_path), models=("fc", "conv2", "conv1x1"),
                               steps=12, lr=5e-3, progress=False)
    result = moving.train(cfg)
    for name in cfg.models:
        _, loss = result.train_curve("loss", model=name)
        assert loss[-1] < loss[0], (name, loss)
        assert np.isfinite(result.final[name]["bce"])
    assert (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "predictions.png").exists()


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
