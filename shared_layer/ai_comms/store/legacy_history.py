"""The conversation layout before messages became items: the history as one `messages` list on the
conversation record (with the accepted MessageSids in `inbound_sids`). Only the migration reads it.

Each old entry becomes the message item it would have been: the customer's n-th message has seq n,
whatever was sent after it seq n too, in the order it was appended (its time orders the batch, the
entry's index within the run of outbound entries the part). An outbound entry before any customer
message and shaped like a rendered template ("[template HX...]") is the opening template.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.clock import parse_iso
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message, MessageAuthor
from ai_comms.store.dynamo import condition_failed, from_item

TEMPLATE_PREFIX = "[template "
# Records read per scan call: each page is a checkpoint of the migration.
PAGE_SIZE = 100


class LegacyMismatch(ValueError):
    """The old history does not agree with the record's own counters: left for a person to look at."""


@dataclass(frozen=True)
class LegacyRecord:
    conversation: Conversation
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class LegacyPage:
    records: list[LegacyRecord]
    scanned: int
    # Where the next page starts (DynamoDB's LastEvaluatedKey), None after the last page.
    next_key: dict[str, Any] | None


def messages_of(record: LegacyRecord, expires_at: int | None) -> list[Message]:
    """The old history as message items, in order; LegacyMismatch when its inbound entries are not
    the record's inbound_seq (the new layout numbers customer messages from it)."""
    conversation = record.conversation
    found: list[Message] = []
    seq = 0
    part = 0
    batch = 0
    for entry in record.entries:
        direction = entry.get("direction")
        at = str(entry.get("at") or conversation.created_at)
        if direction == "inbound":
            seq += 1
            part = 0
            batch = 0
            author: MessageAuthor = "customer"
        elif direction == "outbound":
            if part == 0:
                batch = int(parse_iso(at).timestamp() * 1000)
            body = str(entry.get("body", ""))
            author = "template" if seq == 0 and body.startswith(TEMPLATE_PREFIX) else "ai"
        else:
            raise LegacyMismatch(f"entry with direction {direction!r}")
        found.append(
            Message(
                conversation_id=conversation.conversation_id,
                direction=direction,
                author=author,
                seq=seq,
                batch=batch if direction == "outbound" else 0,
                part=part if direction == "outbound" else 0,
                sid=entry.get("sid"),
                body=str(entry.get("body", "")),
                at=at,
                expires_at=expires_at,
            )
        )
        if direction == "outbound":
            part += 1
    if seq != conversation.inbound_seq:
        raise LegacyMismatch(f"{seq} inbound entries but inbound_seq {conversation.inbound_seq}")
    return found


class LegacyHistory:
    def __init__(self, dynamodb: Any, conversations_table: str) -> None:
        self._db = dynamodb
        self._table = conversations_table

    def count(self) -> int:
        """The table's item count as DynamoDB last estimated it (updated about every six hours)."""
        return int(self._db.describe_table(TableName=self._table)["Table"].get("ItemCount", 0))

    def page(self, start_key: dict[str, Any] | None, limit: int | None = None) -> LegacyPage:
        """One page of the scan for records still holding a history list."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "attribute_exists(messages)",
            "Limit": limit or PAGE_SIZE,
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        answer = self._db.scan(**kwargs)
        records = []
        for item in answer.get("Items", []):
            data = from_item(item)
            entries = data.pop("messages", None) or []
            data.pop("inbound_sids", None)
            records.append(LegacyRecord(Conversation.model_validate(data), list(entries)))
        return LegacyPage(records, int(answer.get("ScannedCount", 0)), answer.get("LastEvaluatedKey"))

    def pages(self, start_key: dict[str, Any] | None = None) -> Iterator[LegacyPage]:
        while True:
            page = self.page(start_key)
            yield page
            if page.next_key is None:
                return
            start_key = page.next_key

    def retire(self, record: LegacyRecord, last_activity_at: str | None) -> bool:
        """Drop the history list from the record once its items are written. Conditional on the list
        being the one migrated, so nothing appended meanwhile is dropped; False when it changed."""
        conversation = record.conversation
        try:
            self._db.update_item(
                TableName=self._table,
                Key={
                    "recipient_tel": {"S": conversation.recipient_tel},
                    "conversation_id": {"S": conversation.conversation_id},
                },
                UpdateExpression="SET last_activity_at = if_not_exists(last_activity_at, :last) "
                "REMOVE messages, inbound_sids",
                ConditionExpression="size(messages) = :count",
                ExpressionAttributeValues={
                    ":count": {"N": str(len(record.entries))},
                    ":last": {"S": last_activity_at or conversation.updated_at},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True
