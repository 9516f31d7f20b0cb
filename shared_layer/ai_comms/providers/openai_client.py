"""OpenAI Responses + Conversations, with structured output for every decision the engine acts on.

A "thread" is an OpenAI Conversation (conv_...); a "turn" is one customer input answered on it by
responses.create. Putting an input on a conversation is not idempotent: a request that timed out
on our side may still have added the input (and its answer) on OpenAI's, and the SDK's own retry
would add it a second time. So turns are retried here, not by the SDK, and every retry after a
request that may have reached OpenAI first reads the conversation's newest items: the answer
already there is used as it is; an input already there without an answer is answered by a call
with no new input; only otherwise is the input sent again.

Failures are classified by error code and type, not by status alone (the error codes are those of
https://platform.openai.com/docs/guides/error-codes and the SDK's ``openai.APIStatusError.code``):

- ``conversation_locked`` (400: another request still holds the conversation, "retry in a few
  seconds"): retried after a short wait;
- ``rate_limit_exceeded`` (429): retried after the ``retry-after-ms`` / ``retry-after`` it names;
- ``insufficient_quota`` (429 that waiting does not heal): the tenant's billing, alarmed;
- 401/403: the tenant's key (callers read it again once, it may have been rotated);
- ``context_length_exceeded``: heals only in a new AI conversation;
- timeouts, connection errors, 5xx: retried;
- any other 400/404/422, an ``incomplete`` response and a refusal: this turn will not be answered
  by retrying it unchanged (``Unanswerable``, with the reason); callers hand it to a person.
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from openai import OpenAI
from pydantic import BaseModel, ValidationError

from ai_comms.models.tenant import AiSettings

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "description": "The message to send to the customer."},
        "action": {
            "type": "string",
            "enum": ["none", "handoff"],
            "description": "handoff when a human should take over the conversation.",
        },
    },
    "required": ["reply", "action"],
    "additionalProperties": False,
}

# The API's "retry in a few seconds" for a conversation another request holds, and how many such
# waits one call may make.
LOCKED_RETRY_SECONDS = 3.0
LOCKED_WAITS = 3
# Waits longer than this are left to the queue (the record comes back later) instead of sleeping.
MAX_IN_CALL_WAIT_SECONDS = 20.0
# How far back a retry looks for its own input among the conversation's newest items.
RESUME_LOOKBACK_ITEMS = 10


class AiError(Exception):
    """The AI call failed; ``retry_in_seconds`` is when trying again makes sense (None: any backoff)."""

    permanent = False

    def __init__(self, message: str, retry_in_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_in_seconds = retry_in_seconds


class TransientAiError(AiError):
    pass


class CredentialsRefused(TransientAiError):
    """OpenAI refused the tenant's key (401, 403): the tenant's, not the message's, problem. Callers
    read the key again (it may have been rotated) and retry once; past that it is retried later and
    alarmed, never a reason to fail a conversation."""


class QuotaExhausted(TransientAiError):
    """The tenant's OpenAI quota or billing limit is used up (429 insufficient_quota): every request
    of theirs fails until they act. Retried later and alarmed; waiting in the call does not help."""


class ContextTooLong(TransientAiError):
    """The conversation's context no longer fits the model (context_length_exceeded): it heals only
    in a new AI conversation."""


class Unanswerable(AiError):
    """The AI will not answer this turn, however often it is asked the same way; a person should.

    ``reason`` is what is recorded with the handoff: ``incomplete:max_output_tokens``,
    ``incomplete:content_filter``, ``refusal``, ``refused:<status>/<code>``."""

    permanent = True

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Incomplete(Unanswerable):
    """The response stopped early (``status: incomplete``). For ``max_output_tokens`` (which also
    counts reasoning tokens) a larger budget can help; for ``content_filter`` nothing will."""

    def __init__(self, incomplete_reason: str) -> None:
        super().__init__(f"incomplete:{incomplete_reason}", f"OpenAI stopped early ({incomplete_reason})")
        self.incomplete_reason = incomplete_reason


class Refused(Unanswerable):
    """The model refused (a ``refusal`` content part instead of the requested JSON)."""

    def __init__(self) -> None:
        super().__init__("refusal", "the model refused to answer")


class AiReply(BaseModel):
    reply: str
    action: Literal["none", "handoff"]


@dataclass
class Turn:
    """One customer input to answer on an AI conversation.

    ``resume`` says an earlier attempt may have put ``text`` on the conversation already: the
    conversation is then read before anything is sent again. ``context`` ((role, text) pairs) goes
    on the conversation just before ``text``, in the same request: what was said while a person had
    the conversation. One request, so a retry that finds ``text`` there finds the context too."""

    conversation_id: str
    text: str
    resume: bool = False
    context: list[tuple[str, str]] = field(default_factory=list)


def _header_seconds(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _classify(error: openai.OpenAIError) -> AiError:
    if not isinstance(error, openai.APIStatusError):
        # APITimeoutError, APIConnectionError: the request may or may not have reached OpenAI.
        return TransientAiError(f"OpenAI unavailable ({type(error).__name__})")
    status, code = error.status_code, error.code
    if code == "conversation_locked":
        return TransientAiError("the AI conversation is busy with another request", LOCKED_RETRY_SECONDS)
    if code == "insufficient_quota":
        return QuotaExhausted("the tenant's OpenAI quota is used up (insufficient_quota)")
    if status in {401, 403}:
        return CredentialsRefused(f"OpenAI refused the tenant's API key ({status}/{code})")
    if code == "context_length_exceeded":
        return ContextTooLong("the AI conversation's context no longer fits the model")
    if status == 429:
        return TransientAiError(f"OpenAI rate limit ({code})", _header_seconds(error) or 1.0)
    if status in {400, 404, 422}:
        return Unanswerable(f"refused:{status}/{code}", f"OpenAI refused the request ({status}/{code})")
    return TransientAiError(f"OpenAI unavailable ({status})")


def _may_have_reached(error: openai.OpenAIError) -> bool:
    """Whether the failed request may have put its input on the conversation."""
    if isinstance(error, openai.APIStatusError):
        # A 5xx may come after the work was done; a locked conversation may be held by our own
        # earlier attempt. Any other answer refused the request as a whole.
        return error.status_code >= 500 or error.code == "conversation_locked"
    return True


def _context_management(settings: AiSettings) -> Any:
    if settings.compact_threshold_tokens <= 0:
        return openai.omit
    return [{"type": "compaction", "compact_threshold": settings.compact_threshold_tokens}]


def _message_text(item: Any, part_type: str) -> str | None:
    parts = [getattr(part, "text", "") for part in getattr(item, "content", []) if part.type == part_type]
    return "".join(parts) if parts else None


def _has_refusal(item: Any) -> bool:
    return any(part.type == "refusal" for part in getattr(item, "content", []))


class AiClient:
    def __init__(
        self,
        base_url: str | None,
        timeout_seconds: float,
        max_retries: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url or None
        self._timeout = timeout_seconds
        self._max_retries = max_retries
        self._sleep = sleep
        self._clients: dict[str, OpenAI] = {}

    def _client(self, api_key: str) -> OpenAI:
        # One HTTP client (and connection pool) per tenant key per container; the turn loop below
        # retries, the SDK does not (its retry could put an input on the conversation twice).
        slot = hashlib.sha256(api_key.encode()).hexdigest()
        if slot not in self._clients:
            self._clients[slot] = OpenAI(
                api_key=api_key, base_url=self._base_url, timeout=self._timeout, max_retries=0
            )
        return self._clients[slot]

    def create_conversation(
        self, api_key: str, metadata: dict[str, str], history: list[tuple[str, str]] | None = None
    ) -> str:
        """A new OpenAI conversation, optionally opened with earlier turns ((role, text) pairs).

        An unanswered create leaves at worst an unused conversation behind, so it may be retried."""
        items: list[Any] = [
            {"type": "message", "role": role, "content": text} for role, text in history or []
        ]
        client = self._client(api_key)
        return str(self._retrying(lambda: client.conversations.create(metadata=metadata, items=items)).id)

    def _retrying(self, call: Callable[[], Any], on_retry: Callable[[], None] | None = None) -> Any:
        """``call`` with up to max_retries retries of what heals by waiting a little. A locked
        conversation (held by another request, often our own earlier attempt) has waits of its own,
        up to LOCKED_WAITS, whatever max_retries says: it is a wait, not a failure."""
        failures = locked = 0
        while True:
            try:
                return call()
            except openai.OpenAIError as error:
                failure = _classify(error)
                is_locked = isinstance(error, openai.APIStatusError) and error.code == "conversation_locked"
                if is_locked:
                    locked += 1
                else:
                    failures += 1
                wait = failure.retry_in_seconds
                if (
                    failure.permanent
                    or isinstance(failure, CredentialsRefused | QuotaExhausted | ContextTooLong)
                    or (locked > LOCKED_WAITS if is_locked else failures > self._max_retries)
                    or (wait is not None and wait > MAX_IN_CALL_WAIT_SECONDS)
                ):
                    raise failure from error
                if on_retry is not None and _may_have_reached(error):
                    on_retry()
                self._sleep(wait if wait is not None else 0.5 * 2 ** (failures - 1))

    def _turn_state(self, client: OpenAI, turn: Turn) -> tuple[Literal["new", "asked", "answered"], str]:
        """Whether the conversation already holds this turn's input ("asked") and its answer
        ("answered", with the answer's text), read from its newest items."""
        page = client.conversations.items.list(
            turn.conversation_id, order="desc", limit=RESUME_LOOKBACK_ITEMS
        )
        newer: list[Any] = []  # items after the input, newest first
        for item in page.data:
            if item.type == "message" and item.role == "user":
                if _message_text(item, "input_text") != turn.text:
                    return "new", ""
                for later in newer:
                    if later.type != "message" or later.role != "assistant":
                        continue
                    if _has_refusal(later):
                        raise Refused()
                    text = _message_text(later, "output_text")
                    if later.status == "completed" and text:
                        return "answered", text
                    return "asked", ""  # its answer stopped early: answer it again
                return "asked", ""
            newer.append(item)
        return "new", ""

    def _structured(
        self,
        api_key: str,
        settings: AiSettings,
        turn: Turn,
        instructions: str,
        name: str,
        schema: dict[str, Any],
        max_output_tokens: int | None = None,
    ) -> dict[str, Any]:
        client = self._client(api_key)
        turn_input: list[Any] = [
            *({"role": role, "content": text} for role, text in turn.context),
            {"role": "user", "content": turn.text},
        ]

        def attempt() -> str:
            with_input = True
            if turn.resume:
                state, answered = self._turn_state(client, turn)
                if state == "answered":
                    return answered
                with_input = state == "new"
            response = client.responses.create(
                model=settings.model,
                conversation=turn.conversation_id,
                instructions=instructions,
                # Without input the call answers the input already on the conversation.
                input=turn_input if with_input else openai.omit,
                max_output_tokens=max_output_tokens or settings.max_output_tokens,
                # Never a context-length error for the model's window; compaction keeps it far smaller.
                truncation="auto",
                context_management=_context_management(settings),
                text={"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}},
            )
            return self._answer_text(response)

        def note_resume() -> None:
            turn.resume = True

        text = self._retrying(attempt, on_retry=note_resume)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TransientAiError("OpenAI answered text that is not the requested JSON") from error
        if not isinstance(data, dict):
            raise TransientAiError("OpenAI answered JSON that is not an object")
        return data

    @staticmethod
    def _answer_text(response: Any) -> str:
        """The answer's text; Incomplete / Refused when the response holds none to act on."""
        for item in response.output or []:
            if item.type == "message" and _has_refusal(item):
                raise Refused()
        if response.status == "incomplete":
            details = response.incomplete_details
            raise Incomplete(str(getattr(details, "reason", None) or "unknown"))
        return str(response.output_text)

    def reply(
        self,
        api_key: str,
        settings: AiSettings,
        turn: Turn,
        max_output_tokens: int | None = None,
    ) -> AiReply:
        """One call for a whole burst: every message, in order, in one input (``turn.text``)."""
        instructions = f"{settings.instructions}\n\n{settings.handoff_rules}"
        data = self._structured(
            api_key, settings, turn, instructions, "assistant_reply", REPLY_SCHEMA, max_output_tokens
        )
        try:
            return AiReply.model_validate(data)
        except ValidationError as error:
            raise TransientAiError("OpenAI's JSON does not match the reply schema") from error

    def template_variables(
        self,
        api_key: str,
        settings: AiSettings,
        conversation_id: str,
        variables: dict[str, str],
        context: dict[str, Any],
        max_output_tokens: int | None = None,
        resume: bool = False,
    ) -> dict[str, str]:
        """Values for an approved template's variables, each described by the project's config.

        ``resume``: an earlier attempt may have asked already on this AI conversation."""
        schema = {
            "type": "object",
            "properties": {name: {"type": "string", "description": text} for name, text in variables.items()},
            "required": list(variables),
            "additionalProperties": False,
        }
        instructions = (
            f"{settings.instructions}\n\nWrite the values of an approved WhatsApp template's variables "
            "for the customer described in the input. Plain text, no line breaks."
        )
        turn = Turn(conversation_id, json.dumps(context, ensure_ascii=False, sort_keys=True), resume=resume)
        data = self._structured(
            api_key, settings, turn, instructions, "template_variables", schema, max_output_tokens
        )
        missing = [name for name in variables if not str(data.get(name) or "").strip()]
        if missing:
            raise TransientAiError(f"OpenAI left template variables empty: {', '.join(missing)}")
        return {name: str(data[name]) for name in variables}
