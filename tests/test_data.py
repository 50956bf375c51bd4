"""Specifications of the synthetic data generators in solutions.data."""

import numpy as np
import pytest

from solutions.data.adding import adding_batch
from solutions.data.glyphs import HELDOUT_FONTS, TRAIN_FONTS, glyph_bank, render_digit
from solutions.data.moving_digits import (
    MovingMNISTFile,
    load_moving_mnist,
    moving_digits_batch,
)
from solutions.data.ocr import OCRStyle, labels_to_string, ocr_batch


def test_adding_batch_marks_one_value_in_each_half_and_targets_their_sum():
    x, y = adding_batch(seed=0, step=3, indices=range(32), seq_len=20)
    assert x.shape == (32, 20, 2) and y.shape == (32,)
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=1) == 2)
    assert np.all(markers[:, :10].sum(axis=1) == 1) and np.all(markers[:, 10:].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)


def test_batches_depend_only_on_seed_step_and_row():
    full_x, _ = adding_batch(1, 7, range(8), 12)
    part_x, _ = adding_batch(1, 7, range(4, 8), 12)
    np.testing.assert_array_equal(full_x[4:], part_x)  # a rank's rows of the global batch
    other_step, _ = adding_batch(1, 8, range(8), 12)
    assert not np.array_equal(full_x, other_step)
    images, labels = ocr_batch(2, 5, range(6))
    part_images, part_labels = ocr_batch(2, 5, [3, 4, 5])
    np.testing.assert_array_equal(images[3:].numpy(), part_images.numpy())
    assert labels[3:] == part_labels
    seqs = moving_digits_batch(0, 1, range(3), num_frames=4)
    np.testing.assert_array_equal(seqs[1:], moving_digits_batch(0, 1, [1, 2], num_frames=4))


def test_adding_batch_rejects_too_short_sequences():
    with pytest.raises(ValueError, match="seq_len"):
        adding_batch(0, 0, range(2), 1)


def test_glyph_fonts_split_into_disjoint_train_and_heldout_sets():
    assert TRAIN_FONTS and HELDOUT_FONTS and not set(TRAIN_FONTS) & set(HELDOUT_FONTS)
    bank = glyph_bank("heldout", 20)
    assert len(bank) == len(HELDOUT_FONTS) and all(len(digits) == 10 for digits in bank)
    for digits in bank:
        for glyph in digits:
            assert glyph.shape[0] == 20 and glyph.dtype == np.float32
            assert 0.0 <= glyph.min() and glyph.max() <= 1.0 and glyph.max() > 0.5


def test_render_digit_differs_between_digits_and_rejects_bad_input():
    one, seven = render_digit("DejaVuSans", 1, 24), render_digit("DejaVuSans", 7, 24)
    assert one.shape != seven.shape or not np.allclose(one, seven)
    with pytest.raises(ValueError, match="font"):
        render_digit("Comic Sans", 1, 24)
    with pytest.raises(ValueError, match="digit"):
        render_digit("DejaVuSans", 10, 24)


def test_ocr_batch_shapes_labels_and_value_range():
    style = OCRStyle(min_len=2, max_len=5)
    images, labels = ocr_batch(0, 0, range(16), "train", style)
    assert images.shape == (16, 1, 32, 128) and images.dtype.is_floating_point
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert all(2 <= len(t) <= 5 for t in labels)
    assert all(1 <= c <= 10 for t in labels for c in t)  # class 0 is the CTC blank
    assert labels_to_string([1, 10, 4]) == "093"


def test_ocr_heldout_split_draws_other_glyphs():
    train, _ = ocr_batch(0, 0, range(4), "train")
    heldout, _ = ocr_batch(0, 0, range(4), "heldout")
    assert not np.allclose(train.numpy(), heldout.numpy())


def test_ocr_batch_rejects_inconsistent_style():
    with pytest.raises(ValueError, match="min_len"):
        ocr_batch(0, 0, range(2), style=OCRStyle(min_len=6, max_len=3))
    with pytest.raises(ValueError, match="split"):
        ocr_batch(0, 0, range(2), split="test")


def test_moving_digits_stay_in_frame_and_move_at_the_requested_speed():
    def mean_step(speed):
        seqs = moving_digits_batch(0, 0, range(8), num_frames=12, num_digits=1,
                                   speed=(speed, speed))
        ys, xs = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
        mass = seqs[:, :, 0].sum(axis=(2, 3))  # (N, T): the digit never leaves the frame
        assert np.all(mass > 10)
        cy = (seqs[:, :, 0] * ys).sum(axis=(2, 3)) / mass
        cx = (seqs[:, :, 0] * xs).sum(axis=(2, 3)) / mass
        return np.median(np.hypot(np.diff(cy), np.diff(cx)))

    # the centre of mass moves by the speed, up to rounding of the position and bounces
    assert mean_step(2.0) == pytest.approx(2.0, abs=0.6)
    assert mean_step(5.0) == pytest.approx(5.0, abs=0.6)


def test_moving_digits_rejects_bad_speed_range():
    with pytest.raises(ValueError, match="speed"):
        moving_digits_batch(0, 0, range(1), speed=(4.0, 2.0))


def test_moving_mnist_file_is_read_sequences_first(tmp_path):
    raw = np.random.default_rng(0).integers(0, 256, size=(20, 12, 64, 64), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, raw)
    data = load_moving_mnist(path)
    assert data.shape == (12, 20, 1, 64, 64)
    np.testing.assert_array_equal(data[3, 5, 0], raw[5, 3])
    source = MovingMNISTFile(path, eval_size=2)
    batch = source.batch(0, 0, range(4))
    assert batch.shape == (4, 20, 1, 64, 64) and batch.max() <= 1.0
    np.testing.assert_allclose(source.heldout(2), raw[:, 10:].transpose(1, 0, 2, 3)[:, :, None]
                               / 255.0, rtol=1e-6)
    np.save(tmp_path / "bad.npy", raw[:, :, :32])
    with pytest.raises(ValueError, match="path"):
        load_moving_mnist(tmp_path / "bad.npy")
