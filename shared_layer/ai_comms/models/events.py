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


class HandoffRequested(EventDetail):
    """The AI asked for a human: the handoff rule routes it to the handoff queue and the notice topic.

    `handoff_id` is the same on every retry of one handoff, so consumers can drop a repeat.
    """

    SOURCE: ClassVar[str] = SOURCE_PREFIX + "reply-processor"
    DETAIL_TYPE: ClassVar[str] = "HandoffRequested"

    route: Literal["handoff"] = "handoff"
    handoff_id: str
    reason: Literal["ai_action"] = "ai_action"
    company_id: str
    project_id: str
    conversation_id: str
    recipient_tel: str
    customer_address: str
    company_address: str
    upto_seq: int
    requested_at: str


class ReplyWindowClosed(EventDetail):
    """Customer messages arrived after the channel's free-form reply window closed: nothing was sent.

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
