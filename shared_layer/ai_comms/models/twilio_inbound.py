"""The fields of a Twilio incoming-message webhook that the engine relies on."""

from pydantic import BaseModel, ConfigDict, Field


class TwilioInbound(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=r"^[A-Z]{2}[0-9a-fA-F]{32}$")
    account_sid: str = Field(alias="AccountSid", pattern=r"^AC[0-9a-fA-F]{32}$")
    from_: str = Field(alias="From", min_length=1, max_length=64)
    to: str = Field(alias="To", min_length=1, max_length=64)
    # No length of its own: the request's byte limit bounds it (see inbound.form for the worst case).
    body: str = Field(default="", alias="Body")
    num_media: int = Field(default=0, alias="NumMedia", ge=0, le=10)
    profile_name: str | None = Field(default=None, alias="ProfileName", max_length=256)
