"""A fake of the OpenAI Responses and Conversations APIs, driven by the real ``openai`` SDK.

Point the SDK at it with the base URL (the SDK adds the ``/responses`` style paths itself)::

    client = OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=2, timeout=2.0)

API routes (any non-empty bearer token is accepted):

    POST /v1/conversations              create a ``conv_...`` (optional ``items``, ``metadata``)
    GET  /v1/conversations/{id}         retrieve it
    GET  /v1/conversations/{id}/items   the items stored in it (inputs and replies, oldest first)
    POST /v1/responses                  answer deterministically from the input (below)
    GET  /v1/responses/{id}             a response created earlier

A response's text is built from the user input texts of this call, joined with `` | ``:

* ``text.format`` of type ``json_schema``: JSON that conforms to the schema. A top-level string
  property ``reply`` gets ``"Thanks! You said: <input>"``; a top-level enum property ``action``
  gets ``"none"`` (or its first value). Other properties: strings ``"<name>: <first 40 chars of
  input>"``, enums their first value, numbers their minimum or 0, booleans false, arrays empty.
* otherwise: ``"Echo: <input>"``.

A conversation that does not exist answers 404, as the real service does, so callers must create
conversations through this fake (the fake keeps them in memory only).

Control routes besides the shared ones (see ``fakes.http_base``):

    POST /fake/script  {"replies": [{"text": "...", "action": "handoff"},
                                    {"raw": "<exact output text>"},
                                    {"text": "...", "status": "incomplete"}]}
                       queue the next replies (FIFO); ``text``/``action`` fill ``reply``/``action``
                       when a JSON schema is requested; ``status: incomplete`` answers as a reply cut
                       by ``max_output_tokens``
    GET  /fake/conversations   every stored conversation with its items

Run stand-alone with ``python -m fakes.openai_fake --port 8082``.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from fakes.http_base import ControlError, ControlRoute, FakeServer, JsonObject, Reply, Request, run_cli

DEFAULT_PORT = 8082
PORT_ENV = "AI_COMMS_OPENAI_FAKE_PORT"
FIELD_PREVIEW_CHARS = 40

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", "invalid_request"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", "permission_denied"),
    404: ("Not found.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", "server_error"),
    503: ("The engine is currently overloaded, please try again later.", "server_error", "overloaded"),
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass(frozen=True)
class ScriptedReply:
    text: str | None = None
    action: str | None = None
    raw: str | None = None
    incomplete: bool = False

    @classmethod
    def parse(cls, raw: Any) -> ScriptedReply:
        if not isinstance(raw, dict):
            raise ControlError("each scripted reply must be an object")
        text, action, exact, status = raw.get("text"), raw.get("action"), raw.get("raw"), raw.get("status")
        if exact is not None and not isinstance(exact, str):
            raise ControlError("raw must be a string")
        if text is not None and not isinstance(text, str):
            raise ControlError("text must be a string")
        if action is not None and not isinstance(action, str):
            raise ControlError("action must be a string")
        if exact is None and text is None and action is None:
            raise ControlError("a scripted reply needs raw, text or action")
        if status not in (None, "completed", "incomplete"):
            raise ControlError("status must be completed or incomplete")
        return cls(text=text, action=action, raw=exact, incomplete=status == "incomplete")


def user_texts(input_value: Any) -> list[str]:
    """The user-authored text parts of a Responses ``input`` (a string or a list of items)."""
    if isinstance(input_value, str):
        return [input_value]
    texts: list[str] = []
    if not isinstance(input_value, list):
        return texts
    for item in input_value:
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            continue
        if item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "input_text"
                and isinstance(part.get("text"), str)
            )
    return texts


class SchemaFiller:
    """Builds a deterministic value that conforms to a (structured-outputs subset) JSON schema."""

    def __init__(self, root: JsonObject, context: str) -> None:
        self._root = root
        self._context = context[:FIELD_PREVIEW_CHARS]

    def fill(self, schema: Any, name: str = "value", depth: int = 0) -> Any:
        if depth > 32 or not isinstance(schema, dict):
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for combinator in ("anyOf", "oneOf", "allOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.fill((usable or options)[0], name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None and "properties" in schema:
            kind = "object"
        if kind == "object":
            properties = schema.get("properties") or {}
            return {key: self.fill(sub, key, depth + 1) for key, sub in properties.items()}
        if kind == "array":
            count = int(schema.get("minItems") or 0)
            return [self.fill(schema.get("items") or {}, name, depth + 1) for _ in range(count)]
        if kind == "string":
            return f"{name}: {self._context}"
        if kind in ("integer", "number"):
            minimum = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            return int(minimum) if kind == "integer" else minimum
        if kind == "boolean":
            return False
        return None

    def _resolve(self, schema: JsonObject) -> JsonObject:
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = self._root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}


def structured_output(
    schema: JsonObject, texts: list[str], scripted: ScriptedReply | None
) -> JsonObject | Any:
    joined = " | ".join(texts)
    context = scripted.text if scripted is not None and scripted.text is not None else joined
    value = SchemaFiller(schema, context).fill(schema)
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties") or {}
    reply_schema = properties.get("reply")
    if isinstance(reply_schema, dict) and "string" in _types(reply_schema):
        value["reply"] = (
            scripted.text if scripted and scripted.text is not None else f"Thanks! You said: {joined}"
        )
    action_schema = properties.get("action")
    if (
        isinstance(action_schema, dict)
        and isinstance(action_schema.get("enum"), list)
        and action_schema["enum"]
    ):
        enum = action_schema["enum"]
        value["action"] = (
            scripted.action if scripted and scripted.action else ("none" if "none" in enum else enum[0])
        )
    return value


def _types(schema: JsonObject) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


class OpenAIFake(FakeServer):
    name: ClassVar[str] = "openai-fake"

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        super().__init__(port, verbose=verbose)
        self._lock = threading.Lock()
        self._conversations: dict[str, JsonObject] = {}
        self._responses: dict[str, JsonObject] = {}
        self._script: deque[ScriptedReply] = deque()

    # in-process control ---------------------------------------------------------------------------

    def script(self, *replies: JsonObject) -> None:
        parsed = [ScriptedReply.parse(raw) for raw in replies]
        with self._lock:
            self._script.extend(parsed)

    def conversations(self) -> list[JsonObject]:
        with self._lock:
            return json.loads(json.dumps(list(self._conversations.values())))  # type: ignore[no-any-return]

    def reset_state(self) -> None:
        with self._lock:
            self._conversations.clear()
            self._responses.clear()
            self._script.clear()

    def control_routes(self) -> dict[tuple[str, str], ControlRoute]:
        return {
            ("POST", "/fake/script"): self._control_script,
            ("GET", "/fake/conversations"): lambda _: Reply(200, self.conversations()),
        }

    def _control_script(self, request: Request) -> Reply:
        payload = request.json()
        replies = payload.get("replies") if isinstance(payload, dict) else None
        if not isinstance(replies, list):
            raise ControlError('expected {"replies": [...]}')
        self.script(*replies)
        with self._lock:
            return Reply(200, {"queued": len(self._script)})

    # API --------------------------------------------------------------------------------------------

    def error_reply(self, status: int, message: str | None = None) -> Reply:
        default_message, kind, code = _ERRORS.get(
            status, ("Request failed.", "server_error" if status >= 500 else "invalid_request_error", None)
        )
        body = {"error": {"message": message or default_message, "type": kind, "param": None, "code": code}}
        return Reply(status, body, {"x-request-id": _new_id("req")})

    def log_fields(self, request: Request) -> JsonObject:
        conversation_id: Any = None
        parts = _api_parts(request.path)
        if len(parts) >= 2 and parts[0] == "conversations":
            conversation_id = parts[1]
        elif parts == ["responses"]:
            try:
                body = request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                conversation_id = _conversation_id(body.get("conversation"))
        return {"conversation_id": conversation_id}

    def handle_api(self, request: Request) -> Reply:
        token = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        if not token:
            return self.error_reply(401, "You didn't provide an API key.")
        parts = _api_parts(request.path)
        try:
            body = request.json() if request.method == "POST" else {}
        except ValueError:
            return self.error_reply(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return self.error_reply(400, "The request body must be a JSON object.")
        match request.method, parts:
            case "POST", ["conversations"]:
                reply = self._create_conversation(body)
            case "GET", ["conversations", conversation_id]:
                reply = self._get_conversation(conversation_id)
            case "GET", ["conversations", conversation_id, "items"]:
                reply = self._list_items(conversation_id)
            case "POST", ["responses"]:
                reply = self._create_response(body)
            case "GET", ["responses", response_id]:
                reply = self._get_response(response_id)
            case _:
                reply = self.error_reply(404, f"Invalid URL ({request.method} {request.path})")
        reply.headers.setdefault("x-request-id", _new_id("req"))
        return reply

    def _create_conversation(self, body: JsonObject) -> Reply:
        metadata = body.get("metadata") or {}
        items = body.get("items") or []
        if not isinstance(metadata, dict) or not isinstance(items, list):
            return self.error_reply(400, "metadata must be an object and items a list.")
        conversation_id = _new_id("conv")
        conversation: JsonObject = {
            "id": conversation_id,
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": metadata,
        }
        with self._lock:
            self._conversations[conversation_id] = {**conversation, "items": _as_items(items)}
        return Reply(200, conversation, log={"conversation_id": conversation_id})

    def _get_conversation(self, conversation_id: str) -> Reply:
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return self._missing_conversation(conversation_id)
            return Reply(200, {k: v for k, v in stored.items() if k != "items"})

    def _list_items(self, conversation_id: str) -> Reply:
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return self._missing_conversation(conversation_id)
            items = list(stored["items"])
        page = {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"] if items else "",
            "last_id": items[-1]["id"] if items else "",
            "has_more": False,
        }
        return Reply(200, page)

    def _get_response(self, response_id: str) -> Reply:
        with self._lock:
            stored = self._responses.get(response_id)
        if stored is None:
            return self.error_reply(404, f"Response with id '{response_id}' not found.")
        return Reply(200, stored)

    def _missing_conversation(self, conversation_id: str) -> Reply:
        reply = self.error_reply(404, f"Conversation with id '{conversation_id}' not found.")
        reply.body["error"].update({"param": "conversation", "code": None})
        return reply

    def _create_response(self, body: JsonObject) -> Reply:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            reply = self.error_reply(400, "Missing required parameter: 'model'.")
            reply.body["error"].update({"param": "model", "code": "missing_required_parameter"})
            return reply
        input_value = body.get("input", [])
        if not isinstance(input_value, str | list):
            return self.error_reply(400, "Invalid type for 'input': expected a string or an array.")
        text_config = body.get("text") or {}
        text_format = text_config.get("format") if isinstance(text_config, dict) else None
        schema: JsonObject | None = None
        if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
            schema = text_format.get("schema")
            if not isinstance(schema, dict) or not isinstance(text_format.get("name"), str):
                return self.error_reply(400, "text.format json_schema needs a name and a schema object.")

        conversation_id = _conversation_id(body.get("conversation"))
        with self._lock:
            if conversation_id is not None and conversation_id not in self._conversations:
                return self._missing_conversation(conversation_id)
            scripted = self._script.popleft() if self._script else None

        texts = user_texts(input_value)
        output_text = _output_text(schema, text_format, texts, scripted)
        response = self._response_object(
            body=body,
            model=model,
            text_format=text_format,
            output_text=output_text,
            texts=texts,
            scripted=scripted,
        )
        with self._lock:
            self._responses[response["id"]] = response
            if conversation_id is not None:
                items = self._conversations[conversation_id]["items"]
                items.extend(_as_items(input_value if isinstance(input_value, list) else [input_value]))
                items.extend(response["output"])
        return Reply(200, response, {"openai-processing-ms": "1"})

    def _response_object(
        self,
        *,
        body: JsonObject,
        model: str,
        text_format: Any,
        output_text: str,
        texts: list[str],
        scripted: ScriptedReply | None,
    ) -> JsonObject:
        now = time.time()
        incomplete = scripted is not None and scripted.incomplete
        instructions = body.get("instructions")
        input_tokens = _approx_tokens(" ".join(texts)) + _approx_tokens(
            instructions if isinstance(instructions, str) else ""
        )
        output_tokens = _approx_tokens(output_text)
        conversation_id = _conversation_id(body.get("conversation"))
        message = {
            "type": "message",
            "id": _new_id("msg"),
            "role": "assistant",
            "status": "incomplete" if incomplete else "completed",
            "content": [{"type": "output_text", "text": output_text, "annotations": [], "logprobs": []}],
        }
        return {
            "id": _new_id("resp"),
            "object": "response",
            "created_at": int(now),
            "completed_at": None if incomplete else int(now),
            "status": "incomplete" if incomplete else "completed",
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": model,
            "output": [message],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": text_format if isinstance(text_format, dict) else {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": body.get("metadata") or {},
            "conversation": {"id": conversation_id} if conversation_id is not None else None,
        }


def _output_text(
    schema: JsonObject | None, text_format: Any, texts: list[str], scripted: ScriptedReply | None
) -> str:
    if scripted is not None and scripted.raw is not None:
        return scripted.raw
    if schema is not None:
        return json.dumps(structured_output(schema, texts, scripted))
    text = (
        scripted.text if scripted is not None and scripted.text is not None else f"Echo: {' | '.join(texts)}"
    )
    if isinstance(text_format, dict) and text_format.get("type") == "json_object":
        return json.dumps({"reply": text})
    return text


def _api_parts(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    return parts[1:] if parts[:1] == ["v1"] else parts


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _as_items(raw_items: list[Any]) -> list[JsonObject]:
    """Store inputs the way the Conversations API lists them: typed items with ids."""
    items: list[JsonObject] = []
    for raw in raw_items:
        if isinstance(raw, str):
            item: JsonObject = {"type": "message", "role": "user", "content": raw}
        elif isinstance(raw, dict):
            item = dict(raw)
        else:
            continue
        item.setdefault("type", "message")
        item.setdefault("id", _new_id("msg"))
        if item["type"] == "message":
            item.setdefault("status", "completed")
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
        items.append(item)
    return items


def main() -> None:
    run_cli(
        OpenAIFake,
        default_port=DEFAULT_PORT,
        port_env=PORT_ENV,
        description="Fake OpenAI Responses/Conversations API on 127.0.0.1.",
    )


if __name__ == "__main__":
    main()
