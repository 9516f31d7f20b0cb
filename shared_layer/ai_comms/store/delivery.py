"""Delivery statuses: each status Twilio reports is stored once with its message, with what it implies.

A status is an attribute of the message's item of its own (``status_<status>``), written only if
absent: a repeated callback (Twilio retries, the same status twice) changes nothing and is told
apart by the failed condition. The status may arrive before the reply processor has written the
message (its final write follows the last part's send), so the write creates the item when needed;
the message's own write later sets its fields and keeps the statuses.

A failure that changes the conversation (a template undelivered, a reply undelivered) commits in
one transaction with the status and its events (written to the outbox), so a status is never
recorded without its consequences, or the other way round.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.delivery import StatusCallback
from ai_comms.models.events import EventDetail
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import TransactionCancelled, condition_failed, to_value, transact_write
from ai_comms.store.messages import MessageRepository, status_attribute
from ai_comms.store.outbox import outbox_put_request


class Stored(Enum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    # The conversation had moved on (ended, or handed over already): the status was stored alone.
    STATUS_ONLY = "status_only"


@dataclass(frozen=True)
class ConversationChange:
    """An update of the conversation record a failure implies, applied only under its condition."""

    update: str
    condition: str
    values: dict[str, Any]
    names: dict[str, str]


@dataclass(frozen=True)
class OutboxEvent:
    detail: EventDetail
    dedupe_key: str
    source: str | None = None


class DeliveryRecords:
    def __init__(self, dynamodb: Any, conversations_table: str, messages_table: str) -> None:
        self._db = dynamodb
        self._conversations_table = conversations_table
        self._messages_table = messages_table

    def _status_update(
        self, conversation_id: str, position: str, callback: StatusCallback, at: str, expires_at: int
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": callback.status, "at": at}
        if callback.error_code is not None:
            entry["error_code"] = callback.error_code
        return {
            "TableName": self._messages_table,
            "Key": MessageRepository.key(conversation_id, position),
            "UpdateExpression": "SET #status = :entry, expires_at = if_not_exists(expires_at, :expires)",
            # The sid guards against a callback naming another message's position.
            "ConditionExpression": (
                "attribute_not_exists(#status) AND "
                "(attribute_not_exists(sid) OR sid = :sid OR sid = :unknown)"
            ),
            "ExpressionAttributeNames": {"#status": status_attribute(callback.status)},
            "ExpressionAttributeValues": {
                ":entry": to_value(entry),
                ":expires": {"N": str(expires_at)},
                ":sid": {"S": callback.message_sid},
                ":unknown": {"S": "unknown"},
            },
        }

    def record(
        self,
        recipient_tel: str,
        conversation_id: str,
        position: str,
        callback: StatusCallback,
        at: str,
        expires_at: int,
        now_epoch: int,
        change: ConversationChange | None = None,
        events: tuple[OutboxEvent, ...] = (),
    ) -> Stored:
        status = self._status_update(conversation_id, position, callback, at, expires_at)
        if change is None and not events:
            try:
                self._db.update_item(**status)
            except ClientError as error:
                if condition_failed(error):
                    return Stored.DUPLICATE
                raise
            return Stored.RECORDED
        outbox = [
            outbox_put_request(self._messages_table, e.detail, e.dedupe_key, at, now_epoch, e.source)
            for e in events
        ]
        items: list[dict[str, Any]] = [{"Update": status}, *outbox]
        if change is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self._conversations_table,
                        "Key": ConversationRepository.key(recipient_tel, conversation_id),
                        "UpdateExpression": change.update,
                        "ConditionExpression": change.condition,
                        "ExpressionAttributeNames": change.names,
                        "ExpressionAttributeValues": change.values,
                    }
                }
            )
        try:
            transact_write(self._db, items)
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                return Stored.DUPLICATE
            if change is None or not cancelled.failed(len(items) - 1):
                raise
            # The conversation is past what the failure would change: keep the status (and the
            # DeliveryFailed event) without the change or the events that announce it.
            self.record(
                recipient_tel,
                conversation_id,
                position,
                callback,
                at,
                expires_at,
                now_epoch,
                events=tuple(e for e in events if e.detail.DETAIL_TYPE == "DeliveryFailed"),
            )
            return Stored.STATUS_ONLY
        return Stored.RECORDED
