"""Chinese number words and Arabic numerals, both ways, and the pairs of the ``seq2seq`` task.

The converter covers ``0 <= n < 10**8`` (up to 九千九百九十九万九千九百九十九), the numbers
written with 十, 百, 千 and 万 alone. The rules, as in ordinary modern usage:

- a number is read in groups of four digits; the upper group is followed by 万;
- inside a group each nonzero digit is followed by its unit (千, 百, 十, none): 1234 一千二百三十四;
- **十 alone for 10 to 19 at the start of the number**: 10 十, 11 十一, 100000 十万; elsewhere the
  一 is spoken: 110 一百一十, 10010 一万零一十, 1010000 一百零一万;
- **one 零 for each run of zeros** between nonzero digits, also across the 万 boundary:
  101 一百零一, 1001 一千零一, 10010 一万零一十, 100100 十万零一百, 1000001 一百万零一;
  trailing zeros are silent: 1000 一千, 20000 两万; a lower group of 1000 or more needs no 零:
  10001000 一千万一千;
- **两 for a leading 2 before 百, 千 or 万** (the idiomatic reading of quantities: 200 两百, 2000
  两千, 20000 两万, 2000000 两百万, 22000 两万二千), and 二 everywhere else: 2 二, 20 二十, 12 十二,
  1200 一千二百, 32000 三万二千. (Both 二百 and 两百 are heard; this module writes one canonical
  form, and :func:`from_chinese` reads both.)

``numbers_batch`` draws the task's numbers (the pairs are ``to_chinese(n)`` and ``str(n)``), the
draw of sample ``i`` of batch ``step`` a pure function of ``(seed, step, i)`` like every
generator of :mod:`solutions.data`.
"""

from __future__ import annotations

import numpy as np

from solutions._validate import check_positive_int
from solutions.data import sample_rng

DIGITS = "零一二三四五六七八九"
UNITS = ("", "十", "百", "千")  # units inside a group of four digits
MAX_NUMBER = 10**8 - 1
CHINESE_CHARS = DIGITS + "两十百千万"
ARABIC_CHARS = "0123456789"


def to_chinese(n: int) -> str:
    """The Chinese number words of ``0 <= n < 10**8`` (see the module docstring for the rules)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    n = int(n)
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n: expected 0 <= n < 10**8, got {n}")
    if n == 0:
        return "零"
    upper, lower = divmod(n, 10_000)
    if upper == 0:
        return _leading_two(_group(lower, leading=True))
    words = _leading_two(_group(upper, leading=True) + "万")
    if lower:
        # the lower group's leading zeros (its thousands digit is 0) are read as one 零
        words += ("零" if lower < 1000 else "") + _group(lower, leading=False)
    return words


def _group(n: int, leading: bool) -> str:
    """Words of ``1 <= n <= 9999``, a four-digit group; ``leading``: the number starts here."""
    digits = [int(d) for d in f"{n:04d}"]  # thousands, hundreds, tens, ones
    words, zeros_pending, started = "", False, False
    for position, digit in enumerate(digits):
        unit = UNITS[3 - position]
        if digit == 0:
            zeros_pending = started
            continue
        if zeros_pending:
            words += "零"
            zeros_pending = False
        if unit == "十" and digit == 1 and leading and not started:
            words += "十"  # 10..19 at the start of the number: 十, 十一, not 一十
        else:
            words += DIGITS[digit] + unit
        started = True
    return words


def _leading_two(words: str) -> str:
    """两 for the number's leading 二 when the unit 百, 千 or 万 follows it."""
    return "两" + words[1:] if words[:1] == "二" and words[1:2] in ("百", "千", "万") else words


def from_chinese(words: str) -> int:
    """The number that ``words`` name; reads :func:`to_chinese`'s output and common variants
    (二 or 两 anywhere a digit 2 stands, 一十 for 十).

    Raises ``ValueError`` naming the position of the first character that cannot stand there.
    """
    if not isinstance(words, str):
        raise TypeError(f"words: expected a str, got {type(words).__name__}")
    if not words:
        raise ValueError("words: expected Chinese number words, got an empty string")
    for position, char in enumerate(words):
        if char not in CHINESE_CHARS:
            raise ValueError(f"words: {char!r} at position {position} is not a Chinese numeral "
                             f"character ({CHINESE_CHARS})")
    if words == "零":
        return 0
    if words.count("万") > 1:
        raise ValueError(f"words: 万 appears more than once in {words!r}")
    if "万" in words:
        upper_words, lower_words = words.split("万")
        if not upper_words:
            raise ValueError(f"words: 万 at position 0 needs a number before it in {words!r}")
        upper = _parse_group(upper_words, words)
        lower = _parse_group(lower_words.removeprefix("零"), words) if lower_words else 0
        return upper * 10_000 + lower
    return _parse_group(words, words)


def _parse_group(text: str, words: str) -> int:
    """The value ``< 10000`` of one group's words (without 万)."""
    value, digit, last_unit = 0, None, 10_000
    for char in text:
        if char == "零":
            if digit is not None:
                raise ValueError(f"words: 零 follows a digit without a unit in {words!r}")
            continue
        if char in DIGITS or char == "两":
            if digit is not None:
                raise ValueError(f"words: two digits in a row in {words!r}")
            digit = 2 if char == "两" else DIGITS.index(char)
            continue
        unit = 10 ** UNITS.index(char)
        if unit >= last_unit:
            raise ValueError(f"words: {char} after a smaller or equal unit in {words!r}")
        if digit is None:
            if char != "十" or value:
                raise ValueError(f"words: {char} needs a digit before it in {words!r}")
            digit = 1  # a leading 十 is 一十
        value += digit * unit
        digit, last_unit = None, unit
    if digit is not None:
        if last_unit == 1:
            raise ValueError(f"words: a digit after the ones digit in {words!r}")
        value += digit
    return value


def digits_of(n: int) -> int:
    """How many decimal digits ``n >= 0`` has (0 has one)."""
    return len(str(int(n)))


def is_held_out(n) -> np.ndarray | bool:
    """Whether ``n`` belongs to the 5% of numbers that training never draws (a fixed hash of n).

    Multiplicative hashing (Knuth's 2654435761) scatters the held-out numbers over every length
    and digit pattern, so the in-range test set is unseen numbers, not unseen patterns. The
    single digits 0-9, the alphabet of every other number, are never held out.
    """
    n = np.asarray(n, dtype=np.uint64)
    hashed = (n * np.uint64(2654435761)) % np.uint64(2**32)
    held = (hashed < np.uint64(int(0.05 * 2**32))) & (n >= 10)
    return bool(held) if held.ndim == 0 else held


def draw_number(rng: np.random.Generator, min_digits: int, max_digits: int,
                split: str) -> int:
    """A number whose digit count is uniform in ``[min_digits, max_digits]``, then uniform among
    the numbers of that length; ``split`` "train" skips the held-out numbers, "heldout" keeps
    only them (so it never returns a single digit), "any" takes every number."""
    if split == "heldout" and max_digits < 2:
        raise ValueError("max_digits: single digits are never held out; the held-out split "
                         "needs max_digits >= 2")
    while True:
        length = int(rng.integers(min_digits, max_digits + 1))
        low = 0 if length == 1 else 10 ** (length - 1)
        n = int(rng.integers(low, 10**length))
        if split == "any" or is_held_out(n) == (split == "heldout"):
            return n


def numbers_batch(seed: int, step: int, indices, min_digits: int, max_digits: int,
                  split: str = "train") -> list[int]:
    """The numbers of rows ``indices`` of batch ``step`` (see :func:`draw_number`)."""
    min_digits = check_positive_int("min_digits", min_digits)
    max_digits = check_positive_int("max_digits", max_digits)
    if min_digits > max_digits:
        raise ValueError(f"min_digits: {min_digits} exceeds max_digits {max_digits}")
    if max_digits > 8:
        raise ValueError(f"max_digits: expected at most 8 (numbers below 10**8), got {max_digits}")
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split: expected 'train', 'heldout' or 'any', got {split!r}")
    return [draw_number(sample_rng(seed, step, i), min_digits, max_digits, split)
            for i in indices]
