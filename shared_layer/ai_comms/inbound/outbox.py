"""The outbox relay: publishes the ReplyReceived event of every message the webhook recorded, and
every event another function wrote to the outbox (store.outbox) with the change it announces.

The messages table's stream is the outbox. Its event source mapping hands this relay each new
inbound message item and outbox event item (a filter on the mapping drops everything else) in the
order of the stream's shard; the relay publishes them with PutEvents, ten entries per call,
retrying refused entries twice in place. Lambda's stream retries make this at-least-once: when an
entry still fails, the relay stops there and reports that record (and so every later one) as
failed, and the mapping retries from it; entries published before its call are not repeated. A
record that can never become an event (not an inbound message or an outbox event) is logged and
skipped, never retried: it would block its shard. Consumers are idempotent (the reply processor's
answered sequence, handoff ids), so an event published twice costs nothing.
"""

import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from ai_comms.models.message import Message
from ai_comms.providers.events import EventPublisher
from ai_comms.store.dynamo import from_item
from ai_comms.store.outbox import outbox_entry

logger = Logger(child=True)

PUT_EVENTS_MAX_ENTRIES = 10
REFUSED_RETRY_PAUSES = (0.1, 0.4)


@dataclass(frozen=True)
class RelayResult:
    published: int
    skipped: int
    # The stream sequence number to resume from (this record and every later one failed), or None.
    failed_from: str | None


def message_of(record: dict[str, Any]) -> Message:
    """The message item of an INSERT stream record; ValueError for anything else."""
    if record.get("eventName") != "INSERT":
        raise ValueError(f"not an INSERT record: {record.get('eventName')}")
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not isinstance(image, dict):
        raise ValueError("record has no NewImage")
    data = from_item(image)
    data.pop("position", None)
    return Message.model_validate(data)


class OutboxRelay:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def relay(self, records: list[dict[str, Any]]) -> RelayResult:
        pending: list[tuple[str, dict[str, str]]] = []  # (stream sequence number, PutEvents entry)
        skipped = 0
        for record in records:
            sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
            try:
                entry = self._entry(record)
            except (ValueError, ValidationError, KeyError) as error:
                skipped += 1
                logger.error(
                    "stream record is not an inbound message; skipped",
                    extra={"sequence_number": sequence, "error": str(error)[:300]},
                )
                continue
            pending.append((sequence, entry))
        published = 0
        for start in range(0, len(pending), PUT_EVENTS_MAX_ENTRIES):
            chunk = pending[start : start + PUT_EVENTS_MAX_ENTRIES]
            try:
                accepted, refused = self._put(chunk)
            except (ClientError, BotoCoreError) as error:
                logger.warning("PutEvents failed; retried from here", extra={"error": type(error).__name__})
                return RelayResult(published, skipped, chunk[0][0])
            published += accepted
            if refused is not None:
                logger.warning("event refused; retried from it", extra={"sequence_number": refused})
                return RelayResult(published, skipped, refused)
        return RelayResult(published, skipped, None)

    def _entry(self, record: dict[str, Any]) -> dict[str, str]:
        image = (record.get("dynamodb") or {}).get("NewImage")
        if record.get("eventName") == "INSERT" and isinstance(image, dict):
            written = outbox_entry(image, self._publisher.bus_name)
            if written is not None:
                return written
        return self._publisher.entry(message_of(record).reply_received())

    def _put(self, chunk: list[tuple[str, dict[str, str]]]) -> tuple[int, str | None]:
        """Publish a chunk, retrying refused entries a few times in place: a refusal is usually a
        passing throttle, and the stream's own retry would publish every later entry again.
        (How many were accepted, the sequence number of the first still refused or None.)"""
        accepted = 0
        for pause in (*REFUSED_RETRY_PAUSES, None):
            refused = self._publisher.refused([entry for _, entry in chunk])
            accepted += len(chunk) - len(refused)
            if not refused:
                return accepted, None
            chunk = [chunk[index] for index in refused]
            if pause is not None:
                time.sleep(pause)
        return accepted, chunk[0][0]
