"""Template variable values normalised to what Twilio accepts (errors 21656 and 21658)."""

import pytest

from ai_comms.outbound.template_values import MAX_VALUE_CHARS, normalised, normalised_values


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("Ada", "Ada"),
        ("  Dear Ada,\n\nyour order\tis      ready.  ", "Dear Ada, your order is ready."),
        ("line\r\nbreak\u2028and\u00a0nbsp", "line break and nbsp"),
    ],
)
def test_whitespace_collapses_to_single_spaces(written: str, sent: str) -> None:
    assert normalised(written) == sent


def test_a_long_value_is_cut_at_a_word_within_the_limit() -> None:
    value = normalised("word " * 1000)
    assert len(value) <= MAX_VALUE_CHARS and value.endswith("word…")


def test_a_long_value_without_spaces_is_cut_at_the_limit() -> None:
    value = normalised("x" * 5000)
    assert len(value) == MAX_VALUE_CHARS and value.endswith("…")


def test_a_value_left_empty_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="greeting"):
        normalised_values({"name": "Ada", "greeting": " \n\t "})
