"""The reply processor against in-process AWS and the OpenAI/Twilio fakes over HTTP with the real SDKs."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

from ai_comms.clock import utc_now
from ai_comms.store.conversations import ConversationRepository

from .conftest import COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, demo_project
from .reply_support import Replies, allow_long_replies, extra_queue, fakes, replies, run_in_thread

__all__ = ["fakes", "replies"]


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_reply_is_sent_and_both_messages_are_in_the_history(replies: Replies) -> None:
    [sid] = replies.customer_says("Where is my parcel?")

    assert replies.deliver() == []

    [sent] = replies.sent()
    assert sent["to"] == "whatsapp:" + CUSTOMER_NUMBER
    assert sent["from"] == "whatsapp:" + COMPANY_NUMBER
    assert sent["body"] == "Thanks! You said: Where is my parcel?"
    stored = replies.stored()
    assert [(m.direction, m.sid, m.body) for m in replies.history()] == [
        ("inbound", sid, "Where is my parcel?"),
        ("outbound", sent["sid"], sent["body"]),
    ]
    assert stored.answered_seq == 1 and stored.inbound_seq == 1
    assert stored.pending_reply is None and stored.lease_owner is None
    assert stored.ai_conversation_id is not None and stored.ai_conversation_id.startswith("conv_")
    [call] = replies.ai_calls()
    assert call["conversation_id"] == stored.ai_conversation_id
    assert call["body"]["model"] == "gpt-4.1-mini"
    assert call["body"]["max_output_tokens"] == 500
    assert "Be brief." in call["body"]["instructions"]
    assert call["body"]["text"]["format"]["type"] == "json_schema"
    assert all(m.at.endswith("Z") for m in replies.history())
    item: Any = replies.raw_item()
    assert "pending_reply" not in item and "lease_until" not in item


def test_a_burst_gets_one_ai_call_with_every_message_in_order_and_one_reply(replies: Replies) -> None:
    bodies = [f"message {n}" for n in range(1, 6)]
    replies.customer_says(*bodies)

    assert replies.deliver(one_by_one=True) == []

    [call] = replies.ai_calls()
    assert call["body"]["input"] == [{"role": "user", "content": "\n\n".join(bodies)}]
    [sent] = replies.sent()
    assert sent["body"] == "Thanks! You said: " + "\n\n".join(bodies)
    stored = replies.stored()
    assert stored.answered_seq == 5
    assert [m.direction for m in replies.history()] == ["inbound"] * 5 + ["outbound"]


def test_a_burst_in_one_batch_is_also_answered_once(replies: Replies) -> None:
    replies.customer_says("one", "two", "three")
    assert replies.deliver() == []
    assert len(replies.ai_calls()) == 1 and len(replies.sent()) == 1


def test_the_same_sqs_message_delivered_twice_gets_one_ai_call_and_one_reply(replies: Replies) -> None:
    replies.customer_says("hello")
    [message] = replies.receive()

    first = replies.invoke([message])
    second = replies.invoke([message])

    assert first["batchItemFailures"] == [] and second["batchItemFailures"] == []
    assert len(replies.ai_calls()) == 1 and len(replies.sent()) == 1


def test_a_message_sent_while_the_ai_is_slow_gets_its_own_later_reply(replies: Replies) -> None:
    replies.customer_says("first question")
    [first] = replies.receive()
    replies.openai.set_latency(0.8)
    outcome: dict[str, Any] = {}
    other = replies.other_container()
    worker = run_in_thread(
        lambda: outcome.update(result=replies.invoke([first], request_id="slow", handler=other))
    )
    wait_for(replies.ai_calls)
    replies.customer_says("second question")
    [second] = replies.receive()

    # The second message is not covered by the reply in progress: its record comes back later.
    assert [f["itemIdentifier"] for f in replies.invoke([second])["batchItemFailures"]] == [
        second["MessageId"]
    ]
    worker.join(10)
    assert outcome["result"]["batchItemFailures"] == []
    replies.openai.set_latency(0)
    assert replies.invoke([second])["batchItemFailures"] == []

    assert [c["body"]["input"][0]["content"] for c in replies.ai_calls()] == [
        "first question",
        "second question",
    ]
    assert [m["body"] for m in replies.sent()] == [
        "Thanks! You said: first question",
        "Thanks! You said: second question",
    ]
    stored = replies.stored()
    # In conversation order: each reply right after the message it answered.
    assert [m.direction for m in replies.history()] == ["inbound", "outbound", "inbound", "outbound"]
    assert stored.answered_seq == 2


def test_a_record_the_lease_holder_covers_succeeds_without_work(replies: Replies) -> None:
    replies.customer_says("one", "two")
    messages = replies.receive()
    replies.openai.set_latency(0.8)
    outcome: dict[str, Any] = {}
    other = replies.other_container()
    worker = run_in_thread(
        lambda: outcome.update(result=replies.invoke(messages[:1], request_id="holder", handler=other))
    )
    wait_for(replies.ai_calls)

    assert replies.invoke(messages[1:])["batchItemFailures"] == []
    worker.join(10)
    assert outcome["result"]["batchItemFailures"] == []
    assert len(replies.ai_calls()) == 1 and len(replies.sent()) == 1


def test_a_contended_record_comes_back_when_the_lease_ends(replies: Replies) -> None:
    replies.customer_says("hi")
    [message] = replies.receive()
    future = int((utc_now() + timedelta(seconds=20)).timestamp() * 1000)
    replies.cloud.dynamodb.update_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, replies.conversation.conversation_id),
        UpdateExpression="SET lease_owner = :o, lease_until = :u, lease_upto = :z",
        ExpressionAttributeValues={":o": {"S": "other"}, ":u": {"N": str(future)}, ":z": {"N": "0"}},
    )
    with mock.patch.object(
        replies.handler.service._sqs,
        "change_message_visibility",
        wraps=replies.handler.service._sqs.change_message_visibility,
    ) as visibility:
        assert len(replies.invoke([message])["batchItemFailures"]) == 1
    assert 19 <= visibility.call_args.kwargs["VisibilityTimeout"] <= 22
    assert replies.ai_calls() == [] and replies.sent() == []


def test_an_expired_lease_is_taken_over(replies: Replies) -> None:
    replies.customer_says("hi")
    past = int((utc_now() - timedelta(seconds=1)).timestamp() * 1000)
    replies.cloud.dynamodb.update_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, replies.conversation.conversation_id),
        UpdateExpression="SET lease_owner = :o, lease_until = :u, lease_upto = :z",
        ExpressionAttributeValues={":o": {"S": "crashed"}, ":u": {"N": str(past)}, ":z": {"N": "1"}},
    )
    assert replies.deliver() == []
    assert len(replies.sent()) == 1


def test_a_4000_character_reply_goes_out_as_three_ordered_parts(replies: Replies) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 150 for n in range(8)]
    text = "\n\n".join(p.strip() for p in paragraphs)[:4000].rsplit(" ", 1)[0] + "."
    assert 3900 < len(text) <= 4000
    allow_long_replies(replies.cloud)
    replies.openai.script({"text": text, "action": "none"})
    replies.customer_says("tell me everything")

    assert replies.deliver() == []

    bodies = [m["body"] for m in replies.sent()]
    assert len(bodies) == 3 and all(len(b) <= 1600 for b in bodies)
    assert "".join("".join(bodies).split()) == "".join(text.split())
    outbound = [m for m in replies.history() if m.direction == "outbound"]
    assert [m.body for m in outbound] == bodies
    assert [m.sid for m in outbound] == [m["sid"] for m in replies.sent()]


def _consent(replies: Replies) -> Any:
    from ai_comms.store.consent import ConsentRepository

    from .conftest import TABLES

    return ConsentRepository(replies.cloud.dynamodb, TABLES["consent"]).get(
        replies.conversation.company_address, replies.conversation.customer_address
    )


def test_stop_opts_out_with_one_confirmation_and_start_opts_back_in(replies: Replies) -> None:
    channel = demo_project().channels["whatsapp"]
    replies.customer_says("  stop. ")
    assert replies.deliver() == []
    assert replies.ai_calls() == []
    assert [m["body"] for m in replies.sent()] == [channel.opt_out_confirmation]
    consent = _consent(replies)
    assert consent.state == "opted_out" and consent.change.keyword == "STOP"
    assert replies.stored().answered_seq == 1 and replies.stored().status == "active"

    # Opted out: no AI reply, and a second STOP is no second confirmation.
    replies.customer_says("hello?", "STOP", "anyone there")
    assert replies.deliver(one_by_one=True) == []
    assert replies.ai_calls() == [] and len(replies.sent()) == 1

    replies.customer_says("Start")
    assert replies.deliver() == []
    assert replies.ai_calls() == []
    assert replies.sent()[-1]["body"] == channel.opt_in_confirmation
    assert _consent(replies).state == "opted_in"

    replies.customer_says("what are your hours?")
    assert replies.deliver() == []
    assert [c["body"]["input"][0]["content"] for c in replies.ai_calls()] == ["what are your hours?"]
    assert len(replies.sent()) == 3


def test_unsubscribe_after_a_question_answers_nothing_but_the_confirmation(replies: Replies) -> None:
    replies.customer_says("a question", "UNSUBSCRIBE")
    assert replies.deliver() == []
    assert replies.ai_calls() == []
    assert len(replies.sent()) == 1 and _consent(replies).state == "opted_out"


def test_handoff_sets_the_flag_sends_the_notice_and_publishes_the_request(replies: Replies) -> None:
    replies.openai.script({"text": "Let me get a colleague.", "action": "handoff"})
    replies.customer_says("I want to talk to a person")

    assert replies.deliver() == []

    notice = demo_project().channels["whatsapp"].handoff_notice
    assert [m["body"] for m in replies.sent()] == [notice]
    stored = replies.stored()
    assert stored.handoff_to_human and stored.status == "handed_off" and stored.answered_seq == 1
    [event] = replies.queued("handoff")
    assert event["source"] == "ai-comms.reply-processor"
    assert event["detail-type"] == "HandoffRequested"
    detail = event["detail"]
    assert detail["route"] == "handoff" and detail["schema_version"] == 1 and detail["channel"] == "whatsapp"
    assert detail["conversation_id"] == replies.conversation.conversation_id
    assert detail["reason"] == "ai_action" and detail["handoff_id"].endswith("#1")

    [notice] = replies.queued("notices")
    assert replies.conversation.conversation_id in notice["Message"]
    assert CUSTOMER_NUMBER not in notice["Message"]

    # The next customer message goes to the humans' queue and the AI stays quiet.
    replies.customer_says("hello?")
    assert len(replies.queued("handoff")) == 1
    assert replies.deliver() == []
    assert len(replies.ai_calls()) == 1 and len(replies.sent()) == 1


def test_no_reply_when_the_last_customer_message_is_older_than_24_hours(replies: Replies) -> None:
    extra_queue(replies.cloud, "window", {"detail-type": ["ReplyWindowClosed"]})
    replies.customer_says("are you there?")
    later = utc_now() + timedelta(hours=25)
    with mock.patch("ai_comms.replies.decide.utc_now", return_value=later):
        assert replies.deliver() == []

    assert replies.sent() == [] and replies.ai_calls() == []
    stored = replies.stored()
    assert stored.status == "window_closed" and stored.answered_seq == 1
    [event] = replies.queued("window")
    assert event["detail"]["route"] == "window_closed" and event["detail"]["upto_seq"] == 1


def test_sms_has_no_reply_window(replies: Replies) -> None:
    # Only WhatsApp limits free-form replies; the window check keys on the address form.
    assert not replies.handler.service._decider._window_closed(
        replies.conversation.model_copy(
            update={"customer_address": CUSTOMER_NUMBER, "last_inbound_at": "2020-01-01T00:00:00.000Z"}
        ),
        [],
        utc_now(),
    )


def test_a_media_only_message_reaches_the_ai_by_the_types_of_its_attachments(replies: Replies) -> None:
    replies.customer_says_form(
        Body="",
        NumMedia="2",
        MediaContentType0="image/jpeg",
        MediaUrl0="https://api.twilio.com/x/Media/ME1",
        MediaContentType1="application/pdf",
        MediaUrl1="https://api.twilio.com/x/Media/ME2",
    )
    assert replies.deliver() == []
    [call] = replies.ai_calls()
    text = call["body"]["input"][0]["content"]
    assert text == "(The customer sent 2 attachments: image/jpeg, application/pdf.)"
    assert "api.twilio.com" not in text
    [message] = [m for m in replies.history() if m.direction == "inbound"]
    assert message.content is not None and message.content.media_types == ["image/jpeg", "application/pdf"]


def test_a_location_a_button_and_an_ad_reach_the_ai_as_plain_text(replies: Replies) -> None:
    replies.customer_says_form(
        Body="here",
        Latitude="51.5132",
        Longitude="-0.2198",
        Address="187 Freston Road, London",
        Label="Depot",
    )
    replies.customer_says_form(Body="Track my order", ButtonText="Track my order", ButtonPayload="track:4711")
    replies.customer_says_form(
        Body="Hi!", ReferralHeadline="Free delivery week", ReferralBody="Order today", ReferralSourceType="ad"
    )
    assert replies.deliver() == []
    [call] = replies.ai_calls()
    text = call["body"]["input"][0]["content"]
    assert "(The customer shared a location: Depot, 187 Freston Road, London at 51.5132, -0.2198)" in text
    assert '(The customer pressed the button "Track my order", payload track:4711)' in text
    assert "(The customer wrote from an ad: Free delivery week - Order today)" in text
    stored = [m.content for m in replies.history() if m.direction == "inbound"]
    assert stored[0] is not None and stored[0].location is not None and stored[0].location.label == "Depot"
    assert stored[1] is not None and stored[1].button_payload == "track:4711"


def test_a_malformed_record_fails(replies: Replies) -> None:
    result = replies.invoke(
        [
            {
                "MessageId": "m-1",
                "ReceiptHandle": "r",
                "Body": "{not json",
                "Attributes": {"ApproximateReceiveCount": "1"},
            }
        ]
    )
    assert result["batchItemFailures"] == [{"itemIdentifier": "m-1"}]


def test_an_event_without_a_conversation_is_dropped(replies: Replies) -> None:
    replies.customer_says("hi")
    replies.cloud.dynamodb.delete_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, replies.conversation.conversation_id),
    )
    assert replies.deliver() == []
    assert replies.ai_calls() == []


def test_a_failed_handoff_notice_does_not_hold_up_the_handoff(replies: Replies) -> None:
    replies.openai.script({"text": "A colleague will help.", "action": "handoff"})
    replies.customer_says("a person please")
    with mock.patch.object(
        replies.handler.service._delivery._sns,
        "publish",
        side_effect=ClientError(
            {"Error": {"Code": "KMSThrottlingException", "Message": "injected"}}, "Publish"
        ),
    ):
        assert replies.deliver() == []
    assert len(replies.sent()) == 1 and replies.stored().handoff_to_human
    assert len(replies.queued("handoff")) == 1


def test_a_stop_while_a_person_has_the_conversation_is_confirmed_once_and_nothing_else_is_sent(
    replies: Replies,
) -> None:
    replies.update_conversation(
        "SET handoff_to_human = :t, #s = :h", {":t": {"BOOL": True}, ":h": {"S": "handed_off"}}
    )
    replies.customer_says("is anyone there?", "STOP")
    assert replies.deliver(one_by_one=True) == []
    channel = demo_project().channels["whatsapp"]
    assert [m["body"] for m in replies.sent()] == [channel.opt_out_confirmation]
    assert replies.ai_calls() == []
    stored = replies.stored()
    assert stored.handoff_to_human and stored.answered_seq == 2
    # The handoff queue got both messages for the people; the confirmation is not repeated.
    assert len(replies.queued("handoff")) == 2
    replies.customer_says("STOP")
    assert replies.deliver() == [] and len(replies.sent()) == 1


def test_an_opt_out_arriving_while_a_reply_is_sent_stops_the_rest_of_it(replies: Replies) -> None:
    from ai_comms.models.consent import ConsentChange
    from ai_comms.store.consent import ConsentRepository

    from .conftest import TABLES

    replies.openai.script({"text": ("A long answer. " * 120).strip()})
    replies.customer_says("tell me everything")
    twilio = replies.handler.service._delivery._twilio
    original = twilio.send_text
    consent = ConsentRepository(replies.cloud.dynamodb, TABLES["consent"])

    def then_stop(*args: Any, **kwargs: Any) -> str:
        sid = str(original(*args, **kwargs))
        change = ConsentChange(
            state="opted_out", at="2026-12-01T00:00:00.000Z", source="keyword", keyword="STOP"
        )
        conversation = replies.conversation
        consent.change(conversation.company_address, conversation.customer_address, "acme", "support", change)
        return sid

    with mock.patch.object(twilio, "send_text", side_effect=then_stop):
        assert replies.deliver() == []
    assert len(replies.sent()) == 1  # of the two parts the AI's answer was split into
    outbound = [m for m in replies.history() if m.direction == "outbound"]
    assert [m.sid for m in outbound] == [replies.sent()[0]["sid"]]
    assert replies.stored().answered_seq == 1 and replies.stored().pending_reply is None


def test_an_inactive_project_sends_nothing_and_its_messages_go_to_people(replies: Replies) -> None:
    from ai_comms.store.tenants import TenantRepository

    from .conftest import TABLES

    TenantRepository(replies.cloud.dynamodb, TABLES["company"]).put_project(
        demo_project(status="inactive"), "2026-01-03T00:00:00Z"
    )
    replies.handler.service._decider._configs._projects.clear()
    replies.customer_says("hello?", "STOP")
    assert replies.deliver(one_by_one=True) == []
    assert replies.sent() == [] and replies.ai_calls() == []
    assert len(replies.queued("handoff")) == 2 and len(replies.history()) == 2
