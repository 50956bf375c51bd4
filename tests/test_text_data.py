"""Specifications of the character language model's text: corpus, split, vocabulary, batches."""

import numpy as np
import pytest

from solutions.data import text


def test_strip_to_prose_drops_front_matter_code_display_math_and_comments():
    page = ("---\njupytext: x\n---\n# Title\n\nSome $x$ prose.\n\n```{code-cell} python\n"
            "print(1)\n```\n\n$$\na = b\n$$\n\n<!-- note -->\nMore prose.\n````\nnested\n````\n")
    assert text.strip_to_prose(page) == "# Title\n\nSome $x$ prose.\n\nMore prose.\n"


def test_book_text_is_the_prose_of_every_page(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.md").write_text("First.\n```\ncode\n```\n")
    (tmp_path / "b" / "c.md").write_text("Second.\n")
    assert text.book_text(tmp_path) == "First.\n\nSecond.\n"
    with pytest.raises(FileNotFoundError, match="book"):
        text.book_text(tmp_path / "b" / "missing")


def test_the_course_book_gives_a_corpus_of_prose():
    corpus = text.book_text()
    assert len(corpus) > 50_000 and "```" not in corpus and "$$" not in corpus
    assert text.corpus_fingerprint(corpus)["chars"] == len(corpus)


def test_split_holds_out_every_tenth_chunk():
    sample = "".join(chr(ord("a") + k) * 5 for k in range(20))  # 20 chunks of 5
    train, heldout = text.split_text(sample, chunk=5, heldout_every=10)
    assert heldout == "j" * 5 + "t" * 5
    assert len(train) == 90 and "j" not in train


def test_vocab_maps_rare_characters_to_unknown_and_round_trips_the_rest():
    vocab = text.CharVocab.build("aab bcc d", min_count=2)
    assert vocab.chars == text.UNKNOWN + "ab c"
    ids = vocab.encode("abcd")
    assert ids.tolist() == [1, 2, 4, 0]
    assert vocab.decode(ids) == "abc" + text.UNKNOWN


def test_bptt_rows_continue_each_other_from_step_to_step():
    ids = np.arange(1001)
    x0, y0 = text.bptt_batch(ids, 0, range(4), num_rows=4, seq_len=10)
    x1, _ = text.bptt_batch(ids, 1, range(4), num_rows=4, seq_len=10)
    np.testing.assert_array_equal(y0, x0 + 1)  # the target is the next character
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # row r goes on where it stopped
    np.testing.assert_array_equal(x0[:, 0], [0, 250, 500, 750])  # one stream per row
    part, _ = text.bptt_batch(ids, 1, [2, 3], num_rows=4, seq_len=10)
    np.testing.assert_array_equal(part, x1[2:])  # a rank's rows of the global batch
    wrapped, _ = text.bptt_batch(ids, 25, range(4), num_rows=4, seq_len=10)
    np.testing.assert_array_equal(wrapped, x0)  # 25 windows per stream, then from the start


def test_bptt_rejects_windows_longer_than_a_stream():
    with pytest.raises(ValueError, match="seq_len"):
        text.bptt_batch(np.arange(50), 0, range(8), num_rows=8, seq_len=10)


def test_baselines_bigram_beats_unigram_on_structured_text():
    ids = np.array([0, 1, 2] * 300)
    ppl = text.unigram_bigram_perplexity(ids[:600], ids[600:], vocab_size=3)
    assert ppl["unigram"] == pytest.approx(3.0, rel=0.01)
    assert ppl["bigram"] < 1.05
