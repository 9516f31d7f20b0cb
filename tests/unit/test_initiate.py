"""POST /initiate-conversation against in-process AWS: statuses, field errors, one event per request_id."""

import json
import uuid
from typing import Any

import pytest
from moto.events.models import EventPattern

from ai_comms.models.outbound import ConversationRequested
from ai_comms.outbound.initiate import CONVERSATION_NAMESPACE, conversation_id_for

from .conftest import AUTH_TOKEN, COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, Cloud
from .outbound_support import (
    CLIENT_KEY,
    CLIENT_KEY_ID,
    CONTENT_SID,
    OPENAI_KEY,
    OPENAI_SECRET,
    OTHER_KEY_ID,
    OUTBOUND_PATTERN,
    Outbound,
    call_initiate,
    fakes,
    initiate,
    initiate_event,
    outbound,
    outbound_project,
    put_project,
    request_body,
    sender,
)

__all__ = ["fakes", "initiate", "outbound", "sender"]


def events_in(outbound: Outbound) -> list[dict[str, Any]]:
    messages = outbound.receive()
    outbound.delete(messages)
    return [json.loads(m["Body"]) for m in messages]


def test_valid_request_is_accepted_and_published(outbound: Outbound, initiate: Any) -> None:
    status, body = call_initiate(initiate, initiate_event(request_body()))

    assert status == 202
    expected_id = str(uuid.uuid5(CONVERSATION_NAMESPACE, "acme/support/order-1001"))
    assert body == {"conversation_id": expected_id, "status": "accepted"}
    [event] = events_in(outbound)
    assert event["source"] == "ai-comms.initiate-conversation"
    assert event["detail-type"] == "ConversationRequested"
    detail = ConversationRequested.model_validate(event["detail"])
    assert detail.conversation_id == expected_id and detail.request_id == "order-1001"
    assert detail.route == "outbound" and detail.channel == "whatsapp" and detail.schema_version == 1
    assert detail.recipient.tel == CUSTOMER_NUMBER and detail.recipient.first_name == "Ada"
    assert detail.project_data == {"order": "1001", "topic": "delivery slot"}
    sending = detail.sending
    assert sending.company_address == "whatsapp:+14155550100"
    assert sending.customer_address == "whatsapp:" + CUSTOMER_NUMBER
    assert sending.content_sid == CONTENT_SID
    assert set(sending.template_variables) == {"1", "2"}
    assert sending.twilio_secret_ref == "t/tenants/acme/twilio"
    assert sending.ai.openai_secret_ref == OPENAI_SECRET and sending.ai.model == "gpt-unit"


def test_event_carries_secret_references_never_values(outbound: Outbound, initiate: Any) -> None:
    call_initiate(initiate, initiate_event(request_body()))
    [event] = events_in(outbound)
    raw = json.dumps(event)
    assert AUTH_TOKEN not in raw and OPENAI_KEY not in raw and CLIENT_KEY not in raw


def test_published_event_matches_only_its_channel_rule(outbound: Outbound, initiate: Any) -> None:
    # moto's TestEventPattern answers nothing, so its own matcher (the one that routed the event) is used.
    call_initiate(initiate, initiate_event(request_body()))
    [event] = events_in(outbound)
    assert EventPattern.load(json.dumps(OUTBOUND_PATTERN)).matches_event(event)
    other_channel = {**OUTBOUND_PATTERN, "detail": {"channel": ["sms"], "route": ["outbound"]}}
    assert not EventPattern.load(json.dumps(other_channel)).matches_event(event)


def test_same_request_id_gives_same_id_and_one_event(outbound: Outbound, initiate: Any) -> None:
    first = call_initiate(initiate, initiate_event(request_body()))
    second = call_initiate(initiate, initiate_event(request_body()))
    assert first == second
    assert first[0] == 202
    assert len(events_in(outbound)) == 1


def test_other_request_id_is_another_conversation(outbound: Outbound, initiate: Any) -> None:
    _, first = call_initiate(initiate, initiate_event(request_body()))
    _, second = call_initiate(initiate, initiate_event(request_body(request_id="order-1002")))
    assert first["conversation_id"] != second["conversation_id"]
    assert second["conversation_id"] == conversation_id_for("acme", "support", "order-1002")
    assert len(events_in(outbound)) == 2


def test_reusing_a_request_id_for_another_recipient_is_409(outbound: Outbound, initiate: Any) -> None:
    assert call_initiate(initiate, initiate_event(request_body()))[0] == 202
    other = request_body(recipient={"tel": "+447700900999", "first_name": "Bob"})
    status, body = call_initiate(initiate, initiate_event(other))
    assert status == 409
    assert "request_id" in body["message"]
    assert len(events_in(outbound)) == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (request_body(recipient={"tel": "07700900123", "first_name": "Ada"}), {"recipient.tel"}),
        ({k: v for k, v in request_body().items() if k != "company_id"}, {"company_id"}),
        (request_body(request_id="has spaces", channel_method="WhatsApp!"), {"request_id", "channel_method"}),
        (request_body(recipient={"tel": CUSTOMER_NUMBER}), {"recipient.first_name"}),
        (request_body(surprise=True), {"surprise"}),
        (request_body(project_data={"blob": "x" * 9000}), {"project_data"}),
        (request_body(project_data={"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), {"project_data"}),
        (request_body(project_data=["not", "an", "object"]), {"project_data"}),
        (request_body(project_data={"ratio": float("nan"), "cap": float("inf")}), {"project_data"}),
    ],
    ids=[
        "tel",
        "missing",
        "patterns",
        "first-name",
        "unknown-field",
        "big-data",
        "deep-data",
        "data-list",
        "non-finite",
    ],
)
def test_invalid_fields_are_400_naming_each(
    outbound: Outbound, initiate: Any, body: dict[str, Any], fields: set[str]
) -> None:
    status, answer = call_initiate(initiate, initiate_event(body))
    assert status == 400
    assert {error["field"] for error in answer["errors"]} == fields
    assert all(error["message"] for error in answer["errors"])
    assert events_in(outbound) == []


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "", "null"], ids=["broken", "list", "empty", "null"])
def test_malformed_body_is_400(outbound: Outbound, initiate: Any, raw: str) -> None:
    status, answer = call_initiate(initiate, initiate_event(None, raw=raw))
    assert status == 400
    assert answer["errors"][0]["field"] == "body"
    assert events_in(outbound) == []


def test_oversized_body_is_413(outbound: Outbound, initiate: Any) -> None:
    raw = json.dumps(request_body(project_data={"blob": "x" * 20000}))
    status, _ = call_initiate(initiate, initiate_event(None, raw=raw))
    assert status == 413
    assert events_in(outbound) == []


@pytest.mark.parametrize(
    "overrides", [{"company_id": "nobody"}, {"project_id": "nothing"}], ids=["company", "project"]
)
def test_unknown_tenant_is_the_same_403_as_a_key_not_allowed(
    outbound: Outbound, initiate: Any, overrides: dict[str, str]
) -> None:
    unknown = call_initiate(initiate, initiate_event(request_body(**overrides)))
    not_allowed = call_initiate(initiate, initiate_event(request_body(), api_key_id=OTHER_KEY_ID))
    assert unknown == not_allowed and unknown[0] == 403
    assert events_in(outbound) == []


def test_inactive_project_is_403(cloud: Cloud, outbound: Outbound, initiate: Any) -> None:
    put_project(cloud, outbound_project(status="inactive"))
    status, body = call_initiate(initiate, initiate_event(request_body()))
    assert status == 403 and "not active" in body["message"]
    assert events_in(outbound) == []


def test_channel_not_allowed_is_403(cloud: Cloud, outbound: Outbound, initiate: Any) -> None:
    status, body = call_initiate(initiate, initiate_event(request_body(channel_method="sms")))
    assert status == 403 and "not allowed" in body["message"]
    status, _ = call_initiate(initiate, initiate_event(request_body(channel_method="email")))
    assert status == 403
    assert events_in(outbound) == []


def test_channel_without_template_is_403(cloud: Cloud, outbound: Outbound, initiate: Any) -> None:
    project = outbound_project()
    settings = project.channels["whatsapp"].model_copy(update={"content_sid": None})
    put_project(cloud, project.model_copy(update={"channels": {"whatsapp": settings}}))
    status, body = call_initiate(initiate, initiate_event(request_body()))
    assert status == 403 and "template" in body["message"]


@pytest.mark.parametrize(
    ("key_id", "status"),
    [(CLIENT_KEY_ID, 202), (OTHER_KEY_ID, 403), ("k9unknown", 403), (None, 403)],
    ids=["bound", "another-client", "unknown-key", "no-key"],
)
def test_only_a_client_the_project_names_may_act_for_it(
    outbound: Outbound, initiate: Any, key_id: str | None, status: int
) -> None:
    answer = call_initiate(initiate, initiate_event(request_body(), api_key_id=key_id))
    assert answer[0] == status
    assert len(events_in(outbound)) == (1 if status == 202 else 0)


def test_a_project_naming_no_client_refuses_every_key(
    cloud: Cloud, outbound: Outbound, initiate: Any
) -> None:
    put_project(cloud, outbound_project(api_clients=[]))
    assert call_initiate(initiate, initiate_event(request_body()))[0] == 403
    assert events_in(outbound) == []


def test_an_opted_out_recipient_is_409_and_nothing_is_published(
    cloud: Cloud, outbound: Outbound, initiate: Any
) -> None:
    from ai_comms.models.consent import ConsentChange
    from ai_comms.store.consent import ConsentRepository

    consent = ConsentRepository(cloud.dynamodb, TABLES["consent"])
    stop = ConsentChange(state="opted_out", at="2026-11-30T10:00:00.000Z", source="keyword", keyword="STOP")
    assert consent.change(
        "whatsapp:" + COMPANY_NUMBER, "whatsapp:" + CUSTOMER_NUMBER, "acme", "support", stop
    )
    status, body = call_initiate(initiate, initiate_event(request_body()))
    assert status == 409 and body["error"] == "recipient_opted_out"
    assert events_in(outbound) == []
    start = ConsentChange(state="opted_in", at="2026-11-30T11:00:00.000Z", source="operator", operator="ops")
    assert consent.change(
        "whatsapp:" + COMPANY_NUMBER, "whatsapp:" + CUSTOMER_NUMBER, "acme", "support", start
    )
    assert call_initiate(initiate, initiate_event(request_body()))[0] == 202


def test_failed_publish_is_503_and_the_retry_publishes(
    outbound: Outbound, initiate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events_client = initiate.service._publisher._events
    real = events_client.put_events

    def rejected(**_: Any) -> dict[str, Any]:
        return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}

    monkeypatch.setattr(events_client, "put_events", rejected)
    assert call_initiate(initiate, initiate_event(request_body()))[0] == 503
    monkeypatch.setattr(events_client, "put_events", real)
    assert call_initiate(initiate, initiate_event(request_body()))[0] == 202
    assert len(events_in(outbound)) == 1


def test_tenant_config_is_cached(cloud: Cloud, outbound: Outbound, initiate: Any) -> None:
    calls: list[Any] = []
    repository = initiate.service._tenants
    real = repository.get_project
    repository.get_project = lambda *a: calls.append(a) or real(*a)
    for n in range(3):
        call_initiate(initiate, initiate_event(request_body(request_id=f"r-{n}")))
    assert len(calls) == 1
