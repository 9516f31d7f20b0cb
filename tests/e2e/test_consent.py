"""Consent and tenant boundaries over real HTTP, on the local cloud.

- STOP in one conversation: POST /initiate-conversation for that customer answers 409 and nothing
  is sent; a later conversation with the same customer is silent too; START restores both;
- keyword variants (case, punctuation, STOPALL) opt out; sentences containing "stop" do not;
- STOP with no conversation, during a handoff and during a reply in flight: each recorded and
  confirmed once;
- an inactive project: no AI reply and no template, inbound messages still recorded;
- the demo API key cannot act for a tenant that does not name its client;
- a rotated Twilio auth token: the first webhook signed with it is accepted; a reply after an
  OpenAI key rotation arrives.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import ConversationRepository
from local_cloud.seeding import SeededTenant

from .conftest import Stack, random_tel
from .test_outbound import TEMPLATE, api_key, body_for, initiate, sent_to

pytestmark = pytest.mark.e2e

REPLY_WAIT = 40.0
OPT_OUT = "You will not receive more messages from us. Reply START to opt back in."
OPT_IN = "Welcome back! You will receive our messages again."


def _say(stack: Stack, tenant: SeededTenant, tel: str, body: str) -> str:
    form = stack.webhook_form(tenant, tel, body)
    status, _ = stack.post_webhook(form, tenant)
    assert status == 200, status
    return form["MessageSid"]


def _bodies_to(stack: Stack, tel: str) -> list[str]:
    return [m["body"] for m in sent_to(stack, "whatsapp:" + tel)]


def _wait_bodies(stack: Stack, tel: str, count: int, timeout: float = REPLY_WAIT) -> list[str]:
    return list(
        stack.wait_for(lambda: len(_bodies_to(stack, tel)) >= count and _bodies_to(stack, tel), timeout)
    )


def _conversations(stack: Stack) -> ConversationRepository:
    return ConversationRepository(stack.client("dynamodb"), stack.outputs()["tables"]["conversations"])


def test_stop_silences_every_conversation_with_the_customer_until_start(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    stack.conversation(tenant, tel)
    _say(stack, tenant, tel, "Stop!")
    assert _wait_bodies(stack, tel, 1) == [OPT_OUT]
    key = api_key(stack)

    status, answer = initiate(stack, body_for(tenant, tel), key)
    assert (status, answer.get("error")) == (409, "recipient_opted_out")
    # A later conversation (opened by the customer writing) is silent too, and so is the first one.
    later = stack.conversation(tenant, tel)
    _say(stack, tenant, tel, "hello, anyone?")
    stack.settle(8)  # debounce (4 s) + a reply, were one sent
    assert _bodies_to(stack, tel) == [OPT_OUT]
    assert stack.consent(tenant, tel).state == "opted_out"  # type: ignore[union-attr]

    _say(stack, tenant, tel, "START")
    assert _wait_bodies(stack, tel, 2)[-1] == OPT_IN
    _say(stack, tenant, tel, "what are your opening hours?")
    replies = _wait_bodies(stack, tel, 3)
    assert replies[-1] == "Thanks! You said: what are your opening hours?"
    assert [m.body for m in stack.history(later.conversation_id) if m.direction == "inbound"] == [
        "hello, anyone?",
        "START",
        "what are your opening hours?",
    ]
    status, answer = initiate(stack, body_for(tenant, tel), key)
    assert status == 202, answer
    stack.wait_for(lambda: any(m.get("content_sid") for m in sent_to(stack, "whatsapp:" + tel)), 30)


@pytest.mark.parametrize("body", ["stop", "STOP.", " Stop! ", "STOPALL", "unsubscribe"])
def test_keyword_variants_opt_out(stack: Stack, body: str) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    stack.conversation(tenant, tel)
    _say(stack, tenant, tel, body)
    assert _wait_bodies(stack, tel, 1) == [OPT_OUT]
    assert stack.consent(tenant, tel).state == "opted_out"  # type: ignore[union-attr]


def test_sentences_with_stop_in_them_are_answered_by_the_ai(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    stack.conversation(tenant, tel)
    _say(stack, tenant, tel, "please don't stop the delivery")
    assert _wait_bodies(stack, tel, 1) == ["Thanks! You said: please don't stop the delivery"]
    assert stack.consent(tenant, tel) is None


def test_stop_from_a_customer_without_a_conversation_is_recorded_and_confirmed_once(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    _say(stack, tenant, tel, "STOP")
    assert _wait_bodies(stack, tel, 1) == [OPT_OUT]
    _say(stack, tenant, tel, "STOP")
    stack.settle(8)
    assert _bodies_to(stack, tel) == [OPT_OUT]
    repository = ConsentRepository(stack.client("dynamodb"), stack.outputs()["tables"]["consent"])
    [consent] = [
        c for c in repository.of_address(tenant.address("whatsapp")) if c.customer_address.endswith(tel)
    ]
    assert consent.state == "opted_out" and [c.state for c in consent.history] == ["opted_out"]


def test_stop_during_a_handoff_is_recorded_and_confirmed_once_and_people_see_it(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    conversation = stack.conversation(tenant, tel, handoff_to_human=True, status="handed_off")
    sid = _say(stack, tenant, tel, "STOP")
    assert _wait_bodies(stack, tel, 1) == [OPT_OUT]
    assert stack.wait_for(lambda: stack.routed("handoff", sid), 20)
    stack.settle(6)
    assert _bodies_to(stack, tel) == [OPT_OUT]
    record = _conversations(stack).get(tel, conversation.conversation_id)
    assert record is not None and record.handoff_to_human


def test_stop_while_a_reply_is_in_flight_is_recorded_the_reply_stops_and_it_is_confirmed_once(
    stack: Stack,
) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    conversation = stack.conversation(tenant, tel)
    stack.openai.set_latency(3.0)
    try:
        _say(stack, tenant, tel, "tell me about my order")
        # The reply is being decided (debounce 4 s, then a slow AI call): the customer opts out.
        time.sleep(5)
        _say(stack, tenant, tel, "STOP")
        _wait_bodies(stack, tel, 1)
    finally:
        stack.openai.set_latency(0)
    stack.settle(10)
    bodies = _bodies_to(stack, tel)
    assert bodies.count(OPT_OUT) == 1
    # The AI's reply to the first message never went out after the STOP was recorded.
    assert bodies == [OPT_OUT]
    assert stack.consent(tenant, tel).state == "opted_out"  # type: ignore[union-attr]
    record = _conversations(stack).get(tel, conversation.conversation_id)
    assert record is not None and record.answered_seq == 2 and record.pending_reply is None


def test_an_inactive_project_sends_nothing_and_still_records_what_comes_in(stack: Stack) -> None:
    tenant = stack.tenant(status="inactive", template=TEMPLATE)
    tel = random_tel()
    conversation = stack.conversation(tenant, tel)
    sid = _say(stack, tenant, tel, "hello?")
    assert stack.wait_for(lambda: stack.routed("handoff", sid), 20)
    stack.settle(6)
    assert _bodies_to(stack, tel) == []
    assert [m.sid for m in stack.history(conversation.conversation_id)] == [sid]
    status, answer = initiate(stack, body_for(tenant, random_tel()), api_key(stack))
    assert status == 403 and "not active" in answer["message"]


def test_the_demo_key_cannot_act_for_a_tenant_that_does_not_name_its_client(stack: Stack) -> None:
    other = stack.tenant(template=TEMPLATE, api_clients=["someone-else"])
    unknown = body_for(other, random_tel(), company_id="no-such-" + uuid.uuid4().hex[:6])
    key = api_key(stack)
    refused = initiate(stack, body_for(other, random_tel()), key)
    assert refused[0] == 403
    assert initiate(stack, unknown, key) == refused  # an unknown tenant looks the same


def _put_secret(stack: Stack, name: str, value: dict[str, str]) -> None:
    stack.client("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(value))


def test_a_rotated_twilio_auth_token_is_accepted_on_its_first_webhook(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    stack.conversation(tenant, tel)
    _say(stack, tenant, tel, "before the rotation")  # the webhook caches the current token
    _wait_bodies(stack, tel, 1)
    new_token = uuid.uuid4().hex
    _put_secret(
        stack, tenant.secret_names["twilio"], {"account_sid": tenant.account_sid, "auth_token": new_token}
    )
    stack.twilio.add_account(tenant.account_sid, new_token)
    rotated = SeededTenant(
        tenant.company_id,
        tenant.project_id,
        tenant.company_numbers,
        tenant.account_sid,
        new_token,
        tenant.openai_api_key,
        tenant.secret_names,
    )
    form = stack.webhook_form(rotated, tel, "after the rotation")
    assert stack.post_webhook(form, rotated)[0] == 200
    assert _wait_bodies(stack, tel, 2)[-1] == "Thanks! You said: after the rotation"
    # The old token no longer signs anything.
    old = stack.webhook_form(tenant, tel, "an old signature")
    assert stack.post_webhook(old, tenant)[0] == 403


def test_a_reply_after_an_openai_key_rotation_arrives(stack: Stack) -> None:
    tenant = stack.tenant()
    tel = random_tel()
    stack.conversation(tenant, tel)
    _say(stack, tenant, tel, "first")
    _wait_bodies(stack, tel, 1)
    # The processor holds the old key; OpenAI refuses it once the key is rotated.
    _put_secret(stack, tenant.secret_names["openai"], {"api_key": "sk-rotated-" + uuid.uuid4().hex})
    stack.openai.add_faults({"status": 401, "count": 1})
    _say(stack, tenant, tel, "second")
    assert _wait_bodies(stack, tel, 2)[-1] == "Thanks! You said: second"
