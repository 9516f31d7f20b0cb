"""Conversations that last: history as message items, the record of a fixed size, nothing accepted lost.

- a conversation holding 2,000 messages (most seeded through the engine's own repositories, some
  4,096 characters long) keeps being answered through real signed webhooks, and its record stays
  under 4 KB;
- a 4,096-character message in Cyrillic, Devanagari and emoji is accepted and answered;
- the outbox relay's PutEvents failing after the webhook stored the message: Twilio got 200 and
  the reply still arrives, once; the same event published again (what a replay of the archive
  does) and SQS redeliveries add no reply (tests/e2e/test_ops.py replays the archive itself);
- `ops migrate` moves an old-layout conversation (history in one attribute) and the AI answers it.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import to_item
from ai_comms.store.messages import MessageRepository
from local_cloud.item_size import item_size
from local_cloud.seeding import SeededTenant

from .conftest import Stack, random_tel

pytestmark = pytest.mark.e2e

REPLY_WAIT = 60.0
LONG = 4096
SCRIPTS = {
    "cyrillic": "Здравствуйте, где мой заказ? ",
    "devanagari": "नमस्ते, मेरा ऑर्डर कहाँ है? ",
    "emoji": "📦🚚🙂🙏✨",
}


def _replies_to(stack: Stack, customer_address: str) -> list[dict[str, Any]]:
    return [m for m in stack.twilio.messages() if m["to"] == customer_address]


def _record(stack: Stack, tel: str, conversation_id: str) -> Conversation:
    found = ConversationRepository(stack.client("dynamodb"), stack.outputs()["tables"]["conversations"]).get(
        tel, conversation_id
    )
    assert found is not None
    return found


def _raw_record(stack: Stack, tel: str, conversation_id: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.client("dynamodb").get_item(
        TableName=stack.outputs()["tables"]["conversations"],
        Key=ConversationRepository.key(tel, conversation_id),
        ConsistentRead=True,
    )["Item"]
    return item


def _wait_answered(stack: Stack, tel: str, conversation_id: str, seq: int) -> Conversation:
    def answered() -> Conversation | None:
        record = _record(stack, tel, conversation_id)
        return record if record.answered_seq >= seq and record.lease_owner is None else None

    return stack.wait_for(answered, REPLY_WAIT)


def _say(stack: Stack, tenant: SeededTenant, tel: str, body: str) -> str:
    form = stack.webhook_form(tenant, tel, body)
    status, _ = stack.post_webhook(form, tenant)
    assert status == 200
    return form["MessageSid"]


def _seed_history(stack: Stack, conversation: Conversation, turns: int) -> int:
    """`turns` customer messages, each answered by one or two parts: the history, as items."""
    start = utc_now() - timedelta(hours=2)
    messages: list[Message] = []
    for seq in range(1, turns + 1):
        at = iso(start + timedelta(seconds=seq))
        long_turn = seq % 50 == 0
        body = ("Where is my order? " * 216)[:LONG] if long_turn else f"question {seq}"
        common = {"conversation_id": conversation.conversation_id, "seq": seq, "at": at}
        messages.append(
            Message(direction="inbound", author="customer", sid=f"SMseed{seq:028d}", body=body, **common)
        )
        batch = int((start + timedelta(seconds=seq, milliseconds=500)).timestamp() * 1000)
        messages.append(
            Message(
                direction="outbound",
                author="ai",
                batch=batch,
                sid=f"SMrep{seq:029d}",
                body=f"answer {seq}",
                **common,
            )
        )
        if long_turn:
            messages.append(
                Message(
                    direction="outbound",
                    author="ai",
                    batch=batch,
                    part=1,
                    sid=f"SMrpb{seq:029d}",
                    body="x" * 1600,
                    **common,
                )
            )
    MessageRepository(stack.client("dynamodb"), stack.outputs()["tables"]["messages"]).put_all(messages)
    return len(messages)


def test_a_conversation_of_two_thousand_messages_keeps_being_answered_on_a_small_record(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    turns = 990
    conversation = stack.conversation(
        tenant,
        tel,
        inbound_seq=turns,
        answered_seq=turns,
        last_inbound_at=iso(utc_now() - timedelta(hours=1)),
    )
    seeded = _seed_history(stack, conversation, turns)
    sent: list[str] = []
    for n in range(1, 4):
        sent.append(_say(stack, tenant, tel, f"and now message {turns + n}?"))
        _wait_answered(stack, tel, conversation.conversation_id, turns + n)

    history = stack.history(conversation.conversation_id)
    assert len(history) == seeded + 6 and len(history) >= 2000
    tail = history[-6:]
    assert [(m.direction, m.seq) for m in tail] == [
        (d, turns + n) for n in range(1, 4) for d in ("inbound", "outbound")
    ]
    assert [m.sid for m in tail if m.direction == "inbound"] == sent
    replies = _replies_to(stack, conversation.customer_address)
    assert [r["body"] for r in replies] == [
        f"Thanks! You said: and now message {turns + n}?" for n in range(1, 4)
    ]
    assert [m.sid for m in tail if m.direction == "outbound"] == [r["sid"] for r in replies]
    raw = _raw_record(stack, tel, conversation.conversation_id)
    assert item_size(raw) < 4096, f"conversation record is {item_size(raw)} bytes"
    assert "messages" not in raw


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_whatsapp_message_of_4096_characters_in_any_script_is_accepted_and_answered(
    stack: Stack, script: str
) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    body = (SCRIPTS[script] * LONG)[:LONG]
    assert len(body) == LONG
    form = stack.webhook_form(tenant, conversation.recipient_tel, body)
    status, _ = stack.post_webhook(form, tenant)
    assert status == 200

    _wait_answered(stack, conversation.recipient_tel, conversation.conversation_id, 1)
    [inbound, *parts] = stack.history(conversation.conversation_id)
    assert inbound.body == body and inbound.sid == form["MessageSid"]
    replies = _replies_to(stack, conversation.customer_address)
    assert "".join(r["body"] for r in replies).replace(" ", "").replace("\n", "") == (
        ("Thanks! You said: " + body).replace(" ", "").replace("\n", "")
    )
    assert [m.sid for m in parts] == [r["sid"] for r in replies]


def test_put_events_failing_after_the_store_loses_nothing_and_replies_once(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    relay = stack.runner.call_counters[stack.outputs()["functions"]["outbox_relay"]]
    # Every attempt the SDK makes for three relay invocations: the stream retries the record.
    relay.inject("events.PutEvents", status=500, count=9, match=conversation.conversation_id)
    started = time.monotonic()
    sid = _say(stack, tenant, conversation.recipient_tel, "is my message safe?")
    assert time.monotonic() - started < 15  # Twilio's own limit for a webhook

    _wait_answered(stack, conversation.recipient_tel, conversation.conversation_id, 1)
    assert relay.faulted["events.PutEvents"] >= 3
    stack.settle(6)  # a duplicate event would be answered within a debounce window
    replies = _replies_to(stack, conversation.customer_address)
    assert [r["body"] for r in replies] == ["Thanks! You said: is my message safe?"]
    assert [m.sid for m in stack.history(conversation.conversation_id) if m.direction == "inbound"] == [sid]


def test_a_migrated_old_layout_conversation_is_answered_with_its_history_in_order(
    stack: Stack, tmp_path: Any
) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    at = iso(utc_now() - timedelta(hours=3))
    old = [
        {"direction": "outbound", "sid": "SMtpl" + "0" * 29, "body": "[template HX0] {{1}}=Ada", "at": at},
        {"direction": "inbound", "sid": "SMold1" + "0" * 28, "body": "an old question", "at": at},
        {"direction": "outbound", "sid": "SMold2" + "0" * 28, "body": "an old answer", "at": at},
    ]
    conversation = Conversation(
        recipient_tel=tel,
        conversation_id=f"legacy-{tel[-5:]}",
        channel="whatsapp",
        company_id=tenant.company_id,
        project_id=tenant.project_id,
        company_address=tenant.address("whatsapp"),
        customer_address="whatsapp:" + tel,
        inbound_seq=1,
        answered_seq=1,
        last_inbound_at=at,
        created_at=at,
        updated_at=at,
    )
    item = to_item({**conversation.model_dump(mode="json"), "messages": old})
    item["inbound_sids"] = {"SS": [old[1]["sid"]]}
    item["channel_created_at"] = {"S": Conversation.sort_key_for(conversation.company_address, at)}
    stack.client("dynamodb").put_item(TableName=stack.outputs()["tables"]["conversations"], Item=item)

    migrated = stack.ops("migrate", "--state", str(tmp_path / "migrate.json"))
    assert migrated.returncode == 0, migrated.stderr
    assert "moved 3 messages of 1 conversations" in migrated.stdout

    sid = _say(stack, tenant, tel, "a new question")
    _wait_answered(stack, tel, conversation.conversation_id, 2)
    history = stack.history(conversation.conversation_id)
    assert [m.body for m in history[:3]] == [e["body"] for e in old]
    assert [(m.direction, m.seq, m.sid) for m in history[3:4]] == [("inbound", 2, sid)]
    assert history[4].body == "Thanks! You said: a new question"
    raw = _raw_record(stack, tel, conversation.conversation_id)
    assert "messages" not in raw and item_size(raw) < 4096
    assert json.loads(json.dumps(raw))  # the record is plain data


def test_a_replay_and_redelivered_events_add_no_reply(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    _say(stack, tenant, conversation.recipient_tel, "answer me once")
    _wait_answered(stack, conversation.recipient_tel, conversation.conversation_id, 1)
    # The runner records an invocation once it returns, a moment after its final write.
    [event] = stack.wait_for(
        lambda: [
            e
            for e in stack.consumed_events("whatsapp-ai-reply")
            if e["detail"].get("conversation_id") == conversation.conversation_id
        ],
        10,
    )
    # The same event again on the bus (as a replay delivers it) and straight into the queue twice
    # (as an SQS redelivery does): the conversation is answered already.
    stack.client("events").put_events(
        Entries=[
            {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
                "EventBusName": stack.outputs()["event_bus_name"],
            }
        ]
    )
    for _ in range(2):
        stack.client("sqs").send_message(
            QueueUrl=stack.queue_url("whatsapp-ai-reply"), MessageBody=json.dumps(event)
        )
    stack.settle(10)  # debounce (4 s) + processing of every copy
    replies = _replies_to(stack, conversation.customer_address)
    assert [r["body"] for r in replies] == ["Thanks! You said: answer me once"]
