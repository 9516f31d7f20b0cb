"""Load: N signed webhooks from 50 customers of one tenant, over about a minute, through the HTTP API.

Every message must be accounted for: stored once in its conversation's history, routed (its
ReplyReceived consumed from the AI-reply queue), covered by exactly one AI call, and every burst
answered (no conversation left with answered_seq < inbound_seq, no second reply for the same
messages, nothing in a DLQ). The achieved rate and the webhook latency percentiles are reported
(printed and written to load.json in the test's tmp dir), never asserted: this machine is shared.

Size (environment): AI_COMMS_LOAD_MESSAGES (default 200), AI_COMMS_LOAD_SECONDS (default 40 up to
300 messages, else 60), AI_COMMS_LOAD_SENDERS (concurrent sender threads, default 16). CI runs the
defaults; `make test-all` runs 1000 messages over 60 s.
"""

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ai_comms.models.conversation import Conversation
from ai_comms.store.conversations import ConversationRepository
from local_cloud.load import Customer, account, drive, expected_counts, plan_load, settled

from .conftest import MAIN, Stack, random_tel

pytestmark = pytest.mark.e2e

MESSAGES = int(os.environ.get("AI_COMMS_LOAD_MESSAGES") or 200)
SECONDS = float(os.environ.get("AI_COMMS_LOAD_SECONDS") or (40 if MESSAGES <= 300 else 60))
SENDERS = int(os.environ.get("AI_COMMS_LOAD_SENDERS") or 16)
CUSTOMERS = 50
# After the last webhook: debounce (4 s) + the backlog of replies; a message that met another
# processor's lease comes back after that lease (about 66 s), so allow for one such round.
SETTLE_WAIT = 150.0
CHANNEL = "whatsapp"


def customers(stack: Stack, tenant: Any) -> list[Customer]:
    tels: set[str] = set()
    while len(tels) < CUSTOMERS:
        tels.add(random_tel())
    found = []
    for tel in sorted(tels):
        conversation = stack.conversation(tenant, tel)
        found.append(Customer(tel, conversation.conversation_id, conversation.customer_address))
    return found


def read_records(stack: Stack, people: list[Customer]) -> dict[str, Conversation]:
    repo = ConversationRepository(stack.client("dynamodb"), stack.outputs(MAIN)["tables"]["conversations"])
    records = {}
    for person in people:
        record = repo.get(person.tel, person.conversation_id)
        if record is not None:
            records[person.tel] = record
    return records


def aws_calls(stack: Stack, function: str) -> int:
    counter = stack.runner.call_counters.get(function)
    return sum(counter.snapshot().values()) if counter else 0


def dead_letters(stack: Stack, sids: set[str]) -> list[str]:
    """Our messages found in any DLQ of the workspace (others' stay, visible again in a few seconds)."""
    sqs = stack.client("sqs")
    outputs = stack.outputs(MAIN)
    urls = [*outputs["dlqs"].values(), outputs["queues"]["events-dlq"]]
    found = []
    for url in urls:
        seen: set[str] = set()
        while True:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=5)
            messages = [m for m in answer.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen.add(message["MessageId"])
                body = message["Body"]
                found.extend(f"{url.rsplit('/', 1)[1]}: {sid}" for sid in sids if sid in body)
    return found


def test_load_every_message_stored_routed_and_answered_once(stack: Stack, tmp_path: Path) -> None:
    runner = stack.runner
    assert runner is not None
    tenant = stack.tenant()
    people = customers(stack, tenant)
    plan = plan_load(people, MESSAGES, SECONDS)
    expected = expected_counts(plan)
    webhook = stack.outputs(MAIN)["functions"]["twilio_webhook"]
    replier = stack.outputs(MAIN)["functions"]["reply_processor"]
    since = len(runner.stats)
    calls_before = {f: aws_calls(stack, f) for f in (webhook, replier)}
    # Every customer writes within the run, so each reply falls inside WhatsApp's 24-hour window;
    # the fake Twilio learns it up front (drive() posts to the API, not through Stack.post_webhook).
    for person in people:
        stack.twilio.customer_wrote(person.address, tenant.address(CHANNEL))

    run = drive(
        plan,
        f"{stack.api_url(MAIN)}/{CHANNEL}",
        tenant.auth_token,
        tenant.account_sid,
        tenant.address(CHANNEL),
        senders=SENDERS,
    )
    sending_done = time.monotonic()

    deadline = sending_done + SETTLE_WAIT
    records = read_records(stack, people)
    while not settled(records, expected) and time.monotonic() < deadline:
        time.sleep(2)
        records = read_records(stack, people)
    answered_after_s = time.monotonic() - sending_done
    stack.settle(6)  # a stray second reply or late redelivery would show up by now
    records = read_records(stack, people)

    addresses = {person.address: person.tel for person in people}
    replies: dict[str, list[dict[str, Any]]] = {}
    for message in stack.twilio.messages():
        if message.get("to") in addresses:
            replies.setdefault(addresses[message["to"]], []).append(message)
    consumed = Counter(
        event["detail"]["message_sid"]
        for event in stack.consumed_events(f"{CHANNEL}-ai-reply")
        if event.get("detail-type") == "ReplyReceived"
    )
    histories = {tel: stack.history(record.conversation_id) for tel, record in records.items()}
    figures, problems = account(plan, records, histories, replies, stack.openai.requests.snapshot(), consumed)
    invocations = runner.stats[since:]
    report = {
        "load": run.figures(),
        "accounting": figures,
        "all_answered_s_after_last_webhook": round(answered_after_s, 1),
        "runner": {
            name: {
                "invocations": sum(1 for i in invocations if i.function_name == function),
                "failed": sum(1 for i in invocations if i.function_name == function and i.failed),
                "cold_starts": sum(1 for i in invocations if i.function_name == function and i.cold_start),
                "peak_concurrency": runner.workers[function].peak,
                "limit": runner.workers[function].concurrency,
                "throttled": runner.throttles[function],
                "emulator_calls_per_message": round(
                    (aws_calls(stack, function) - calls_before[function]) / len(plan), 2
                ),
            }
            for name, function in (("twilio_webhook", webhook), ("reply_processor", replier))
        },
    }
    (tmp_path / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload report ({tmp_path / 'load.json'}):\n{json.dumps(report, indent=2)}")

    assert report["load"]["statuses"] == {"200": len(plan)}, report["load"]
    assert problems == [], problems[:20]
    assert figures["duplicate_replies"] == 0 and figures["unanswered_conversations"] == 0
    assert dead_letters(stack, {p.sid for p in plan}) == []
