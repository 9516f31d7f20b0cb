"""The fields of a Twilio incoming-message webhook that the engine relies on.

Names and meanings from Twilio's "Twilio's request to your incoming message Webhook URL"
(https://www.twilio.com/docs/messaging/guides/webhook-request): the message, its media
(NumMedia, MediaContentType{N}, MediaUrl{N}), WhatsApp rich messages (ButtonText, ButtonPayload,
ButtonType for a quick reply), a shared location (Latitude, Longitude, Address, Label) and a
message from a click-to-WhatsApp ad (Referral*). Twilio adds parameters without notice; unknown
ones are ignored here (they are still covered by the signature).
"""

from pydantic import BaseModel, ConfigDict, Field

from ai_comms.models.message import InboundContent, Location

# Twilio sends at most ten media items with one message (NumMedia).
MAX_MEDIA = 10


class TwilioInbound(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    message_sid: str = Field(alias="MessageSid", pattern=r"^[A-Z]{2}[0-9a-fA-F]{32}$")
    account_sid: str = Field(alias="AccountSid", pattern=r"^AC[0-9a-fA-F]{32}$")
    from_: str = Field(alias="From", min_length=1, max_length=64)
    to: str = Field(alias="To", min_length=1, max_length=64)
    # No length of its own: the request's byte limit bounds it (see inbound.form for the worst case).
    body: str = Field(default="", alias="Body")
    num_media: int = Field(default=0, alias="NumMedia", ge=0, le=MAX_MEDIA)
    profile_name: str | None = Field(default=None, alias="ProfileName", max_length=256)
    button_text: str | None = Field(default=None, alias="ButtonText", max_length=1024)
    button_payload: str | None = Field(default=None, alias="ButtonPayload", max_length=1024)
    latitude: float | None = Field(default=None, alias="Latitude", ge=-90, le=90)
    longitude: float | None = Field(default=None, alias="Longitude", ge=-180, le=180)
    address: str | None = Field(default=None, alias="Address", max_length=1024)
    label: str | None = Field(default=None, alias="Label", max_length=1024)
    referral_headline: str | None = Field(default=None, alias="ReferralHeadline", max_length=1024)
    referral_body: str | None = Field(default=None, alias="ReferralBody", max_length=4096)
    referral_source_type: str | None = Field(default=None, alias="ReferralSourceType", max_length=64)
    replied_to_sid: str | None = Field(default=None, alias="OriginalRepliedMessageSid", max_length=64)

    def content(self, media_types: list[str]) -> InboundContent | None:
        """What the message carried besides its text, or None for plain text."""
        location = None
        if self.latitude is not None and self.longitude is not None:
            location = Location(
                latitude=self.latitude, longitude=self.longitude, address=self.address, label=self.label
            )
        content = InboundContent(
            media_types=media_types[: self.num_media],
            location=location,
            button_text=self.button_text,
            button_payload=self.button_payload,
            referral_headline=self.referral_headline,
            referral_body=self.referral_body,
            referral_source_type=self.referral_source_type,
            replied_to_sid=self.replied_to_sid,
        )
        return None if content == InboundContent() else content
