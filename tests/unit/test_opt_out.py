"""Opt-out keywords read over a burst of customer messages, in order."""

import pytest

from ai_comms.replies.opt_out import keyword_of, read_burst


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("STOP", "stop"), (" stop\n", "stop"), ("Unsubscribe", "stop"), ("start", "start"), ("stop it", None)],
)
def test_keywords_are_whole_trimmed_case_insensitive_messages(body: str, keyword: str | None) -> None:
    assert keyword_of(body) == keyword


def test_stop_drops_the_questions_before_it() -> None:
    outcome = read_burst(["a question", "STOP"], opted_out=False)
    assert outcome.opted_out and outcome.changed and outcome.ai_messages == []


def test_an_opted_out_customer_gets_nothing_until_start() -> None:
    assert read_burst(["hello", "STOP"], opted_out=True).changed is False
    outcome = read_burst(["hello", "START", "what time is it"], opted_out=True)
    assert not outcome.opted_out and outcome.changed and outcome.ai_messages == ["what time is it"]


def test_start_while_opted_in_is_an_ordinary_message() -> None:
    outcome = read_burst(["start", "my order"], opted_out=False)
    assert not outcome.changed and outcome.ai_messages == ["start", "my order"]


def test_stop_then_start_in_one_burst_ends_opted_in() -> None:
    outcome = read_burst(["STOP", "START", "hi"], opted_out=False)
    assert not outcome.opted_out and not outcome.changed and outcome.ai_messages == ["hi"]
