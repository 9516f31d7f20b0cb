"""The reply processor against OpenAI's documented behaviours, as the fake plays them over HTTP:
a conversation another request holds, answers cut short or refused, rate limits and quota, and a
request that timed out on our side after OpenAI had done the work."""

from typing import Any

import pytest

from ai_comms import pausing
from ai_comms.providers import openai_client
from ai_comms.store.tenant_pauses import TenantPauses

from .conftest import TABLES, demo_project
from .reply_support import Replies, fakes, replies

__all__ = ["fakes", "replies"]


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The API's "retry in a few seconds", shortened: the order of events is what is tested.
    monkeypatch.setattr(openai_client, "LOCKED_RETRY_SECONDS", 0.05)


def ai_conversation(replies: Replies) -> dict[str, Any]:
    ai_id = replies.stored().ai_conversation_id
    [found] = [c for c in replies.openai.conversations() if c["id"] == ai_id]
    return found


def user_inputs(replies: Replies) -> list[str]:
    """The customer input items of the AI conversation, in order."""
    return [
        part["text"]
        for item in ai_conversation(replies)["items"]
        if item.get("type") == "message" and item.get("role") == "user"
        for part in item["content"]
        if part.get("type") == "input_text"
    ]


def notice() -> str:
    return demo_project().channels["whatsapp"].handoff_notice


def test_a_locked_conversation_is_waited_for_and_answered_once(replies: Replies) -> None:
    replies.openai.script({"error": "conversation_locked"}, {"text": "Here you are."})
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Here you are."]
    assert len(replies.ai_calls()) == 2 and user_inputs(replies) == ["hello"]


def test_an_answer_cut_short_twice_hands_over_with_the_input_on_the_conversation_once(
    replies: Replies,
) -> None:
    cut = {"text": "A long answer", "status": "incomplete", "reason": "max_output_tokens"}
    replies.openai.script(cut, cut)
    replies.customer_says("tell me everything")
    assert replies.deliver() == []

    assert [m["body"] for m in replies.sent()] == [notice()]
    stored = replies.stored()
    assert stored.handoff_to_human and stored.handoff_reason == "ai_unanswerable"
    assert stored.handoff_detail == "incomplete:max_output_tokens"
    first, second = replies.ai_calls()
    # The second asks with four times the budget and no input: the input is on the conversation.
    assert first["body"]["max_output_tokens"] == 500 and second["body"]["max_output_tokens"] == 2000
    assert "input" in first["body"] and "input" not in second["body"]
    assert user_inputs(replies) == ["tell me everything"]
    [event] = replies.queued("handoff")
    assert event["detail"]["reason"] == "ai_unanswerable"
    assert event["detail"]["detail"] == "incomplete:max_output_tokens"


def test_an_answer_cut_short_once_is_answered_with_the_larger_budget(replies: Replies) -> None:
    replies.openai.script(
        {"text": "Half", "status": "incomplete", "reason": "max_output_tokens"}, {"text": "The whole answer."}
    )
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["The whole answer."]
    assert not replies.stored().handoff_to_human and user_inputs(replies) == ["hello"]


def test_reasoning_that_uses_up_the_budget_counts_as_cut_short(replies: Replies) -> None:
    replies.openai.script({"reasoning_tokens": 600}, {"text": "After thinking."})
    replies.customer_says("a hard question")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["After thinking."]


@pytest.mark.parametrize(
    ("scripted", "detail"),
    [
        ({"refusal": "I can't help with that."}, "refusal"),
        ({"text": "Partly", "status": "incomplete", "reason": "content_filter"}, "incomplete:content_filter"),
    ],
)
def test_a_refusal_or_filtered_answer_hands_over_at_once(
    replies: Replies, scripted: dict[str, Any], detail: str
) -> None:
    replies.openai.script(scripted)
    replies.customer_says("something")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == [notice()]
    stored = replies.stored()
    assert stored.status == "handed_off" and stored.handoff_detail == detail
    assert len(replies.ai_calls()) == 1  # asking again the same way would not help


def test_a_rate_limit_is_waited_out_as_the_api_asks(replies: Replies) -> None:
    replies.openai.script(
        {"error": {"preset": "rate_limit_exceeded", "headers": {"retry-after-ms": "50"}}}, {"text": "Ok."}
    )
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Ok."] and user_inputs(replies) == ["hello"]


def test_a_used_up_quota_pauses_the_tenant_never_a_handoff(
    replies: Replies, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pausing, "MAX_SQS_DELAY_SECONDS", 0)
    replies.openai.script({"error": "insufficient_quota"})
    replies.customer_says("hello")
    assert replies.deliver() == []  # parked
    assert len(replies.ai_calls()) == 1  # waiting in the call does not heal it
    stored = replies.stored()
    assert stored.status == "active" and not stored.handoff_to_human and stored.pending_reply is None
    pause = TenantPauses(replies.cloud.dynamodb, TABLES["company"]).get("acme", "support")
    assert pause is not None and pause.reason == "openai_quota_exhausted"


def test_a_request_that_timed_out_after_openai_answered_is_not_asked_again(
    replies: Replies, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client gives up after 2 s (OPENAI_TIMEOUT_SECONDS); OpenAI finishes the work anyway and
    # puts the input and its answer on the conversation, holding it meanwhile (a retry is refused
    # as conversation_locked). The retry that gets through reads the answer there.
    monkeypatch.setattr(openai_client, "LOCKED_RETRY_SECONDS", 1.0)
    replies.openai.script({"text": "Answered late.", "delay_seconds": 2.5})
    replies.customer_says("hello")
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Answered late."]
    assert user_inputs(replies) == ["hello"]
    answered = [c for c in replies.ai_calls() if c.get("status") == 200]
    assert len(answered) == 1  # the late one: no retry was answered a second time


def test_a_redelivered_record_reads_the_ai_conversation_before_asking_again(replies: Replies) -> None:
    # Every attempt of the first delivery fails with a 5xx, which may come after OpenAI did the
    # work; the redelivery reads the conversation's newest items before it sends the input again.
    replies.openai.script(
        *[{"error": {"status": 500, "message": "The server had an error."}}] * 3, {"text": "Finally."}
    )
    replies.customer_says("hello")
    assert len(replies.deliver()) == 1
    replies.make_visible()
    assert replies.deliver() == []
    assert [m["body"] for m in replies.sent()] == ["Finally."]
    paths = [entry["path"] for entry in replies.openai.requests.snapshot()]
    assert paths[-2].endswith("/items") and paths[-1] == "/v1/responses"
    assert user_inputs(replies) == ["hello"]
