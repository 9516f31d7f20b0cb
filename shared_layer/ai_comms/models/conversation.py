"""A conversation between one customer address and one company address, as stored in DynamoDB.

The record is small and of fixed size whatever the conversation's length: its state, sequence
numbers, lease and the reply being sent. The messages are items of their own (models.message).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ai_comms.models.events import HandoffReason
from ai_comms.models.message import MessageAuthor

ConversationStatus = Literal[
    "initiating",
    "sending",
    "active",
    "handed_off",
    "window_closed",
    "ignored",
    "opted_out",
    "failed",
    "undelivered",
    "closed",
]
# A customer's message joins the newest conversation in one of these; the others have ended.
OPEN_STATUSES = frozenset(
    {"initiating", "sending", "active", "handed_off", "window_closed", "ignored", "opted_out"}
)


PendingAction = Literal["none", "handoff", "opt_out", "opt_in"]


class PendingReply(BaseModel):
    """A reply decided but not yet fully sent: stored before the first send so a retry resends only
    the parts Twilio has not accepted and never asks the AI again."""

    model_config = ConfigDict(extra="ignore")

    upto_seq: int
    text: str
    action: PendingAction
    parts: list[str]
    # sent_sids[i] is the sid of parts[i] (UNKNOWN_SID when Twilio may have accepted it unseen).
    sent_sids: list[str] = Field(default_factory=list)
    # Parts whose send was started: written before each send, so a part with index < attempted and
    # no recorded sid may have gone out and is never sent again.
    attempted: int = 0
    # Who wrote each part (the AI, or the engine for a notice or a confirmation), and when the reply
    # was decided (epoch ms): together with upto_seq they order its message items.
    authors: list[str] = Field(default_factory=list)
    batch: int = 0
    # Why a person takes over (action "handoff"): the AI asked for one, or could not answer.
    handoff_reason: HandoffReason | None = None
    handoff_detail: str | None = None

    def author_of(self, index: int) -> "MessageAuthor":
        author = self.authors[index] if index < len(self.authors) else "ai"
        return "engine" if author == "engine" else "ai"

    def unsent(self) -> list[tuple[int, str]]:
        return list(enumerate(self.parts))[len(self.sent_sids) :]

    @property
    def unrecorded_attempt(self) -> bool:
        """A send was started (its outcome unknown) but no sid was recorded for it."""
        return self.attempted > len(self.sent_sids)


class Conversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recipient_tel: str
    conversation_id: str
    channel: str
    company_id: str
    project_id: str
    company_address: str
    customer_address: str
    status: ConversationStatus = "active"
    handoff_to_human: bool = False
    ai_conversation_id: str | None = None
    # The customer messages (up to this seq) an attempt put on that AI conversation: a retry reads
    # the AI conversation before sending them again, and the reply covers exactly them.
    ai_turn_upto: int | None = None
    ai_turn_conversation_id: str | None = None
    # Why the conversation went to a person, and the last delivery failure Twilio reported.
    handoff_reason: HandoffReason | None = None
    handoff_detail: str | None = None
    last_error: str | None = None
    inbound_seq: int = 0
    answered_seq: int = 0
    last_inbound_at: str | None = None
    # The last message in or out (its creation, before any): the conversation expires
    # conversation_ttl_days after it, and the conversations API lists the latest first.
    last_activity_at: str | None = None
    # The customer messages a person handled, set when the conversation was handed back to the AI:
    # after answered_seq human_era_from, up to human_era_upto (agent messages among them). Until the
    # AI's first reply after the handback (answered_seq still human_era_upto), the project's
    # human_era_context setting decides whether that reply's AI turn reads them.
    human_era_from: int | None = None
    human_era_upto: int | None = None
    pending_reply: PendingReply | None = None
    # The reply processor's lease: who answers the conversation now, until when, and up to which
    # inbound message (so a second processor can tell whether the holder covers its message).
    lease_owner: str | None = None
    lease_until: int | None = None
    lease_upto: int | None = None
    # Who started it: the company (an outbound template) or the customer writing first.
    opened_by: Literal["company", "customer"] = "company"
    created_at: str
    updated_at: str
    expires_at: int | None = None

    def parties(self) -> dict[str, str]:
        """Who the conversation is between, as every message and event about it names them."""
        return {
            "channel": self.channel,
            "company_id": self.company_id,
            "project_id": self.project_id,
            "recipient_tel": self.recipient_tel,
            "customer_address": self.customer_address,
            "company_address": self.company_address,
        }

    @staticmethod
    def sort_key_for(company_address: str, created_at: str) -> str:
        """The local-index sort key: latest conversation per (customer, company address) in one Query."""
        return f"{company_address}#{created_at}"
