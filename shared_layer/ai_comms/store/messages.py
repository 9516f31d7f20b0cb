"""The messages table: one item per message, keyed so a conversation reads in order with one Query.

Key: ``conversation_id`` (partition) and ``position`` (sort), where position is

    <seq:010d>#in                              the customer's seq-th message
    <seq:010d>#out#<batch:013d>#<part:03d>     what was sent after it (batch = epoch ms)

so "#in" sorts before everything sent after the same inbound message ("i" < "o"), zero-padded
numbers sort as numbers, and the customer messages after ``answered_seq`` are one key range.
A separate table rather than item types beside the conversation records: the conversations table's
partition is the customer's number, so a customer's whole history would share one partition with
every conversation record the webhook queries (a hot, ever-growing item collection), while here
each conversation is its own partition; and only this table has a stream, which the outbox relay
reads, so no other write ever reaches the relay.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ai_comms.models.message import Message
from ai_comms.store.dynamo import from_item, to_item

_KEY_FIELDS = ("conversation_id", "position")
_WIDTH_SEQ = 10
_WIDTH_BATCH = 13
_WIDTH_PART = 3
# The longest a sort key can be here: DynamoDB allows 1024 bytes, this uses 32.
POSITION_BYTES = _WIDTH_SEQ + 5 + _WIDTH_BATCH + 1 + _WIDTH_PART
_POSITION = re.compile(rf"(\d{{{_WIDTH_SEQ}}})#(?:in|(out)#\d{{{_WIDTH_BATCH}}}#\d{{{_WIDTH_PART}}})")
STATUS_ATTRIBUTE_PREFIX = "status_"


def inbound_position(seq: int) -> str:
    return f"{seq:0{_WIDTH_SEQ}d}#in"


def outbound_position(seq: int, batch: int, part: int) -> str:
    return f"{seq:0{_WIDTH_SEQ}d}#out#{batch:0{_WIDTH_BATCH}d}#{part:0{_WIDTH_PART}d}"


def position_of(message: Message) -> str:
    if message.direction == "inbound":
        return inbound_position(message.seq)
    return outbound_position(message.seq, message.batch, message.part)


def parse_position(position: str) -> tuple[int, bool] | None:
    """(seq, outbound) of a valid position; None for anything else."""
    match = _POSITION.fullmatch(position)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) is not None


def status_attribute(status: str) -> str:
    """The attribute one delivery status is stored in: one per status, so none overwrites another."""
    return STATUS_ATTRIBUTE_PREFIX + status


@dataclass(frozen=True)
class HistoryPage:
    messages: list[Message]
    # Where the next page starts (the last position read), or None when this was the last page.
    next_position: str | None


class MessageRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    @staticmethod
    def key(conversation_id: str, position: str) -> dict[str, Any]:
        return {"conversation_id": {"S": conversation_id}, "position": {"S": position}}

    @staticmethod
    def item(message: Message) -> dict[str, Any]:
        """The message's own attributes; its delivery statuses are written by status callbacks only."""
        data = message.model_dump(mode="json", exclude={"statuses"})
        return to_item({**data, "position": position_of(message)})

    @staticmethod
    def _message(item: dict[str, Any]) -> Message | None:
        """The message of an item; None for an item holding only statuses that arrived before the
        message itself was recorded."""
        data = from_item(item)
        data.pop("position", None)
        if "direction" not in data:
            return None
        data["statuses"] = sorted(
            (data.pop(name) for name in list(data) if name.startswith(STATUS_ATTRIBUTE_PREFIX)),
            key=lambda entry: str(entry.get("at", "")),
        )
        return Message.model_validate(data)

    def _messages(self, items: list[dict[str, Any]]) -> list[Message]:
        return [message for message in map(self._message, items) if message is not None]

    def put_new_request(self, message: Message) -> dict[str, Any]:
        """A transaction item writing the message once: its position must be free."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": self.item(message),
                "ConditionExpression": "attribute_not_exists(#position)",
                "ExpressionAttributeNames": {"#position": "position"},
            }
        }

    def upsert_request(self, message: Message) -> dict[str, Any]:
        """A transaction item setting the message's fields, keeping any attribute set before it
        (a delivery status may arrive before the message's own record is written)."""
        item = self.item(message)
        fields = [name for name in item if name not in _KEY_FIELDS]
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": item[name] for i, name in enumerate(fields)}
        return {
            "Update": {
                "TableName": self.table,
                "Key": self.key(message.conversation_id, position_of(message)),
                "UpdateExpression": "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def inbound_between(self, conversation_id: str, after_seq: int, upto_seq: int) -> list[Message]:
        """The customer's messages after_seq < seq <= upto_seq, in order: one key range, however long
        the conversation (what was sent in between is in the range too and filtered out)."""
        if upto_seq <= after_seq:
            return []
        found: list[Message] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "conversation_id = :c AND #position BETWEEN :low AND :high",
            "FilterExpression": "direction = :inbound",
            "ExpressionAttributeNames": {"#position": "position"},
            "ExpressionAttributeValues": {
                ":c": {"S": conversation_id},
                ":low": {"S": inbound_position(after_seq + 1)},
                ":high": {"S": inbound_position(upto_seq)},
                ":inbound": {"S": "inbound"},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            found.extend(self._messages(page.get("Items", [])))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def seq_range(self, conversation_id: str, from_seq: int, upto_seq: int) -> list[Message]:
        """Every message with from_seq <= seq <= upto_seq, in order (customer messages and what was sent
        after each): one key range."""
        if upto_seq < from_seq:
            return []
        found: list[Message] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "conversation_id = :c AND #position BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#position": "position"},
            "ExpressionAttributeValues": {
                ":c": {"S": conversation_id},
                ":low": {"S": inbound_position(from_seq)},
                # Everything sent after the upto_seq-th message sorts below the next one's "#in".
                ":high": {"S": inbound_position(upto_seq + 1)},
            },
            "ConsistentRead": True,
        }
        while True:
            page = self._db.query(**kwargs)
            found.extend(m for m in self._messages(page.get("Items", [])) if m.seq <= upto_seq)
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def history(
        self,
        conversation_id: str,
        *,
        limit: int | None = None,
        newest_first: bool = False,
        after_position: str | None = None,
    ) -> HistoryPage:
        """One page of the conversation in order (or newest first), ``limit`` messages at most."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "conversation_id = :c",
            "ExpressionAttributeValues": {":c": {"S": conversation_id}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if after_position is not None:
            kwargs["ExclusiveStartKey"] = self.key(conversation_id, after_position)
        found: list[Message] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(found)
            page = self._db.query(**kwargs)
            found.extend(self._messages(page.get("Items", [])))
            last = page.get("LastEvaluatedKey")
            if last is None:
                return HistoryPage(found, None)
            if limit is not None and len(found) >= limit:
                return HistoryPage(found, str(last["position"]["S"]))
            kwargs["ExclusiveStartKey"] = last

    def all_of(self, conversation_id: str) -> Iterator[Message]:
        """Every message of the conversation in order, page by page."""
        after: str | None = None
        while True:
            page = self.history(conversation_id, limit=500, after_position=after)
            yield from page.messages
            if page.next_position is None:
                return
            after = page.next_position

    def put_all(self, messages: list[Message]) -> None:
        """Write many messages as they are (seeding, migration): BatchWriteItem, unprocessed retried.

        Idempotent: a message's key is its position, so writing it again replaces it with itself.
        """
        pending = [{"PutRequest": {"Item": self.item(m)}} for m in messages]
        attempts = 0
        while pending:
            batch, pending = pending[:25], pending[25:]
            answer = self._db.batch_write_item(RequestItems={self.table: batch})
            unprocessed = answer.get("UnprocessedItems", {}).get(self.table, [])
            if unprocessed:
                attempts += 1
                if attempts > 10:
                    raise RuntimeError(f"{len(unprocessed)} messages not written after 10 attempts")
                pending = unprocessed + pending
