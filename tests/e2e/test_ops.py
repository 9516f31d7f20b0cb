"""The ops CLI against the local cloud, run as an operator runs it: `python -m ops ...` in a subprocess,
with the emulator's endpoint and test credentials, checking output and exit codes.

  - dlq list / show / redrive: a reply that failed three times (an injected DynamoDB fault at the
    reply processor's own proxy) sits in the DLQ; redrive moves it back and it is answered once;
  - replay of the last hour of the event archive onto the bus: no customer gets a second message;
  - tenant put (scripts/ops/tenant.example.yaml adapted to this workspace) / get / list;
  - conversation show masks numbers and bodies unless --reveal;
  - conversation handback: the next customer message goes to the AI-reply queue and is answered.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_comms.masking import mask_address
from ai_comms.store.conversations import ConversationRepository
from local_cloud.seeding import SeededTenant

from .conftest import REPO, Stack, random_tel

pytestmark = pytest.mark.e2e

REPLY_WAIT = 40.0
# Three receives of a failing record: the processor's backoff is 10 s, then 20 s.
DLQ_WAIT = 90.0
EXAMPLE = REPO / "scripts" / "ops" / "tenant.example.yaml"


def ops(stack: Stack, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return stack.ops(*args, stdin=stdin)


def replies_to(stack: Stack, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.twilio.messages() if m["to"] == address]


def conversation_record(stack: Stack, tel: str, conversation_id: str) -> Any:
    repo = ConversationRepository(stack.client("dynamodb"), stack.outputs()["tables"]["conversations"])
    return repo.get(tel, conversation_id)


def wait_answered(stack: Stack, tel: str, conversation_id: str, seq: int) -> Any:
    def answered() -> Any:
        record = conversation_record(stack, tel, conversation_id)
        return record if record.answered_seq >= seq and record.lease_owner is None else None

    return stack.wait_for(answered, REPLY_WAIT)


def dlq_name(stack: Stack, key: str) -> str:
    return f"{stack.outputs()['name']}-{key}-dlq"


def in_dlq(stack: Stack, key: str, conversation_id: str) -> bool:
    """Whether this conversation's event is in the DLQ (peeked, then released at once)."""
    url = stack.outputs()["dlqs"][dlq_name(stack, key)]
    sqs = stack.client("sqs")
    found = False
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        if json.loads(message["Body"])["detail"].get("conversation_id") == conversation_id:
            found = True
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return found


# -- dlq ---------------------------------------------------------------------------------------------------


def test_dlq_redrive_moves_a_failed_reply_back_and_it_is_answered_once(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel, conversation_id = conversation.recipient_tel, conversation.conversation_id
    processor = stack.runner.call_counters[stack.outputs()["functions"]["reply_processor"]]
    # Not retried by the SDK: one fault per receive, three receives, then the DLQ. The conversation
    # is not marked failed (a transient failure), so a redrive can answer it.
    processor.inject(
        "dynamodb.GetItem", error_code="ResourceNotFoundException", count=3, match=conversation_id
    )
    form = stack.webhook_form(tenant, tel, "please answer me eventually")
    assert stack.post_webhook(form, tenant)[0] == 200
    try:
        stack.wait_for(lambda: in_dlq(stack, "whatsapp-ai-reply", conversation_id), DLQ_WAIT, interval=1.0)
    finally:
        processor.clear_faults()
    assert replies_to(stack, conversation.customer_address) == []

    listed = ops(stack, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    header = listed.stdout.lower().splitlines()[0].split()
    assert header[:2] == ["queue", "messages"]
    [row] = [
        line for line in listed.stdout.splitlines() if line.startswith(dlq_name(stack, "whatsapp-ai-reply"))
    ]
    assert int(row.split()[1]) >= 1

    shown = ops(stack, "dlq", "show", "whatsapp-ai-reply-dlq")
    assert shown.returncode == 0, shown.stderr
    assert "ReplyReceived" in shown.stdout and conversation_id in shown.stdout
    assert tel not in shown.stdout and "please answer me" not in shown.stdout

    dry = ops(stack, "dlq", "redrive", "whatsapp-ai-reply-dlq", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run:" in dry.stdout
    assert in_dlq(stack, "whatsapp-ai-reply", conversation_id), "a dry run moved the message"

    moved = ops(stack, "dlq", "redrive", "whatsapp-ai-reply-dlq", "--wait", "60")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    fields = dict(
        line.split(":", 1) for line in moved.stdout.splitlines() if line.startswith("moved") and ":" in line
    )
    assert int(fields["moved"].strip()) >= 1

    [reply] = stack.wait_for(lambda: replies_to(stack, conversation.customer_address), REPLY_WAIT)
    wait_answered(stack, tel, conversation_id, 1)
    stack.settle(5)
    assert len(replies_to(stack, conversation.customer_address)) == 1
    assert reply["body"] == "Thanks! You said: please answer me eventually"
    assert not in_dlq(stack, "whatsapp-ai-reply", conversation_id)


def test_dlq_commands_exit_codes(stack: Stack) -> None:
    assert ops(stack, "--help").returncode == 0
    assert ops(stack, "dlq", "redrive", "--help").returncode == 0
    assert ops(stack, "dlq", "frobnicate").returncode == 2
    assert ops(stack, "replay", "--from", "not-a-time", "--to", "now").returncode == 2
    missing = ops(stack, "dlq", "show", "no-such-queue-dlq")
    assert missing.returncode == 3, missing.stdout + missing.stderr


# -- replay ------------------------------------------------------------------------------------------------


def test_replay_of_the_last_hour_sends_no_second_reply(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel, conversation_id = conversation.recipient_tel, conversation.conversation_id
    form = stack.webhook_form(tenant, tel, "replay me")
    assert stack.post_webhook(form, tenant)[0] == 200
    stack.wait_for(lambda: replies_to(stack, conversation.customer_address), REPLY_WAIT)
    wait_answered(stack, tel, conversation_id, 1)
    stack.settle(2)
    before = Counter(m["to"] for m in stack.twilio.messages())
    sid = form["MessageSid"]

    now = datetime.now(UTC)
    window = ["--from", (now - timedelta(hours=1)).isoformat(), "--to", now.isoformat()]
    started = ops(stack, "replay", *window, "--wait", "120")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "no: started it" in started.stdout

    # The replayed ReplyReceived of this message reaches the processor a second time (after the
    # channel's debounce delay), and is recognised as answered.
    def delivered_twice() -> bool:
        consumed = stack.consumed_events("whatsapp-ai-reply")
        return len([e for e in consumed if e["detail"].get("message_sid") == sid]) >= 2

    stack.wait_for(delivered_twice, 60.0, interval=0.5)
    stack.settle(8)  # the rest of the replayed hour settles (debounce windows, sender, processor)

    after = Counter(m["to"] for m in stack.twilio.messages())
    extra = {to: after[to] - before[to] for to in before if after[to] > before[to]}
    assert extra == {}, f"customers who got another message after the replay: {extra}"
    assert replies_to(stack, conversation.customer_address)[0]["body"] == "Thanks! You said: replay me"
    assert len(replies_to(stack, conversation.customer_address)) == 1

    again = ops(stack, "replay", *window)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "yes: reported the existing replay" in again.stdout


# -- tenant ------------------------------------------------------------------------------------------------


def tenant_file(stack: Stack, tmp_path: Path, company_id: str, number: str) -> Path:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    prefix = str(stack.outputs()["tenant_secret_prefix"]).rstrip("/")
    document["company_id"] = company_id
    document["channels"]["whatsapp"]["address"] = "whatsapp:" + number
    document["channels"]["whatsapp"]["twilio_secret_ref"] = f"{prefix}/{company_id}/support/twilio"
    document["ai"]["openai_secret_ref"] = f"{prefix}/{company_id}/support/openai"
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_tenant_put_get_list(stack: Stack, tmp_path: Path) -> None:
    company_id = "co-ops-" + uuid.uuid4().hex[:8]
    number = random_tel().replace("+44770", "+1415", 1)
    path = tenant_file(stack, tmp_path, company_id, number)

    dry = ops(stack, "tenant", "put", str(path), "--dry-run")
    assert dry.returncode == 0 and "not written" in dry.stdout, dry.stderr
    assert ops(stack, "tenant", "get", company_id, "support").returncode == 3

    put = ops(stack, "tenant", "put", str(path))
    assert put.returncode == 0, put.stderr
    assert f"written: {company_id}/support" in put.stdout

    got = ops(stack, "tenant", "get", company_id, "support", "--format", "json")
    assert got.returncode == 0, got.stderr
    stored = json.loads(got.stdout)
    original = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert stored["company_id"] == company_id and stored["status"] == "active"
    assert stored["channels"]["whatsapp"]["address"] == "whatsapp:" + number
    assert stored["ai"]["openai_secret_ref"] == original["ai"]["openai_secret_ref"]
    as_yaml = ops(stack, "tenant", "get", company_id, "support")
    assert as_yaml.returncode == 0 and yaml.safe_load(as_yaml.stdout)["company_id"] == company_id

    listed = ops(stack, "tenant", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.lower().splitlines()[0].split()[:3] == ["company", "project", "status"]
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(company_id + " ")]
    assert "active" in row and "whatsapp" in row

    # The same model the Lambdas use refuses a broken file: usage error, nothing written.
    broken = yaml.safe_load(path.read_text(encoding="utf-8"))
    broken["company_id"] = company_id + "-broken"
    broken["status"] = "sleeping"
    broken_path = tmp_path / "broken.yaml"
    broken_path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    refused = ops(stack, "tenant", "put", str(broken_path))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ops(stack, "tenant", "get", company_id + "-broken", "support").returncode == 3


# -- conversation ------------------------------------------------------------------------------------------


def answered_chat(stack: Stack, body: str) -> tuple[SeededTenant, Any]:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    form = stack.webhook_form(tenant, conversation.recipient_tel, body)
    assert stack.post_webhook(form, tenant)[0] == 200
    stack.wait_for(lambda: replies_to(stack, conversation.customer_address), REPLY_WAIT)
    wait_answered(stack, conversation.recipient_tel, conversation.conversation_id, 1)
    return tenant, conversation


def test_conversation_show_masks_numbers_and_bodies(stack: Stack) -> None:
    _, conversation = answered_chat(stack, "my secret order number is 4242")
    tel = conversation.recipient_tel

    shown = ops(stack, "conversation", "show", tel)
    assert shown.returncode == 0, shown.stderr
    assert conversation.conversation_id in shown.stdout
    assert mask_address(conversation.customer_address) in shown.stdout
    assert tel not in shown.stdout and "4242" not in shown.stdout
    assert "inbound" in shown.stdout and "outbound" in shown.stdout

    revealed = ops(stack, "conversation", "show", conversation.customer_address, "--reveal")
    assert revealed.returncode == 0, revealed.stderr
    assert tel in revealed.stdout and "4242" in revealed.stdout

    assert ops(stack, "conversation", "show", random_tel()).returncode == 3


def test_conversation_handback_sends_the_next_message_to_the_ai(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant, handoff_to_human=True, status="handed_off")
    tel, conversation_id = conversation.recipient_tel, conversation.conversation_id

    first = stack.webhook_form(tenant, tel, "is a person there?")
    assert stack.post_webhook(first, tenant)[0] == 200
    stack.wait_for(lambda: stack.routed("handoff", first["MessageSid"]), REPLY_WAIT)

    handed = ops(stack, "conversation", "handback", tel, conversation_id)
    assert handed.returncode == 0, handed.stdout + handed.stderr
    assert "handed back" in handed.stdout
    record = conversation_record(stack, tel, conversation_id)
    assert not record.handoff_to_human and record.status == "active"

    second = stack.webhook_form(tenant, tel, "back to the bot then")
    assert stack.post_webhook(second, tenant)[0] == 200
    stack.wait_for(lambda: stack.routed("whatsapp-ai-reply", second["MessageSid"]), REPLY_WAIT)
    replies = stack.wait_for(lambda: replies_to(stack, conversation.customer_address), REPLY_WAIT)
    assert replies[-1]["body"].startswith("Thanks! You said:")
    assert "back to the bot then" in replies[-1]["body"]
    assert stack.routed("handoff", second["MessageSid"]) == []

    # Handing back a conversation no person holds is refused, and says so.
    again = ops(stack, "conversation", "handback", tel, conversation_id)
    assert again.returncode != 0
    assert ops(stack, "conversation", "handback", tel, str(uuid.uuid4())).returncode == 3
