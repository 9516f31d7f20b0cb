"""OpenAI Responses + Conversations, with structured output for every decision the engine acts on.

A "thread" is an OpenAI Conversation (conv_...); a "run" is one responses.create call on it. The SDK
retries 429/5xx/timeouts itself (max_retries); what is left afterwards is classified as transient
(let SQS retry later) or permanent (a 400/401/403/404 will not heal: fail the work, do not loop).
"""

import hashlib
import json
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


class AiError(Exception):
    """The AI call failed after the SDK's own retries."""

    permanent = False


class TransientAiError(AiError):
    pass


class PermanentAiError(AiError):
    permanent = True


class CredentialsRefused(TransientAiError):
    """OpenAI refused the tenant's key (401, 403): the tenant's, not the message's, problem. Callers
    read the key again (it may have been rotated) and retry once; past that it is retried later and
    alarmed, never a reason to fail a conversation."""


class ContextTooLong(TransientAiError):
    """The conversation's context no longer fits the model (context_length_exceeded): it heals only
    in a new AI conversation."""


class AiReply(BaseModel):
    reply: str
    action: Literal["none", "handoff"]


def _classify(error: openai.OpenAIError) -> AiError:
    if isinstance(error, openai.APIStatusError) and error.status_code in {401, 403}:
        return CredentialsRefused(f"OpenAI refused the tenant's API key ({error.status_code}/{error.code})")
    if isinstance(error, openai.APIStatusError) and error.code == "context_length_exceeded":
        return ContextTooLong("the AI conversation's context no longer fits the model")
    if isinstance(error, openai.APIStatusError) and error.status_code in {400, 404, 422}:
        return PermanentAiError(f"OpenAI refused the request ({error.status_code})")
    return TransientAiError(f"OpenAI unavailable ({type(error).__name__})")


def _context_management(settings: AiSettings) -> Any:
    if settings.compact_threshold_tokens <= 0:
        return openai.omit
    return [{"type": "compaction", "compact_threshold": settings.compact_threshold_tokens}]


class AiClient:
    def __init__(self, base_url: str | None, timeout_seconds: float, max_retries: int) -> None:
        self._base_url = base_url or None
        self._timeout = timeout_seconds
        self._max_retries = max_retries
        self._clients: dict[str, OpenAI] = {}

    def _client(self, api_key: str) -> OpenAI:
        # One HTTP client (and connection pool) per tenant key per container.
        slot = hashlib.sha256(api_key.encode()).hexdigest()
        if slot not in self._clients:
            self._clients[slot] = OpenAI(
                api_key=api_key,
                base_url=self._base_url,
                timeout=self._timeout,
                max_retries=self._max_retries,
            )
        return self._clients[slot]

    def create_conversation(
        self, api_key: str, metadata: dict[str, str], history: list[tuple[str, str]] | None = None
    ) -> str:
        """A new OpenAI conversation, optionally opened with earlier turns ((role, text) pairs)."""
        items: list[Any] = [
            {"type": "message", "role": role, "content": text} for role, text in history or []
        ]
        try:
            conversation = self._client(api_key).conversations.create(metadata=metadata, items=items)
        except openai.OpenAIError as error:
            raise _classify(error) from error
        return conversation.id

    def _structured(
        self,
        api_key: str,
        settings: AiSettings,
        conversation_id: str,
        instructions: str,
        text: str,
        name: str,
        schema: dict[str, Any],
    ) -> dict[str, Any]:
        try:
            response = self._client(api_key).responses.create(
                model=settings.model,
                conversation=conversation_id,
                instructions=instructions,
                input=[{"role": "user", "content": text}],
                max_output_tokens=settings.max_output_tokens,
                # Never a context-length error for the model's window; compaction keeps it far smaller.
                truncation="auto",
                context_management=_context_management(settings),
                text={"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}},
            )
        except openai.OpenAIError as error:
            raise _classify(error) from error
        try:
            data = json.loads(response.output_text)
        except json.JSONDecodeError as error:
            raise TransientAiError("OpenAI answered text that is not the requested JSON") from error
        if not isinstance(data, dict):
            raise TransientAiError("OpenAI answered JSON that is not an object")
        return data

    def reply(
        self, api_key: str, settings: AiSettings, conversation_id: str, customer_messages: list[str]
    ) -> AiReply:
        """One call for a whole burst: every message, in order, in one input."""
        instructions = f"{settings.instructions}\n\n{settings.handoff_rules}"
        text = "\n\n".join(customer_messages)
        data = self._structured(
            api_key, settings, conversation_id, instructions, text, "assistant_reply", REPLY_SCHEMA
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
    ) -> dict[str, str]:
        """Values for an approved template's variables, each described by the project's config."""
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
        data = self._structured(
            api_key,
            settings,
            conversation_id,
            instructions,
            json.dumps(context, ensure_ascii=False, sort_keys=True),
            "template_variables",
            schema,
        )
        missing = [name for name in variables if not str(data.get(name) or "").strip()]
        if missing:
            raise TransientAiError(f"OpenAI left template variables empty: {', '.join(missing)}")
        return {name: str(data[name]) for name in variables}
