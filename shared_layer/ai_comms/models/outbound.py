"""What a client sends to start a conversation, and what the sender needs to carry it out.

The request is validated strictly (unknown fields are refused) so a client learns about a typo
instead of having it silently ignored. The sending context is copied from the project's config at
request time: it holds secret references only, never secret values.
"""

import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_comms.addresses import E164
from ai_comms.models.events import SOURCE_PREFIX, EventDetail
from ai_comms.models.tenant import AiSettings

MAX_PROJECT_DATA_BYTES = 8192
MAX_PROJECT_DATA_DEPTH = 5
_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


class Recipient(_Strict):
    tel: str = Field(description="The customer's number in E.164, e.g. '+447700900123'.")
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    language: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

    @field_validator("tel")
    @classmethod
    def _e164(cls, value: str) -> str:
        if not E164.match(value):
            raise ValueError("must be an E.164 number such as +447700900123")
        return value


class InitiateRequest(_Strict):
    """The body of POST /initiate-conversation."""

    company_id: str = Field(pattern=_ID)
    project_id: str = Field(pattern=_ID)
    channel_method: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    request_id: str = Field(
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description="The client's idempotency key: the same request_id gives the same conversation.",
    )
    recipient: Recipient
    project_data: dict[str, Any] = Field(
        default_factory=dict, description="Context the AI uses to write the template variables."
    )

    @field_validator("project_data")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        # The whole object goes into an event (256 KiB limit) and into an AI prompt: keep it small.
        try:
            size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
        except ValueError as error:
            raise ValueError("must be JSON: NaN and Infinity are not allowed") from error
        if size > MAX_PROJECT_DATA_BYTES:
            raise ValueError(f"must be at most {MAX_PROJECT_DATA_BYTES} bytes as JSON")
        if _depth(value) > MAX_PROJECT_DATA_DEPTH:
            raise ValueError(f"must be nested at most {MAX_PROJECT_DATA_DEPTH} levels deep")
        return value


class SendingContext(_Strict):
    """The project's sending details for one channel, as they were when the request was accepted."""

    company_address: str
    customer_address: str
    content_sid: str
    template_variables: dict[str, str] = Field(min_length=1)
    twilio_secret_ref: str
    ai: AiSettings


class ConversationRequested(EventDetail):
    """A client asked to start a conversation; the channel's outbound queue takes it to the sender."""

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "initiate-conversation"
    DETAIL_TYPE: ClassVar[str] = "ConversationRequested"

    route: Literal["outbound"] = "outbound"
    company_id: str
    project_id: str
    conversation_id: str
    request_id: str
    recipient: Recipient
    project_data: dict[str, Any]
    sending: SendingContext
    requested_at: str
