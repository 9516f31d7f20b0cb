"""The Twilio webhook handler against in-process AWS: statuses, dedupe, routing, nothing stored on refusal."""

import json
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.store.conversations import ConversationRepository

from .apigw import twilio_form, webhook_event
from .conftest import COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, Cloud
from .lambda_context import FakeContext


def invoke(webhook: Any, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = webhook.lambda_handler(event, FakeContext())
    return result


def open_conversation(cloud: Cloud, **fields: Any) -> Conversation:
    now = iso(utc_now())
    conversation = Conversation(
        recipient_tel=CUSTOMER_NUMBER,
        conversation_id="c-" + now,
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        company_address="whatsapp:" + COMPANY_NUMBER,
        customer_address="whatsapp:" + CUSTOMER_NUMBER,
        created_at=now,
        updated_at=now,
        **fields,
    )
    assert ConversationRepository(cloud.dynamodb, TABLES["conversations"]).put_new(conversation)
    return conversation


def all_events(cloud: Cloud) -> dict[str, list[dict[str, Any]]]:
    return {route: cloud.drain(route) for route in cloud.queues}


def test_signed_reply_is_recorded_and_routed_to_the_ai(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    form = twilio_form(Body="Where is my parcel?")

    answer = invoke(webhook, webhook_event(form))

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["text/xml"]
    assert answer["body"].endswith("<Response/>")
    events = all_events(cloud)
    assert [e["detail"]["message_sid"] for e in events["ai_reply"]] == [form["MessageSid"]]
    assert events["handoff"] == [] and events["unmatched"] == []
    detail = events["ai_reply"][0]["detail"]
    assert events["ai_reply"][0]["detail-type"] == "ReplyReceived"
    assert detail["conversation_id"] == conversation.conversation_id
    assert detail["schema_version"] == 1 and detail["inbound_seq"] == 1
    stored = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).get(
        CUSTOMER_NUMBER, conversation.conversation_id
    )
    assert stored is not None
    assert [(m.direction, m.sid, m.body) for m in stored.messages] == [
        ("inbound", form["MessageSid"], "Where is my parcel?")
    ]
    assert stored.last_inbound_at is not None


def test_handoff_conversation_routes_to_handoff(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud, handoff_to_human=True, status="handed_off")
    assert invoke(webhook, webhook_event())["statusCode"] == 200
    events = all_events(cloud)
    assert len(events["handoff"]) == 1 and events["ai_reply"] == []


def test_unknown_sender_routes_unmatched(cloud: Cloud, webhook: Any) -> None:
    assert invoke(webhook, webhook_event(twilio_form(From="whatsapp:+447700900999")))["statusCode"] == 200
    events = all_events(cloud)
    assert len(events["unmatched"]) == 1
    assert events["unmatched"][0]["detail"]["conversation_id"] is None


def test_latest_conversation_wins(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud, handoff_to_human=True)
    newest = open_conversation(cloud)
    invoke(webhook, webhook_event())
    [event] = all_events(cloud)["ai_reply"]
    assert event["detail"]["conversation_id"] == newest.conversation_id


def test_same_message_sid_three_times_publishes_once(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    event = webhook_event()
    statuses = [invoke(webhook, event)["statusCode"] for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert len(all_events(cloud)["ai_reply"]) == 1
    stored = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).get(
        CUSTOMER_NUMBER, conversation.conversation_id
    )
    assert stored is not None and len(stored.messages) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "bm90LWEtc2lnbmF0dXJl", None],
    ids=["missing", "wrong", "other-token"],
)
def test_bad_signature_is_403_and_nothing_happens(cloud: Cloud, webhook: Any, signature: str | None) -> None:
    conversation = open_conversation(cloud)
    event = webhook_event(signature=signature, token="not-the-token") if signature is None else None
    event = event or webhook_event(signature=signature)
    answer = invoke(webhook, event)
    assert answer["statusCode"] == 403
    assert all(not found for found in all_events(cloud).values())
    stored = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).get(
        CUSTOMER_NUMBER, conversation.conversation_id
    )
    assert stored is not None and stored.messages == []
    assert (
        "Items" not in cloud.dynamodb.scan(TableName=TABLES["idempotency"])
        or not cloud.dynamodb.scan(TableName=TABLES["idempotency"])["Items"]
    )


def test_signature_covers_the_stage_path(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud)
    form = twilio_form()
    event = webhook_event(form)
    event["requestContext"]["path"] = "/other-stage/whatsapp"
    assert invoke(webhook, event)["statusCode"] == 403


def test_public_base_url_wins(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from ai_comms.providers.twilio_signature import sign

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://hooks.example.com/comms/")
    import lambdas.twilio_webhook.handler as module

    webhook = importlib.reload(module)
    open_conversation(cloud)
    form = twilio_form()
    from .conftest import AUTH_TOKEN

    event = webhook_event(form, signature=sign(AUTH_TOKEN, "https://hooks.example.com/comms/whatsapp", form))
    assert invoke(webhook, event)["statusCode"] == 200


def test_base64_body_is_accepted(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud)
    assert invoke(webhook, webhook_event(base64_body=True))["statusCode"] == 200
    assert len(all_events(cloud)["ai_reply"]) == 1


def test_repeated_form_fields_are_signed_and_kept(cloud: Cloud, webhook: Any) -> None:
    from ai_comms.providers.twilio_signature import FormParams, sign

    from .apigw import HOST, STAGE
    from .conftest import AUTH_TOKEN

    open_conversation(cloud)
    form = twilio_form()
    pairs = [*form.items(), ("Extra", "b"), ("Extra", "a")]
    params = FormParams()
    for k, v in pairs:
        params.setdefault(k, []).append(v)
    signature = sign(AUTH_TOKEN, f"https://{HOST}/{STAGE}/whatsapp", params)
    event = webhook_event(form, body=urlencode(pairs), signature=signature)
    assert invoke(webhook, event)["statusCode"] == 200


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda e: e.update(body="%%%not-a-form"), 400),
        (lambda e: e.update(body=""), 400),
        (lambda e: e.update(body="not base64!", isBase64Encoded=True), 400),
        (lambda e: e.update(body="To=" + "x" * 20000), 413),
    ],
    ids=["malformed", "empty", "bad-base64", "too-large"],
)
def test_bad_bodies_never_500(cloud: Cloud, webhook: Any, mutate: Any, status: int) -> None:
    event = webhook_event()
    mutate(event)
    assert invoke(webhook, event)["statusCode"] == status
    assert all(not found for found in all_events(cloud).values())


def test_missing_fields_are_400_naming_them(cloud: Cloud, webhook: Any) -> None:
    form = twilio_form()
    del form["MessageSid"]
    answer = invoke(webhook, webhook_event(form))
    assert answer["statusCode"] == 400
    assert "MessageSid" in json.loads(answer["body"])["errors"]


def test_missing_to_is_400(cloud: Cloud, webhook: Any) -> None:
    form = twilio_form()
    del form["To"]
    assert invoke(webhook, webhook_event(form))["statusCode"] == 400


def test_unknown_channel_is_404(cloud: Cloud, webhook: Any) -> None:
    assert invoke(webhook, webhook_event(channel="telegram"))["statusCode"] == 404


def test_unknown_company_number_is_403(cloud: Cloud, webhook: Any) -> None:
    form = twilio_form(To="whatsapp:+14155559999")
    assert invoke(webhook, webhook_event(form))["statusCode"] == 403


def test_failed_publish_is_5xx_and_the_retry_publishes_once(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    event = webhook_event()
    failure = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
    with mock.patch.object(webhook.service._publisher._events, "put_events", return_value=failure):
        assert invoke(webhook, event)["statusCode"] == 503
    assert all(not found for found in all_events(cloud).values())
    assert invoke(webhook, event)["statusCode"] == 200
    assert invoke(webhook, event)["statusCode"] == 200
    assert len(all_events(cloud)["ai_reply"]) == 1
    stored = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).get(
        CUSTOMER_NUMBER, conversation.conversation_id
    )
    assert stored is not None and len(stored.messages) == 1 and stored.inbound_seq == 1
