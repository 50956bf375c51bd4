"""The adding-problem task: a short CPU run lowers the loss of every network, both impls."""

import numpy as np
import pytest

from solutions.train import adding


@pytest.mark.parametrize("impl", ["torch", "reference"])
def test_short_cpu_run_lowers_the_loss_of_rnn_lstm_and_gru(tmp_path, impl):
    result = adding.train(adding.Config(
        out=str(tmp_path), impl=impl, seq_len=10, hidden_size=16, batch_size=32, steps=60,
        log_every=10, eval_every=30, eval_size=64, lr=1e-2, progress=False))
    for cell in adding.CELLS:
        steps, loss = result.train_curve("loss", model=cell)
        assert len(steps) == 6
        # the first window includes the untrained network, far above 1/6
        assert loss[-1] < 0.5 * loss[0], (cell, loss)
        assert np.isfinite(result.final[cell]["mse"])
    assert (tmp_path / "learning_curves.png").exists()


def test_reference_lstm_starts_exactly_like_torch_lstm(tmp_path):
    # same parameter shapes and initialisation order: the same seed gives the same network
    knobs = dict(cells=("lstm",), seq_len=6, hidden_size=8, batch_size=8, steps=3, log_every=1,
                 eval_size=8, progress=False)
    torch_run = adding.train(adding.Config(out=str(tmp_path / "t"), impl="torch", **knobs))
    ref_run = adding.train(adding.Config(out=str(tmp_path / "r"), impl="reference", **knobs))
    np.testing.assert_allclose(ref_run.train_curve()[1], torch_run.train_curve()[1], rtol=1e-5)
