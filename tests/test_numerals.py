"""Specifications of the Chinese numeral converter and the number draws of the seq2seq task."""

import numpy as np
import pytest

from solutions.data.numerals import (
    MAX_NUMBER,
    digits_of,
    from_chinese,
    is_held_out,
    numbers_batch,
    to_chinese,
)

EDGE_CASES = {
    0: "零", 1: "一", 2: "二", 10: "十", 11: "十一", 12: "十二", 19: "十九", 20: "二十",
    22: "二十二", 100: "一百", 101: "一百零一", 110: "一百一十", 111: "一百一十一",
    200: "两百", 999: "九百九十九", 1000: "一千", 1001: "一千零一", 1010: "一千零一十",
    1024: "一千零二十四", 1100: "一千一百", 1200: "一千二百", 2000: "两千", 2002: "两千零二",
    9999: "九千九百九十九", 10000: "一万", 10001: "一万零一", 10010: "一万零一十",
    10100: "一万零一百", 11000: "一万一千", 12345: "一万二千三百四十五", 20000: "两万",
    22000: "两万二千", 32000: "三万二千", 100000: "十万", 100100: "十万零一百",
    110000: "十一万", 110001: "十一万零一", 200000: "二十万", 1000000: "一百万",
    1000001: "一百万零一", 1010000: "一百零一万", 2000000: "两百万", 10000000: "一千万",
    10001000: "一千万一千", 10000100: "一千万零一百", 20000000: "两千万",
    MAX_NUMBER: "九千九百九十九万九千九百九十九",
}


@pytest.mark.parametrize("n, words", EDGE_CASES.items())
def test_to_chinese_follows_the_rules_on_the_edge_cases(n, words):
    assert to_chinese(n) == words
    assert from_chinese(words) == n


def test_every_integer_below_20000_and_samples_up_to_10_to_the_8_round_trip():
    rng = np.random.default_rng(0)
    numbers = [*range(20_000), *rng.integers(20_000, MAX_NUMBER + 1, size=2000).tolist()]
    assert all(from_chinese(to_chinese(n)) == n for n in numbers)


def test_words_of_different_numbers_differ():
    words = [to_chinese(n) for n in range(20_000)]
    assert len(set(words)) == len(words)


@pytest.mark.parametrize("variant, n", [("二百", 200), ("一十", 10), ("一十一", 11),
                                        ("两千零二", 2002), ("二万", 20000), ("两", 2),
                                        ("一万零零一", 10001)])
def test_from_chinese_reads_common_variants(variant, n):
    assert from_chinese(variant) == n


@pytest.mark.parametrize("words, message", [("", "empty"), ("一a", "position 1"),
                                            ("一二", "two digits"), ("百", "needs a digit"),
                                            ("一十百", "smaller or equal unit"),
                                            ("一万一万", "more than once"),
                                            ("万", "needs a number")])
def test_from_chinese_rejects_malformed_words_with_a_message(words, message):
    with pytest.raises(ValueError, match=message):
        from_chinese(words)


@pytest.mark.parametrize("n, error", [(-1, ValueError), (10**8, ValueError), (1.5, TypeError),
                                      (True, TypeError)])
def test_to_chinese_rejects_numbers_out_of_range(n, error):
    with pytest.raises(error, match="n:"):
        to_chinese(n)


def test_number_draws_depend_only_on_seed_step_and_row():
    full = numbers_batch(3, 7, range(16), 1, 5)
    assert numbers_batch(3, 7, range(8, 16), 1, 5) == full[8:]
    assert numbers_batch(3, 8, range(16), 1, 5) != full
    assert numbers_batch(4, 7, range(16), 1, 5) != full


def test_training_draws_never_hold_a_held_out_number_and_cover_every_length():
    drawn = numbers_batch(0, 0, range(3000), 1, 5)
    assert not any(is_held_out(n) for n in drawn)
    assert {digits_of(n) for n in drawn} == {1, 2, 3, 4, 5}
    held = numbers_batch(0, 0, range(300), 1, 5, split="heldout")
    assert all(is_held_out(n) for n in held) and min(held) >= 10


def test_about_five_percent_of_numbers_are_held_out_at_every_length():
    for length in range(2, 8):
        numbers = np.arange(10 ** (length - 1), 10**length)
        assert 0.04 < is_held_out(numbers).mean() < 0.06
    assert not is_held_out(np.arange(10)).any()


@pytest.mark.parametrize("kwargs, message", [(dict(min_digits=3, max_digits=2), "min_digits"),
                                             (dict(max_digits=9), "max_digits"),
                                             (dict(split="test"), "split")])
def test_numbers_batch_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        numbers_batch(0, 0, range(2), **{"min_digits": 1, "max_digits": 5, **kwargs})
