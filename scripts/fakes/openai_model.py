"""The fake OpenAI's "model": deterministic answers, token counts, items and scripted replies.

Text of an answer, built from the user texts it answers (the call's input, or when the call has no
input, the user messages at the end of its conversation), joined with `` | ``:

* ``text.format`` of type ``json_schema``: JSON that conforms to the schema. A top-level string
  property ``reply`` gets ``"Thanks! You said: <input>"``; a top-level enum property ``action``
  gets ``"none"`` (or its first value). Other properties: strings ``"<name>: <first 40 chars of
  input>"``, enums their first value, numbers their minimum or 0, booleans false, arrays empty.
* otherwise: ``"Echo: <input>"``.

Tokens are approximated as ``ceil(characters / 4)`` of every text the model reads or writes (message
text and refusals, reasoning summaries, tool arguments and outputs, a compaction item's
``encrypted_content``); an instruction string counts the same way. No per-message overhead: the
figures are for comparing runs, not for billing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from fakes.http_base import ControlError, JsonObject

FIELD_PREVIEW_CHARS = 40
# openai.types.responses.Response.IncompleteDetails.reason: the reasons a response can stop early.
INCOMPLETE_REASONS = ("max_output_tokens", "max_messages", "content_filter", "steered")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def item_text(item: Any) -> str:
    """Everything the model reads in one item (see the module docstring)."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    parts: list[str] = []
    content = item.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                parts.extend(str(part[key]) for key in ("text", "refusal") if isinstance(part.get(key), str))
    for summary in item.get("summary") or []:
        if isinstance(summary, dict) and isinstance(summary.get("text"), str):
            parts.append(summary["text"])
    for key in ("encrypted_content", "arguments", "output", "input"):
        if isinstance(item.get(key), str):
            parts.append(item[key])
    return "".join(parts)


def items_tokens(items: list[JsonObject]) -> int:
    return sum(approx_tokens(item_text(item)) for item in items)


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


def trailing_user_texts(items: list[JsonObject]) -> list[str]:
    """What a call without input answers: the user messages after the last assistant message, else
    the last user message of the conversation."""
    tail: list[JsonObject] = []
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "assistant":
            break
        tail.append(item)
    texts = user_texts(list(reversed(tail)))
    if texts:
        return texts
    earlier = [user_texts([item]) for item in items]
    return next((found for found in reversed(earlier) if found), [])


def as_items(raw_items: list[Any]) -> list[JsonObject]:
    """Inputs as the Conversations API lists them: typed items with ids and content parts."""
    items: list[JsonObject] = []
    for raw in raw_items:
        if isinstance(raw, str):
            item: JsonObject = {"type": "message", "role": "user", "content": raw}
        elif isinstance(raw, dict):
            item = json.loads(json.dumps(raw))
        else:
            continue
        item.setdefault("type", "message")
        if item["type"] == "item_reference":
            continue  # a reference to an item the conversation already holds
        item.setdefault("id", new_id(_ID_PREFIX.get(item["type"], "item")))
        if item["type"] == "message":
            item.setdefault("status", "completed")
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
        items.append(item)
    return items


_ID_PREFIX = {"message": "msg", "reasoning": "rs", "compaction": "cmp", "function_call": "fc"}


def compaction_item(replaced: list[JsonObject]) -> JsonObject:
    """One ``compaction`` item standing for ``replaced`` (openai.types.responses.ResponseCompactionItem:
    id, type "compaction", encrypted_content; the content is opaque to clients)."""
    digest = hashlib.sha256(json.dumps(replaced, sort_keys=True).encode()).digest()
    summary = {"items": len(replaced), "tokens": items_tokens(replaced), "digest": digest.hex()[:16]}
    return {
        "id": new_id("cmp"),
        "type": "compaction",
        "encrypted_content": base64.b64encode(json.dumps(summary).encode()).decode(),
    }


@dataclass(frozen=True)
class ScriptedReply:
    """The next answer of responses.create, queued by a test (see the fake's ``script``)."""

    text: str | None = None
    action: str | None = None
    raw: str | None = None
    refusal: str | None = None
    incomplete: str | None = None
    reasoning_tokens: int = 0
    delay_seconds: float = 0.0
    error: JsonObject | None = None

    @classmethod
    def parse(cls, raw: Any, error_presets: dict[str, Any]) -> ScriptedReply:
        if not isinstance(raw, dict):
            raise ControlError("each scripted reply must be an object")
        known = {"text", "action", "raw", "status", "reason", "refusal", "reasoning_tokens", "delay_seconds"}
        unknown = set(raw) - known - {"error"}
        if unknown:
            raise ControlError(f"unknown scripted reply keys: {', '.join(sorted(unknown))}")
        for key in ("text", "action", "raw", "refusal"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ControlError(f"{key} must be a string")
        status, reason = raw.get("status"), raw.get("reason")
        if status not in (None, "completed", "incomplete"):
            raise ControlError("status must be completed or incomplete")
        if reason is not None and reason not in INCOMPLETE_REASONS:
            raise ControlError(f"reason must be one of {', '.join(INCOMPLETE_REASONS)}")
        if reason is not None and status != "incomplete":
            raise ControlError("a reason needs status incomplete")
        reasoning = raw.get("reasoning_tokens", 0)
        delay = raw.get("delay_seconds", 0)
        if not isinstance(reasoning, int) or isinstance(reasoning, bool) or reasoning < 0:
            raise ControlError("reasoning_tokens must be a non-negative integer")
        if not isinstance(delay, int | float) or delay < 0:
            raise ControlError("delay_seconds must be a non-negative number")
        error = _parse_error(raw.get("error"), error_presets)
        says = any(raw.get(k) is not None for k in ("raw", "text", "action", "refusal"))
        if error is None and not says and not reasoning:
            raise ControlError("a scripted reply needs raw, text, action, refusal, reasoning_tokens or error")
        return cls(
            text=raw.get("text"),
            action=raw.get("action"),
            raw=raw.get("raw"),
            refusal=raw.get("refusal"),
            incomplete=(reason or "max_output_tokens") if status == "incomplete" else None,
            reasoning_tokens=reasoning,
            delay_seconds=float(delay),
            error=error,
        )


def _parse_error(value: Any, presets: dict[str, Any]) -> JsonObject | None:
    """A scripted error: a preset name, or {"status", "message", "type", "param", "code", "headers"}."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in presets:
            raise ControlError(f"unknown error preset {value!r}; known: {', '.join(sorted(presets))}")
        return {"preset": value}
    if not isinstance(value, dict):
        raise ControlError("error must be a preset name or an object")
    unknown = set(value) - {"preset", "status", "message", "type", "param", "code", "headers"}
    if unknown:
        raise ControlError(f"unknown error keys: {', '.join(sorted(unknown))}")
    if "preset" in value and value["preset"] not in presets:
        raise ControlError(f"unknown error preset {value['preset']!r}")
    status = value.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise ControlError("error status must be 400-599")
    if "preset" not in value and (status is None or not isinstance(value.get("message"), str)):
        raise ControlError("an error without a preset needs a status and a message")
    headers = value.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ControlError("error headers must map names to strings")
    return dict(value)


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


def structured_output(schema: JsonObject, texts: list[str], scripted: ScriptedReply | None) -> Any:
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


def output_text(text_format: Any, texts: list[str], scripted: ScriptedReply | None) -> str:
    if scripted is not None and scripted.raw is not None:
        return scripted.raw
    # A model writes characters, not JSON escapes: "Привет" is six characters of output (and of the
    # token estimate), not thirty-six of "\\u041f...".
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
        answer = structured_output(schema if isinstance(schema, dict) else {}, texts, scripted)
        return json.dumps(answer, ensure_ascii=False)
    text = (
        scripted.text if scripted is not None and scripted.text is not None else f"Echo: {' | '.join(texts)}"
    )
    if isinstance(text_format, dict) and text_format.get("type") == "json_object":
        return json.dumps({"reply": text}, ensure_ascii=False)
    return text
