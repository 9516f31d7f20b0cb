"""POST /{channel}/status: Twilio's delivery statuses, verified like the webhook, stored once, acted on."""

import importlib
import json
import uuid
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from ai_comms.models.message import Message
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import transact_write
from ai_comms.store.messages import MessageRepository, outbound_position

from .apigw import HOST, STAGE, status_event, status_form
from .conftest import ACCOUNT_SID, AUTH_TOKEN, REGION, TABLES, Cloud
from .lambda_context import FakeContext
from .reply_support import extra_queue, open_conversation

TEMPLATE_AT = 1_796_000_000_000


@pytest.fixture
def status(cloud: Cloud) -> Any:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    import lambdas.status_callback.handler as module

    return importlib.reload(module)


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def post(status: Any, event: dict[str, Any]) -> int:
    return int(status.lambda_handler(event, FakeContext())["statusCode"])


def message(conversation_id: str, message_sid: str, seq: int = 0, author: str = "template") -> Message:
    return Message(
        conversation_id=conversation_id,
        direction="outbound",
        author=author,  # type: ignore[arg-type]
        seq=seq,
        batch=TEMPLATE_AT,
        sid=message_sid,
        body="[template HX...] {{1}}=Ada",
        at="2026-12-01T10:00:00.000Z",
    )


def query(conversation_id: str, seq: int = 0) -> dict[str, str]:
    return {"c": conversation_id, "p": outbound_position(seq, TEMPLATE_AT, 0)}


def messages(cloud: Cloud) -> MessageRepository:
    return MessageRepository(cloud.dynamodb, TABLES["messages"])


def conversation_record(cloud: Cloud, conversation_id: str) -> Any:
    conversation = ConversationRepository(cloud.dynamodb, TABLES["conversations"])
    return conversation.get("+447700900123", conversation_id)


def test_each_status_is_stored_once_with_its_message(cloud: Cloud, status: Any) -> None:
    conversation = open_conversation(cloud)
    message_sid = sid()
    messages(cloud).put_all([message(conversation.conversation_id, message_sid)])
    for state in ("queued", "sent", "delivered", "delivered", "read"):
        assert (
            post(status, status_event(status_form(message_sid, state), query(conversation.conversation_id)))
            == 200
        )
    [stored] = messages(cloud).all_of(conversation.conversation_id)
    assert [entry.status for entry in stored.statuses] == ["queued", "sent", "delivered", "read"]
    assert stored.delivery is not None and stored.delivery.status == "read"


def test_a_status_arriving_before_its_message_is_kept_when_the_message_is_written(
    cloud: Cloud, status: Any
) -> None:
    conversation = open_conversation(cloud)
    message_sid = sid()
    assert (
        post(status, status_event(status_form(message_sid, "sent"), query(conversation.conversation_id)))
        == 200
    )
    assert list(messages(cloud).all_of(conversation.conversation_id)) == []  # no message yet
    # The reply processor's final write sets the message's fields and keeps the statuses.
    transact_write(
        cloud.dynamodb, [messages(cloud).upsert_request(message(conversation.conversation_id, message_sid))]
    )
    [stored] = messages(cloud).all_of(conversation.conversation_id)
    assert stored.sid == message_sid and [entry.status for entry in stored.statuses] == ["sent"]


def test_a_bad_signature_is_403_and_stores_nothing(cloud: Cloud, status: Any) -> None:
    conversation = open_conversation(cloud)
    event = status_event(
        status_form(sid(), "failed", 63024), query(conversation.conversation_id), token="wrong"
    )
    assert post(status, event) == 403
    items = cloud.dynamodb.scan(TableName=TABLES["messages"])["Items"]
    assert items == [] and conversation_record(cloud, conversation.conversation_id).status == "active"


def test_a_callback_naming_another_tenants_conversation_is_403(cloud: Cloud, status: Any) -> None:
    # Signed correctly by this tenant, naming a conversation of the same customer with another company.
    theirs = open_conversation(cloud).model_copy(
        update={
            "conversation_id": "theirs",
            "company_id": "globex",
            "company_address": "whatsapp:+14155550199",
        }
    )
    assert ConversationRepository(cloud.dynamodb, TABLES["conversations"]).put_new(theirs)
    assert post(status, status_event(status_form(sid(), "failed", 63024), query("theirs"))) == 403
    assert conversation_record(cloud, "theirs").status == "active"


def test_a_callback_for_a_message_of_another_sid_stores_nothing(cloud: Cloud, status: Any) -> None:
    conversation = open_conversation(cloud)
    messages(cloud).put_all([message(conversation.conversation_id, sid())])
    assert (
        post(status, status_event(status_form(sid(), "failed", 63024), query(conversation.conversation_id)))
        == 200
    )
    [stored] = messages(cloud).all_of(conversation.conversation_id)
    assert (
        stored.statuses == [] and conversation_record(cloud, conversation.conversation_id).status == "active"
    )


@pytest.mark.parametrize(
    ("query_of", "expected"),
    [
        (lambda c: {"c": c}, 400),
        (lambda c: {"c": c, "p": "0000000001#in"}, 400),
        (lambda c: {"c": "x" * 200, "p": outbound_position(0, TEMPLATE_AT, 0)}, 400),
        (lambda c: {"c": "no-such-conversation", "p": outbound_position(0, TEMPLATE_AT, 0)}, 404),
    ],
)
def test_a_callback_not_naming_an_outbound_message_is_refused(
    cloud: Cloud, status: Any, query_of: Any, expected: int
) -> None:
    conversation = open_conversation(cloud)
    assert (
        post(status, status_event(status_form(sid(), "sent"), query_of(conversation.conversation_id)))
        == expected
    )


def test_a_failed_template_marks_the_conversation_undelivered_and_publishes_the_failure(
    cloud: Cloud, status: Any
) -> None:
    extra_queue(cloud, "failures", {"detail-type": ["DeliveryFailed"]})
    conversation = open_conversation(cloud, inbound_seq=0)
    message_sid = sid()
    messages(cloud).put_all([message(conversation.conversation_id, message_sid)])
    event = status_event(status_form(message_sid, "failed", 63024), query(conversation.conversation_id))
    assert post(status, event) == 200
    record = conversation_record(cloud, conversation.conversation_id)
    assert record.status == "undelivered" and record.last_error == "failed:63024"
    [failure] = cloud.drain("failures")
    assert failure["source"] == "ai-comms.status-callback"
    detail = failure["detail"]
    assert (
        detail["template"] is True and detail["error_code"] == 63024 and detail["message_sid"] == message_sid
    )
    # A repeat of the same status changes nothing and publishes nothing.
    assert post(status, event) == 200
    assert cloud.drain("failures") == []


def test_a_template_failure_reported_after_the_customer_replied_keeps_the_conversation(
    cloud: Cloud, status: Any
) -> None:
    extra_queue(cloud, "failures", {"detail-type": ["DeliveryFailed"]})
    conversation = open_conversation(cloud, inbound_seq=1)
    event = status_event(status_form(sid(), "undelivered", 63032), query(conversation.conversation_id))
    assert post(status, event) == 200
    assert conversation_record(cloud, conversation.conversation_id).status == "active"
    assert len(cloud.drain("failures")) == 1


def test_a_reply_outside_the_window_hands_the_conversation_to_a_person(cloud: Cloud, status: Any) -> None:
    extra_queue(cloud, "closed", {"detail-type": ["ReplyWindowClosed"]})
    conversation = open_conversation(cloud, inbound_seq=2, answered_seq=2)
    message_sid = sid()
    messages(cloud).put_all([message(conversation.conversation_id, message_sid, seq=2, author="ai")])
    event = status_event(
        status_form(message_sid, "undelivered", 63016), query(conversation.conversation_id, 2)
    )
    assert post(status, event) == 200
    record = conversation_record(cloud, conversation.conversation_id)
    assert record.handoff_to_human and record.status == "handed_off"
    assert (record.handoff_reason, record.handoff_detail) == ("reply_window_closed", "undelivered:63016")
    [handoff] = cloud.drain("handoff")
    assert (
        handoff["detail-type"] == "HandoffRequested" and handoff["detail"]["reason"] == "reply_window_closed"
    )
    [closed] = cloud.drain("closed")
    assert closed["detail"]["upto_seq"] == 2


def test_a_tenant_signing_with_a_webhook_signing_key_is_verified_with_it(cloud: Cloud, status: Any) -> None:
    key_sid, key = "HK" + "a" * 32, "shared-signing-key"
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="t/tenants/acme/twilio",
        SecretString=json.dumps(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "webhook_signing_key": key,
                "webhook_signing_key_sid": key_sid,
            }
        ),
    )
    conversation = open_conversation(cloud)
    form, q = status_form(sid(), "delivered"), query(conversation.conversation_id)
    url = f"https://{HOST}/{STAGE}/whatsapp/status?{urlencode(q)}"
    signed = RequestValidator(key).compute_signature(url, form, HMAC_SHA256)
    settings = {SIGNATURE_SETTINGS_HEADER: f"key={key_sid},algorithm={HMAC_SHA256}"}
    assert post(status, status_event(form, q, signature=signed, headers=settings)) == 200
    # Another key's sid, or the auth token's signature under the header, is refused.
    other = {SIGNATURE_SETTINGS_HEADER: f"key=HK{'b' * 32},algorithm={HMAC_SHA256}"}
    assert post(status, status_event(form, q, signature=signed, headers=other)) == 403
    assert post(status, status_event(status_form(sid(), "sent"), q, headers=settings)) == 403
