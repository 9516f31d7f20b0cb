"""One message of a conversation, stored as one item: what was said, by whom, when and in which order.

A conversation's messages are ordered by the inbound sequence they belong to: the customer's n-th
message has ``seq`` n; whatever is sent after it (the AI's reply parts, an agent's message, a
notice) has ``seq`` n too and is ordered among the others by ``batch`` (when that reply or message
was decided, epoch milliseconds) and ``part``. The opening template follows no customer message
(``seq`` 0). The store turns that order into the sort key.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_comms.models.consent import ConsentChangeKind
from ai_comms.models.delivery import StatusEntry, current_status
from ai_comms.models.events import ReplyReceived, ReplyRoute

MessageDirection = Literal["inbound", "outbound"]
# Who wrote it: the customer, the AI, an approved template, a person through the agent API, or the
# engine itself (a handoff notice, an opt-out confirmation: the tenant's fixed texts).
MessageAuthor = Literal["customer", "ai", "template", "agent", "engine"]

# The sid recorded for a message Twilio may have accepted without telling us its sid.
UNKNOWN_SID = "unknown"


class Location(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    latitude: float
    longitude: float
    address: str | None = None
    label: str | None = None


class InboundContent(BaseModel):
    """What a customer's message carried besides its text: the types of its media (their URLs need
    the tenant's Twilio credentials and are never kept or given to the AI), a shared location, the
    quick-reply button pressed, the click-to-WhatsApp ad it came from, the message it replied to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    media_types: list[str] = Field(default_factory=list)
    location: Location | None = None
    button_text: str | None = None
    button_payload: str | None = None
    referral_headline: str | None = None
    referral_body: str | None = None
    referral_source_type: str | None = None
    replied_to_sid: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    conversation_id: str
    direction: MessageDirection
    author: MessageAuthor
    seq: int
    batch: int = 0
    part: int = 0
    sid: str | None = None
    body: str
    at: str
    num_media: int = 0
    content: InboundContent | None = None
    expires_at: int | None = None
    # Inbound messages carry what the outbox relay needs to publish their ReplyReceived event: the
    # route the webhook decided and the conversation's addresses, as they were when it arrived.
    route: ReplyRoute | None = None
    channel: str | None = None
    company_id: str | None = None
    project_id: str | None = None
    recipient_tel: str | None = None
    customer_address: str | None = None
    company_address: str | None = None
    # A keyword message that changed the customer's consent.
    consent_change: ConsentChangeKind | None = None
    # An agent message's id (the client's idempotency key), on each of its parts.
    message_id: str | None = None
    # What Twilio reported after accepting an outbound message (its StatusCallback requests), one
    # entry per status; stored as attributes of their own, so a status never overwrites another.
    statuses: list[StatusEntry] = Field(default_factory=list)

    @property
    def delivery(self) -> StatusEntry | None:
        """The furthest status Twilio reported (callbacks may arrive out of order)."""
        return current_status(self.statuses)

    def reply_received(self) -> ReplyReceived:
        """The event announcing this inbound message; ValueError for a message that is not one."""
        if self.direction != "inbound" or self.route is None or self.sid is None:
            raise ValueError("only a recorded inbound message has a ReplyReceived event")
        return ReplyReceived.model_validate(
            {
                "channel": self.channel,
                "route": self.route,
                "company_id": self.company_id,
                "project_id": self.project_id,
                "conversation_id": self.conversation_id,
                "recipient_tel": self.recipient_tel,
                "customer_address": self.customer_address,
                "company_address": self.company_address,
                "message_sid": self.sid,
                "body": self.body,
                "num_media": self.num_media,
                "inbound_seq": self.seq,
                "received_at": self.at,
                "consent_change": self.consent_change,
            }
        )
