"""A customer's consent to hear from one company address, kept outside any conversation and forever.

One record per (company address, customer address) holds the current state and its last change;
every change is also kept as a history item beside it, for the tenant's records.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConsentState = Literal["opted_in", "opted_out"]
# What changed it: the customer's keyword, a person (ops consent set), or Twilio reporting that the
# customer blocked the sender (error 21610).
ConsentSource = Literal["keyword", "operator", "blocked"]
# A keyword message's effect: "opt_out" / "opt_in" when it changed the state.
ConsentChangeKind = Literal["opt_out", "opt_in"]


class ConsentChange(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    state: ConsentState
    at: str
    source: ConsentSource
    keyword: str | None = None
    message_sid: str | None = None
    conversation_id: str | None = None
    operator: str | None = None
    reason: str | None = None

    @classmethod
    def blocked(cls, code: int | None, conversation_id: str, at: str) -> "ConsentChange":
        """Twilio refused a send because the customer blocked the sender (21610): an opt-out of
        source "blocked", so nothing is sent to them until they opt in again."""
        return cls(
            state="opted_out",
            at=at,
            source="blocked",
            conversation_id=conversation_id,
            reason=f"Twilio {code}: attempt to send to unsubscribed recipient",
        )


class Consent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    company_address: str
    customer_address: str
    company_id: str
    project_id: str
    state: ConsentState
    changed_at: str
    change: ConsentChange
    history: list[ConsentChange] = Field(default_factory=list)

    @property
    def opted_out(self) -> bool:
        return self.state == "opted_out"
