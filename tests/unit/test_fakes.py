"""The fake OpenAI and Twilio servers, driven by the real SDKs over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.conversations import Conversation
from openai.types.responses import (
    Response,
    ResponseFormatTextJSONSchemaConfigParam,
    ResponseInputParam,
    ResponseTextConfigParam,
)
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
REPLY_FORMAT: ResponseFormatTextJSONSchemaConfigParam = {
    "type": "json_schema",
    "name": "assistant_reply",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "reply": {"type": "string"},
            "action": {"type": "string", "enum": ["none", "handoff"]},
        },
        "required": ["reply", "action"],
        "additionalProperties": False,
    },
}
REPLY_TEXT: ResponseTextConfigParam = {"format": REPLY_FORMAT}


def call(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Bearer sk-test")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture
def openai_fake() -> Iterator[OpenAIFake]:
    fake = OpenAIFake(port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    fake = TwilioFake(port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


def ai_client(fake: OpenAIFake, *, max_retries: int = 0, timeout: float = 2.0) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=max_retries, timeout=timeout)


class RewritingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Sends what the SDK addresses to https://api.twilio.com to the fake instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=2)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        url = url.replace("https://api.twilio.com", self.base_url, 1)
        return super().request(method, url, *args, **kwargs)


def twilio_client(fake: TwilioFake, account_sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> Client:
    return Client(account_sid, token, http_client=RewritingHttpClient(fake.url))


# OpenAI ------------------------------------------------------------------------------------------------


def test_conversation_and_structured_reply(openai_fake: OpenAIFake) -> None:
    two_messages: ResponseInputParam = [
        {"role": "user", "content": "Hello there"},
        {"role": "user", "content": [{"type": "input_text", "text": "Is it open today?"}]},
    ]
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create(metadata={"tenant": "acme"})
        response = client.responses.create(
            model="gpt-test",
            conversation=conversation.id,
            instructions="Answer briefly.",
            input=two_messages,
            max_output_tokens=200,
            text=REPLY_TEXT,
        )
        items = client.conversations.items.list(conversation.id, order="asc")

    assert conversation.id.startswith("conv_")
    assert conversation.object == "conversation"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.conversation is not None and response.conversation.id == conversation.id
    assert json.loads(response.output_text) == {
        "reply": "Thanks! You said: Hello there | Is it open today?",
        "action": "none",
    }
    assert response.usage is not None and response.usage.output_tokens > 0
    stored_roles = [getattr(item, "role", None) for item in items.data]
    assert stored_roles == ["user", "user", "assistant"]


def test_wire_format_validates_against_sdk_models(openai_fake: OpenAIFake) -> None:
    status, conversation = call(openai_fake.url, "POST", "/v1/conversations", {})
    assert status == 200
    Conversation.model_validate(conversation)
    status, body = call(
        openai_fake.url,
        "POST",
        "/v1/responses",
        {"model": "gpt-test", "conversation": {"id": conversation["id"]}, "input": "hi"},
    )
    assert status == 200
    response = Response.model_validate(body)
    assert response.output_text == "Echo: hi"


def test_scripted_replies_are_consumed_in_order(openai_fake: OpenAIFake) -> None:
    status, _ = call(
        openai_fake.url,
        "POST",
        "/fake/script",
        {"replies": [{"text": "A colleague will call you.", "action": "handoff"}, {"raw": "not json"}]},
    )
    assert status == 200
    with ai_client(openai_fake) as client:
        first = client.responses.create(model="m", input="I want a human", text=REPLY_TEXT)
        second = client.responses.create(model="m", input="again", text=REPLY_TEXT)
        third = client.responses.create(model="m", input="plain")

    assert json.loads(first.output_text) == {"reply": "A colleague will call you.", "action": "handoff"}
    assert second.output_text == "not json"
    assert third.output_text == "Echo: plain"


def test_other_schemas_are_filled_deterministically(openai_fake: OpenAIFake) -> None:
    schema: ResponseFormatTextJSONSchemaConfigParam = {
        "type": "json_schema",
        "name": "template_variables",
        "schema": {
            "type": "object",
            "properties": {
                "first_name": {"type": "string"},
                "tone": {"type": "string", "enum": ["warm", "formal"]},
                "count": {"type": "integer"},
                "urgent": {"type": "boolean"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        },
    }
    with ai_client(openai_fake) as client:
        response = client.responses.create(
            model="m", input="Write the greeting for Ada", text={"format": schema}
        )

    assert json.loads(response.output_text) == {
        "first_name": "first_name: Write the greeting for Ada",
        "tone": "warm",
        "count": 0,
        "urgent": False,
        "note": "note: Write the greeting for Ada",
    }


def test_server_errors_are_absorbed_by_sdk_retries(openai_fake: OpenAIFake) -> None:
    # retry-after-ms keeps the SDK's backoff short; without it the SDK waits 0.5 s, then 1 s.
    openai_fake.add_faults({"status": 500, "count": 2, "headers": {"retry-after-ms": "10"}})
    with ai_client(openai_fake, max_retries=2) as client:
        response = client.responses.create(model="m", input="hello")

    assert response.output_text == "Echo: hello"
    status, calls = call(openai_fake.url, "GET", "/fake/requests")
    assert status == 200
    assert [entry["status"] for entry in calls] == [500, 500, 200]
    assert all(entry["path"] == "/v1/responses" for entry in calls)
    assert all("authorization" not in entry["headers"] for entry in calls)
    assert calls[0]["body"]["input"] == "hello"


def test_auth_and_rate_limit_faults_raise_sdk_errors(openai_fake: OpenAIFake) -> None:
    status, _ = call(openai_fake.url, "POST", "/fake/faults", {"faults": [{"status": 401, "count": 1}]})
    assert status == 200
    openai_fake.add_faults({"status": 429, "count": 1})
    with ai_client(openai_fake) as client:
        with pytest.raises(openai.AuthenticationError) as auth_error:
            client.responses.create(model="m", input="x")
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="m", input="x")
        assert client.responses.create(model="m", input="x").output_text == "Echo: x"

    assert auth_error.value.code == "invalid_api_key"


def test_delay_beyond_client_timeout_raises_timeout(openai_fake: OpenAIFake) -> None:
    openai_fake.add_faults({"delay_seconds": 1.5, "count": 1})
    with ai_client(openai_fake, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.responses.create(model="m", input="slow")
        assert time.monotonic() - started < 1.5
        assert client.responses.create(model="m", input="fast").output_text == "Echo: fast"


def test_latency_applies_to_every_call(openai_fake: OpenAIFake) -> None:
    assert call(openai_fake.url, "POST", "/fake/latency", {"seconds": 0.2})[0] == 200
    with ai_client(openai_fake) as client:
        started = time.monotonic()
        client.responses.create(model="m", input="a")
        client.responses.create(model="m", input="b")
    assert time.monotonic() - started >= 0.4


def test_unknown_conversation_is_not_found(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client, pytest.raises(openai.NotFoundError):
        client.responses.create(model="m", conversation="conv_missing", input="x")


def test_reset_forgets_everything(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
    openai_fake.script({"raw": "queued"})
    openai_fake.add_faults({"status": 500, "count": 5})
    assert call(openai_fake.url, "POST", "/fake/reset")[0] == 200

    assert call(openai_fake.url, "GET", "/fake/requests") == (200, [])
    with ai_client(openai_fake) as client:
        assert client.responses.create(model="m", input="x").output_text == "Echo: x"
        with pytest.raises(openai.NotFoundError):
            client.conversations.retrieve(conversation.id)


def test_requests_record_the_conversation(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        client.responses.create(model="m", conversation={"id": conversation.id}, input="x")
    _, calls = call(openai_fake.url, "GET", "/fake/requests")
    assert [entry["conversation_id"] for entry in calls] == [conversation.id, conversation.id]


# Twilio ------------------------------------------------------------------------------------------------


def test_sdk_sends_text_and_template_messages(twilio_fake: TwilioFake) -> None:
    client = twilio_client(twilio_fake)
    text = client.messages.create(
        to="whatsapp:+447700900123",
        from_="whatsapp:+14155550100",
        body="Hello from the fake",
        status_callback="https://example.test/status",
    )
    template = client.messages.create(
        to="whatsapp:+447700900123",
        from_="whatsapp:+14155550100",
        content_sid="HX" + "1" * 32,
        content_variables=json.dumps({"1": "Ada", "2": "Tuesday"}),
    )
    fetched = client.messages(text.sid).fetch()

    assert text.sid is not None and text.sid.startswith("SM") and len(text.sid) == 34
    assert text.status == "queued"
    assert text.account_sid == ACCOUNT_SID
    assert text.date_created is not None
    assert fetched.body == "Hello from the fake"
    status, messages = call(twilio_fake.url, "GET", "/fake/messages")
    assert status == 200
    assert [(m["sid"], m["body"], m["content_sid"]) for m in messages] == [
        (text.sid, "Hello from the fake", None),
        (template.sid, "", "HX" + "1" * 32),
    ]
    assert messages[0]["status_callback"] == "https://example.test/status"
    assert messages[1]["content_variables"] == {"1": "Ada", "2": "Tuesday"}


def test_api_domain_base_url_also_points_the_sdk_at_the_fake(twilio_fake: TwilioFake) -> None:
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=TwilioHttpClient(timeout=2))
    client.api.base_url = twilio_fake.url
    message = client.messages.create(to="+447700900123", from_="+14155550100", body="sms")
    assert message.num_segments == "1"
    assert [m["sid"] for m in twilio_fake.messages()] == [message.sid]


def test_twilio_fault_raises_rest_exception(twilio_fake: TwilioFake) -> None:
    status, _ = call(twilio_fake.url, "POST", "/fake/faults", {"faults": [{"status": 500, "count": 1}]})
    assert status == 200
    client = twilio_client(twilio_fake)
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to="+447700900123", from_="+14155550100", body="x")
    assert (error.value.status, error.value.code) == (500, 20500)
    client.messages.create(to="+447700900123", from_="+14155550100", body="x")
    assert len(twilio_fake.messages()) == 1


def test_wrong_credentials_are_rejected(twilio_fake: TwilioFake) -> None:
    other_account = twilio_client(twilio_fake).api.v2010.accounts("AC" + "9" * 32)
    with pytest.raises(TwilioRestException) as error:
        other_account.messages.create(to="+447700900123", from_="+14155550100", body="x")
    assert (error.value.status, error.value.code) == (401, 20003)

    with pytest.raises(TwilioRestException) as error:
        twilio_client(twilio_fake, token="").messages.create(to="+447700900123", from_="+1415", body="x")
    assert error.value.status == 401
    assert twilio_fake.messages() == []


def test_invalid_messages_use_twilio_error_codes(twilio_fake: TwilioFake) -> None:
    client = twilio_client(twilio_fake)
    with pytest.raises(TwilioRestException) as no_body:
        client.messages.create(to="+447700900123", from_="+14155550100")
    with pytest.raises(TwilioRestException) as too_long:
        client.messages.create(to="+447700900123", from_="+14155550100", body="x" * 1601)
    with pytest.raises(TwilioRestException) as bad_variables:
        client.messages.create(
            to="+447700900123", from_="+14155550100", content_sid="HX1", content_variables="{"
        )

    assert (no_body.value.status, no_body.value.code) == (400, 21602)
    assert too_long.value.code == 21617
    assert bad_variables.value.code == 21656


def test_twilio_requests_are_logged_and_reset(twilio_fake: TwilioFake) -> None:
    twilio_client(twilio_fake).messages.create(to="+447700900123", from_="+14155550100", body="x")
    _, calls = call(twilio_fake.url, "GET", "/fake/requests")
    assert calls[0]["body"]["Body"] == "x"
    assert "authorization" not in calls[0]["headers"]
    assert call(twilio_fake.url, "POST", "/fake/reset")[0] == 200
    assert twilio_fake.messages() == []


# Entry points ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["fakes.openai_fake", "fakes.twilio_fake"])
def test_module_entry_point_serves_until_terminated(module: str) -> None:
    # cwd makes the package importable without installing it, as `python -m` puts cwd on sys.path.
    with subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0"], cwd=SCRIPTS_DIR, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
            assert url.startswith("http://127.0.0.1:")
            assert call(url, "GET", "/fake/health")[0] == 200
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0
