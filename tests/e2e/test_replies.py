"""AI replies end to end: signed webhook over HTTP -> API -> webhook -> EventBridge -> debounced queue ->
reply processor (built zip + layer) -> the OpenAI and Twilio fakes over HTTP with the real SDKs.

The fakes are shared by the session, so every test looks only at its own customer's messages and its
own AI conversation, and waits until its own work is finished before the next test injects faults.
"""

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.splitting import TWILIO_MAX_CHARS
from ai_comms.store.conversations import ConversationRepository
from local_cloud.seeding import SeededTenant

from .conftest import MAIN, Stack

pytestmark = pytest.mark.e2e

# Debounce (4 s in the e2e workspace) + one AI call + sends, with room for a slow machine.
REPLY_WAIT = 40.0
# A record that failed comes back after the processor's backoff (10 s on the first receive).
RETRY_WAIT = 60.0
FAST_RETRY = {"retry-after-ms": "10"}


class Chat:
    """One customer talking to one seeded tenant."""

    def __init__(self, stack: Stack, tenant: SeededTenant, conversation: Conversation) -> None:
        self.stack = stack
        self.tenant = tenant
        self.conversation = conversation
        self.tel = conversation.recipient_tel
        self.customer = conversation.customer_address
        self._repo = ConversationRepository(
            stack.client("dynamodb"), stack.outputs(MAIN)["tables"]["conversations"]
        )

    def says(self, *bodies: str) -> list[str]:
        sids = []
        for body in bodies:
            form = self.stack.webhook_form(self.tenant, self.tel, body)
            status, _ = self.stack.post_webhook(form, self.tenant)
            assert status == 200
            sids.append(form["MessageSid"])
        return sids

    def record(self) -> Conversation:
        found = self._repo.get(self.tel, self.conversation.conversation_id)
        assert found is not None
        return found

    def opted_out(self) -> bool:
        consent = self.stack.consent(self.tenant, self.tel)
        return consent is not None and consent.state == "opted_out"

    def history(self) -> list[Message]:
        return self.stack.history(self.conversation.conversation_id)

    def replies(self) -> list[dict[str, Any]]:
        return [m for m in self.stack.twilio.messages() if m["to"] == self.customer]

    def ai_calls(self) -> list[dict[str, Any]]:
        ai_id = self.record().ai_conversation_id
        if ai_id is None:
            return []
        return [
            r
            for r in self.stack.openai.requests.snapshot()
            if r["path"] == "/v1/responses" and r.get("conversation_id") == ai_id
        ]

    def wait_replies(self, count: int, timeout: float = REPLY_WAIT) -> list[dict[str, Any]]:
        found = self.stack.wait_for(lambda: len(self.replies()) >= count and self.replies(), timeout)
        return list(found)

    def wait_answered(self, seq: int, timeout: float = REPLY_WAIT) -> Conversation:
        def answered() -> Conversation | None:
            record = self.record()
            return record if record.answered_seq >= seq and record.lease_owner is None else None

        return self.stack.wait_for(answered, timeout)

    def settle(self, seconds: float = 6.0) -> None:
        """Until a stray delayed event (debounce) or a duplicate would have shown up (Stack.settle)."""
        self.stack.settle(seconds)

    def update(self, expression: str, values: dict[str, Any]) -> None:
        self.stack.client("dynamodb").update_item(
            TableName=self.stack.outputs(MAIN)["tables"]["conversations"],
            Key=ConversationRepository.key(self.tel, self.conversation.conversation_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )


@pytest.fixture
def chat(stack: Stack) -> Iterator[Chat]:
    tenant = stack.tenant()
    yield Chat(stack, tenant, stack.conversation(tenant))
    # Nothing injected may leak into the next test.
    stack.openai.set_latency(0)
    stack.twilio.set_latency(0)
    stack.openai.faults.clear()
    stack.twilio.faults.clear()


def squashed(text: str) -> str:
    return "".join(text.split())


def test_signed_webhook_gets_the_ai_reply_and_the_history_holds_both(chat: Chat) -> None:
    [sid] = chat.says("Where is my parcel?")

    [reply] = chat.wait_replies(1)
    record = chat.wait_answered(1)

    assert reply["from"] == chat.tenant.address("whatsapp")
    assert reply["body"] == "Thanks! You said: Where is my parcel?"
    assert [(m.direction, m.sid, m.body) for m in chat.history()] == [
        ("inbound", sid, "Where is my parcel?"),
        ("outbound", reply["sid"], reply["body"]),
    ]
    assert record.pending_reply is None and record.ai_conversation_id is not None
    [call] = chat.ai_calls()
    assert call["body"]["text"]["format"]["type"] == "json_schema"
    assert "Demo Ltd" in call["body"]["instructions"]


def test_only_the_runner_receives_from_the_queues_it_plays(chat: Chat) -> None:
    # The emulator's own mappings are off while the runner plays them: moto would receive each
    # message itself (failing it for want of Docker), LocalStack's pollers would consume it.
    runner = chat.stack.runner
    assert runner is not None and runner.topology is not None and runner.topology.mappings
    lam = chat.stack.client("lambda")
    states = {lam.get_event_source_mapping(UUID=m.uuid)["State"] for m in runner.topology.mappings}
    assert states == {"Disabled"}
    [sid] = chat.says("who receives this?")
    chat.wait_replies(1)

    def records() -> list[dict[str, Any]]:
        return [
            record
            for event, _ in list(runner.history)
            if isinstance(event, dict)
            for record in event.get("Records", [])
            if sid in record.get("body", "")
        ]

    # The runner records the event when the invocation returns, after the reply went out.
    chat.stack.wait_for(records, REPLY_WAIT)
    # Delayed by the debounce window, then received once: by the runner's poller.
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records()] == ["1"]


def test_the_runner_has_not_settled_while_a_reply_is_on_its_way(chat: Chat) -> None:
    # What Stack.settle waits for: a message in its debounce window is work still to come.
    runner = chat.stack.runner
    chat.says("is anything still on its way?")
    assert not runner.settled()
    chat.wait_replies(1)
    chat.wait_answered(1)
    # Then everything it started finishes and nothing is left: settled, within a bound.
    chat.stack.wait_for(runner.settled, REPLY_WAIT)
    assert len(chat.replies()) == 1


def test_five_messages_in_two_seconds_get_one_ai_call_and_one_reply(chat: Chat) -> None:
    bodies = [f"part {n} of my question" for n in range(1, 6)]
    started = time.monotonic()
    chat.says(*bodies)
    assert time.monotonic() - started < 2.0

    chat.wait_replies(1)
    chat.wait_answered(5)
    chat.settle()

    [call] = chat.ai_calls()
    assert call["body"]["input"] == [{"role": "user", "content": "\n\n".join(bodies)}]
    assert len(chat.replies()) == 1


def test_a_message_sent_while_the_ai_is_slow_gets_its_own_reply(chat: Chat) -> None:
    chat.stack.openai.set_latency(3)
    chat.says("first question")
    chat.stack.wait_for(chat.ai_calls, REPLY_WAIT)
    chat.says("second question")
    chat.stack.openai.set_latency(0)

    replies = chat.wait_replies(2, REPLY_WAIT + 10)
    chat.wait_answered(2)
    chat.settle()

    assert [m["body"] for m in replies] == [
        "Thanks! You said: first question",
        "Thanks! You said: second question",
    ]
    assert len(chat.replies()) == 2
    assert [c["body"]["input"][0]["content"] for c in chat.ai_calls()] == [
        "first question",
        "second question",
    ]


def test_openai_500_twice_then_ok_gives_exactly_one_reply(chat: Chat) -> None:
    chat.stack.openai.add_faults({"status": 500, "count": 2, "headers": FAST_RETRY})
    chat.says("hello")

    chat.wait_replies(1)
    chat.wait_answered(1)
    chat.settle()

    assert len(chat.replies()) == 1
    assert chat.stack.openai.faults.pending() == 0


def test_twilio_500_once_gives_exactly_one_reply(chat: Chat) -> None:
    chat.stack.twilio.add_faults({"status": 500, "count": 1})
    chat.says("hello")

    chat.wait_replies(1, RETRY_WAIT)
    chat.wait_answered(1)
    chat.settle()

    assert len(chat.replies()) == 1
    assert len(chat.ai_calls()) == 1


def test_a_failed_update_after_the_send_logs_critical_and_sends_once(
    chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_cloud.lambda")
    chat.stack.twilio.set_latency(3)
    chat.says("hello")

    def sending() -> bool:
        requests = chat.stack.twilio.requests.snapshot()
        return any(r["body"].get("To") == chat.customer for r in requests if isinstance(r["body"], dict))

    chat.stack.wait_for(sending, REPLY_WAIT)
    # Another owner takes the lease while Twilio is accepting the message: the final conditional
    # write then fails, exactly as when DynamoDB rejects it.
    chat.update("SET lease_owner = :intruder", {":intruder": {"S": "intruder"}})
    chat.stack.twilio.set_latency(0)

    def critical_lines() -> list[dict[str, Any]]:
        lines = []
        for record in caplog.records:
            text = record.getMessage()
            if "post_send_update_failed" in text:
                lines.append(json.loads(text[text.index("{") :]))
        return lines

    [line] = chat.stack.wait_for(critical_lines, REPLY_WAIT)
    chat.settle()

    assert line["level"] == "CRITICAL" and line["critical_event"] == "post_send_update_failed"
    assert len(chat.replies()) == 1
    assert chat.record().answered_seq == 0


def test_a_4000_character_reply_goes_out_as_three_messages_in_order(stack: Stack) -> None:
    # A 4,000-character answer is about 1,000 tokens: the tenant's cap must allow it (max_output_tokens
    # bounds what the model writes; the fake cuts the answer there as OpenAI does).
    tenant = stack.tenant(max_output_tokens=2000)
    chat = Chat(stack, tenant, stack.conversation(tenant))
    text = ("This sentence is part of a long and careful answer. " * 80)[:4000].rsplit(" ", 1)[0]
    assert 3950 < len(text) <= 4000
    chat.stack.openai.script({"text": text, "action": "none"})
    chat.says("Tell me everything.")

    replies = chat.wait_replies(3)
    chat.wait_answered(1)
    chat.settle()

    bodies = [m["body"] for m in chat.replies()]
    assert len(bodies) == 3 and all(len(b) <= TWILIO_MAX_CHARS for b in bodies)
    assert squashed("".join(bodies)) == squashed(text)
    assert [m["sid"] for m in replies] == [m.sid for m in chat.history() if m.direction == "outbound"]


def test_stop_gets_one_confirmation_no_ai_and_nothing_more_until_start(chat: Chat) -> None:
    chat.says("STOP")
    [confirmation] = chat.wait_replies(1)
    assert "START" in confirmation["body"]
    assert chat.opted_out() and chat.record().ai_conversation_id is None

    chat.says("hello? anyone?")
    chat.wait_answered(2)
    chat.settle()
    assert len(chat.replies()) == 1 and chat.ai_calls() == []

    chat.says("start")
    chat.wait_replies(2)
    chat.wait_answered(3)
    assert not chat.opted_out() and chat.ai_calls() == []

    chat.says("what are your opening hours?")
    replies = chat.wait_replies(3)
    assert replies[-1]["body"] == "Thanks! You said: what are your opening hours?"


def test_ai_handoff_notifies_and_routes_the_next_message_to_people(chat: Chat) -> None:
    chat.stack.openai.script({"text": "I will fetch a colleague.", "action": "handoff"})
    chat.says("I want to speak to a person")

    [notice] = chat.wait_replies(1)
    record = chat.wait_answered(1)
    assert record.handoff_to_human and record.status == "handed_off"
    assert notice["body"] != "I will fetch a colleague."

    def handoff_requested() -> list[dict[str, Any]]:
        events = chat.stack.queue_events("handoff")
        return [
            e
            for e in events
            if e["detail-type"] == "HandoffRequested"
            and e["detail"]["conversation_id"] == chat.conversation.conversation_id
        ]

    [event] = chat.stack.wait_for(handoff_requested, REPLY_WAIT)
    assert event["source"] == "ai-comms.reply-processor" and event["detail"]["route"] == "handoff"

    [sid] = chat.says("hello, is someone there?")
    chat.stack.wait_for(lambda: chat.stack.routed("handoff", sid), REPLY_WAIT)
    chat.settle()
    assert len(chat.replies()) == 1 and len(chat.ai_calls()) == 1


def test_no_twilio_call_when_the_last_message_is_25_hours_old(chat: Chat) -> None:
    chat.says("are you still there?")
    # Within the debounce window: as if the message had been recorded a day and an hour ago.
    old = iso(utc_now() - timedelta(hours=25))
    chat.update("SET last_inbound_at = :old", {":old": {"S": old}})

    def closed() -> Conversation | None:
        record = chat.record()
        return record if record.status == "window_closed" else None

    record = chat.stack.wait_for(closed, REPLY_WAIT)
    chat.settle()
    assert record.answered_seq == 1
    assert chat.replies() == [] and chat.ai_calls() == []


def test_the_same_sqs_message_delivered_twice_gets_one_ai_call_and_one_reply(chat: Chat) -> None:
    [sid] = chat.says("hello once")
    chat.wait_replies(1)
    chat.wait_answered(1)
    # The runner records a consumed event when its invocation returns, just after the reply went out.
    [event] = chat.stack.wait_for(
        lambda: [
            e for e in chat.stack.consumed_events("whatsapp-ai-reply") if e["detail"]["message_sid"] == sid
        ]
    )

    chat.stack.client("sqs").send_message(
        QueueUrl=chat.stack.queue_url("whatsapp-ai-reply"), MessageBody=json.dumps(event)
    )

    def deliveries() -> int:
        consumed = chat.stack.consumed_events("whatsapp-ai-reply")
        return len([e for e in consumed if e["detail"]["message_sid"] == sid])

    chat.stack.wait_for(lambda: deliveries() == 2, REPLY_WAIT)
    chat.settle(2)
    assert len(chat.replies()) == 1 and len(chat.ai_calls()) == 1
