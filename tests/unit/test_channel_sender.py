"""The channel sender against in-process AWS and the OpenAI/Twilio fakes over HTTP with the real SDKs."""

import json
import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from ai_comms import pausing
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.dynamo import from_item
from ai_comms.store.tenant_pauses import TenantPauses
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake

from .conftest import COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, Cloud, history
from .lambda_context import FakeContext
from .outbound_support import (
    CONTENT_SID,
    Outbound,
    call_initiate,
    fakes,
    initiate,
    initiate_event,
    outbound,
    reload_sender,
    request_body,
    sender,
)

__all__ = ["fakes", "initiate", "outbound", "sender"]

Fakes = tuple[OpenAIFake, TwilioFake]


def request(outbound: Outbound, initiate: Any, **overrides: Any) -> tuple[str, list[dict[str, Any]]]:
    status, body = call_initiate(initiate, initiate_event(request_body(**overrides)))
    assert status == 202
    return body["conversation_id"], outbound.receive()


def run(sender: Any, outbound: Outbound, messages: list[dict[str, Any]]) -> list[str]:
    """Invoke the handler as the event source mapping does; returns the failed message ids."""
    answer = sender.lambda_handler(outbound.lambda_event(messages), FakeContext())
    return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]


def stored(cloud: Cloud, conversation_id: str) -> dict[str, Any]:
    item = cloud.dynamodb.get_item(
        TableName=TABLES["conversations"],
        Key={"recipient_tel": {"S": CUSTOMER_NUMBER}, "conversation_id": {"S": conversation_id}},
        ConsistentRead=True,
    )["Item"]
    return from_item(item)


def messages_of(cloud: Cloud, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's message items, in order, as stored."""
    return [m.model_dump() for m in history(cloud, conversation_id)]


def with_receive_count(messages: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [{**m, "Attributes": {**m["Attributes"], "ApproximateReceiveCount": str(count)}} for m in messages]


def api_calls(fake: OpenAIFake | TwilioFake, path_part: str) -> int:
    return sum(1 for entry in fake.requests.snapshot() if path_part in entry["path"])


class AtomicCalls:
    """DynamoDB applies each request atomically; in-process moto does not across threads, so calls are
    serialized here the way the service orders them."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


def test_template_sent_with_ai_variables_and_record_complete(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)

    assert run(sender, outbound, messages) == []

    [message] = twilio_fake.messages()
    assert message["to"] == "whatsapp:" + CUSTOMER_NUMBER
    assert message["from"] == "whatsapp:" + COMPANY_NUMBER
    assert message["content_sid"] == CONTENT_SID
    variables = message["content_variables"]
    assert set(variables) == {"1", "2"} and all(variables.values())
    [ai_conversation] = openai_fake.conversations()
    record = stored(cloud, conversation_id)
    assert record["status"] == "active"
    assert record["ai_conversation_id"] == ai_conversation["id"]
    assert record["template_sid"] == message["sid"]
    assert record["template_variables"] == variables
    assert record["request_id"] == "order-1001"
    assert record["channel"] == "whatsapp" and record["company_id"] == "acme"
    assert record["customer_address"] == "whatsapp:" + CUSTOMER_NUMBER
    assert record["channel_created_at"] == f"whatsapp:{COMPANY_NUMBER}#{record['created_at']}"
    assert record["expires_at"] > time.time() + 80 * 86400
    [history_item] = messages_of(cloud, conversation_id)
    assert history_item["direction"] == "outbound" and history_item["sid"] == message["sid"]
    assert history_item["author"] == "template" and history_item["seq"] == 0
    assert history_item["expires_at"] == record["expires_at"]
    assert CONTENT_SID in history_item["body"] and variables["1"] in history_item["body"]
    assert set(record["timings"]) == {"queue_ms", "ai_ms", "send_ms", "request_to_sent_ms"}
    assert "send_claim_id" not in record and "last_error" not in record


def test_ai_is_asked_with_the_template_schema_and_context(
    outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, _ = fakes
    _, messages = request(outbound, initiate)
    run(sender, outbound, messages)
    [call] = [e for e in openai_fake.requests.snapshot() if e["path"].endswith("/responses")]
    schema = call["body"]["text"]["format"]["schema"]
    assert schema["required"] == ["1", "2"]
    assert schema["properties"]["1"]["description"] == "The customer's first name"
    assert call["body"]["model"] == "gpt-unit"
    context = json.loads(call["body"]["input"][0]["content"])
    assert context["recipient"] == {"first_name": "Ada", "last_name": "Lovelace"}
    assert context["project_data"] == {"order": "1001", "topic": "delivery slot"}
    assert CUSTOMER_NUMBER not in json.dumps(call["body"])


def test_redelivery_after_success_sends_nothing(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    _, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []
    calls = len(openai_fake.requests.snapshot())
    assert run(sender, outbound, with_receive_count(messages, 2)) == []
    assert len(twilio_fake.messages()) == 1
    assert len(openai_fake.requests.snapshot()) == calls


def test_same_request_in_one_batch_sends_once(
    outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    _, twilio_fake = fakes
    _, messages = request(outbound, initiate)
    duplicate = {**messages[0], "MessageId": "duplicate-delivery"}
    assert run(sender, outbound, [messages[0], duplicate]) == []
    assert len(twilio_fake.messages()) == 1


def test_concurrent_deliveries_send_once(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    # OpenAI refuses a second response on a conversation while one runs (400 conversation_locked):
    # every concurrent delivery asks for the template's variables (before the claim); the ones
    # refused wait, read the conversation and take the answer the first one got.
    twilio_fake.set_latency(0.5)
    openai_fake.set_latency(0.1)
    conversation_id, messages = request(outbound, initiate)
    records = sender.sender._records
    records._db = AtomicCalls(records._db)
    results: list[list[str]] = []

    def deliver(message_id: str) -> None:
        results.append(run(sender, outbound, [{**messages[0], "MessageId": message_id}]))

    threads = [threading.Thread(target=deliver, args=(f"m-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results == [[], [], []]
    assert len(twilio_fake.messages()) == 1
    record = stored(cloud, conversation_id)
    assert record["status"] == "active" and len(messages_of(cloud, conversation_id)) == 1
    # Every delivery converged on the AI conversation the record kept.
    assert {
        e["conversation_id"] for e in openai_fake.requests.snapshot() if e["path"].endswith("/responses")
    } <= {record["ai_conversation_id"]}


def test_openai_failing_twice_then_recovering_sends_once(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    openai_fake.add_faults({"status": 500, "count": 2})
    conversation_id, messages = request(outbound, initiate)

    assert run(sender, outbound, with_receive_count(messages, 1)) == [messages[0]["MessageId"]]
    record = stored(cloud, conversation_id)
    assert record["status"] == "initiating" and "OpenAI unavailable" in record["last_error"]
    assert run(sender, outbound, with_receive_count(messages, 2)) == [messages[0]["MessageId"]]
    assert run(sender, outbound, with_receive_count(messages, 3)) == []

    assert len(twilio_fake.messages()) == 1
    assert stored(cloud, conversation_id)["status"] == "active"


def test_twilio_failure_retry_reuses_ai_work(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    twilio_fake.add_faults({"status": 503, "count": 1})
    conversation_id, messages = request(outbound, initiate)

    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    record = stored(cloud, conversation_id)
    assert record["status"] == "initiating"
    assert record["ai_conversation_id"].startswith("conv_") and record["template_variables"]
    assert "send_claim_id" not in record

    assert run(sender, outbound, with_receive_count(messages, 2)) == []
    assert api_calls(openai_fake, "/responses") == 1
    assert api_calls(openai_fake, "/conversations") == 1
    [message] = twilio_fake.messages()
    assert message["content_variables"] == record["template_variables"]
    assert stored(cloud, conversation_id)["ai_conversation_id"] == record["ai_conversation_id"]


def test_twilio_permanent_failure_marks_failed_and_keeps_failing(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    twilio_fake.add_faults({"status": 400, "count": 1})
    conversation_id, messages = request(outbound, initiate)

    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    record = stored(cloud, conversation_id)
    assert record["status"] == "failed" and "400" in record["last_error"]
    calls = len(openai_fake.requests.snapshot()) + len(twilio_fake.requests.snapshot())

    # Redeliveries fail fast without calling anyone, until the queue moves the message to its DLQ.
    assert run(sender, outbound, with_receive_count(messages, 2)) == [messages[0]["MessageId"]]
    assert len(openai_fake.requests.snapshot()) + len(twilio_fake.requests.snapshot()) == calls
    assert twilio_fake.messages() == []


def test_permanent_ai_refusal_marks_failed(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    openai_fake.add_faults({"status": 400, "count": 1})
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    assert stored(cloud, conversation_id)["status"] == "failed"
    assert twilio_fake.messages() == []


def test_transient_failure_on_the_last_receive_marks_failed(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    _, twilio_fake = fakes
    twilio_fake.add_faults({"status": 500, "count": 1})
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, with_receive_count(messages, 3)) == [messages[0]["MessageId"]]
    record = stored(cloud, conversation_id)
    assert record["status"] == "failed" and "500" in record["last_error"]


def test_failure_after_the_send_is_critical_and_not_retried(
    cloud: Cloud,
    outbound: Outbound,
    initiate: Any,
    sender: Any,
    fakes: Fakes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)

    def broken(*_: Any, **__: Any) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    sender.sender._records.complete = broken
    assert run(sender, outbound, messages) == []

    [message] = twilio_fake.messages()
    [critical] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert critical.__dict__["critical_event"] == "post_send_update_failed"
    assert critical.__dict__["message_sid"] == message["sid"]
    assert critical.__dict__["conversation_id"] == conversation_id
    assert stored(cloud, conversation_id)["status"] == "sending"


def test_slow_ai_is_covered_by_the_visibility_heartbeat(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    cloud.sqs.set_queue_attributes(QueueUrl=outbound.url, Attributes={"VisibilityTimeout": "1"})
    openai_fake.set_latency(1.0)
    _, messages = request(outbound, initiate)
    seen_by_others: list[dict[str, Any]] = []
    beats: list[int] = []
    real_change = sender.sender._sqs.change_message_visibility

    def counting(**kwargs: Any) -> Any:
        beats.append(kwargs["VisibilityTimeout"])
        return real_change(**kwargs)

    sender.sender._sqs.change_message_visibility = counting
    worker = threading.Thread(target=lambda: run(sender, outbound, messages))
    worker.start()
    while worker.is_alive():
        seen_by_others.extend(outbound.receive())
        time.sleep(0.2)
    worker.join()

    assert beats and set(beats) == {1}
    assert seen_by_others == []
    assert len(twilio_fake.messages()) == 1


def test_heartbeat_failure_fails_the_record_before_sending(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    openai_fake.set_latency(0.5)
    cloud.sqs.set_queue_attributes(QueueUrl=outbound.url, Attributes={"VisibilityTimeout": "1"})
    conversation_id, messages = request(outbound, initiate)

    def lost(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "ReceiptHandleIsInvalid"}}, "ChangeMessageVisibility")

    sender.sender._sqs.change_message_visibility = lost
    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    assert twilio_fake.messages() == []
    record = stored(cloud, conversation_id)
    assert record["status"] == "initiating" and "HeartbeatLost" in record["last_error"]


def test_heartbeat_stops_in_every_outcome(
    outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    _, twilio_fake = fakes
    twilio_fake.add_faults({"status": 400, "count": 1})
    _, messages = request(outbound, initiate)
    before = {t.ident for t in threading.enumerate() if t.name == "visibility-heartbeat"}
    run(sender, outbound, messages)
    run(sender, outbound, with_receive_count(messages, 2))
    after = {t.ident for t in threading.enumerate() if t.name == "visibility-heartbeat"}
    assert after <= before


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"detail-type": "ReplyReceived", "detail": {}}), json.dumps({"detail": {}})],
    ids=["not-json", "other-event", "bad-detail"],
)
def test_unreadable_messages_are_reported(outbound: Outbound, sender: Any, fakes: Fakes, body: str) -> None:
    outbound.cloud.sqs.send_message(QueueUrl=outbound.url, MessageBody=body)
    messages = outbound.receive()
    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    assert fakes[1].messages() == []


def test_a_live_claim_is_waited_for_then_respected(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    """Another delivery holds the send claim and finishes while this one waits: no second send."""
    _, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)
    records = sender.sender._records
    real_claim = records.claim

    def finish_other_holder() -> None:
        time.sleep(0.8)
        key = {"recipient_tel": {"S": CUSTOMER_NUMBER}, "conversation_id": {"S": conversation_id}}
        cloud.dynamodb.update_item(
            TableName=TABLES["conversations"],
            Key=key,
            UpdateExpression="SET #s = :a, template_sid = :sid",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":a": {"S": "active"}, ":sid": {"S": "SM" + "b" * 32}},
        )

    def claimed_by_other(tel: str, cid: str, claim_id: str, until_ms: int, now: str) -> bool:
        real_claim(tel, cid, "other-holder", until_ms + 60_000, now)
        records.claim = real_claim
        threading.Thread(target=finish_other_holder).start()
        return False

    records.claim = claimed_by_other
    assert run(sender, outbound, messages) == []
    assert twilio_fake.messages() == []
    assert stored(cloud, conversation_id)["template_sid"] == "SM" + "b" * 32


def test_an_expired_claim_is_closed_as_outcome_unknown_never_resent(
    cloud: Cloud,
    outbound: Outbound,
    initiate: Any,
    sender: Any,
    fakes: Fakes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A holder that ended after calling Twilio without a result (died mid-send, or its final write
    failed) leaves an expired claim: the template may be out, so the next delivery never sends it."""
    _, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)
    past = int(time.time() * 1000) - 60_000
    cloud.dynamodb.update_item(
        TableName=TABLES["conversations"],
        Key={"recipient_tel": {"S": CUSTOMER_NUMBER}, "conversation_id": {"S": conversation_id}},
        UpdateExpression="SET #s = :sending, send_claim_id = :id, send_claim_until = :until",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":sending": {"S": "sending"},
            ":id": {"S": "dead-holder"},
            ":until": {"N": str(past)},
        },
    )

    assert run(sender, outbound, messages) == []
    assert run(sender, outbound, with_receive_count(messages, 2)) == []
    assert twilio_fake.messages() == []
    [critical] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert critical.__dict__["critical_event"] == "post_send_update_failed"
    assert critical.__dict__["conversation_id"] == conversation_id
    record = stored(cloud, conversation_id)
    assert record["status"] == "active" and record["send_outcome_unknown"] is True
    assert "send_claim_id" not in record and "template_sid" not in record
    [history_item] = messages_of(cloud, conversation_id)
    assert history_item["sid"] == "unknown" and CONTENT_SID in history_item["body"]


def test_a_twilio_read_timeout_is_outcome_unknown_and_never_resent(
    cloud: Cloud,
    outbound: Outbound,
    initiate: Any,
    sender: Any,
    fakes: Fakes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ai_comms.providers.twilio_client import TwilioSender

    _, twilio_fake = fakes
    sender.sender._twilio = TwilioSender(twilio_fake.url, timeout_seconds=0.5)
    # Past the client timeout, then the fake accepts it anyway: Twilio took the template late.
    twilio_fake.add_faults({"delay_seconds": 1.0, "count": 1})
    conversation_id, messages = request(outbound, initiate)

    assert run(sender, outbound, messages) == []
    [critical] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert critical.__dict__["critical_event"] == "post_send_update_failed"
    assert critical.__dict__["error_type"] == "SendOutcomeUnknown"
    record = stored(cloud, conversation_id)
    assert record["status"] == "active" and record["send_outcome_unknown"] is True
    assert "send_claim_id" not in record

    # A redelivery (or a DLQ redrive) of the same request sends nothing.
    assert run(sender, outbound, with_receive_count(messages, 2)) == []
    deadline = time.monotonic() + 5
    while not twilio_fake.messages() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(twilio_fake.messages()) == 1 and len(twilio_fake.requests.snapshot()) == 1


def test_a_claim_that_never_ends_fails_the_record_for_a_later_retry(
    cloud: Cloud,
    outbound: Outbound,
    initiate: Any,
    sender: Any,
    fakes: Fakes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)
    records = sender.sender._records
    real_claim = records.claim
    monkeypatch.setattr(sender.sender, "_sleep", lambda _: None)
    monkeypatch.setattr(sender.sender, "_sender", replace(sender.sender._sender, claim_wait_seconds=0.0))

    def held(tel: str, cid: str, claim_id: str, until_ms: int, now: str) -> bool:
        real_claim(tel, cid, "slow-holder", until_ms + 600_000, now)
        return False

    records.claim = held
    assert run(sender, outbound, messages) == [messages[0]["MessageId"]]
    assert twilio_fake.messages() == []
    assert stored(cloud, conversation_id)["status"] == "sending"


def test_rotated_twilio_credentials_are_read_again_and_the_template_goes_out_once(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    _, twilio_fake = fakes
    # The cached auth token was rotated away: Twilio answers 401/20003 until the new one is read.
    twilio_fake.add_faults({"status": 401, "count": 1})
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []
    assert len(twilio_fake.messages()) == 1
    assert stored(cloud, conversation_id)["status"] == "active"


def test_credentials_twilio_keeps_refusing_pause_the_tenant_never_failing_the_request(
    cloud: Cloud,
    outbound: Outbound,
    initiate: Any,
    sender: Any,
    fakes: Fakes,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pausing, "MAX_SQS_DELAY_SECONDS", 0)
    _, twilio_fake = fakes
    twilio_fake.add_faults({"status": 401, "count": 2})
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []  # parked as a new copy of itself
    outbound.delete(messages)
    record = stored(cloud, conversation_id)
    assert record["status"] == "initiating" and "send_claim_id" not in record
    out = capsys.readouterr().out
    assert '"TenantCredentialErrors"' in out and '"TenantPauses"' in out
    pauses = TenantPauses(cloud.dynamodb, TABLES["company"])
    assert pauses.get("acme", "support") is not None

    cloud.dynamodb.update_item(
        TableName=TABLES["company"],
        Key=TenantPauses.key("acme", "support"),
        UpdateExpression="SET until_ms = :past",
        ExpressionAttributeValues={":past": {"N": "0"}},
    )
    parked = outbound.receive()
    assert len(parked) == 1 and parked[0]["Body"] == messages[0]["Body"]
    assert run(sender, outbound, parked) == []
    assert len(twilio_fake.messages()) == 1 and pauses.get("acme", "support") is None


def test_template_values_the_ai_wrote_over_lines_are_sent_as_twilio_accepts_them(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    openai_fake, twilio_fake = fakes
    # Twilio refuses a value with a newline, a tab or more than four spaces in a row (21656).
    openai_fake.script({"text": "Hi\n\nAda,\tall      set"})
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []
    [message] = twilio_fake.messages()
    values = message["content_variables"]
    assert values and all(value == " ".join(value.split()) for value in values.values())
    assert all(value.endswith("Hi Ada, all set") for value in values.values())
    assert stored(cloud, conversation_id)["template_variables"] == values


@pytest.mark.parametrize(("code", "form"), [(21611, "legacy"), (20429, "legacy"), (21611, "problem")])
def test_a_sender_queue_full_or_throttled_is_retried_into_one_template(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes, code: int, form: str
) -> None:
    _, twilio_fake = fakes
    twilio_fake.refuse(code, count=1, format=form)
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, with_receive_count(messages, 1)) == [messages[0]["MessageId"]]
    record = stored(cloud, conversation_id)
    assert record["status"] == "initiating" and str(code) in record["last_error"]
    assert run(sender, outbound, with_receive_count(messages, 2)) == []
    assert len(twilio_fake.messages()) == 1 and stored(cloud, conversation_id)["status"] == "active"


def test_a_recipient_who_blocked_the_sender_gets_no_template_and_is_recorded_opted_out(
    cloud: Cloud, outbound: Outbound, initiate: Any, sender: Any, fakes: Fakes
) -> None:
    _, twilio_fake = fakes
    twilio_fake.refuse(21610, format="problem")
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []
    record = stored(cloud, conversation_id)
    assert record["status"] == "undelivered" and record["last_error"] == "recipient_unsubscribed"
    consent = ConsentRepository(cloud.dynamodb, TABLES["consent"]).get(
        "whatsapp:" + COMPANY_NUMBER, "whatsapp:" + CUSTOMER_NUMBER
    )
    assert consent is not None and consent.state == "opted_out" and consent.change.source == "blocked"
    # The next request for them is refused before anything is queued.
    status, body = call_initiate(initiate, initiate_event(request_body(request_id="r-after-block")))
    assert (status, body.get("error")) == (409, "recipient_opted_out")


def test_every_template_asks_for_its_statuses_on_the_status_route(
    outbound: Outbound, initiate: Any, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://api.example.com/prod")
    sender = reload_sender(outbound, fakes, monkeypatch)
    _, twilio_fake = fakes
    conversation_id, messages = request(outbound, initiate)
    assert run(sender, outbound, messages) == []
    [message] = twilio_fake.messages()
    url = message["status_callback"]
    assert url.startswith("https://api.example.com/prod/whatsapp/status?")
    query = parse_qs(urlsplit(url).query)
    assert query["c"] == [conversation_id] and query["p"][0].startswith("0000000000#out#")
