"""What Twilio reports about a message after accepting it: the StatusCallback request and its record.

Twilio's Message statuses (twilio_api_v2010.json, ``message_enum_status``): accepted, scheduled,
canceled, queued, sending, sent, failed, delivered, undelivered, receiving, received, read (WhatsApp
only) and partially_delivered. Most WhatsApp failures arrive here, after the send's 201: a
free-form message outside the 24-hour window ends ``undelivered`` with ErrorCode 63016
(https://www.twilio.com/docs/errors/63016), an unreachable user ``failed`` with 63024 or 63032.
Twilio sends the callback form fields MessageSid, MessageStatus, AccountSid, From, To and, for a
failure, ErrorCode (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeliveryStatus = Literal[
    "accepted",
    "scheduled",
    "canceled",
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "read",
    "partially_delivered",
]
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})
# How far each status got: the message's current status is the furthest one reported (callbacks
# may arrive out of order); a failure ends it.
STATUS_RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "partially_delivered": 4,
    "delivered": 5,
    "read": 6,
    "receiving": 0,
    "received": 0,
    "canceled": 9,
    "failed": 9,
    "undelivered": 9,
}
# https://www.twilio.com/docs/errors/63016: a free-form WhatsApp message outside the customer service
# window; only a template reaches the customer now.
OUTSIDE_WINDOW = 63016


class StatusCallback(BaseModel):
    """The fields of a StatusCallback request the engine reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    message_sid: str = Field(alias="MessageSid", pattern=r"^(SM|MM)[0-9a-fA-F]{32}$")
    account_sid: str = Field(alias="AccountSid", min_length=1, max_length=64)
    status: DeliveryStatus = Field(alias="MessageStatus")
    from_: str = Field(alias="From", min_length=1, max_length=256)
    to: str = Field(alias="To", min_length=1, max_length=256)
    error_code: int | None = Field(default=None, alias="ErrorCode", ge=0)

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


class StatusEntry(BaseModel):
    """One status of a message, as stored with it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: DeliveryStatus
    at: str
    error_code: int | None = None


def current_status(entries: list[StatusEntry]) -> StatusEntry | None:
    return max(entries, key=lambda entry: (STATUS_RANK.get(entry.status, 0), entry.at), default=None)
