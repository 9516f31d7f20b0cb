"""Splitting long replies into Twilio-sized parts: properties over any text, then the preferred breaks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ai_comms.splitting import TWILIO_MAX_CHARS, split_message


def squashed(text: str) -> str:
    return "".join(text.split())


WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
TEXTS = st.one_of(
    st.text(max_size=5000),
    st.lists(
        st.one_of(WORDS, st.sampled_from([". ", "! ", "? ", "\n", "\n\n", " ", "\n \n", "…"])),
        max_size=400,
    ).map("".join),
    st.lists(st.text(alphabet="ab ", min_size=1, max_size=3000), max_size=4).map("\n\n".join),
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, limit=st.sampled_from([1, 7, 50, 160, TWILIO_MAX_CHARS]))
def test_parts_fit_keep_every_character_in_order(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    assert all(1 <= len(part) <= limit for part in parts)
    assert all(part == part.strip() for part in parts)
    assert squashed("".join(parts)) == squashed(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1, max_size=TWILIO_MAX_CHARS).filter(lambda t: t.strip() != ""))
def test_a_text_that_fits_is_one_part(text: str) -> None:
    assert split_message(text) == [text.strip()]


def test_blank_text_has_no_parts() -> None:
    assert split_message(" \n\t ") == []


def test_paragraph_boundaries_win() -> None:
    paragraphs = [f"Paragraph {n}. " + "x" * 900 for n in range(4)]
    parts = split_message("\n\n".join(paragraphs))
    assert parts == paragraphs


def test_sentences_break_a_paragraph_too_long_for_one_message() -> None:
    sentences = [f"Sentence {n} " + "y" * 300 + "." for n in range(10)]
    parts = split_message(" ".join(sentences))
    assert len(parts) == 2
    assert all(part.endswith(".") for part in parts)
    assert parts[0] == " ".join(sentences[:5])


def test_words_break_a_sentence_too_long_for_one_message() -> None:
    text = " ".join(["word"] * 500)
    parts = split_message(text)
    assert len(parts) == 2 and all(len(p) <= TWILIO_MAX_CHARS for p in parts)
    assert all(not p.startswith(" ") and set(p.split()) == {"word"} for p in parts)


def test_a_word_longer_than_the_limit_is_cut() -> None:
    assert split_message("z" * 3500) == ["z" * 1600, "z" * 1600, "z" * 300]


@pytest.mark.parametrize("paragraph_chars", [120, 399, 700, 1100])
def test_a_4000_character_reply_is_three_parts(paragraph_chars: int) -> None:
    paragraph = ("Sentence. " * 200)[: paragraph_chars - 1].rstrip() + "."
    text = "\n\n".join([paragraph] * 40)[:4000].rsplit(" ", 1)[0]
    assert 3980 <= len(text) <= 4000
    parts = split_message(text)
    assert len(parts) == 3 and all(len(p) <= 1600 for p in parts)
    assert all(p.endswith(".") for p in parts[:2])


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_message("x", 0)
