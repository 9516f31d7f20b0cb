"""A fake of the OpenAI Responses and Conversations APIs, driven by the real ``openai`` SDK.

Point the SDK at it with the base URL (the SDK adds the ``/responses`` style paths itself)::

    client = OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=2, timeout=2.0)

API routes (any non-empty bearer token is accepted):

    POST /v1/conversations                create a ``conv_...`` (optional ``items``, ``metadata``)
    GET  /v1/conversations/{id}           retrieve it
    POST /v1/conversations/{id}/items     add items (at most 20 a call)
    GET  /v1/conversations/{id}/items     its items: ``order`` (default desc), ``limit`` (1-100,
                                          default 20), ``after`` (an item id), as the API pages them
    POST /v1/responses                    answer deterministically (``fakes.openai_model``)
    GET  /v1/responses/{id}               a response created earlier

Every body is checked against the SDK's own request types and the documented rules
(``fakes.openai_rules``); a refusal is the API's 400 error shape.

How a response treats its conversation, as ResponseCreateParamsBase documents ``conversation``:
"Items from this conversation are prepended to `input_items` for this response request. Input items
and output items from this response are automatically added to this conversation after this response
completes." ``input`` may be omitted: the model answers the conversation as it stands.
``previous_response_id`` (never with ``conversation``) continues from that response's input and output.

Context and tokens (``usage``; tokens are ``ceil(chars / 4)``, see ``fakes.openai_model``):

* ``usage.input_tokens`` = instructions + the context the model reads (the conversation, after
  compaction and truncation) + the new input; ``output_tokens`` = reasoning + visible text.
* The model's context window is ``context_window_tokens`` (per fake; small by default so tests reach
  it). ``truncation: "auto"`` drops items from the beginning of the conversation until the input fits;
  ``truncation`` disabled (the default) answers 400 ``context_length_exceeded`` instead
  (ResponseCreateParamsBase.truncation docstring). The stored conversation keeps every item either way.
* ``context_management: [{"type": "compaction", "compact_threshold": N}]``: once the conversation plus
  the new input exceeds N tokens, the conversation's older items are replaced by one ``compaction`` item
  (openai.types.responses.ResponseCompactionItem), which also opens the response's output, so later
  calls read the compaction item instead of the history and input tokens stay bounded.
* ``max_output_tokens`` bounds reasoning plus visible output (ResponseCreateParamsBase
  .max_output_tokens: "including visible output tokens and reasoning tokens"): past it, the text is cut
  and the response is ``incomplete`` with ``incomplete_details.reason`` ``max_output_tokens``; reasoning
  that uses the whole budget leaves no message at all.
* While a response on a conversation is in progress (latency, a slow fault or a scripted delay), another
  response on the same conversation answers 400 ``conversation_locked``, as the API does
  (``conversation_lock=False`` turns that off).

Control routes besides the shared ones (see ``fakes.http_base``):

    POST /fake/script  {"replies": [{"text": "...", "action": "handoff"},
                                    {"raw": "<exact output text>"},
                                    {"refusal": "I can't help with that."},
                                    {"text": "...", "status": "incomplete", "reason": "content_filter"},
                                    {"reasoning_tokens": 500},
                                    {"text": "...", "delay_seconds": 2},
                                    {"error": "conversation_locked"},
                                    {"error": {"status": 429, "message": "...", "code": "...",
                                               "headers": {"retry-after-ms": "20"}}}]}
                       queue the next answers of POST /v1/responses (FIFO)
    POST /fake/faults  {"faults": [{"error": "rate_limit_exceeded", "headers": {"retry-after": "1"}}]}
                       also takes the presets below (any API call consumes a fault)
    POST /fake/config  {"context_window_tokens": 4000, "conversation_lock": true}
    GET  /fake/conversations   every stored conversation with its items

Error presets (``ERROR_PRESETS``): conversation_locked, context_length_exceeded, rate_limit_exceeded,
insufficient_quota, invalid_api_key, server_error, overloaded.

Run stand-alone with ``python -m fakes.openai_fake --port 8082``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fakes.http_base import (
    HOST,
    ControlError,
    ControlRoute,
    FakeServer,
    Fault,
    JsonObject,
    Reply,
    Request,
    run_cli,
)
from fakes.openai_model import (
    ScriptedReply,
    approx_tokens,
    as_items,
    compaction_item,
    items_tokens,
    new_id,
    output_text,
    trailing_user_texts,
    user_texts,
)
from fakes.openai_rules import (
    DEFAULT_ITEMS_LIMIT,
    ApiError,
    conversation_create_error,
    items_create_error,
    items_list_query,
    response_create_error,
)

DEFAULT_PORT = 8082
PORT_ENV = "AI_COMMS_OPENAI_FAKE_PORT"
# Small on purpose, so tests can reach it; real models have 128k and more (per fake, /fake/config).
DEFAULT_CONTEXT_WINDOW_TOKENS = 16_384

# Error answers by status, for injected faults that name only a status.
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", "invalid_request"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", "permission_denied"),
    404: ("Not found.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", "server_error"),
    503: ("The engine is currently overloaded, please try again later.", "server_error", "overloaded"),
}

# Named errors, as the API answers them.
ERROR_PRESETS: dict[str, ApiError] = {
    # Captured from the API (github.com/paulgmiller/careme/issues/379): a response is already running
    # on the conversation. A 400 that heals in seconds; the SDK does not retry a 400.
    "conversation_locked": ApiError(
        400,
        "Another process is currently operating on this conversation. Please retry in a few seconds.",
        "invalid_request_error",
        "conversation",
        "conversation_locked",
    ),
    # ResponseCreateParamsBase.truncation: "`disabled` (default): If the input size will exceed the
    # context window size for a model, the request will fail with a 400 error"; wording as the API
    # answers it (github.com/the-open-agent/openagent/issues/2344, github.com/dyad-sh/dyad/issues/1672).
    "context_length_exceeded": ApiError(
        400,
        "Your input exceeds the context window of this model. Please adjust your input and try again.",
        "invalid_request_error",
        "input",
        "context_length_exceeded",
    ),
    # OpenAI error codes guide (https://platform.openai.com/docs/guides/error-codes): "429 - Rate limit
    # reached for requests" heals after a wait; the SDK honours retry-after-ms / retry-after
    # (openai._base_client._parse_retry_after_header) up to MAX_RETRY_AFTER_DELAY (120 s), and does
    # not retry at all past it.
    "rate_limit_exceeded": ApiError(
        429,
        "Rate limit reached for gpt-4.1-mini in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 1s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        None,
        "rate_limit_exceeded",
    ),
    # Same guide: "429 - You exceeded your current quota": also a 429, but waiting does not heal it.
    "insufficient_quota": ApiError(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "insufficient_quota",
        None,
        "insufficient_quota",
    ),
    "invalid_api_key": ApiError(
        401, "Incorrect API key provided: sk-***.", "invalid_request_error", None, "invalid_api_key"
    ),
    "server_error": ApiError(
        500, "The server had an error while processing your request.", "server_error", None, "server_error"
    ),
    "overloaded": ApiError(
        503, "The engine is currently overloaded, please try again later.", "server_error", None, "overloaded"
    ),
}


@dataclass
class StoredConversation:
    id: str
    created_at: int
    metadata: JsonObject
    items: list[JsonObject] = field(default_factory=list)

    def public(self) -> JsonObject:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


def _api_reply(error: ApiError) -> Reply:
    return Reply(error.status, error.body(), dict(error.headers))


class OpenAIFake(FakeServer):
    name: ClassVar[str] = "openai-fake"

    def __init__(
        self,
        port: int = 0,
        *,
        verbose: bool = False,
        host: str = HOST,
        context_window_tokens: int = DEFAULT_CONTEXT_WINDOW_TOKENS,
        conversation_lock: bool = True,
    ) -> None:
        super().__init__(port, verbose=verbose, host=host)
        self._lock = threading.Lock()
        self._conversations: dict[str, StoredConversation] = {}
        self._responses: dict[str, JsonObject] = {}
        self._contexts: dict[str, list[JsonObject]] = {}
        self._script: deque[ScriptedReply] = deque()
        self._busy: set[str] = set()
        self.context_window_tokens = context_window_tokens
        self.conversation_lock = conversation_lock

    # in-process control ---------------------------------------------------------------------------

    def script(self, *replies: JsonObject) -> None:
        """Queue the next answers of responses.create (see the module docstring for the keys)."""
        parsed = [ScriptedReply.parse(raw, ERROR_PRESETS) for raw in replies]
        with self._lock:
            self._script.extend(parsed)

    def configure(
        self, *, context_window_tokens: int | None = None, conversation_lock: bool | None = None
    ) -> None:
        if context_window_tokens is not None:
            if context_window_tokens < 1:
                raise ValueError("context_window_tokens must be positive")
            self.context_window_tokens = context_window_tokens
        if conversation_lock is not None:
            self.conversation_lock = conversation_lock

    def conversations(self) -> list[JsonObject]:
        with self._lock:
            return json.loads(  # type: ignore[no-any-return]
                json.dumps([{**c.public(), "items": c.items} for c in self._conversations.values()])
            )

    def reset_state(self) -> None:
        with self._lock:
            self._conversations.clear()
            self._responses.clear()
            self._contexts.clear()
            self._script.clear()

    def control_routes(self) -> dict[tuple[str, str], ControlRoute]:
        return {
            ("POST", "/fake/script"): self._control_script,
            ("POST", "/fake/config"): self._control_config,
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

    def _control_config(self, request: Request) -> Reply:
        payload = request.json()
        if not isinstance(payload, dict) or set(payload) - {"context_window_tokens", "conversation_lock"}:
            raise ControlError('expected {"context_window_tokens": <int>, "conversation_lock": <bool>}')
        window, lock = payload.get("context_window_tokens"), payload.get("conversation_lock")
        if window is not None and (not isinstance(window, int) or isinstance(window, bool)):
            raise ControlError("context_window_tokens must be an integer")
        if lock is not None and not isinstance(lock, bool):
            raise ControlError("conversation_lock must be a boolean")
        self.configure(context_window_tokens=window, conversation_lock=lock)
        return Reply(
            200,
            {
                "context_window_tokens": self.context_window_tokens,
                "conversation_lock": self.conversation_lock,
            },
        )

    # errors ------------------------------------------------------------------------------------------

    def error_reply(self, status: int, message: str | None = None) -> Reply:
        default_message, kind, code = _ERRORS.get(
            status, ("Request failed.", "server_error" if status >= 500 else "invalid_request_error", None)
        )
        reply = _api_reply(ApiError(status, message or default_message, kind, None, code))
        reply.headers["x-request-id"] = new_id("req")
        return reply

    def check_fault(self, fault: Fault) -> None:
        if fault.code is not None or fault.format is not None:
            raise ValueError("the OpenAI fake takes an error preset name, not a code or format")
        if fault.error is not None and fault.error not in ERROR_PRESETS:
            raise ValueError(
                f"unknown error preset {fault.error!r}; known: {', '.join(sorted(ERROR_PRESETS))}"
            )

    def fault_reply(self, fault: Fault) -> Reply:
        if fault.error is None:
            return super().fault_reply(fault)
        preset = ERROR_PRESETS[fault.error]
        status = fault.status if fault.status is not None else preset.status
        return _api_reply(ApiError(status, preset.message, preset.type, preset.param, preset.code))

    def _scripted_error(self, spec: JsonObject) -> Reply:
        preset = ERROR_PRESETS.get(str(spec.get("preset")))
        base = preset or ApiError(int(spec["status"]), str(spec["message"]))
        error = ApiError(
            int(spec.get("status", base.status)),
            str(spec.get("message", base.message)),
            str(spec.get("type", base.type)),
            spec.get("param", base.param),
            spec.get("code", base.code),
            dict(spec.get("headers", {})),
        )
        return _api_reply(error)

    # the conversation lock ---------------------------------------------------------------------------

    def admission(self, request: Request) -> contextlib.AbstractContextManager[Reply | None]:
        if (
            not self.conversation_lock
            or request.method != "POST"
            or _api_parts(request.path) != ["responses"]
        ):
            return contextlib.nullcontext()
        try:
            body = request.json()
        except ValueError:
            return contextlib.nullcontext()
        conversation_id = _conversation_id(body.get("conversation")) if isinstance(body, dict) else None
        if conversation_id is None:
            return contextlib.nullcontext()
        return self._holding(conversation_id)

    @contextlib.contextmanager
    def _holding(self, conversation_id: str) -> Iterator[Reply | None]:
        with self._lock:
            busy = conversation_id in self._busy
            if not busy:
                self._busy.add(conversation_id)
        if busy:
            reply = _api_reply(ERROR_PRESETS["conversation_locked"])
            reply.log["locked"] = True
            yield reply
            return
        try:
            yield None
        finally:
            with self._lock:
                self._busy.discard(conversation_id)

    # API --------------------------------------------------------------------------------------------

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
            case "POST", ["conversations", conversation_id, "items"]:
                reply = self._add_items(conversation_id, body)
            case "GET", ["conversations", conversation_id, "items"]:
                reply = self._list_items(conversation_id, request.query)
            case "POST", ["responses"]:
                reply = self._create_response(body)
            case "GET", ["responses", response_id]:
                reply = self._get_response(response_id)
            case _:
                reply = self.error_reply(404, f"Invalid URL ({request.method} {request.path})")
        reply.headers.setdefault("x-request-id", new_id("req"))
        return reply

    def _create_conversation(self, body: JsonObject) -> Reply:
        if problem := conversation_create_error(body):
            return _api_reply(problem)
        conversation = StoredConversation(
            id=new_id("conv"), created_at=int(time.time()), metadata=dict(body.get("metadata") or {})
        )
        conversation.items = as_items(list(body.get("items") or []))
        with self._lock:
            self._conversations[conversation.id] = conversation
        return Reply(200, conversation.public(), log={"conversation_id": conversation.id})

    def _get_conversation(self, conversation_id: str) -> Reply:
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return self._missing_conversation(conversation_id)
            return Reply(200, stored.public())

    def _add_items(self, conversation_id: str, body: JsonObject) -> Reply:
        if problem := items_create_error(body):
            return _api_reply(problem)
        added = as_items(list(body["items"]))
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return self._missing_conversation(conversation_id)
            stored.items.extend(added)
        return Reply(200, _page(added, has_more=False))

    def _list_items(self, conversation_id: str, query: dict[str, list[str]]) -> Reply:
        params = items_list_query(query)
        if isinstance(params, ApiError):
            return _api_reply(params)
        with self._lock:
            stored = self._conversations.get(conversation_id)
            if stored is None:
                return self._missing_conversation(conversation_id)
            items = json.loads(json.dumps(stored.items))
        # ItemListParams.order: "The order to return the input items in. Default is `desc`."
        if params.get("order", "desc") == "desc":
            items.reverse()
        # ItemListParams.after: "An item ID to list items after, used in pagination."
        after = params.get("after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", DEFAULT_ITEMS_LIMIT))
        return Reply(200, _page(items[:limit], has_more=len(items) > limit))

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

    # responses.create -----------------------------------------------------------------------------------

    def _create_response(self, body: JsonObject) -> Reply:
        if problem := response_create_error(body):
            return _api_reply(problem)
        conversation_id = _conversation_id(body.get("conversation"))
        previous_id = body.get("previous_response_id")
        with self._lock:
            if conversation_id is not None and conversation_id not in self._conversations:
                return self._missing_conversation(conversation_id)
            if previous_id is not None and previous_id not in self._contexts:
                reply = self.error_reply(404, f"Previous response with id '{previous_id}' not found.")
                reply.body["error"]["param"] = "previous_response_id"
                return reply
            scripted = self._script.popleft() if self._script else None
            if conversation_id is not None:
                history = json.loads(json.dumps(self._conversations[conversation_id].items))
            else:
                history = json.loads(json.dumps(self._contexts.get(str(previous_id), [])))
        if scripted is not None and scripted.delay_seconds:
            self.sleep(scripted.delay_seconds)
        if scripted is not None and scripted.error is not None:
            return self._scripted_error(scripted.error)

        input_value = body.get("input")
        new_items = as_items(
            [] if input_value is None else (input_value if isinstance(input_value, list) else [input_value])
        )
        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else ""
        # Compaction first: it replaces the older items of the conversation itself.
        compaction = _compaction(body, history, new_items)
        if compaction is not None:
            history = [compaction]
        # Then the window: what the model reads must fit.
        read, dropped = _fit(history, new_items, str(instructions), self.context_window_tokens, body)
        if read is None:
            if scripted is not None:  # the request never reached the model: the answer stays queued
                with self._lock:
                    self._script.appendleft(scripted)
            return _api_reply(ERROR_PRESETS["context_length_exceeded"])
        input_tokens = approx_tokens(str(instructions)) + items_tokens(read) + items_tokens(new_items)

        texts = user_texts(input_value) if input_value is not None else trailing_user_texts(history)
        response = self._respond(body, texts, scripted, input_tokens, compaction)

        with self._lock:
            self._responses[response["id"]] = response
            self._contexts[response["id"]] = [*history, *new_items, *_non_compaction(response["output"])]
            if conversation_id is not None:
                stored = self._conversations[conversation_id]
                if compaction is not None:
                    stored.items = [compaction]
                stored.items.extend(new_items)
                stored.items.extend(_non_compaction(response["output"]))
        log = {
            "response_id": response["id"],
            "usage": response["usage"],
            "response_status": response["status"],
            "truncated_items": dropped,
            "compacted": compaction is not None,
        }
        return Reply(200, response, {"openai-processing-ms": "1"}, log=log)

    def _respond(
        self,
        body: JsonObject,
        texts: list[str],
        scripted: ScriptedReply | None,
        input_tokens: int,
        compaction: JsonObject | None,
    ) -> JsonObject:
        text_config = body.get("text") or {}
        text_format = text_config.get("format") if isinstance(text_config, dict) else None
        budget = body.get("max_output_tokens")
        reasoning = scripted.reasoning_tokens if scripted is not None else 0
        incomplete = scripted.incomplete if scripted is not None else None
        refusal = scripted.refusal if scripted is not None else None
        visible = refusal if refusal is not None else output_text(text_format, texts, scripted)
        if incomplete is not None:
            # A scripted stop (content_filter, ...): the text ends part-way.
            visible = visible[: max(len(visible) // 2, 1)] if visible else visible
        if isinstance(budget, int):
            if reasoning >= budget:
                reasoning, visible, incomplete = budget, "", "max_output_tokens"
            elif approx_tokens(visible) > budget - reasoning:
                visible, incomplete = visible[: (budget - reasoning) * 4], "max_output_tokens"
        output: list[JsonObject] = [compaction] if compaction is not None else []
        if reasoning:
            output.append({"type": "reasoning", "id": new_id("rs"), "summary": []})
        if visible or (refusal is not None) or not reasoning:
            if refusal is not None:
                part: JsonObject = {"type": "refusal", "refusal": visible}
            else:
                part = {"type": "output_text", "text": visible, "annotations": [], "logprobs": []}
            output.append(
                {
                    "type": "message",
                    "id": new_id("msg"),
                    "role": "assistant",
                    "status": "incomplete" if incomplete else "completed",
                    "content": [part],
                }
            )
        output_tokens = reasoning + approx_tokens(visible)
        now = int(time.time())
        conversation_id = _conversation_id(body.get("conversation"))
        return {
            "id": new_id("resp"),
            "object": "response",
            "created_at": now,
            "completed_at": None if incomplete else now,
            "status": "incomplete" if incomplete else "completed",
            "background": False,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": budget,
            "max_tool_calls": None,
            "model": body.get("model"),
            "output": output,
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
            "truncation": body.get("truncation") or "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": body.get("metadata") or {},
            "conversation": {"id": conversation_id} if conversation_id is not None else None,
        }


def _compaction(
    body: JsonObject, history: list[JsonObject], new_items: list[JsonObject]
) -> JsonObject | None:
    """The compaction item replacing ``history``, when context_management asks and the context is over."""
    thresholds = [
        entry.get("compact_threshold")
        for entry in body.get("context_management") or []
        if entry.get("type") == "compaction" and isinstance(entry.get("compact_threshold"), int)
    ]
    if not thresholds or not history:
        return None
    if items_tokens(history) + items_tokens(new_items) <= min(thresholds):
        return None
    return compaction_item(history)


def _fit(
    history: list[JsonObject], new_items: list[JsonObject], instructions: str, window: int, body: JsonObject
) -> tuple[list[JsonObject] | None, int]:
    """The conversation items the model reads, and how many were dropped; None when nothing fits."""
    fixed = approx_tokens(instructions) + items_tokens(new_items)
    read = list(history)
    if fixed + items_tokens(read) <= window:
        return read, 0
    # ResponseCreateParamsBase.truncation: "auto" drops items from the beginning of the conversation.
    if body.get("truncation") != "auto":
        return None, 0
    dropped = 0
    while read and fixed + items_tokens(read) > window:
        read.pop(0)
        dropped += 1
    if fixed > window:
        return None, dropped
    return read, dropped


def _non_compaction(output: list[JsonObject]) -> list[JsonObject]:
    return [item for item in output if item.get("type") != "compaction"]


def _page(items: list[JsonObject], *, has_more: bool) -> JsonObject:
    # openai.types.conversations.ConversationItemList: data, first_id, last_id, has_more, object "list".
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else "",
        "last_id": items[-1]["id"] if items else "",
        "has_more": has_more,
    }


def _api_parts(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    return parts[1:] if parts[:1] == ["v1"] else parts


def _conversation_id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def main() -> None:
    run_cli(
        OpenAIFake,
        default_port=DEFAULT_PORT,
        port_env=PORT_ENV,
        description="Fake OpenAI Responses/Conversations API on 127.0.0.1.",
    )


if __name__ == "__main__":
    main()
