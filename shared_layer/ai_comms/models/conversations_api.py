"""Requests and answers of the conversations API (the human side): the one definition of each, from
which the resolver validates requests and answers and the OpenAPI document is generated."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_comms.models.delivery import DeliveryStatus
from ai_comms.models.message import MessageAuthor, MessageDirection

# The same shapes ProjectConfig accepts: anything else can name no tenant.
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# Conversation ids are UUIDs the engine derives, but stay opaque to clients: any short token.
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
# A client's idempotency key, in the header or as the body's message_id.
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
CURSOR_MAX_CHARS = 2048
# What one WhatsApp message may hold; longer agent texts go out in parts of 1,600 characters.
AGENT_TEXT_MAX_CHARS = 4096

ListableStatus = Literal["handed_off", "active", "window_closed", "failed", "undelivered", "closed"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldError(_Answer):
    field: str = Field(description="Where the error is: `body.text`, `query.status`, `path.conversation_id`.")
    message: str


class ErrorAnswer(_Answer):
    """Every refusal: a sentence for people, a stable code for programs where one applies."""

    message: str
    error: str | None = Field(
        default=None,
        description=(
            "recipient_opted_out, window_closed, not_handed_off, conversation_busy, conversation_ended, "
            "idempotency_key_reused, message_in_progress, twilio_refused, channel_not_configured, "
            "dependency_unavailable"
        ),
    )
    errors: list[FieldError] | None = None


class ConversationSummary(_Answer):
    conversation_id: str
    channel: str
    customer: str = Field(description="The customer's address, masked: `whatsapp:+44*******23`.")
    status: str
    last_activity_at: str
    handoff_reason: str | None = None


class ConversationPage(_Answer):
    conversations: list[ConversationSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last one."
    )


class ConversationState(_Answer):
    conversation_id: str
    company_id: str
    project_id: str
    channel: str
    customer: str = Field(description="The customer's address, masked.")
    status: str
    handed_off: bool
    handoff_reason: str | None = None
    reply_window_open: bool = Field(
        description=(
            "Whether a free-form message may be sent now (WhatsApp: within 24 h of the customer's last "
            "message)."
        )
    )
    inbound_seq: int
    answered_seq: int
    last_inbound_at: str | None = None
    last_activity_at: str | None = None
    created_at: str
    updated_at: str


class DeliveryView(_Answer):
    status: DeliveryStatus
    at: str
    error_code: int | None = None


class HistoryMessage(_Answer):
    position: str = Field(description="The message's place in the conversation; sorts in reading order.")
    direction: MessageDirection
    author: MessageAuthor
    body: str
    at: str
    sid: str | None = Field(
        default=None, description="Twilio's message sid; `unknown` when Twilio's answer was lost."
    )
    message_id: str | None = Field(default=None, description="An agent message's id (its idempotency key).")
    delivery: DeliveryView | None = Field(default=None, description="The furthest status Twilio reported.")
    statuses: list[DeliveryView] = Field(
        default_factory=list, description="Every status Twilio reported, in order."
    )


class ConversationDetail(_Answer):
    conversation: ConversationState
    messages: list[HistoryMessage] = Field(description="In the order the conversation reads.")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next messages.")


class AgentMessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=AGENT_TEXT_MAX_CHARS)
    message_id: str | None = Field(
        default=None,
        pattern=MESSAGE_ID_PATTERN,
        description="Idempotency key (or the Idempotency-Key header): a repeat is answered, not sent again.",
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        return value


class AgentMessageAccepted(_Answer):
    message_id: str
    parts: int = Field(description="How many Twilio messages the text takes (1,600 characters each).")
    sent_parts: int = Field(description="How many of them Twilio accepted (or may have: outcome unknown).")
    repeated: bool = Field(description="True when this message id was sent before: nothing was sent now.")
