"""The vendors as they really behave, through the local cloud: OpenAI's locked conversations, answers
cut short or refused; Twilio's refusals by code, delivery statuses after the 201, signing keys.

- conversation_locked once: one reply; an answer cut short twice: the handoff notice, no DLQ, the
  customer's input on the AI conversation once; a refusal: the handoff notice;
- template values the AI wrote over several lines: sent as one line each;
- 21611 (the sender's queue is full) once: one template, after the retry;
- a template Twilio reports undelivered (63016) by StatusCallback: the conversation is undelivered,
  and `ops conversation show` says so; a status callback with a bad signature: 403, nothing stored;
- a tenant whose webhooks are signed with a signing key: accepted;
- a location and a quick-reply button: the AI's input holds them;
- a reply Twilio reports undelivered hands the conversation over; `ops conversation retry` answers
  it once more, once.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository, outbound_position
from local_cloud.seeding import SeededTenant

from .conftest import Stack, random_tel
from .test_ops import ops
from .test_outbound import TEMPLATE, api_key, body_for, initiate, record, sent_to

pytestmark = pytest.mark.e2e

REPLY_WAIT = 45.0
NOTICE = "Thanks, a member of our team will reply to you here shortly."


def say(stack: Stack, tenant: SeededTenant, tel: str, body: str, **extra: str) -> str:
    form = stack.webhook_form(tenant, tel, body, **extra)
    status, _ = stack.post_webhook(form, tenant)
    assert status == 200, status
    return form["MessageSid"]


def bodies(stack: Stack, tel: str) -> list[str]:
    return [m["body"] for m in sent_to(stack, "whatsapp:" + tel)]


def conversation_of(stack: Stack, tel: str, conversation_id: str) -> Any:
    repo = ConversationRepository(stack.client("dynamodb"), stack.outputs()["tables"]["conversations"])
    return repo.get(tel, conversation_id)


def user_inputs(stack: Stack, ai_conversation_id: str) -> list[str]:
    [found] = [c for c in stack.openai.conversations() if c["id"] == ai_conversation_id]
    return [
        part["text"]
        for item in found["items"]
        if item.get("type") == "message" and item.get("role") == "user"
        for part in item["content"]
        if part.get("type") == "input_text"
    ]


def responses_for(stack: Stack, ai_conversation_id: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in stack.openai.requests.snapshot()
        if entry["path"] == "/v1/responses"
        and (entry.get("body") or {}).get("conversation") == ai_conversation_id
    ]


def answered(stack: Stack, tel: str, conversation_id: str) -> bool:
    current = conversation_of(stack, tel, conversation_id)
    return bool(current and current.answered_seq >= 1 and current.lease_owner is None)


def test_a_locked_conversation_is_answered_once(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel = conversation.recipient_tel
    stack.openai.script({"error": "conversation_locked"}, {"text": "Here you are."})
    say(stack, tenant, tel, "hello")
    stack.wait_for(lambda: answered(stack, tel, conversation.conversation_id), REPLY_WAIT)
    stack.settle(2)
    assert bodies(stack, tel) == ["Here you are."]
    ai_id = conversation_of(stack, tel, conversation.conversation_id).ai_conversation_id
    assert user_inputs(stack, ai_id) == ["hello"]


def test_an_answer_cut_short_twice_hands_over_with_the_input_on_the_ai_conversation_once(
    stack: Stack,
) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel = conversation.recipient_tel
    cut = {"text": "A very long answer", "status": "incomplete", "reason": "max_output_tokens"}
    stack.openai.script(cut, cut)
    say(stack, tenant, tel, "tell me everything")
    stack.wait_for(lambda: answered(stack, tel, conversation.conversation_id), REPLY_WAIT)
    stack.settle(2)
    assert bodies(stack, tel) == [NOTICE]
    current = conversation_of(stack, tel, conversation.conversation_id)
    assert current.status == "handed_off" and current.handoff_detail == "incomplete:max_output_tokens"
    assert user_inputs(stack, current.ai_conversation_id) == ["tell me everything"]
    first, second = responses_for(stack, current.ai_conversation_id)
    assert "input" in first["body"] and "input" not in second["body"]
    assert second["body"]["max_output_tokens"] == 4 * first["body"]["max_output_tokens"]
    name = stack.outputs()["name"]
    dlq = stack.outputs()["dlqs"][f"{name}-whatsapp-ai-reply-dlq"]
    dead = stack.client("sqs").receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert not [m for m in dead if conversation.conversation_id in m["Body"]]


def test_a_refusal_hands_over(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel = conversation.recipient_tel
    stack.openai.script({"refusal": "I can't help with that."})
    say(stack, tenant, tel, "something it refuses")
    stack.wait_for(lambda: answered(stack, tel, conversation.conversation_id), REPLY_WAIT)
    assert bodies(stack, tel) == [NOTICE]
    assert conversation_of(stack, tel, conversation.conversation_id).handoff_detail == "refusal"


def test_template_values_written_over_lines_are_sent_as_one_line_each(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    stack.openai.script({"text": "Hi\n\nAda,\tall      set"})
    status, _ = initiate(stack, body_for(tenant, tel), api_key(stack))
    assert status == 202
    [message] = stack.wait_for(lambda: sent_to(stack, "whatsapp:" + tel), REPLY_WAIT)
    values = message["content_variables"]
    assert values and all(value.endswith("Hi Ada, all set") for value in values.values())


def test_a_full_sender_queue_is_retried_into_one_template(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    stack.twilio.refuse(21611, to="whatsapp:" + tel, count=1)
    status, answer = initiate(stack, body_for(tenant, tel), api_key(stack))
    assert status == 202
    stack.wait_for(lambda: sent_to(stack, "whatsapp:" + tel), REPLY_WAIT)
    stack.wait_for(
        lambda: record(stack, tel, answer["conversation_id"]).get("status") == "active", REPLY_WAIT
    )
    stack.settle(3)
    assert len(sent_to(stack, "whatsapp:" + tel)) == 1
    assert "21611" in record(stack, tel, answer["conversation_id"]).get("last_error", "21611")


def test_a_template_reported_undelivered_marks_the_conversation_and_ops_shows_it(stack: Stack) -> None:
    tenant = stack.tenant(template=TEMPLATE)
    tel = random_tel()
    stack.twilio.set_outcome("undelivered", error_code=63016, to="whatsapp:" + tel)
    status, answer = initiate(stack, body_for(tenant, tel), api_key(stack))
    assert status == 202
    conversation_id = answer["conversation_id"]
    stack.wait_for(lambda: record(stack, tel, conversation_id).get("status") == "undelivered", REPLY_WAIT)
    stored = record(stack, tel, conversation_id)
    assert stored["last_error"] == "undelivered:63016"
    [template] = [m for m in stack.history(conversation_id) if m.author == "template"]
    assert [entry.status for entry in template.statuses][-1] == "undelivered"
    # Every callback the fake made was answered 200 by the status route.
    made = [c for c in stack.twilio.callbacks() if c["message_sid"] == template.sid]
    assert made and all(c.get("http_status") == 200 for c in made)

    shown = ops(stack, "conversation", "show", tel, "--conversation-id", conversation_id)
    assert shown.returncode == 0, shown.stderr
    assert "undelivered" in shown.stdout and "undelivered 63016" in shown.stdout


def test_a_status_callback_with_a_bad_signature_is_403_and_stores_nothing(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    position = outbound_position(0, 1, 0)
    query = urlencode({"c": conversation.conversation_id, "p": position})
    url = f"{stack.api_url()}/whatsapp/status?{query}"
    form = {
        "MessageSid": "SM" + "0" * 32,
        "AccountSid": tenant.account_sid,
        "From": tenant.address("whatsapp"),
        "To": conversation.customer_address,
        "MessageStatus": "failed",
        "ErrorCode": "63024",
    }
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": RequestValidator("not-the-token").compute_signature(url, form),
    }
    status, _ = stack.http("POST", url, urlencode(form).encode(), headers)
    assert status == 403
    messages = MessageRepository(stack.client("dynamodb"), stack.outputs()["tables"]["messages"])
    assert list(messages.all_of(conversation.conversation_id)) == []
    assert conversation_of(stack, conversation.recipient_tel, conversation.conversation_id).status == "active"


def test_a_tenant_signing_with_a_webhook_signing_key_is_accepted(stack: Stack) -> None:
    tenant = stack.tenant()
    key_sid, key = "HK" + "e" * 32, "the-shared-signing-key"
    stack.client("secretsmanager").put_secret_value(
        SecretId=tenant.secret_names["twilio"],
        SecretString=json.dumps(
            {
                "account_sid": tenant.account_sid,
                "auth_token": tenant.auth_token,
                "webhook_signing_key": key,
                "webhook_signing_key_sid": key_sid,
            }
        ),
    )
    conversation = stack.conversation(tenant)
    form = stack.webhook_form(tenant, conversation.recipient_tel, "signed with the key")
    url = f"{stack.api_url()}/whatsapp"
    signature = RequestValidator(key).compute_signature(url, form, HMAC_SHA256)
    stack.twilio.customer_wrote(form["From"], form["To"])
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
        SIGNATURE_SETTINGS_HEADER: f"key={key_sid},algorithm={HMAC_SHA256}",
    }
    status, _ = stack.http("POST", url, urlencode(form).encode(), headers)
    assert status == 200
    stack.wait_for(
        lambda: answered(stack, conversation.recipient_tel, conversation.conversation_id), REPLY_WAIT
    )
    # The same request signed with the auth token under the header is refused.
    headers["X-Twilio-Signature"] = RequestValidator(tenant.auth_token).compute_signature(url, form)
    assert stack.http("POST", url, urlencode(form).encode(), headers)[0] == 403


def test_a_location_and_a_button_reach_the_ai_as_text(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel = conversation.recipient_tel
    say(
        stack,
        tenant,
        tel,
        "",
        Latitude="51.5014",
        Longitude="-0.1419",
        Address="Westminster, London SW1A 1AA",
        Label="Buckingham Palace",
        ButtonText="Track my order",
        ButtonPayload="track-A1001",
    )
    stack.wait_for(lambda: answered(stack, tel, conversation.conversation_id), REPLY_WAIT)
    ai_id = conversation_of(stack, tel, conversation.conversation_id).ai_conversation_id
    [text] = user_inputs(stack, ai_id)
    assert 'pressed the button "Track my order", payload track-A1001' in text
    assert "Buckingham Palace, Westminster, London SW1A 1AA at 51.5014, -0.1419" in text


def test_ops_retry_answers_an_undelivered_reply_once(stack: Stack) -> None:
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    tel, conversation_id = conversation.recipient_tel, conversation.conversation_id
    echo = "Thanks! You said: is my parcel lost?"
    # Twilio takes the reply, then reports it undelivered (30003: unreachable handset).
    stack.twilio.set_outcome("undelivered", error_code=30003, to=conversation.customer_address, count=1)
    say(stack, tenant, tel, "is my parcel lost?")
    handed = stack.wait_for(
        lambda: (c := conversation_of(stack, tel, conversation_id)) and c.status == "handed_off" and c,
        REPLY_WAIT,
    )
    assert handed.handoff_reason == "reply_undelivered"
    assert bodies(stack, tel).count(echo) == 1

    retried = ops(stack, "conversation", "retry", tel, conversation_id)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "answers its 1 customer message(s) after #0 once" in retried.stdout

    stack.wait_for(lambda: bodies(stack, tel).count(echo) == 2, REPLY_WAIT)
    stack.wait_for(lambda: answered(stack, tel, conversation_id), REPLY_WAIT)
    stack.settle(6)  # a second answer would be sent by now
    assert bodies(stack, tel).count(echo) == 2
    current = conversation_of(stack, tel, conversation_id)
    assert current.status == "active" and not current.handoff_to_human
    # Ran once more, it has nothing left to answer.
    again = ops(stack, "conversation", "retry", tel, conversation_id)
    assert again.returncode != 0
