"""POST /conversations/{id}/messages: a person's message goes out through the real Twilio SDK to the
fake, once per message id, recorded as the agent's, with every reliability rule of a send."""

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ai_comms.models.consent import ConsentChange
from ai_comms.models.tenant import ChannelSettings
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.messages import outbound_position

from .conftest import ACCOUNT_SID, REGION, TABLES, history
from .conversations_support import Agents, agents, allow_client, handed_off, load_handler
from .reply_support import fakes, open_conversation, replies

__all__ = ["agents", "fakes", "replies"]

PUBLIC = "https://api.example.test/prod"
COMPANY = "whatsapp:+14155550100"
CUSTOMER = "whatsapp:+447700900123"


@pytest.fixture
def desk(agents: Agents, monkeypatch: pytest.MonkeyPatch) -> Agents:
    """The handler with a public base URL: every part asks Twilio for its statuses."""
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    agents.handler = load_handler()
    return agents


def history_of(agents: Agents, conversation_id: str) -> list[Any]:
    return history(agents.cloud, conversation_id)


def criticals(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.levelname == "CRITICAL"]


def opt_out(agents: Agents) -> None:
    ConsentRepository(agents.cloud.dynamodb, TABLES["consent"]).change(
        COMPANY,
        CUSTOMER,
        "acme",
        "support",
        ConsentChange(
            state="opted_out", at="2026-12-01T10:00:00.000Z", source="operator", operator="x", reason="y"
        ),
    )


def test_an_agent_message_reaches_the_customer_and_the_history(desk: Agents) -> None:
    conversation = handed_off(desk.cloud, inbound_seq=3, answered_seq=3)

    status, answer = desk.say(
        conversation.conversation_id, "Hi Ada, I'm Sam from support.", message_id="msg-1"
    )

    assert status == 202, answer
    assert answer == {"message_id": "msg-1", "parts": 1, "sent_parts": 1, "repeated": False}
    [sent] = desk.replies.sent()
    assert (sent["to"], sent["from"], sent["body"]) == (CUSTOMER, COMPANY, "Hi Ada, I'm Sam from support.")
    [item] = history_of(desk, conversation.conversation_id)
    assert (item.author, item.direction, item.sid, item.message_id) == (
        "agent",
        "outbound",
        sent["sid"],
        "msg-1",
    )
    assert item.seq == 3 and item.part == 0
    position = outbound_position(3, item.batch, 0)
    assert (
        sent["status_callback"]
        == f"{PUBLIC}/whatsapp/status?c={conversation.conversation_id}&p={position.replace('#', '%23')}"
    )
    stored = desk.stored(conversation)
    assert stored.last_activity_at == item.at and stored.status == "handed_off"
    # The history route shows it with its author.
    status, detail = desk.call("GET", f"/conversations/{conversation.conversation_id}")
    assert [(m["author"], m["body"], m["message_id"]) for m in detail["messages"]] == [
        ("agent", "Hi Ada, I'm Sam from support.", "msg-1")
    ]


def test_a_long_message_goes_out_in_parts_of_1600_characters(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    text = ("All the details you asked for. " * 130).strip()  # about 4,000 characters

    status, answer = desk.say(conversation.conversation_id, text, message_id="long")

    assert status == 202 and answer["parts"] == answer["sent_parts"] == 3
    bodies = [m["body"] for m in desk.replies.sent()]
    assert all(len(body) <= 1600 for body in bodies) and " ".join(bodies) == text
    items = history_of(desk, conversation.conversation_id)
    assert [(m.part, m.body) for m in items] == list(enumerate(bodies))
    assert len({m.batch for m in items}) == 1


def test_a_repeat_never_sends_twice_and_another_text_under_the_same_id_is_refused(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    first = desk.say(conversation.conversation_id, "Your refund is on its way.", message_id="refund-1")
    header = desk.say(
        conversation.conversation_id, "Your refund is on its way.", headers={"Idempotency-Key": "refund-1"}
    )
    body_and_header = desk.say(
        conversation.conversation_id,
        "Your refund is on its way.",
        message_id="refund-1",
        headers={"Idempotency-Key": "refund-1"},
    )

    assert first[0] == 202 and first[1]["repeated"] is False
    assert header == body_and_header == (202, {**first[1], "repeated": True})
    assert len(desk.replies.sent()) == 1 and len(history_of(desk, conversation.conversation_id)) == 1
    status, answer = desk.say(conversation.conversation_id, "Something else", message_id="refund-1")
    assert (status, answer["error"]) == (409, "idempotency_key_reused")
    status, answer = desk.say(
        conversation.conversation_id, "x", message_id="a", headers={"Idempotency-Key": "b"}
    )
    assert status == 400 and answer["errors"][0]["field"] == "body.message_id"
    # Without a message id each request is a message of its own.
    assert desk.say(conversation.conversation_id, "Anything else?")[0] == 202
    assert desk.say(conversation.conversation_id, "Anything else?")[0] == 202
    assert len(desk.replies.sent()) == 3


def test_outside_the_24_hour_window_nothing_is_sent(desk: Agents) -> None:
    for conversation in (
        handed_off(desk.cloud, wrote_hours_ago=24.1),
        handed_off(desk.cloud, wrote_hours_ago=None),
    ):
        status, answer = desk.say(conversation.conversation_id, "Are you still there?", message_id="late")
        assert (status, answer["error"]) == (409, "window_closed")
        assert history_of(desk, conversation.conversation_id) == []
    assert desk.replies.sent() == []
    # SMS has no such window.
    allow_client(
        desk.cloud,
        allowed_channels=["whatsapp", "sms"],
        channels={
            "whatsapp": ChannelSettings(address=COMPANY, twilio_secret_ref="t/tenants/acme/twilio"),
            "sms": ChannelSettings(address="+14155550100", twilio_secret_ref="t/tenants/acme/twilio"),
        },
    )
    desk.handler = load_handler()  # a new container: no cached project
    sms = handed_off(
        desk.cloud,
        wrote_hours_ago=None,
        channel="sms",
        company_address="+14155550100",
        customer_address="+447700900123",
    )
    assert desk.say(sms.conversation_id, "Hello by SMS")[0] == 202
    assert [(m["to"], m["body"]) for m in desk.replies.sent()] == [("+447700900123", "Hello by SMS")]


def test_only_a_conversation_a_person_has_takes_an_agent_message(desk: Agents) -> None:
    active = open_conversation(desk.cloud, last_inbound_at="2099-01-01T00:00:00.000Z")
    status, answer = desk.say(active.conversation_id, "I am a person")
    assert (status, answer["error"]) == (409, "not_handed_off")
    assert desk.replies.sent() == []


def test_an_opted_out_customer_gets_nothing(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    opt_out(desk)
    status, answer = desk.say(conversation.conversation_id, "Hello?", message_id="m")
    assert (status, answer["error"]) == (409, "recipient_opted_out")
    assert desk.replies.sent() == [] and history_of(desk, conversation.conversation_id) == []


def test_consent_is_read_before_each_part(desk: Agents, monkeypatch: pytest.MonkeyPatch) -> None:
    conversation = handed_off(desk.cloud)
    consent = desk.handler.service._sender._consent
    real = consent.is_opted_out
    reads: list[int] = []

    def opted_out_after_the_first_part(company: str, customer: str) -> bool:
        reads.append(1)
        if len(reads) == 2:
            opt_out(desk)  # a STOP arrives while the message is on its way
        return bool(real(company, customer))

    monkeypatch.setattr(consent, "is_opted_out", opted_out_after_the_first_part)
    status, answer = desk.say(conversation.conversation_id, "word " * 700, message_id="parts")

    assert (status, answer["error"]) == (409, "recipient_opted_out")
    assert len(desk.replies.sent()) == 1 and len(reads) == 2
    assert [m.part for m in history_of(desk, conversation.conversation_id)] == [0]


def test_an_unknown_send_outcome_is_kept_as_unknown_and_never_resent(
    desk: Agents, caplog: pytest.LogCaptureFixture
) -> None:
    conversation = handed_off(desk.cloud)
    desk.replies.twilio.add_faults({"delay_seconds": 2.5, "count": 1})  # past the 2 s read timeout

    status, answer = desk.say(conversation.conversation_id, "Did this arrive?", message_id="maybe")

    assert status == 202 and answer["sent_parts"] == 1
    [critical] = criticals(caplog)
    assert critical.__dict__["critical_event"] == "post_send_update_failed"
    assert critical.__dict__["error_type"] == "SendOutcomeUnknown"
    [item] = history_of(desk, conversation.conversation_id)
    assert item.sid == "unknown"
    caplog.clear()
    assert (
        desk.say(conversation.conversation_id, "Did this arrive?", message_id="maybe")[1]["repeated"] is True
    )
    assert len(desk.replies.sent()) <= 1 and criticals(caplog) == []


def test_a_record_lost_after_twilio_accepted_is_critical_once_and_never_resent(
    desk: Agents, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = handed_off(desk.cloud)
    records = desk.handler.service._sender._records

    def broken(*_: Any, **__: Any) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")

    monkeypatch.setattr(records, "finish", broken)
    status, answer = desk.say(conversation.conversation_id, "Sent, not recorded", message_id="lost")

    assert status == 202 and answer["sent_parts"] == 1
    [sent] = desk.replies.sent()
    [critical] = criticals(caplog)
    assert critical.__dict__["message_sid"] == sent["sid"]
    assert critical.__dict__["conversation_id"] == conversation.conversation_id
    monkeypatch.undo()
    # A retry finds the part attempted without a sid: it may be out, so it is kept, never resent.
    status, answer = desk.say(conversation.conversation_id, "Sent, not recorded", message_id="lost")
    assert status == 202 and len(desk.replies.sent()) == 1
    [item] = history_of(desk, conversation.conversation_id)
    assert item.sid == "unknown" and item.body == "Sent, not recorded"


def test_twilio_unavailable_is_503_and_a_retry_sends_once(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    desk.replies.twilio.add_faults({"status": 503, "code": 20500, "count": 1})

    status, answer = desk.say(conversation.conversation_id, "Try again", message_id="retry")
    assert (status, answer["error"]) == (503, "dependency_unavailable")
    assert desk.replies.sent() == [] and history_of(desk, conversation.conversation_id) == []

    status, answer = desk.say(conversation.conversation_id, "Try again", message_id="retry")
    assert status == 202 and answer["repeated"] is False
    assert len(desk.replies.sent()) == 1 and len(history_of(desk, conversation.conversation_id)) == 1


def test_rotated_twilio_credentials_are_read_again_once(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    assert desk.say(conversation.conversation_id, "first, with the cached token")[0] == 202
    # The tenant rotates its auth token: Twilio accepts only the new one, the cache holds the old one.
    desk.replies.twilio.add_account(ACCOUNT_SID, "rotated-token")
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="t/tenants/acme/twilio",
        SecretString=json.dumps({"account_sid": ACCOUNT_SID, "auth_token": "rotated-token"}),
    )

    status, answer = desk.say(conversation.conversation_id, "second, after the rotation", message_id="rot")

    assert status == 202, answer
    assert [m["body"] for m in desk.replies.sent()] == [
        "first, with the cached token",
        "second, after the rotation",
    ]


def test_a_token_twilio_keeps_refusing_is_503_and_nothing_is_recorded(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    desk.replies.twilio.add_account(ACCOUNT_SID, "a-token-nobody-has")
    status, answer = desk.say(conversation.conversation_id, "hello", message_id="refused")
    assert (status, answer["error"]) == (503, "dependency_unavailable")
    assert desk.replies.sent() == [] and history_of(desk, conversation.conversation_id) == []


def test_a_recipient_who_blocked_the_sender_is_recorded_as_opted_out(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    desk.replies.twilio.refuse(21610, to=CUSTOMER)
    status, answer = desk.say(conversation.conversation_id, "hello", message_id="blocked")
    assert (status, answer["error"]) == (409, "recipient_opted_out")
    consent = ConsentRepository(desk.cloud.dynamodb, TABLES["consent"]).get(COMPANY, CUSTOMER)
    assert consent is not None and consent.state == "opted_out" and consent.change.source == "blocked"
    assert desk.replies.sent() == []


def test_a_refusal_for_good_is_409_with_twilios_code(desk: Agents) -> None:
    conversation = handed_off(desk.cloud)
    desk.replies.twilio.refuse(21614, to=CUSTOMER)
    status, answer = desk.say(conversation.conversation_id, "hello", message_id="bad-number")
    assert (status, answer["error"]) == (409, "twilio_refused") and "21614" in answer["message"]
    assert desk.replies.sent() == []
