"""The conversations API over real HTTP on the local cloud, with the demo client's API key:

- the AI hands a conversation over; it is listed as handed_off; a person's message reaches the
  customer (fake Twilio) and the history; after the handback the AI answers the customer's next
  message and never the one the person handled;
- outside WhatsApp's 24-hour window a person's message is refused with 409 and nothing is sent.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.store.conversations import ConversationRepository
from local_cloud.seeding import SeededTenant

from .conftest import Stack, random_tel
from .test_outbound import api_key, sent_to

pytestmark = pytest.mark.e2e

WAIT = 40.0


def call(
    stack: Stack, tenant: SeededTenant, method: str, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    query = urlencode({"company_id": tenant.company_id, "project_id": tenant.project_id, **params})
    headers = {"x-api-key": api_key(stack)}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    status, text = stack.http(method, f"{stack.api_url()}{path}?{query}", data, headers)
    return status, json.loads(text) if text else None


def say(stack: Stack, tenant: SeededTenant, tel: str, body: str) -> None:
    status, _ = stack.post_webhook(stack.webhook_form(tenant, tel, body), tenant)
    assert status == 200, status


def bodies_to(stack: Stack, tel: str) -> list[str]:
    return [m["body"] for m in sent_to(stack, "whatsapp:" + tel)]


def ai_inputs(stack: Stack, ai_conversation_id: str) -> list[str]:
    """Every text the AI was given on one AI conversation, in order."""
    texts = []
    for request in stack.openai.requests.snapshot():
        body = request.get("body") or {}
        if request["path"] == "/v1/responses" and body.get("conversation") == ai_conversation_id:
            texts += [str(item.get("content")) for item in body.get("input") or []]
    return texts


def test_a_person_takes_over_and_hands_back_to_the_ai(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    conversation = stack.conversation(tenant, tel)
    conversations = ConversationRepository(
        stack.client("dynamodb"), stack.outputs()["tables"]["conversations"]
    )
    stack.openai.script({"text": "Let me get a colleague.", "action": "handoff"})

    say(stack, tenant, tel, "I want to talk to a person")
    stack.wait_for(lambda: bodies_to(stack, tel), WAIT)  # the tenant's handoff notice
    handed = stack.wait_for(
        lambda: (
            (c := conversations.get(tel, conversation.conversation_id)) and c.status == "handed_off" and c
        ),
        WAIT,
    )
    listed = stack.wait_for(
        lambda: [
            c
            for c in call(stack, tenant, "GET", "/conversations", status="handed_off")[1]["conversations"]
            if c["conversation_id"] == conversation.conversation_id
        ],
        10,
    )
    assert listed[0]["customer"] != "whatsapp:" + tel and listed[0]["customer"].endswith(tel[-2:])

    # The customer writes while a person has the conversation; the person answers.
    say(stack, tenant, tel, "hello? my order is A-17")
    stack.wait_for(lambda: len(stack.history(conversation.conversation_id)) >= 3, WAIT)
    status, accepted = call(
        stack,
        tenant,
        "POST",
        f"/conversations/{conversation.conversation_id}/messages",
        {"text": "Hi, Sam here: A-17 ships tomorrow.", "message_id": "sam-1"},
    )
    assert status == 202, accepted
    assert accepted["sent_parts"] == 1 and accepted["repeated"] is False
    assert (
        call(
            stack,
            tenant,
            "POST",
            f"/conversations/{conversation.conversation_id}/messages",
            {"text": "Hi, Sam here: A-17 ships tomorrow.", "message_id": "sam-1"},
        )[1]["repeated"]
        is True
    )
    assert bodies_to(stack, tel)[-1] == "Hi, Sam here: A-17 ships tomorrow."
    assert bodies_to(stack, tel).count("Hi, Sam here: A-17 ships tomorrow.") == 1
    status, detail = call(stack, tenant, "GET", f"/conversations/{conversation.conversation_id}")
    assert status == 200, detail
    assert [(m["author"], m["body"]) for m in detail["messages"] if m["author"] in {"customer", "agent"}] == [
        ("customer", "I want to talk to a person"),
        ("customer", "hello? my order is A-17"),
        ("agent", "Hi, Sam here: A-17 ships tomorrow."),
    ]

    status, state = call(stack, tenant, "POST", f"/conversations/{conversation.conversation_id}/handback")
    assert status == 200, state
    assert (state["status"], state["handed_off"], state["answered_seq"]) == ("active", False, 2)

    say(stack, tenant, tel, "thanks! can I change the address?")
    reply = "Thanks! You said: thanks! can I change the address?"
    stack.wait_for(lambda: reply in bodies_to(stack, tel), WAIT)
    assert handed.ai_conversation_id is not None
    inputs = ai_inputs(stack, handed.ai_conversation_id)
    assert "hello? my order is A-17" not in inputs and "Hi, Sam here: A-17 ships tomorrow." not in inputs
    assert inputs[-1] == "thanks! can I change the address?"
    assert not [b for b in bodies_to(stack, tel) if "A-17" in b and b.startswith("Thanks! You said")]


def test_a_persons_message_outside_the_24_hour_window_is_refused_and_nothing_is_sent(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    conversation = stack.conversation(
        tenant,
        tel,
        status="handed_off",
        handoff_to_human=True,
        last_inbound_at=iso(utc_now() - timedelta(hours=25)),
    )

    status, answer = call(
        stack,
        tenant,
        "POST",
        f"/conversations/{conversation.conversation_id}/messages",
        {"text": "Still there?"},
    )

    assert (status, answer["error"]) == (409, "window_closed")
    assert bodies_to(stack, tel) == []
    assert stack.history(conversation.conversation_id) == []
