"""The fake OpenAI, driven by the real SDK: what it accepts, refuses and scripts, as OpenAI documents it."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.conversations import Conversation, ConversationItemList
from openai.types.responses import (
    Response,
    ResponseFormatTextJSONSchemaConfigParam,
    ResponseInputParam,
    ResponseTextConfigParam,
)

from fakes.openai_fake import OpenAIFake

from .fakes_support import ai_client, call, openai_fake

__all__ = ["openai_fake"]

REPLY_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "action": {"type": "string", "enum": ["none", "handoff"]},
    },
    "required": ["reply", "action"],
    "additionalProperties": False,
}
REPLY_FORMAT: ResponseFormatTextJSONSchemaConfigParam = {
    "type": "json_schema",
    "name": "assistant_reply",
    "strict": True,
    "schema": REPLY_SCHEMA,
}
REPLY_TEXT: ResponseTextConfigParam = {"format": REPLY_FORMAT}
LOCKED_MESSAGE = "Another process is currently operating on this conversation. Please retry in a few seconds."


def tokens(text: str) -> int:
    """The fake's documented approximation: ceil(characters / 4)."""
    return math.ceil(len(text) / 4)


def refused(error: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[int, str | None, str | None]:
    """(status, code, param) of an API error, after checking the body has the API's error shape."""
    body = error.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    if error.value.status_code == 400:
        assert body["type"] == "invalid_request_error"
    return error.value.status_code, error.value.code, error.value.param


def bad_request(client: OpenAI, **params: Any) -> tuple[int, str | None, str | None]:
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(**params)
    return refused(error)


# Conversations and responses -------------------------------------------------------------------------


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
    status, page = call(openai_fake.url, "GET", f"/v1/conversations/{conversation['id']}/items")
    assert status == 200
    assert [item.type for item in ConversationItemList.model_validate(page).data] == ["message", "message"]


def test_a_response_appends_its_input_and_output_items_to_the_conversation(openai_fake: OpenAIFake) -> None:
    # ResponseCreateParamsBase.conversation: input and output items are added after the response.
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create(items=[{"role": "user", "content": "seeded"}])
        first = client.responses.create(model="m", conversation=conversation.id, input="one")
        second = client.responses.create(model="m", conversation={"id": conversation.id}, input="two")
        items = client.conversations.items.list(conversation.id, order="asc")

    texts = [item.content[0].text for item in items.data if item.type == "message"]  # type: ignore[union-attr]
    assert texts == ["seeded", "one", "Echo: one", "two", "Echo: two"]
    assert items.data[2].id == first.output[0].id and items.data[4].id == second.output[0].id


def test_items_list_orders_pages_and_continues_after_an_item(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create(
            items=[{"role": "user", "content": f"m{n}"} for n in range(5)]
        )
        newest_first = client.conversations.items.list(conversation.id)
        page = client.conversations.items.list(conversation.id, order="asc", limit=2)
        rest = client.conversations.items.list(conversation.id, order="asc", after=page.data[-1].id)

    def texts(listed: Any) -> list[str]:
        return [item.content[0].text for item in listed.data]

    # ItemListParams.order: "Default is `desc`"; limit and after page the list.
    assert texts(newest_first) == ["m4", "m3", "m2", "m1", "m0"]
    assert texts(page) == ["m0", "m1"] and page.has_more is True
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    assert texts(rest) == ["m2", "m3", "m4"] and rest.has_more is False


def test_items_can_be_added_to_a_conversation(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        added = client.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": "added"}]
        )
        listed = client.conversations.items.list(conversation.id)
    assert [item.id for item in listed.data] == [item.id for item in added.data]


def test_without_input_the_model_answers_the_conversation_as_it_stands(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create(items=[{"role": "user", "content": "what time is it?"}])
        response = client.responses.create(model="m", conversation=conversation.id, text=REPLY_TEXT)
        items = client.conversations.items.list(conversation.id, order="asc")
    assert json.loads(response.output_text)["reply"] == "Thanks! You said: what time is it?"
    assert [getattr(item, "role", None) for item in items.data] == ["user", "assistant"]


def test_previous_response_id_continues_from_that_response(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        first = client.responses.create(model="m", input="abcd" * 10)
        second = client.responses.create(model="m", previous_response_id=first.id, input="efgh")
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="m", previous_response_id="resp_missing", input="x")
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens == first.usage.input_tokens + first.usage.output_tokens + 1


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


def test_requests_record_the_conversation_and_the_usage(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        response = client.responses.create(model="m", conversation={"id": conversation.id}, input="x")
    _, calls = call(openai_fake.url, "GET", "/fake/requests")
    assert [entry["conversation_id"] for entry in calls] == [conversation.id, conversation.id]
    assert response.usage is not None
    assert calls[1]["usage"] == response.usage.model_dump(exclude_none=True)
    assert calls[1]["response_id"] == response.id and calls[1]["response_status"] == "completed"
    [stored] = openai_fake.conversations()
    assert stored["id"] == conversation.id and [i["role"] for i in stored["items"]] == ["user", "assistant"]


# Requests refused as the SDK's types and the API reference define them -----------------------------


def test_unknown_parameters_are_refused_at_every_level(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        top = bad_request(client, model="m", input="x", extra_body={"temprature": 1})
        nested = bad_request(client, model="m", input=[{"role": "user", "content": "x", "mood": "calm"}])
    assert top == (400, "unknown_parameter", "temprature")
    assert nested == (400, "unknown_parameter", "input[0].mood")


def test_wrong_types_and_values_are_refused(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        tokens_as_text = bad_request(client, model="m", input="x", extra_body={"max_output_tokens": "200"})
        part_text = bad_request(
            client, model="m", input=[{"role": "user", "content": [{"type": "input_text", "text": 5}]}]
        )
        truncation = bad_request(client, model="m", input="x", extra_body={"truncation": "sometimes"})
        missing_name = bad_request(
            client, model="m", input="x", text={"format": {"type": "json_schema", "schema": REPLY_SCHEMA}}
        )
    assert tokens_as_text == (400, "invalid_type", "max_output_tokens")
    assert part_text == (400, "invalid_type", "input[0].content[0].text")
    assert truncation == (400, "invalid_value", "truncation")
    assert missing_name == (400, "missing_required_parameter", "text.format.name")


def test_max_output_tokens_is_at_least_16(openai_fake: OpenAIFake) -> None:
    # openapi.yaml CreateResponse.max_output_tokens: minimum 16.
    with ai_client(openai_fake) as client:
        assert bad_request(client, model="m", input="x", max_output_tokens=15) == (
            400,
            "integer_below_min_value",
            "max_output_tokens",
        )
        assert client.responses.create(model="m", input="x", max_output_tokens=16).status == "completed"


@pytest.mark.parametrize(
    ("metadata", "param", "code"),
    [
        ({f"k{n}": "v" for n in range(17)}, "metadata", "object_above_max_properties"),
        ({"k" * 65: "v"}, "metadata", "string_above_max_length"),
        ({"note": "v" * 513}, "metadata.note", "string_above_max_length"),
        ({"count": 3}, "metadata.count", "invalid_type"),
    ],
)
def test_metadata_limits(openai_fake: OpenAIFake, metadata: dict[str, Any], param: str, code: str) -> None:
    # shared_params/metadata.py: 16 pairs, keys <= 64 characters, string values <= 512 characters.
    with ai_client(openai_fake) as client:
        assert bad_request(client, model="m", input="x", metadata=metadata) == (400, code, param)
        with pytest.raises(openai.BadRequestError) as error:
            client.conversations.create(metadata=metadata)
        assert refused(error) == (400, code, param)
        client.conversations.create(metadata={f"k{n}": "v" * 512 for n in range(16)})


def strict_format(schema: dict[str, Any], name: str = "reply") -> ResponseTextConfigParam:
    return {"format": {"type": "json_schema", "name": name, "strict": True, "schema": schema}}


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({**REPLY_SCHEMA, "required": ["reply"]}, "Missing 'action'"),
        ({k: v for k, v in REPLY_SCHEMA.items() if k != "additionalProperties"}, "'additionalProperties'"),
        (
            {
                "type": "object",
                "properties": {"order": {"type": "object", "properties": {"id": {"type": "string"}}}},
                "required": ["order"],
                "additionalProperties": False,
            },
            "In context=('properties', 'order'), 'additionalProperties'",
        ),
        ({"type": "string"}, "must be a JSON Schema of 'type: \"object\"'"),
    ],
)
def test_strict_json_schemas_follow_structured_outputs(
    openai_fake: OpenAIFake, schema: dict[str, Any], fragment: str
) -> None:
    with ai_client(openai_fake) as client, pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model="m", input="x", text=strict_format(schema))
    assert refused(error) == (400, "invalid_json_schema", "text.format.schema")
    assert fragment in error.value.message


def test_a_non_strict_schema_is_not_held_to_strict_rules(openai_fake: OpenAIFake) -> None:
    loose: ResponseTextConfigParam = {
        "format": {"type": "json_schema", "name": "loose", "schema": {"type": "object", "properties": {}}}
    }
    with ai_client(openai_fake) as client:
        assert client.responses.create(model="m", input="x", text=loose).status == "completed"


@pytest.mark.parametrize(
    ("name", "code"), [("my reply", "invalid_value"), ("a" * 65, "string_above_max_length")]
)
def test_format_names_match_the_documented_pattern(openai_fake: OpenAIFake, name: str, code: str) -> None:
    with ai_client(openai_fake) as client:
        assert bad_request(client, model="m", input="x", text=strict_format(REPLY_SCHEMA, name)) == (
            400,
            code,
            "text.format.name",
        )
        client.responses.create(model="m", input="x", text=strict_format(REPLY_SCHEMA, "a-Z_0" + "b" * 59))


def test_conversation_and_previous_response_id_are_exclusive(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        first = client.responses.create(model="m", input="x")
        outcome = bad_request(
            client, model="m", conversation=conversation.id, previous_response_id=first.id, input="y"
        )
    assert outcome == (400, "mutually_exclusive_parameters", None)


@pytest.mark.parametrize(
    ("entries", "param", "code"),
    [
        ([], "context_management", "empty_array"),
        ([{"type": "summarize"}], "context_management[0].type", "invalid_value"),
        ([{"type": "compaction", "compact_threshold": 999}], "context_management[0].compact_threshold", None),
    ],
)
def test_context_management_entries(
    openai_fake: OpenAIFake, entries: list[dict[str, Any]], param: str, code: str | None
) -> None:
    with ai_client(openai_fake) as client:
        status, got_code, got_param = bad_request(client, model="m", input="x", context_management=entries)
    assert (status, got_param) == (400, param)
    assert got_code == (code or "integer_below_min_value")


def test_temperature_and_top_logprobs_ranges(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        assert bad_request(client, model="m", input="x", temperature=2.5)[1:] == (
            "decimal_above_max_value",
            "temperature",
        )
        assert bad_request(client, model="m", input="x", top_logprobs=21)[1:] == (
            "invalid_value",
            "top_logprobs",
        )
        assert client.responses.create(model="m", input="x", temperature=2).status == "completed"


def test_conversation_items_come_at_most_20_a_call(openai_fake: OpenAIFake) -> None:
    items = [{"role": "user", "content": f"m{n}"} for n in range(21)]
    with ai_client(openai_fake) as client:
        with pytest.raises(openai.BadRequestError) as on_create:
            client.conversations.create(items=items)  # type: ignore[arg-type]
        conversation = client.conversations.create(items=items[:20])  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as on_add:
            client.conversations.items.create(conversation.id, items=items)  # type: ignore[arg-type]
    assert refused(on_create) == refused(on_add) == (400, "array_above_max_length", "items")


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ("limit=0", "invalid_value", "limit"),
        ("limit=101", "invalid_value", "limit"),
        ("order=up", "invalid_value", "order"),
    ],
)
def test_items_list_parameters(openai_fake: OpenAIFake, query: str, code: str, param: str) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
    status, body = call(openai_fake.url, "GET", f"/v1/conversations/{conversation.id}/items?{query}")
    assert status == 400 and (body["error"]["code"], body["error"]["param"]) == (code, param)


# Scripted failures ------------------------------------------------------------------------------------


def test_conversation_locked_can_be_scripted_in_process_and_over_http(openai_fake: OpenAIFake) -> None:
    openai_fake.script({"error": "conversation_locked"})
    assert (
        call(openai_fake.url, "POST", "/fake/script", {"replies": [{"error": "conversation_locked"}]})[0]
        == 200
    )
    with ai_client(openai_fake, max_retries=2) as client:
        conversation = client.conversations.create()
        for _ in range(2):
            with pytest.raises(openai.BadRequestError) as error:
                client.responses.create(model="m", conversation=conversation.id, input="x")
            # A 400 the SDK does not retry, though it heals in seconds.
            assert refused(error) == (400, "conversation_locked", "conversation")
            assert isinstance(error.value.body, dict) and error.value.body["message"] == LOCKED_MESSAGE
        assert (
            client.responses.create(model="m", conversation=conversation.id, input="x").status == "completed"
        )
    assert len([r for r in openai_fake.requests.snapshot() if r["path"] == "/v1/responses"]) == 3


def test_context_length_exceeded_can_be_injected_as_a_fault(openai_fake: OpenAIFake) -> None:
    status, _ = call(
        openai_fake.url, "POST", "/fake/faults", {"faults": [{"error": "context_length_exceeded"}]}
    )
    assert status == 200
    with ai_client(openai_fake) as client:
        assert bad_request(client, model="m", input="x") == (400, "context_length_exceeded", "input")


def test_rate_limits_carry_retry_headers_the_sdk_honours(openai_fake: OpenAIFake) -> None:
    openai_fake.add_faults(
        {"error": "rate_limit_exceeded", "headers": {"retry-after-ms": "50", "retry-after": "1"}}
    )
    with ai_client(openai_fake) as client, pytest.raises(openai.RateLimitError) as error:
        client.responses.create(model="m", input="x")
    assert refused(error) == (429, "rate_limit_exceeded", None)
    assert error.value.response.headers["retry-after-ms"] == "50"

    # The SDK waits retry-after-ms (not its own 0.5 s or more backoff) and tries again.
    openai_fake.add_faults({"error": "rate_limit_exceeded", "headers": {"retry-after-ms": "50"}})
    with ai_client(openai_fake, max_retries=1) as client:
        started = time.monotonic()
        assert client.responses.create(model="m", input="x").status == "completed"
        assert time.monotonic() - started < 0.45


def test_any_error_body_and_status_can_be_scripted(openai_fake: OpenAIFake) -> None:
    openai_fake.add_faults(
        {"status": 418, "body": {"error": {"message": "teapot", "type": "odd", "param": None, "code": "tea"}}}
    )
    openai_fake.script(
        {
            "error": {
                "status": 409,
                "message": "Busy.",
                "code": "busy",
                "type": "conflict",
                "headers": {"x-a": "b"},
            }
        }
    )
    with ai_client(openai_fake) as client:
        with pytest.raises(openai.APIStatusError) as teapot:
            client.responses.create(model="m", input="x")
        with pytest.raises(openai.ConflictError) as busy:
            client.responses.create(model="m", input="x")
    assert (teapot.value.status_code, teapot.value.code, teapot.value.message) == (
        418,
        "tea",
        "Error code: 418 - teapot",
    )
    assert (busy.value.code, busy.value.type, busy.value.response.headers["x-a"]) == ("busy", "conflict", "b")


def test_insufficient_quota_is_a_429_that_names_its_cause(openai_fake: OpenAIFake) -> None:
    openai_fake.add_faults({"error": "insufficient_quota"})
    with ai_client(openai_fake) as client, pytest.raises(openai.RateLimitError) as error:
        client.responses.create(model="m", input="x")
    assert (error.value.code, error.value.type) == ("insufficient_quota", "insufficient_quota")


def test_a_refusal_is_a_content_part_instead_of_output_text(openai_fake: OpenAIFake) -> None:
    openai_fake.script({"refusal": "I can't help with that."})
    with ai_client(openai_fake) as client:
        response = client.responses.create(model="m", input="x", text=REPLY_TEXT)
    [message] = response.output
    assert message.type == "message" and response.status == "completed"
    [part] = message.content
    assert part.type == "refusal" and part.refusal == "I can't help with that."
    assert response.output_text == ""


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter"])
def test_an_incomplete_answer_is_cut_and_says_why(openai_fake: OpenAIFake, reason: str) -> None:
    text = "A long and careful answer. " * 10
    openai_fake.script({"text": text, "status": "incomplete", "reason": reason})
    with ai_client(openai_fake) as client:
        response = client.responses.create(model="m", input="x")
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == reason
    assert text.startswith(response.output_text) and len(response.output_text) < len(text)
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert response.completed_at is None


def test_max_output_tokens_cuts_a_longer_answer(openai_fake: OpenAIFake) -> None:
    openai_fake.script({"text": "x" * 400, "action": "none"})
    with ai_client(openai_fake) as client:
        response = client.responses.create(model="m", input="x", max_output_tokens=16, text=REPLY_TEXT)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text) == 16 * 4
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.output_text)
    assert response.usage is not None and response.usage.output_tokens == 16


def test_reasoning_can_use_the_whole_output_budget(openai_fake: OpenAIFake) -> None:
    # max_output_tokens counts "visible output tokens and reasoning tokens".
    openai_fake.script({"reasoning_tokens": 500})
    with ai_client(openai_fake) as client:
        response = client.responses.create(model="m", input="x", max_output_tokens=300, text=REPLY_TEXT)
    assert [item.type for item in response.output] == ["reasoning"]
    assert response.output_text == ""
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == response.usage.output_tokens == 300


def test_some_reasoning_leaves_room_for_the_answer(openai_fake: OpenAIFake) -> None:
    openai_fake.script({"reasoning_tokens": 40})
    with ai_client(openai_fake) as client:
        response = client.responses.create(model="m", input="hi", max_output_tokens=300)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.status == "completed" and response.output_text == "Echo: hi"
    assert response.usage is not None and response.usage.output_tokens == 40 + tokens("Echo: hi")


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


# The conversation lock ---------------------------------------------------------------------------------


def concurrently(client: OpenAI, conversations: list[str]) -> list[Any]:
    """One responses.create per conversation id, all at once; each result or the exception raised."""
    results: list[Any] = [None] * len(conversations)

    def run(index: int, conversation_id: str) -> None:
        try:
            results[index] = client.responses.create(model="m", conversation=conversation_id, input="x")
        except openai.APIError as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(conversations)]
    for n, thread in enumerate(threads):
        thread.start()
        if n == 0:
            time.sleep(0.1)  # the first one is in progress before the others arrive
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_a_second_response_while_one_runs_on_the_conversation_is_locked(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake, max_retries=0) as client:
        busy = client.conversations.create().id
        other = client.conversations.create().id
        openai_fake.set_latency(0.5)
        first, second, elsewhere = concurrently(client, [busy, busy, other])
        openai_fake.set_latency(0)
        after = client.responses.create(model="m", conversation=busy, input="later")

    assert isinstance(first, Response) and isinstance(elsewhere, Response)
    assert isinstance(second, openai.BadRequestError)
    assert (second.code, second.param) == ("conversation_locked", "conversation")
    assert isinstance(second.body, dict) and second.body["message"] == LOCKED_MESSAGE
    assert after.status == "completed"
    locked = [r for r in openai_fake.requests.snapshot() if r.get("locked")]
    assert [r["status"] for r in locked] == [400]


def test_a_scripted_delay_also_holds_the_lock_and_the_lock_can_be_turned_off(openai_fake: OpenAIFake) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create().id
        openai_fake.script({"text": "slow", "delay_seconds": 0.5})
        _, locked = concurrently(client, [conversation, conversation])
        assert isinstance(locked, openai.BadRequestError) and locked.code == "conversation_locked"

        status, config = call(openai_fake.url, "POST", "/fake/config", {"conversation_lock": False})
        assert status == 200 and config["conversation_lock"] is False
        openai_fake.script({"text": "slow", "delay_seconds": 0.5})
        results = concurrently(client, [conversation, conversation])
        assert all(isinstance(result, Response) for result in results)


# Tokens and context ------------------------------------------------------------------------------------


def test_input_tokens_count_instructions_context_and_new_input(openai_fake: OpenAIFake) -> None:
    instructions = "Be brief and kind."
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create(items=[{"role": "user", "content": "seeded context"}])
        first = client.responses.create(
            model="m", conversation=conversation.id, instructions=instructions, input="first question"
        )
        second = client.responses.create(
            model="m", conversation=conversation.id, instructions=instructions, input="second"
        )
    assert first.usage is not None and second.usage is not None
    assert first.usage.input_tokens == tokens(instructions) + tokens("seeded context") + tokens(
        "first question"
    )
    assert first.usage.output_tokens == tokens("Echo: first question")
    assert second.usage.input_tokens == (
        tokens(instructions)
        + tokens("seeded context")
        + tokens("first question")
        + tokens("Echo: first question")
        + tokens("second")
    )
    assert second.usage.total_tokens == second.usage.input_tokens + second.usage.output_tokens


def test_past_the_context_window_without_truncation_the_request_fails(openai_fake: OpenAIFake) -> None:
    openai_fake.configure(context_window_tokens=300)
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        client.responses.create(model="m", conversation=conversation.id, input="x" * 500)
        # 125 + 127 tokens already in the conversation, 125 more do not fit in 300.
        openai_fake.script({"raw": "kept for the next answer"})
        assert bad_request(client, model="m", conversation=conversation.id, input="y" * 500) == (
            400,
            "context_length_exceeded",
            "input",
        )
        # The refused call never reached the model: the scripted answer is still next.
        assert client.responses.create(model="m", input="short").output_text == "kept for the next answer"


def test_truncation_auto_drops_the_oldest_items_and_keeps_the_input_bounded(openai_fake: OpenAIFake) -> None:
    assert call(openai_fake.url, "POST", "/fake/config", {"context_window_tokens": 600})[0] == 200
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        usage = []
        for n in range(6):
            response = client.responses.create(
                model="m", conversation=conversation.id, input=f"{n}" * 400, truncation="auto"
            )
            assert response.usage is not None and response.truncation == "auto"
            usage.append(response.usage.input_tokens)
        stored = client.conversations.items.list(conversation.id, limit=100)
    assert max(usage) <= 600 and usage[-1] == usage[-2]
    assert len(stored.data) == 12  # the conversation itself keeps every item
    dropped = [r["truncated_items"] for r in openai_fake.requests.snapshot() if r["path"] == "/v1/responses"]
    assert dropped[0] == 0 and dropped[-1] > 0


def test_compaction_replaces_older_items_once_the_context_passes_the_threshold(
    openai_fake: OpenAIFake,
) -> None:
    with ai_client(openai_fake) as client:
        conversation = client.conversations.create()
        responses = [
            client.responses.create(
                model="m",
                conversation=conversation.id,
                input=f"{n}" * 1600,
                context_management=[{"type": "compaction", "compact_threshold": 1000}],
            )
            for n in range(5)
        ]
        items = client.conversations.items.list(conversation.id, order="asc")

    first, second = responses[0], responses[1]
    assert [item.type for item in first.output] == ["message"]
    # 400 + 402 tokens in the conversation plus 400 new: past 1000, so the history becomes one item.
    compaction = second.output[0]
    assert compaction.type == "compaction" and compaction.encrypted_content
    assert [item.type for item in items.data] == ["compaction", "message", "message"]
    assert items.data[0].id == responses[-1].output[0].id
    input_tokens = [r.usage.input_tokens for r in responses if r.usage is not None]
    assert max(input_tokens[1:]) < 1000 and len(set(input_tokens[1:])) == 1
