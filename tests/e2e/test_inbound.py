"""Inbound replies over real HTTP: signed webhook -> API -> webhook Lambda -> EventBridge -> queues."""

import json
from typing import Any

import pytest

from ai_comms.models.event_types import EVENT_TYPES
from ai_comms.store.conversations import ConversationRepository

from .conftest import MAIN, SIDE, Stack, random_tel
from .patterns import matching_rules, samples, with_consent_changes

pytestmark = pytest.mark.e2e

ROUTE_WAIT = 20.0
# Long enough for the outbox relay, EventBridge and a debounce window to have acted.
ROUTE_SETTLE = 6.0


def only_event(stack: Stack, key: str, sid: str, workspace: str = MAIN) -> dict[str, Any]:
    events = stack.wait_for(lambda: stack.routed(key, sid, workspace), ROUTE_WAIT)
    stack.settle(0.5)  # a late duplicate would show up here
    events = stack.routed(key, sid, workspace)
    assert len(events) == 1, events
    return events[0]


def test_signed_reply_lands_in_the_ai_reply_queue(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    form = stack.webhook_form(tenant, conversation.recipient_tel, "Is my order shipped?")

    status, body = stack.post_webhook(form, tenant)

    assert (status, body.endswith("<Response/>")) == (200, True)
    event = only_event(stack, "whatsapp-ai-reply", form["MessageSid"])
    assert event["detail-type"] == "ReplyReceived"
    assert event["detail"]["conversation_id"] == conversation.conversation_id
    assert event["detail"]["route"] == "ai_reply"
    assert stack.routed("handoff", form["MessageSid"]) == []


def test_handed_off_conversation_goes_to_the_handoff_queue(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant, handoff_to_human=True, status="handed_off")
    form = stack.webhook_form(tenant, conversation.recipient_tel, "Can a person call me?")

    assert stack.post_webhook(form, tenant)[0] == 200

    event = only_event(stack, "handoff", form["MessageSid"])
    assert event["detail"]["route"] == "handoff"
    assert stack.routed("whatsapp-ai-reply", form["MessageSid"]) == []


@pytest.mark.parametrize("policy", ["ai", "handoff", "ignore"])
def test_a_customer_who_writes_first_is_answered_as_the_first_contact_policy_says(
    stack: Stack, policy: str
) -> None:
    tenant = stack.tenant(first_contact=policy)
    tel = random_tel()
    customer = "whatsapp:" + tel
    form = stack.webhook_form(tenant, tel, "Hi, do you ship to Lisbon?")

    assert stack.post_webhook(form, tenant)[0] == 200

    conversations = ConversationRepository(
        stack.client("dynamodb"), stack.outputs()["tables"]["conversations"]
    )
    opened, _ = conversations.open_for(tel, tenant.address("whatsapp"))
    assert opened is not None and opened.opened_by == "customer"
    [inbound] = stack.history(opened.conversation_id)
    assert (inbound.direction, inbound.sid) == ("inbound", form["MessageSid"])
    if policy == "ai":
        # The customer's message opened the 24-hour window: a free-form answer may go out.
        [reply] = stack.wait_for(
            lambda: [m for m in stack.twilio.messages() if m["to"] == customer], ROUTE_WAIT
        )
        assert reply["body"] == "Thanks! You said: Hi, do you ship to Lisbon?"
        assert conversations.get(tel, opened.conversation_id).status == "active"  # type: ignore[union-attr]
        return
    if policy == "handoff":
        event = only_event(stack, "handoff", form["MessageSid"])
        assert (event["detail"]["route"], event["detail"]["conversation_id"]) == (
            "handoff",
            opened.conversation_id,
        )
        assert opened.status == "handed_off" and opened.handoff_to_human
    else:
        assert opened.status == "ignored"
        stack.settle(ROUTE_SETTLE)
        assert stack.routed("handoff", form["MessageSid"]) == []
    assert stack.routed("whatsapp-ai-reply", form["MessageSid"]) == []
    stack.settle(ROUTE_SETTLE)
    assert [m for m in stack.twilio.messages() if m["to"] == customer] == []
    # The AI never saw it: no AI conversation was opened for it.
    assert conversations.get(tel, opened.conversation_id).ai_conversation_id is None  # type: ignore[union-attr]


@pytest.mark.parametrize("signature", ["", "d3Jvbmc="], ids=["missing", "wrong"])
def test_bad_signature_is_refused_and_nothing_is_queued(stack: Stack, signature: str) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    form = stack.webhook_form(tenant, conversation.recipient_tel)

    status, _ = stack.post_webhook(form, tenant, signature=signature)

    assert status == 403
    stack.settle(2)
    for key in ("whatsapp-ai-reply", "handoff", "sms-ai-reply", "events-dlq"):
        assert stack.routed(key, form["MessageSid"]) == []
    assert json.loads(json.dumps(stack.outputs()["queues"]))  # every queue checked above exists


def test_same_message_sid_three_times_publishes_one_event(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    form = stack.webhook_form(tenant, conversation.recipient_tel)

    statuses = [stack.post_webhook(form, tenant)[0] for _ in range(3)]

    assert statuses == [200, 200, 200]
    only_event(stack, "whatsapp-ai-reply", form["MessageSid"])


def test_base64_flagged_body_is_accepted(stack: Stack) -> None:
    # The side workspace's API treats every media type as binary, so API Gateway base64-encodes bodies.
    tenant = stack.tenant(workspace=SIDE)
    conversation = stack.conversation(tenant, workspace=SIDE)
    form = stack.webhook_form(tenant, conversation.recipient_tel, "Encoded hello ✓")

    assert stack.post_webhook(form, tenant, workspace=SIDE)[0] == 200

    event = only_event(stack, "whatsapp-ai-reply", form["MessageSid"], SIDE)
    assert event["detail"]["body"] == "Encoded hello ✓"
    flagged = [e for e, _ in stack.runner.history if isinstance(e, dict) and e.get("isBase64Encoded")]
    assert flagged, "the API front did not base64-encode the body"


def test_sms_channel_from_tfvars_routes_to_its_own_queue(stack: Stack) -> None:
    tenant = stack.tenant(channels=("whatsapp", "sms"))
    conversation = stack.conversation(tenant, channel="sms")
    form = stack.webhook_form(tenant, conversation.recipient_tel, "Via SMS", channel="sms")

    assert stack.post_webhook(form, tenant, channel="sms")[0] == 200

    event = only_event(stack, "sms-ai-reply", form["MessageSid"])
    assert event["detail"]["channel"] == "sms"
    assert stack.routed("whatsapp-ai-reply", form["MessageSid"]) == []


def test_two_workspaces_live_side_by_side(stack: Stack) -> None:
    main, side = stack.outputs(MAIN), stack.outputs(SIDE)
    assert main["name"] != side["name"]
    assert set(main["tables"].values()).isdisjoint(side["tables"].values())
    assert set(main["queues"].values()).isdisjoint(side["queues"].values())
    assert main["event_bus_name"] != side["event_bus_name"]
    assert set(main["functions"].values()).isdisjoint(side["functions"].values())
    # A tenant of one workspace is unknown to the other: its webhook is refused there.
    tenant = stack.tenant(workspace=MAIN)
    form = stack.webhook_form(tenant, random_tel())
    assert stack.post_webhook(form, tenant, workspace=SIDE)[0] == 403


def test_unknown_route_is_refused_by_the_api(stack: Stack) -> None:
    status, body = stack.http("POST", f"{stack.api_url()}/telegram", b"x=1", {})
    assert status == 403 and "Missing Authentication Token" in body


def test_every_rule_pattern_matches_the_events_the_code_emits(stack: Stack) -> None:
    outputs = stack.outputs()
    name = outputs["name"]
    rules: dict[str, str] = {rule.removeprefix(name + "-"): p for rule, p in outputs["rules"].items()}
    channels = sorted(outputs["webhook_urls"])
    details = with_consent_changes(samples(EVENT_TYPES, channels))

    account = stack.client("sts").get_caller_identity()["Account"]
    matched = matching_rules(
        stack.client("events"), stack.client("sqs"), stack.cloud.region, account, rules, details
    )

    for detail, found in zip(details, matched, strict=True):
        own = f"{detail.channel}-{detail.route.replace('_', '-')}"
        expected = {own} if own in rules else ({detail.route} & set(rules))
        if getattr(detail, "consent_change", None) and detail.route != "ai_reply":
            # A keyword's confirmation is the reply processor's whoever has the conversation.
            expected.add(f"{detail.channel}-consent")
        assert found == expected, (type(detail).__name__, detail.channel, detail.route, found)
    unused = set(rules) - set().union(*matched)
    assert not unused, f"rules no emitted event matches: {unused}"
    assert {"whatsapp-ai-reply", "sms-ai-reply", "handoff", "unmatched"} <= set(rules)
