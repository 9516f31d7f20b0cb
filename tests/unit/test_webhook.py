"""The Twilio webhook handler against in-process AWS: statuses, dedupe, routing, nothing stored on refusal."""

import importlib
import json
import time
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import boto3
import pytest
from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.tenants import TenantRepository

from .apigw import HOST, STAGE, twilio_form, webhook_event
from .conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    COMPANY_NUMBER,
    CUSTOMER_NUMBER,
    REGION,
    TABLES,
    Cloud,
    demo_project,
    history,
)
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
    assert [(m.direction, m.sid, m.body) for m in history(cloud, conversation.conversation_id)] == [
        ("inbound", form["MessageSid"], "Where is my parcel?")
    ]
    assert stored.last_inbound_at is not None


def test_handoff_conversation_routes_to_handoff(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud, handoff_to_human=True, status="handed_off")
    assert invoke(webhook, webhook_event())["statusCode"] == 200
    events = all_events(cloud)
    assert len(events["handoff"]) == 1 and events["ai_reply"] == []


@pytest.mark.parametrize(
    ("policy", "route", "status"),
    [("ai", "ai_reply", "active"), ("handoff", "handoff", "handed_off"), ("ignore", None, "ignored")],
)
def test_a_customer_who_writes_first_opens_a_conversation_as_the_project_says(
    cloud: Cloud, webhook: Any, policy: str, route: str | None, status: str
) -> None:
    from ai_comms.store.tenants import TenantRepository

    from .conftest import demo_project

    TenantRepository(cloud.dynamodb, TABLES["company"]).put_project(
        demo_project(first_contact=policy), "2026-01-02T00:00:00Z"
    )
    stranger = "+447700900999"
    form = twilio_form(From="whatsapp:" + stranger, Body="Hi, do you deliver on Sundays?")
    assert invoke(webhook, webhook_event(form))["statusCode"] == 200

    opened = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).latest_for(
        stranger, "whatsapp:" + COMPANY_NUMBER
    )
    assert opened is not None
    assert (opened.status, opened.opened_by, opened.inbound_seq) == (status, "customer", 1)
    assert opened.handoff_to_human is (policy == "handoff")
    [message] = history(cloud, opened.conversation_id)
    assert message.sid == form["MessageSid"] and message.body == "Hi, do you deliver on Sundays?"
    events = all_events(cloud)
    routed = {
        name: [e["detail"]["conversation_id"] for e in found] for name, found in events.items() if found
    }
    assert routed == ({route: [opened.conversation_id]} if route else {})
    # The next message joins it; it does not open another.
    assert invoke(webhook, webhook_event(twilio_form(From="whatsapp:" + stranger)))["statusCode"] == 200
    again = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).latest_for(
        stranger, "whatsapp:" + COMPANY_NUMBER
    )
    assert again is not None and again.conversation_id == opened.conversation_id and again.inbound_seq == 2


def test_an_ended_conversation_never_captures_a_reply_meant_for_an_open_one(
    cloud: Cloud, webhook: Any
) -> None:
    open_one = open_conversation(cloud)
    ended = open_conversation(cloud, status="undelivered")  # newer, but its template never arrived
    assert ended.created_at >= open_one.created_at
    assert invoke(webhook, webhook_event())["statusCode"] == 200
    [event] = all_events(cloud)["ai_reply"]
    assert event["detail"]["conversation_id"] == open_one.conversation_id


def test_a_message_after_every_conversation_ended_opens_a_new_one(cloud: Cloud, webhook: Any) -> None:
    ended = open_conversation(cloud, status="closed")
    assert invoke(webhook, webhook_event())["statusCode"] == 200
    [event] = all_events(cloud)["ai_reply"]
    assert event["detail"]["conversation_id"] not in {None, ended.conversation_id}


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
    assert stored is not None and len(history(cloud, conversation.conversation_id)) == 1


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
    assert stored is not None and history(cloud, conversation.conversation_id) == []
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
        (lambda e: e.update(body="To=" + "x" * 70000), 413),
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


def test_a_failing_event_bus_loses_nothing_the_webhook_accepted(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud)
    event = webhook_event()
    # Stored in one transaction: accepted, whatever the bus does afterwards.
    assert invoke(webhook, event)["statusCode"] == 200
    relay = cloud.outbox
    assert relay is not None
    failure = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
    with mock.patch.object(relay.load().relay._publisher._events, "put_events", return_value=failure):
        assert relay.pump() == 0  # refused: the record stays on the stream for the retry
    assert relay.invocations[-1]["batchItemFailures"] != []
    # Twilio's retry of the same message is a no-op; the relay's retry publishes the event once.
    assert invoke(webhook, event)["statusCode"] == 200
    assert len(all_events(cloud)["ai_reply"]) == 1
    assert all(not found for found in all_events(cloud).values())
    stored = ConversationRepository(cloud.dynamodb, TABLES["conversations"]).get(
        CUSTOMER_NUMBER, conversation.conversation_id
    )
    assert stored is not None and len(history(cloud, conversation.conversation_id)) == 1
    assert stored.inbound_seq == 1


def _dynamodb_calls(cloud: Cloud) -> list[str]:
    """Records the operation of every DynamoDB call the webhook makes from now on."""
    calls: list[str] = []
    cloud.dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(model.name), unique_id="count-calls"
    )
    return calls


@pytest.mark.parametrize(
    "field",
    [
        {"To": "whatsapp:+1" + "4" * 3000},
        {"To": "whatsapp:" + "x" * 70},
        {"To": "+14155550100"},
    ],
    ids=["to-beyond-a-key", "to-not-a-number", "to-of-another-channel"],
)
def test_a_to_dynamodb_would_refuse_as_a_key_is_400_before_any_aws_call(
    cloud: Cloud, webhook: Any, field: dict[str, str]
) -> None:
    from ai_comms.providers import aws_clients

    open_conversation(cloud)
    with mock.patch.object(aws_clients, "client", side_effect=AssertionError("no AWS call expected")) as made:
        answer = invoke(webhook, webhook_event(twilio_form(**field)))
    assert answer["statusCode"] == 400
    made.assert_not_called()


@pytest.mark.parametrize(
    "field",
    [{"From": "whatsapp:+44" + "7" * 2000}, {"MessageSid": "SM" + "a" * 3000}],
    ids=["from", "message-sid"],
)
def test_signed_fields_too_long_for_a_key_are_400_before_the_store_is_written(
    cloud: Cloud, webhook: Any, field: dict[str, str]
) -> None:
    conversation = open_conversation(cloud)
    webhook.service._dynamodb = cloud.dynamodb  # count on the client the test can see
    webhook.service._conversations._db = cloud.dynamodb
    calls = _dynamodb_calls(cloud)
    answer = invoke(webhook, webhook_event(twilio_form(**field)))
    assert answer["statusCode"] == 400
    # At most the tenant lookup ran; nothing was queried with, or written from, the long field.
    assert set(calls) <= {"GetItem"}
    assert history(cloud, conversation.conversation_id) == []


def test_every_message_moves_the_conversations_expiry_on(cloud: Cloud, webhook: Any) -> None:
    conversation = open_conversation(cloud, expires_at=1_000)
    repository = ConversationRepository(cloud.dynamodb, TABLES["conversations"])

    assert invoke(webhook, webhook_event())["statusCode"] == 200

    stored = repository.get(CUSTOMER_NUMBER, conversation.conversation_id)
    assert stored is not None and stored.expires_at is not None
    ninety_days = 90 * 86400
    assert abs(stored.expires_at - (time.time() + ninety_days)) < 60
    assert stored.last_activity_at == stored.last_inbound_at
    [message] = history(cloud, conversation.conversation_id)
    assert message.expires_at == stored.expires_at


def test_a_webhook_is_two_aws_calls_once_warm(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud)
    assert invoke(webhook, webhook_event())["statusCode"] == 200  # warms the tenant and secret caches
    webhook.service._conversations._db = cloud.dynamodb
    calls = _dynamodb_calls(cloud)
    assert invoke(webhook, webhook_event())["statusCode"] == 200
    assert calls == ["Query", "TransactWriteItems"]


def signing_key_secret(key_sid: str | None, key: str) -> None:
    secret = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "webhook_signing_key": key}
    if key_sid is not None:
        secret["webhook_signing_key_sid"] = key_sid
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="t/tenants/acme/twilio", SecretString=json.dumps(secret)
    )


def signed_with_key(form: dict[str, str], key: str, key_sid: str) -> dict[str, Any]:
    # twilio.request_validator: X-Twilio-Webhooks-Signature-Settings names the key and the algorithm.
    url = f"https://{HOST}/{STAGE}/whatsapp"
    event = webhook_event(form, signature=RequestValidator(key).compute_signature(url, form, HMAC_SHA256))
    event["headers"][SIGNATURE_SETTINGS_HEADER] = f"key={key_sid},algorithm={HMAC_SHA256}"
    return event


def test_a_tenant_with_a_webhook_signing_key_has_its_messages_verified_with_it(
    cloud: Cloud, webhook: Any
) -> None:
    key_sid, key = "HK" + "c" * 32, "the-shared-signing-key"
    signing_key_secret(key_sid, key)
    conversation = open_conversation(cloud)
    assert invoke(webhook, signed_with_key(twilio_form(), key, key_sid))["statusCode"] == 200
    assert len(history(cloud, conversation.conversation_id)) == 1
    # Signed with the auth token under the header, or with another key's sid: refused.
    wrong = webhook_event(twilio_form())
    wrong["headers"][SIGNATURE_SETTINGS_HEADER] = f"key={key_sid},algorithm={HMAC_SHA256}"
    assert invoke(webhook, wrong)["statusCode"] == 403
    assert invoke(webhook, signed_with_key(twilio_form(), key, "HK" + "d" * 32))["statusCode"] == 403
    # Without the header, the auth token still verifies (Twilio signs other webhooks with it).
    assert invoke(webhook, webhook_event(twilio_form()))["statusCode"] == 200


def test_a_tenant_without_a_signing_key_refuses_requests_signed_with_one(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud)
    assert invoke(webhook, signed_with_key(twilio_form(), AUTH_TOKEN, "HK" + "c" * 32))["statusCode"] == 403


def test_a_rotated_auth_token_is_accepted_at_once(cloud: Cloud, webhook: Any) -> None:
    open_conversation(cloud)
    assert invoke(webhook, webhook_event(twilio_form()))["statusCode"] == 200  # the secret is cached
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="t/tenants/acme/twilio",
        SecretString=json.dumps({"account_sid": ACCOUNT_SID, "auth_token": "rotated-token"}),
    )
    assert invoke(webhook, webhook_event(twilio_form(), token="rotated-token"))["statusCode"] == 200


def test_a_conversation_idle_past_the_projects_limit_is_closed_and_the_message_opens_a_new_one(
    cloud: Cloud, webhook: Any
) -> None:
    long_ago = "2026-01-01T00:00:00.000Z"  # past the default 168 hours
    idle = open_conversation(cloud, last_activity_at=long_ago, inbound_seq=1, answered_seq=1)
    assert invoke(webhook, webhook_event(twilio_form()))["statusCode"] == 200
    repo = ConversationRepository(cloud.dynamodb, TABLES["conversations"])
    old = repo.get(CUSTOMER_NUMBER, idle.conversation_id)
    assert old is not None and old.status == "closed" and old.inbound_seq == 1
    current, _ = repo.open_for(CUSTOMER_NUMBER, "whatsapp:" + COMPANY_NUMBER)
    assert current is not None and current.conversation_id != idle.conversation_id
    assert current.opened_by == "customer" and current.inbound_seq == 1


def test_a_project_without_an_idle_limit_keeps_its_conversations_open(cloud: Cloud, webhook: Any) -> None:
    TenantRepository(cloud.dynamodb, TABLES["company"]).put_project(
        demo_project(idle_close_hours=0), "2026-01-01T00:00:00Z"
    )
    importlib.reload(webhook)  # a new container: no cached project
    idle = open_conversation(cloud, last_activity_at="2026-01-01T00:00:00.000Z")
    assert invoke(webhook, webhook_event(twilio_form()))["statusCode"] == 200
    assert len(history(cloud, idle.conversation_id)) == 1
