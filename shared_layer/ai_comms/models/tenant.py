"""Company/project configuration, as stored in the company-data table and managed with `ops tenant put`."""

import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ai_comms.addresses import E164

ADDRESS_KEY_PREFIX = "ADDRESS#"
ADDRESS_SORT_KEY = "ROUTE"

_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSettings(_Strict):
    """How one project speaks on one channel. Secrets are referenced by name, never stored here."""

    address: str = Field(description="The company's channel address, e.g. 'whatsapp:+14155550100'.")
    twilio_secret_ref: str = Field(
        pattern=r"^[A-Za-z0-9/_+=.@-]{1,500}/twilio$",
        description=(
            "Secrets Manager name holding {account_sid, auth_token}, ending in '/twilio': each function "
            "may read only the kind of tenant secret it uses, by name."
        ),
    )
    content_sid: str | None = Field(default=None, description="Approved template for outbound starts.")
    template_variables: dict[str, str] = Field(
        default_factory=dict,
        description="Template variable number -> what the AI should write there.",
    )
    handoff_notice: str = "Thanks, a member of our team will reply to you here shortly."
    opt_out_confirmation: str = "You will not receive more messages from us. Reply START to opt back in."
    opt_in_confirmation: str = "Welcome back! You will receive our messages again."

    @field_validator("address")
    @classmethod
    def _address_has_number(cls, value: str) -> str:
        if not E164.match(value.rpartition(":")[2]):
            raise ValueError("address must end with an E.164 number")
        return value


DEFAULT_OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE")
DEFAULT_OPT_IN_KEYWORDS = ("START", "UNSTOP")
MAX_KEYWORD_CHARS = 32


class ConsentPolicy(_Strict):
    """The messages that opt a customer out of (and back into) this project's messages."""

    opt_out_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_OPT_OUT_KEYWORDS), min_length=1)
    opt_in_keywords: list[str] = Field(default_factory=lambda: list(DEFAULT_OPT_IN_KEYWORDS), min_length=1)

    @field_validator("opt_out_keywords", "opt_in_keywords")
    @classmethod
    def _keywords(cls, value: list[str]) -> list[str]:
        # Stored as a message is compared: NFKC, upper case (consent.keywords reads messages so).
        words = [unicodedata.normalize("NFKC", word).strip().upper() for word in value]
        bad = [word for word in words if not (word.isalnum() and len(word) <= MAX_KEYWORD_CHARS)]
        if bad:
            raise ValueError(f"keywords are 1-32 letters or digits without spaces: {', '.join(bad)}")
        return words

    @model_validator(mode="after")
    def _disjoint(self) -> "ConsentPolicy":
        both = sorted(set(self.opt_out_keywords) & set(self.opt_in_keywords))
        if both:
            raise ValueError(f"keywords both opt out and opt in: {', '.join(both)}")
        return self


FirstContact = Literal["ai", "handoff", "ignore"]


class AiSettings(_Strict):
    model: str = "gpt-4.1-mini"
    instructions: str = Field(min_length=1)
    max_output_tokens: int = Field(default=500, ge=16, le=8192)
    openai_secret_ref: str = Field(
        pattern=r"^[A-Za-z0-9/_+=.@-]{1,500}/openai$",
        description="Secrets Manager name holding {api_key}, ending in '/openai'.",
    )
    handoff_rules: str = Field(
        default="Ask for a human when the customer asks for one or when you cannot help.",
        description="Appended to the instructions: when the AI should answer with the handoff action.",
    )
    compact_threshold_tokens: int = Field(
        default=16_000,
        ge=0,
        le=1_000_000,
        description=(
            "Context size in tokens past which OpenAI compacts the conversation's earlier turns "
            "(Responses context_management compaction), so every reply reads a bounded context however "
            "long the conversation grows; 0 turns compaction off (truncation 'auto' still caps it at the "
            "model's window)."
        ),
    )


class ProjectConfig(_Strict):
    company_id: str = Field(pattern=_ID)
    project_id: str = Field(pattern=_ID)
    status: Literal["active", "inactive"] = "active"
    allowed_channels: list[str] = Field(min_length=1)
    channels: dict[str, ChannelSettings]
    ai: AiSettings
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    first_contact: FirstContact = Field(
        default="ai",
        description=(
            "A customer who writes first (no open conversation): 'ai' opens a conversation the AI "
            "answers, 'handoff' opens it with a person, 'ignore' records the message only."
        ),
    )
    idle_close_hours: int = Field(
        default=168,
        ge=0,
        le=24 * 365,
        description=(
            "A conversation with no message in or out for this many hours is closed: the customer's "
            "next message opens a new one (first_contact). 0 keeps conversations open until they "
            "expire (conversation_ttl_days)."
        ),
    )
    api_clients: list[str] = Field(
        default_factory=list,
        description=(
            "API clients (names in Terraform's api_keys) that may act for this project; none may by default."
        ),
    )

    @model_validator(mode="after")
    def _allowed_channels_are_configured(self) -> "ProjectConfig":
        missing = [c for c in self.allowed_channels if c not in self.channels]
        if missing:
            raise ValueError(f"allowed channels without settings: {', '.join(missing)}")
        return self

    def channel(self, name: str) -> ChannelSettings | None:
        return self.channels.get(name)


class AddressRoute(_Strict):
    """Which project owns a channel address: lets a webhook find its tenant with one GetItem."""

    address: str
    channel: str
    company_id: str
    project_id: str
