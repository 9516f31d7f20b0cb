"""Events on the bus: the only definition. Tests check Terraform's rule patterns against them.

ConversationRequested lives with the outbound request it carries (models.outbound), so a function
that never starts conversations does not load those models; models.event_types lists them all.
"""

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

SOURCE_PREFIX = "ai-comms."

# ai_reply: the AI answers; handoff: a person has the conversation (or the project is inactive);
# ignored: recorded only (the project's first-contact policy); unmatched: the route of events from
# before every accepted message opened a conversation, kept so replays of the archive still route.
ReplyRoute = Literal["ai_reply", "handoff", "ignored", "unmatched"]


class EventDetail(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    SOURCE: ClassVar[str]
    DETAIL_TYPE: ClassVar[str]

    schema_version: Literal[1] = 1
    channel: str
    route: str


class ReplyReceived(EventDetail):
    """A customer's message was accepted; `route` tells the rules which queue takes it."""

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "twilio-webhook"
    DETAIL_TYPE: ClassVar[str] = "ReplyReceived"

    route: ReplyRoute
    company_id: str
    project_id: str
    conversation_id: str | None
    recipient_tel: str
    customer_address: str
    company_address: str
    message_sid: str
    body: str
    num_media: int = 0
    inbound_seq: int | None = None
    received_at: str
    # Set when this message (a keyword) changed the customer's consent: whatever the route, the
    # reply processor sends the tenant's confirmation once.
    consent_change: Literal["opt_out", "opt_in"] | None = None


# Why a person takes over: the AI asked for one; the AI could not answer (its answer cut short,
# filtered or refused: `detail` says which); Twilio reported a reply undelivered (63016, outside the
# WhatsApp window, or another error code: `detail`).
HandoffReason = Literal["ai_action", "ai_unanswerable", "reply_window_closed", "reply_undelivered"]


class HandoffRequested(EventDetail):
    """A person should take the conversation: the handoff rule routes it to the handoff queue.

    `handoff_id` is the same on every retry of one handoff, so consumers can drop a repeat.
    """

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "reply-processor"
    DETAIL_TYPE: ClassVar[str] = "HandoffRequested"

    route: Literal["handoff"] = "handoff"
    handoff_id: str
    reason: HandoffReason = "ai_action"
    detail: str | None = None
    company_id: str
    project_id: str
    conversation_id: str
    recipient_tel: str
    customer_address: str
    company_address: str
    upto_seq: int
    requested_at: str


class ReplyWindowClosed(EventDetail):
    """The channel's free-form reply window is closed: customer messages arrived after it (nothing
    was sent), or Twilio reported a reply undelivered with 63016.

    Only an approved template can reach the customer again; no rule routes this yet (the archive
    keeps it for replay once one does).
    """

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "reply-processor"
    DETAIL_TYPE: ClassVar[str] = "ReplyWindowClosed"

    route: Literal["window_closed"] = "window_closed"
    company_id: str
    project_id: str
    conversation_id: str
    recipient_tel: str
    customer_address: str
    company_address: str
    upto_seq: int
    last_inbound_at: str
    detected_at: str


class DeliveryFailed(EventDetail):
    """Twilio reported a message it had accepted as failed or undelivered (its StatusCallback)."""

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "status-callback"
    DETAIL_TYPE: ClassVar[str] = "DeliveryFailed"

    route: Literal["delivery_failed"] = "delivery_failed"
    company_id: str
    project_id: str
    conversation_id: str
    recipient_tel: str
    customer_address: str
    company_address: str
    message_sid: str
    position: str
    # What failed: the opening template, or a message sent after the customer's seq-th message.
    template: bool
    seq: int
    status: str
    error_code: int | None = None
    reported_at: str
