"""Outbound conversations over real HTTP: API key -> initiate Lambda -> EventBridge -> outbound queue ->
channel sender -> fake Twilio, and the customer's reply continuing the same AI conversation."""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ai_comms.store.dynamo import from_item
from local_cloud.seeding import SeededTenant

from .conftest import MAIN, Stack, random_tel

pytestmark = pytest.mark.e2e

CONTENT_SID = "HX" + "c" * 32
TEMPLATE = {
    "content_sid": CONTENT_SID,
    "template_variables": {"1": "The customer's first name", "2": "The reason we write, in a few words"},
}
CLIENT = "demo-client"
SEND_WAIT = 30.0


def api_key(stack: Stack, workspace: str = MAIN) -> str:
    key_id = stack.outputs(workspace)["api_key_ids"][CLIENT]
    return str(stack.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])


def initiate(
    stack: Stack, body: Any, key: str | None, workspace: str = MAIN, raw: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    data = raw if raw is not None else json.dumps(body).encode()
    # The local API front serves the stage; initiate_url is the AWS address of the same route.
    assert stack.outputs(workspace)["initiate_url"].endswith("/initiate-conversation")
    status, text = stack.http("POST", f"{stack.api_url(workspace)}/initiate-conversation", data, headers)
    return status, json.loads(text) if text else {}


def body_for(tenant: SeededTenant, tel: str, channel: str = "whatsapp", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "company_id": tenant.company_id,
        "project_id": tenant.project_id,
        "channel_method": channel,
        "request_id": "req-" + uuid.uuid4().hex[:12],
        "recipient": {"tel": tel, "first_name": "Ada"},
        "project_data": {"order": "A-1001", "topic": "delivery slot"},
    }
    body.update(overrides)
    return body


def sent_to(stack: Stack, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.twilio.messages() if m["to"] == address]


def record(stack: Stack, tel: str, conversation_id: str, workspace: str = MAIN) -> dict[str, Any]:
    answer = stack.client("dynamodb").get_item(
        TableName=stack.outputs(workspace)["tables"]["conversations"],
        Key={"recipient_tel": {"S": tel}, "conversation_id": {"S": conversation_id}},
        ConsistentRead=True,
    )
    return from_item(answer["Item"]) if "Item" in answer else {}


def requested(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    """ConversationRequested events for one request that reached any outbound queue."""
    found = []
    for channel in ("whatsapp", "sms"):
        for event in stack.consumed_events(f"{channel}-outbound"):
            if event.get("detail", {}).get("request_id") == request_id:
                found.append(event)
    return found


@contextmanager
def queue_visibility(stack: Stack, key: str, seconds: int) -> Iterator[str]:
    """Shorten a queue's visibility timeout for one test (the sender's heartbeat follows the queue)."""
    sqs = stack.client("sqs")
    url = stack.queue_url(key)
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(seconds)})
    try:
        yield url
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=before)


def test_valid_key_sends_the_template_and_the_reply_continues_the_ai_conversation(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    body = body_for(tenant, tel)

    status, answer = initiate(stack, body, api_key(stack))

    assert status == 202 and answer["status"] == "accepted"
    conversation_id = answer["conversation_id"]
    [message] = stack.wait_for(lambda: sent_to(stack, "whatsapp:" + tel), SEND_WAIT)
    assert message["from"] == tenant.address("whatsapp")
    assert message["content_sid"] == CONTENT_SID
    variables = message["content_variables"]
    assert set(variables) == {"1", "2"} and all(variables.values())

    stored = stack.wait_for(
        lambda: (r := record(stack, tel, conversation_id)).get("status") == "active" and r, SEND_WAIT
    )
    assert stored["template_sid"] == message["sid"] and stored["template_variables"] == variables
    assert stored["request_id"] == body["request_id"] and stored["channel"] == "whatsapp"
    assert stored["company_address"] == tenant.address("whatsapp")
    assert stored["customer_address"] == "whatsapp:" + tel
    [template] = stack.history(conversation_id)
    assert (template.direction, template.author, template.sid) == ("outbound", "template", message["sid"])
    assert stored["expires_at"] > time.time() and stored["timings"]["request_to_sent_ms"] >= 0
    ai_conversation_id = stored["ai_conversation_id"]
    assert ai_conversation_id.startswith("conv_")

    # The customer answers the template: the webhook finds this conversation, the AI replies in it.
    form = stack.webhook_form(tenant, tel, "Tuesday morning works for me")
    assert stack.post_webhook(form, tenant)[0] == 200
    reply = stack.wait_for(lambda: [m for m in sent_to(stack, "whatsapp:" + tel) if m["body"]], SEND_WAIT)[0]
    assert "Tuesday morning works for me" in reply["body"]
    calls = [e for e in stack.openai.requests.snapshot() if e["path"].endswith("/responses")]
    used = [e["conversation_id"] for e in calls if e["conversation_id"] == ai_conversation_id]
    assert len(used) >= 2, "template and reply did not share the AI conversation"


@pytest.mark.parametrize("key", [None, "not-a-valid-key-0000000000"], ids=["no-key", "wrong-key"])
def test_missing_or_wrong_key_is_403_and_nothing_is_published(stack: Stack, key: str | None) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    body = body_for(tenant, random_tel())
    invocations = len(stack.runner.stats)

    status, _ = initiate(stack, body, key)

    assert status == 403
    stack.settle(2)
    assert requested(stack, body["request_id"]) == []
    initiate_fn = stack.outputs()["functions"]["initiate_conversation"]
    assert not [i for i in stack.runner.stats[invocations:] if i.function_name == initiate_fn]


def test_refusals_name_their_reason(stack: Stack) -> None:
    key = api_key(stack)
    active = stack.tenant(template=TEMPLATE)
    inactive = stack.tenant(template=TEMPLATE, status="inactive")
    tel = random_tel()

    # A tenant that does not exist answers as one the key may not act for: a key learns nothing
    # about which tenants there are (ai_comms.api_access).
    assert initiate(stack, body_for(active, tel, company_id="co-nobody"), key) == (
        403,
        {"message": "API key not allowed for this company and project"},
    )
    assert initiate(stack, body_for(inactive, tel), key)[0] == 403
    assert initiate(stack, body_for(active, tel, channel="sms"), key)[0] == 403
    status, answer = initiate(stack, body_for(active, "07700 900123", request_id="has spaces"), key)
    assert status == 400
    assert {e["field"] for e in answer["errors"]} == {"recipient.tel", "request_id"}
    assert initiate(stack, None, key, raw=b"{not json")[0] == 400
    assert (
        initiate(
            stack, None, key, raw=json.dumps(body_for(active, tel, project_data={"x": "y" * 20000})).encode()
        )[0]
        == 413
    )
    stack.settle(2)
    assert sent_to(stack, "whatsapp:" + tel) == []


def test_same_request_id_twice_and_concurrently_sends_one_message(stack: Stack) -> None:
    key = api_key(stack)
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    body = body_for(tenant, tel)
    answers: list[tuple[int, dict[str, Any]]] = []

    def post() -> None:
        answers.append(initiate(stack, body, key))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    answers.append(initiate(stack, body, key))

    accepted = {a["conversation_id"] for s, a in answers if s == 202}
    assert len(accepted) == 1 and answers[-1][0] == 202
    assert all(s in {202, 409} for s, _ in answers)
    stack.wait_for(lambda: sent_to(stack, "whatsapp:" + tel), SEND_WAIT)
    stack.settle(3)  # a duplicate would have been sent by now
    assert len(sent_to(stack, "whatsapp:" + tel)) == 1


def test_openai_failing_twice_then_recovering_sends_one_message(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    # retry-after-ms keeps the SDK's backoff short; the sender's OpenAI client retries twice.
    stack.openai.add_faults({"status": 500, "count": 2, "headers": {"retry-after-ms": "10"}})

    status, answer = initiate(stack, body_for(tenant, tel), api_key(stack))

    assert status == 202
    stack.wait_for(lambda: sent_to(stack, "whatsapp:" + tel), SEND_WAIT)
    stack.settle(2)
    assert len(sent_to(stack, "whatsapp:" + tel)) == 1
    assert record(stack, tel, answer["conversation_id"])["status"] == "active"


def test_twilio_failing_permanently_ends_in_the_dlq_with_status_failed(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    # Twilio refuses this request itself (21655, the ContentSid is not valid): no retry can heal that.
    stack.twilio.refuse(21655, to="whatsapp:" + tel)
    name = stack.outputs()["name"]
    dlq_url = stack.outputs()["dlqs"][f"{name}-whatsapp-outbound-dlq"]
    sqs = stack.client("sqs")

    with queue_visibility(stack, "whatsapp-outbound", 2):
        status, answer = initiate(stack, body_for(tenant, tel), api_key(stack))
        assert status == 202

        def dead_lettered() -> list[dict[str, Any]]:
            found = []
            for message in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
                detail = json.loads(message["Body"])["detail"]
                if detail["conversation_id"] == answer["conversation_id"]:
                    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                    found.append(detail)
                else:
                    sqs.change_message_visibility(
                        QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
            return found

        stack.wait_for(dead_lettered, 45.0, interval=1.0)

    stored = record(stack, tel, answer["conversation_id"])
    assert stored["status"] == "failed" and "21655" in stored["last_error"]
    assert sent_to(stack, "whatsapp:" + tel) == []


def test_a_run_longer_than_the_visibility_timeout_is_processed_once(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    with queue_visibility(stack, "whatsapp-outbound", 2) as url:
        # The first AI call takes 6 s: three visibility timeouts without the heartbeat.
        stack.openai.add_faults({"delay_seconds": 6, "count": 1})
        status, answer = initiate(stack, body_for(tenant, tel), api_key(stack))
        assert status == 202
        # Compete only once the sender holds the message: before that, any consumer may take it.
        stack.wait_for(
            lambda: any(
                answer["conversation_id"] in json.dumps(request)
                for request in stack.openai.requests.snapshot()
            ),
            SEND_WAIT,
        )
        stolen: list[dict[str, Any]] = []
        deadline = time.monotonic() + SEND_WAIT
        while not sent_to(stack, "whatsapp:" + tel) and time.monotonic() < deadline:
            # A second consumer: it must never see the message while the sender works on it.
            stolen += stack.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        assert stolen == []

    [message] = sent_to(stack, "whatsapp:" + tel)

    def deliveries() -> list[dict[str, Any]]:
        return [
            e
            for e in stack.consumed_events("whatsapp-outbound")
            if e["detail"]["conversation_id"] == answer["conversation_id"]
        ]

    # The send is not the end of the run: the runner records a delivery when its invocation returns
    # (after the final write). Then wait two more visibility timeouts, so a redelivery would show.
    stack.wait_for(deliveries, SEND_WAIT)
    stack.settle(4)
    assert len(deliveries()) == 1
    assert record(stack, tel, answer["conversation_id"])["template_sid"] == message["sid"]


def test_sms_channel_from_tfvars_has_its_own_outbound_queue(stack: Stack) -> None:
    tenant = stack.tenant(channels=("whatsapp", "sms"), template=TEMPLATE)
    tel = random_tel()
    body = body_for(tenant, tel, channel="sms")

    status, answer = initiate(stack, body, api_key(stack))

    assert status == 202
    [message] = stack.wait_for(lambda: sent_to(stack, tel), SEND_WAIT)
    assert message["from"] == tenant.company_numbers["sms"] and message["content_sid"] == CONTENT_SID
    # The runner records the sender's invocation once it returns, a moment after the send.
    [event] = stack.wait_for(lambda: requested(stack, body["request_id"]), SEND_WAIT)
    assert event["detail"]["channel"] == "sms"
    assert [
        e for e in stack.consumed_events("sms-outbound") if e["detail"]["request_id"] == body["request_id"]
    ]
    name = stack.outputs()["name"]
    pattern = json.loads(stack.outputs()["rules"][f"{name}-sms-outbound"])
    assert pattern["detail"] == {"channel": ["sms"], "route": ["outbound"]}
    assert record(stack, tel, answer["conversation_id"])["customer_address"] == tel
