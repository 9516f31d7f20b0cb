"""Generated webhook requests over real HTTP through the local cloud's API front.

A smaller run than the unit fuzz suite (each example is an HTTP round trip into a function process):
no answer is a 5xx, and no unsigned, tampered or invalid request reaches a queue, a function or
the conversation record. A signed request with a unicode body is the positive control.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_comms.providers.twilio_signature import sign
from ai_comms.store.conversations import ConversationRepository
from local_cloud.seeding import SeededTenant

from .conftest import MAIN, Stack, random_tel

pytestmark = pytest.mark.e2e

HTTP_FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_HTTP_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("FUZZ_RANDOM") is None,
)
QUEUES = ("whatsapp-ai-reply", "sms-ai-reply", "handoff", "events-dlq")
SIDS: list[str] = []

text = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["\r", "\n", "\x00", "%00", "%0D%0A", "&", "=", "+", "%", "é", "🙂"])).map(
        "".join
    ),
)
# Channel paths without anything that reads as a phone number (the webhook logs refused channels).
paths = st.one_of(
    st.sampled_from(
        ["whatsapp", "sms", "WhatsApp", "telegram", "initiate-conversation", "whatsapp/extra", ""]
    ),
    st.text(alphabet="abcxyz-_.~%", min_size=1, max_size=12),
)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain; charset=utf-16",
        "",
        "multipart/form-data",
    ]
)


@pytest.fixture(scope="module")
def target(stack: Stack) -> tuple[SeededTenant, str]:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    return tenant, conversation.recipient_tel


def fresh_form(stack: Stack, tenant: SeededTenant, tel: str, **extra: str) -> dict[str, str]:
    form = stack.webhook_form(tenant, tel, **extra)
    SIDS.append(form["MessageSid"])
    return form


def post(stack: Stack, path: str, body: bytes, headers: dict[str, str]) -> int:
    status, _ = stack.http("POST", f"{stack.api_url(MAIN)}/{path}", body, headers)
    return status


@HTTP_FUZZ
@given(
    kind=st.sampled_from(["garbage", "unsigned", "wrong-signature", "tampered", "json"]),
    path=paths,
    content_type=content_types,
    noise=text,
    extra=st.lists(st.tuples(st.sampled_from(["To", "From", "Body", "MessageSid", "X"]), text), max_size=3),
    huge=st.booleans(),
)
def test_unsigned_or_tampered_requests_are_refused(
    stack: Stack,
    target: tuple[SeededTenant, str],
    kind: str,
    path: str,
    content_type: str,
    noise: str,
    extra: list[tuple[str, str]],
    huge: bool,
) -> None:
    tenant, tel = target
    form = fresh_form(stack, tenant, tel, Body=noise)
    url = f"{stack.api_url(MAIN)}/whatsapp"
    headers = {"Content-Type": content_type} if content_type else {}
    pairs = list(form.items())
    if kind == "garbage":
        body = noise.encode("utf-8", "surrogatepass")
    elif kind == "unsigned":
        body = urlencode(pairs).encode()
    elif kind == "wrong-signature":
        headers["X-Twilio-Signature"] = sign("not-the-token", url, form)
        body = urlencode(pairs).encode()
    elif kind == "tampered":
        headers["X-Twilio-Signature"] = sign(tenant.auth_token, url, form)
        body = urlencode([*pairs, *extra, ("Injected", "1")]).encode()
    else:
        headers["X-Twilio-Signature"] = sign(tenant.auth_token, url, form)
        body = json.dumps(form).encode()
    if huge:
        body += b"&Pad=" + b"x" * 70_000

    status = post(stack, path or "whatsapp", body, headers)

    assert 400 <= status < 500, (kind, path, status)


def test_a_signed_unicode_reply_is_the_positive_control(
    stack: Stack, target: tuple[SeededTenant, str]
) -> None:
    tenant, tel = target
    body = "Olá 🙂 — مرحبا \u202e\r\nline two & a=b %00"
    form = stack.webhook_form(tenant, random_tel(), body)
    assert stack.post_webhook(form, tenant)[0] == 200
    # A first message from a new customer opens a conversation the AI answers (first_contact "ai").
    events = stack.wait_for(lambda: stack.routed("whatsapp-ai-reply", form["MessageSid"]), 20)
    assert [e["detail"]["body"] for e in events] == [body]
    assert tel  # the fuzzed conversation's customer is another one


def test_no_refused_request_left_a_trace(stack: Stack, target: tuple[SeededTenant, str]) -> None:
    """Runs after the fuzz test: none of its message ids reached a queue, a function or the record."""
    tenant, tel = target
    assert SIDS, "the fuzz test did not run first"
    stack.settle(2)  # longer than any hop of an accepted request before it reaches a queue
    for key in QUEUES:
        for sid in SIDS:
            assert stack.routed(key, sid) == [], (key, sid)
    conversations = ConversationRepository(
        stack.client("dynamodb"), stack.outputs()["tables"]["conversations"]
    )
    [record] = [
        c
        for c in [conversations.latest_for(tel, tenant.address("whatsapp"))]
        if c is not None and c.company_id == tenant.company_id
    ]
    assert stack.history(record.conversation_id) == [] and record.inbound_seq == 0
    idempotency = stack.client("dynamodb").scan(TableName=stack.outputs()["tables"]["idempotency"])["Items"]
    claimed = json.dumps(idempotency)
    assert not [sid for sid in SIDS if sid in claimed]
