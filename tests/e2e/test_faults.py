"""Faults at every external call of both flows, with the outcome the engine promises for each.

One table (`ROWS`), one test per row. A row names the flow, the call it breaks and how, and the
asserted outcome class:

    ANSWERED_ONCE   the failure is retried (by the SDK or by SQS) and the customer gets exactly
                    one reply / one template;
    DLQ_FAILED      a failure no retry can heal: the message ends in the queue's DLQ after its 3
                    receives, the conversation is marked failed, nothing is sent;
    HANDED_OFF      a refusal of this one message (Twilio rejects the reply for good): nothing
                    more is sent, the conversation goes to a person with the reason, no DLQ;
    PAUSED          a tenant-wide refusal (the OpenAI key, after a fresh read): the tenant pauses,
                    the record waits as a delayed copy (no DLQ), and once the key works again the
                    customer gets exactly one reply;
    CRITICAL_ONCE   the write after a successful send fails, or the send's outcome is unknown
                    (Twilio answers after the client's read timeout): one CRITICAL line
                    (post_send_update_failed, counted by the metric filter + alarm in Terraform) in
                    the function's log file, exactly one message sent, nothing resent;
    WEBHOOK_RETRY   the webhook answers Twilio a 5xx; Twilio's retry of the same MessageSid is
                    answered 200 and publishes once: one reply;
    INITIATE_RETRY  POST /initiate-conversation answers a 5xx; the client's retry with the same
                    request_id is accepted (same conversation id) and one template is sent.

How faults are made:
  - OpenAI and Twilio: the fakes' own fault queues (status, or a delay past the client timeout:
    OPENAI_TIMEOUT_SECONDS 15 with 2 SDK retries, TWILIO_TIMEOUT_SECONDS 10 in the e2e workspace);
  - AWS: the function's own proxy to the emulator (`runner.call_counters[function]`,
    local_cloud.accounting), narrowed with `match` to this row's conversation or secret, so no other
    work can consume the fault. botocore's standard mode with ``max_attempts=3`` makes 4 attempts
    (max_attempts counts retries), so `EXHAUST = 4` faults fail one call for good; fewer are absorbed.

Which rows, and why not the full cross product (each flow x each call x each fault kind would take
well over ten minutes): every external call appears at least once, every outcome class appears at
least once per flow, and the transient/permanent/timeout kinds appear once per third-party API.
DynamoDB is broken at each *step* that changes what a retry must do: before anything is stored
(webhook Query / idempotency PutItem / inbound UpdateItem; processor GetItem; sender PutItem), after
the AI call but before the send (the pending-reply UpdateItem), and after the send (the final
UpdateItem: an error, and a timeout whose write did land). EventBridge PutEvents is broken in both
publishers (webhook, initiate); Secrets Manager in the webhook (signature check), the processor (AI
key) and the sender. Handoff SNS publishing is best effort by design (logged, no retry) and not here.

SQS retries after a transient failure wait for the processor's backoff (`reply_retry_base_seconds`,
10 s by default) or, for the sender, for the outbound queue's visibility timeout, shortened to 2 s
for the outbound rows (the sender's heartbeat follows the queue). Run time is about 4 minutes with
the defaults; `-var reply_retry_base_seconds=2` in the e2e workspace takes about a minute off.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from ai_comms.outbound.initiate import conversation_id_for
from ai_comms.store.conversations import ConversationRepository
from local_cloud.accounting import CallCounter
from local_cloud.seeding import SeededTenant

from .conftest import Stack, random_tel

pytestmark = pytest.mark.e2e

EXHAUST = 4  # botocore standard mode, max_attempts=3 retries: 4 attempts per call
FAST_RETRY = {"retry-after-ms": "10"}
CONTENT_SID = "HX" + "f" * 32
TEMPLATE = {
    "content_sid": CONTENT_SID,
    "template_variables": {"1": "The customer's first name", "2": "Why we write, in a few words"},
}
# Debounce (4 s) + a failed attempt + the backoff (10 s) + an AI call with a timeout (15 s), with room.
WAIT = 75.0
SETTLE = 3.0


class Outcome(Enum):
    ANSWERED_ONCE = "answered once"
    DLQ_FAILED = "DLQ, conversation failed, nothing sent"
    HANDED_OFF = "handed to a person with the reason, nothing more sent"
    PAUSED = "tenant paused, then answered once"
    CRITICAL_ONCE = "CRITICAL line, sent once, not retried"
    WEBHOOK_RETRY = "5xx to Twilio, its retry publishes once"
    INITIATE_RETRY = "5xx to the client, its retry sends once"


@dataclass
class Case:
    """What an injection needs: the stack, the function proxies and this row's own identifiers."""

    stack: Stack
    tenant: SeededTenant
    tel: str
    conversation_id: str
    row_id: str = ""

    def proxy(self, function: str) -> CallCounter:
        return self.stack.runner.call_counters[self.stack.outputs()["functions"][function]]


@dataclass(frozen=True)
class Row:
    id: str
    flow: str  # "reply": signed webhook -> reply processor; "outbound": initiate -> channel sender
    inject: Callable[[Case], None]
    outcome: Outcome
    xfail: str | None = None


def aws(function: str, operation: str, by: str = "conversation", **fault: Any) -> Callable[[Case], None]:
    """A fault at one function's proxy, narrowed to this row's conversation, tel or tenant's secret."""

    def inject(case: Case) -> None:
        # "any": Powertools' idempotency items hold only a hash of the key; rows run one at a time.
        match = {
            "conversation": case.conversation_id,
            "tel": case.tel,
            "secret": case.tenant.company_id,
            "any": None,
        }[by]
        case.proxy(function).inject(operation, match=match, **fault)

    return inject


def openai(**fault: Any) -> Callable[[Case], None]:
    return lambda case: case.stack.openai.add_faults(fault)


def late_answer(seconds: float) -> Callable[[Case], None]:
    """The response to the reply's request comes after the client gave up (OPENAI_TIMEOUT_SECONDS 15),
    holding the conversation until then, with the answer the row expects."""

    def inject(case: Case) -> None:
        text = f"Thanks! You said: hello from {case.row_id}"
        case.stack.openai.script({"text": text, "delay_seconds": seconds})

    return inject


def twilio(**fault: Any) -> Callable[[Case], None]:
    return lambda case: case.stack.twilio.add_faults(fault)


ROWS = [
    # -- OpenAI (reply processor; the sender uses the same client) ----------------------------------
    Row("openai-500-beyond-sdk-retries", "reply", openai(status=500, count=3, headers=FAST_RETRY),
        Outcome.ANSWERED_ONCE),
    # Refused, then refused again after the key is read afresh: the tenant's failure, not the message's.
    Row("openai-401-pauses-the-tenant", "reply", openai(status=401, count=2), Outcome.PAUSED),
    # The first request outlives the client's timeout and holds the conversation: the retry is
    # refused as conversation_locked, waits, and finds the late answer on the conversation.
    Row("openai-timeout", "reply", late_answer(16), Outcome.ANSWERED_ONCE),
    # -- Twilio -------------------------------------------------------------------------------------
    Row("twilio-500", "reply", twilio(status=500), Outcome.ANSWERED_ONCE),
    Row("twilio-400-permanent", "reply", twilio(status=400), Outcome.HANDED_OFF),
    # Twilio answers after the client's 10 s read timeout, having accepted the message: the outcome
    # is unknown to the processor, so it is logged CRITICAL and never resent.
    Row("twilio-timeout-accepted-late", "reply", twilio(delay_seconds=11), Outcome.CRITICAL_ONCE),
    Row("sender-twilio-400-permanent", "outbound", twilio(status=400), Outcome.DLQ_FAILED),
    # -- DynamoDB, each step ------------------------------------------------------------------------
    Row("webhook-query-latest-conversation", "reply",
        aws("twilio_webhook", "dynamodb.Query", "tel", status=500, count=EXHAUST), Outcome.WEBHOOK_RETRY),
    Row("webhook-transaction-record-inbound", "reply",
        aws("twilio_webhook", "dynamodb.TransactWriteItems",
            error_code="ProvisionedThroughputExceededException", count=EXHAUST), Outcome.WEBHOOK_RETRY),
    Row("processor-getitem-first-read", "reply",
        aws("reply_processor", "dynamodb.GetItem", status=500, count=EXHAUST), Outcome.ANSWERED_ONCE),
    # UpdateItems of a first reply: acquire, set_ai_conversation, begin_ai_turn, store_pending, the
    # attempt marker (record_progress); the final write is a TransactWriteItems.
    Row("processor-updateitem-pending-after-ai", "reply",
        aws("reply_processor", "dynamodb.UpdateItem", status=500, count=EXHAUST, after=3),
        Outcome.ANSWERED_ONCE),
    Row("processor-transaction-after-send", "reply",
        aws("reply_processor", "dynamodb.TransactWriteItems", status=500, count=EXHAUST),
        Outcome.CRITICAL_ONCE),
    # The final write applies but its answer outlives the client's timeout: the SDK's retry carries
    # the same ClientRequestToken, which DynamoDB answers as the applied transaction (TransactWriteItems
    # API reference: "idempotent ... for 10 minutes"), so nothing is lost and nothing is resent.
    Row("processor-transaction-after-send-timeout-applied", "reply",
        aws("reply_processor", "dynamodb.TransactWriteItems", delay_seconds=6, deliver_first=True),
        Outcome.ANSWERED_ONCE),
    Row("sender-putitem-create", "outbound",
        aws("channel_sender", "dynamodb.PutItem", "tel", status=500, count=EXHAUST), Outcome.ANSWERED_ONCE),
    # UpdateItems of a first send: keep ai conversation id, keep variables, claim; the final write
    # (the conversation and its template message) is a TransactWriteItems.
    Row("sender-transaction-after-send", "outbound",
        aws("channel_sender", "dynamodb.TransactWriteItems", "tel", status=500, count=EXHAUST),
        Outcome.CRITICAL_ONCE),
    # -- EventBridge PutEvents ----------------------------------------------------------------------
    # The webhook never calls EventBridge; the outbox relay does, and the stream retries it.
    Row("relay-putevents", "reply",
        aws("outbox_relay", "events.PutEvents", "tel", status=500, count=EXHAUST), Outcome.ANSWERED_ONCE),
    Row("initiate-putevents", "outbound",
        aws("initiate_conversation", "events.PutEvents", "tel", status=500, count=EXHAUST),
        Outcome.INITIATE_RETRY),
    # -- Secrets Manager GetSecretValue ---------------------------------------------------------------
    Row("webhook-getsecretvalue", "reply",
        aws("twilio_webhook", "secretsmanager.GetSecretValue", "secret", status=500, count=EXHAUST),
        Outcome.WEBHOOK_RETRY),
    Row("processor-getsecretvalue", "reply",
        aws("reply_processor", "secretsmanager.GetSecretValue", "secret", status=500, count=EXHAUST),
        Outcome.ANSWERED_ONCE),
    Row("sender-getsecretvalue", "outbound",
        aws("channel_sender", "secretsmanager.GetSecretValue", "secret",
            error_code="ThrottlingException", count=EXHAUST), Outcome.ANSWERED_ONCE),
]  # fmt: skip


# -- helpers -----------------------------------------------------------------------------------------


def log_lines(stack: Stack, function: str) -> list[dict[str, Any]]:
    """The JSON lines of a function's log file (stack.cloud.work_dir / logs / <function>.log)."""
    path = Path(stack.cloud.work_dir) / "logs" / f"{stack.outputs()['functions'][function]}.log"
    found = []
    for text in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        start = text.find("{")
        if start < 0:
            continue
        try:
            line = json.loads(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict):
            found.append(line)
    return found


def critical_lines(stack: Stack, function: str, conversation_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(stack, function)
        if line.get("level") == "CRITICAL" and line.get("conversation_id") == conversation_id
    ]


def sent_to(stack: Stack, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.twilio.messages() if m["to"] == address]


def take_dead_letter(stack: Stack, dlq_key: str, conversation_id: str) -> dict[str, Any] | None:
    """Remove this conversation's message from a DLQ; leave every other message where it was."""
    outputs = stack.outputs()
    url = outputs["dlqs"][f"{outputs['name']}-{dlq_key}-dlq"]
    sqs = stack.client("sqs")
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        if json.loads(message["Body"])["detail"].get("conversation_id") == conversation_id:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return message
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return None


def conversation_item(stack: Stack, tel: str, conversation_id: str) -> dict[str, Any]:
    repo = ConversationRepository(stack.client("dynamodb"), stack.outputs()["tables"]["conversations"])
    found = repo.get(tel, conversation_id)
    assert found is not None
    return found.model_dump()


@contextmanager
def queue_visibility(stack: Stack, key: str, seconds: int) -> Iterator[None]:
    sqs = stack.client("sqs")
    url = stack.queue_url(key)
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(seconds)})
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=before)


def api_key(stack: Stack) -> str:
    key_id = stack.outputs()["api_key_ids"]["demo-client"]
    return str(stack.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])


def initiate(stack: Stack, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    status, text = stack.http(
        "POST",
        f"{stack.api_url()}/initiate-conversation",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "x-api-key": key},
    )
    try:
        return status, json.loads(text) if text else {}
    except json.JSONDecodeError:
        return status, {"raw": text}


@pytest.fixture
def clean(stack: Stack) -> Iterator[None]:
    """Nothing injected may outlive its row."""
    yield
    stack.openai.faults.clear()
    stack.openai.configure(conversation_lock=True)
    stack.twilio.faults.clear()
    for counter in stack.runner.call_counters.values():
        counter.clear_faults()


# -- the flows -----------------------------------------------------------------------------------------


def run_reply_row(stack: Stack, row: Row) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel, conversation_id = conversation.recipient_tel, conversation.conversation_id
    case = Case(stack, tenant, tel, conversation_id, row.id)
    customer = conversation.customer_address
    row.inject(case)

    form = stack.webhook_form(tenant, tel, f"hello from {row.id}")
    status, _ = stack.post_webhook(form, tenant)
    if row.outcome is Outcome.WEBHOOK_RETRY:
        assert status >= 500, f"the webhook answered {status}: Twilio would not retry"
        # Twilio retries the same request (same MessageSid, same signature).
        status, _ = stack.post_webhook(form, tenant)
    assert status == 200

    if row.outcome is Outcome.DLQ_FAILED:
        stack.wait_for(lambda: take_dead_letter(stack, "whatsapp-ai-reply", conversation_id), WAIT)
        assert conversation_item(stack, tel, conversation_id)["status"] == "failed"
        assert sent_to(stack, customer) == []
        return

    if row.outcome is Outcome.HANDED_OFF:
        stack.wait_for(lambda: conversation_item(stack, tel, conversation_id)["handoff_to_human"], WAIT)
        item = conversation_item(stack, tel, conversation_id)
        assert item["status"] == "handed_off" and item["handoff_reason"] == "reply_undelivered"
        assert sent_to(stack, customer) == []
        assert take_dead_letter(stack, "whatsapp-ai-reply", conversation_id) is None
        return

    if row.outcome is Outcome.CRITICAL_ONCE:
        [line] = stack.wait_for(lambda: critical_lines(stack, "reply_processor", conversation_id), WAIT)
        assert line["critical_event"] == "post_send_update_failed"
        # A message accepted late shows in the fake only once its delayed answer is written.
        stack.wait_for(lambda: sent_to(stack, customer), WAIT)
        stack.settle(SETTLE)
        assert len(sent_to(stack, customer)) == 1
        assert len(critical_lines(stack, "reply_processor", conversation_id)) == 1
        return

    # ANSWERED_ONCE / WEBHOOK_RETRY
    stack.wait_for(lambda: sent_to(stack, customer), WAIT)

    def answered() -> bool:
        item = conversation_item(stack, tel, conversation_id)
        return item["answered_seq"] >= 1 and item["lease_owner"] is None

    stack.wait_for(answered, WAIT)
    stack.settle(SETTLE)
    [reply] = sent_to(stack, customer)
    assert reply["body"] == f"Thanks! You said: hello from {row.id}"
    item = conversation_item(stack, tel, conversation_id)
    assert [m.direction for m in stack.history(conversation_id)] == ["inbound", "outbound"]
    assert item["inbound_seq"] == 1 and item["status"] != "failed"
    if row.outcome is Outcome.PAUSED:
        # The pause was recorded, and lifted by the reply that followed it.
        assert any(line.get("message") == "tenant paused" for line in log_lines(stack, "reply_processor"))
        assert take_dead_letter(stack, "whatsapp-ai-reply", conversation_id) is None
    assert critical_lines(stack, "reply_processor", conversation_id) == []


def run_outbound_row(stack: Stack, row: Row) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    request_id = "req-" + uuid.uuid4().hex[:12]
    conversation_id = conversation_id_for(tenant.company_id, tenant.project_id, request_id)
    body = {
        "company_id": tenant.company_id,
        "project_id": tenant.project_id,
        "channel_method": "whatsapp",
        "request_id": request_id,
        "recipient": {"tel": tel, "first_name": "Ada"},
        "project_data": {"order": "A-1001"},
    }
    key = api_key(stack)
    row.inject(Case(stack, tenant, tel, conversation_id, row.id))
    customer = "whatsapp:" + tel

    with queue_visibility(stack, "whatsapp-outbound", 2):
        status, answer = initiate(stack, body, key)
        if row.outcome is Outcome.INITIATE_RETRY:
            assert status >= 500, f"initiate answered {status}: the client would not retry"
            status, answer = initiate(stack, body, key)
        assert status == 202 and answer["conversation_id"] == conversation_id

        if row.outcome is Outcome.DLQ_FAILED:
            stack.wait_for(lambda: take_dead_letter(stack, "whatsapp-outbound", conversation_id), WAIT)
            assert conversation_item(stack, tel, conversation_id)["status"] == "failed"
            assert sent_to(stack, customer) == []
            return

        if row.outcome is Outcome.CRITICAL_ONCE:
            [line] = stack.wait_for(lambda: critical_lines(stack, "channel_sender", conversation_id), WAIT)
            assert line["critical_event"] == "post_send_update_failed"
            stack.settle(SETTLE)  # over one visibility timeout: a retried record would send again
            assert len(sent_to(stack, customer)) == 1
            assert len(critical_lines(stack, "channel_sender", conversation_id)) == 1
            return

        stack.wait_for(lambda: sent_to(stack, customer), WAIT)
        stack.wait_for(lambda: conversation_item(stack, tel, conversation_id)["status"] == "active", WAIT)
        stack.settle(SETTLE)
    [message] = sent_to(stack, customer)
    assert message["content_sid"] == CONTENT_SID
    assert critical_lines(stack, "channel_sender", conversation_id) == []


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(row, id=row.id, marks=[pytest.mark.xfail(reason=row.xfail, strict=True)])
        if row.xfail
        else pytest.param(row, id=row.id)
        for row in ROWS
    ],
)
def test_fault(stack: Stack, clean: None, row: Row) -> None:
    if row.flow == "reply":
        run_reply_row(stack, row)
    else:
        run_outbound_row(stack, row)
    leftover = {
        name: counter.pending_faults()
        for name, counter in stack.runner.call_counters.items()
        if counter.pending_faults()
    }
    assert leftover == {}, f"injected faults never reached: {leftover}"
    assert stack.openai.faults.pending() == 0 and stack.twilio.faults.pending() == 0


def test_the_matrix_covers_every_external_call_and_outcome() -> None:
    """The table itself: each external call and each outcome class appears."""
    ids = " ".join(row.id for row in ROWS)
    for call in (
        "openai",
        "twilio",
        "query",
        "putitem",
        "getitem",
        "updateitem",
        "putevents",
        "getsecretvalue",
    ):
        assert call in ids, call
    # A reply never ends in a DLQ (what cannot be answered is handed to a person); a template can.
    expected = {
        "reply": {Outcome.ANSWERED_ONCE, Outcome.CRITICAL_ONCE, Outcome.HANDED_OFF, Outcome.PAUSED},
        "outbound": {Outcome.ANSWERED_ONCE, Outcome.CRITICAL_ONCE, Outcome.DLQ_FAILED},
    }
    for flow, outcomes in expected.items():
        assert outcomes <= {row.outcome for row in ROWS if row.flow == flow}, flow
    assert {row.outcome for row in ROWS} == set(Outcome)
    assert len({row.id for row in ROWS}) == len(ROWS)
