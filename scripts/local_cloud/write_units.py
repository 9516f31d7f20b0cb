"""Write units of the engine's DynamoDB writes: today's layout as measured, the old layout priced.

Today's layout (ai_comms.store.messages, .conversations): a small conversation record, one item per
message, the webhook's message, claim and record update in one TransactWriteItems. A measured
write is an ``ItemWrite`` per item it touched, with the item as it was read right before and right
after (local_cloud.call_tap); DynamoDB bills it by the larger of the two (local_cloud.item_size).

The old layout (ai_comms.store.legacy_history, what ``ops migrate`` moves away from) kept the whole
history on the conversation record: a ``messages`` list of {direction, sid, body, at} entries and
the accepted MessageSids in an ``inbound_sids`` string set, each message appended by an UpdateItem
of that one item. ``legacy_units`` prices the same record writes on an item of that shape holding
the same messages: each is a standard write (one item, no transaction) of the record plus the list
as it stood, and the last of them appends the messages the step added (the customer's message for
a webhook, the reply's parts for a reply). Claims, message items and outbox items have no
counterpart there: their content lived in the list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local_cloud.item_size import item_size, write_units

# DynamoDB's item size limit (Service quotas: "Item size ... 400 KB").
ITEM_LIMIT_BYTES = 400 * 1024
WRITE_OPERATIONS = frozenset(
    {"dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem", "dynamodb.TransactWriteItems"}
)
_LEGACY_FIELDS = ("direction", "sid", "body", "at")

type Item = dict[str, Any]


@dataclass(frozen=True)
class Touch:
    """One item a write request touches: its table and key, the action, whether in a transaction."""

    table: str
    key: Item
    action: str  # Put, Update, Delete, ConditionCheck
    transactional: bool


@dataclass(frozen=True)
class ItemWrite:
    table: str
    key: Item
    action: str
    transactional: bool
    before: Item | None
    after: Item | None

    @property
    def units(self) -> int:
        """A ConditionCheck of a transaction is billed like a write of the item as it stands."""
        return write_units(self.before, self.after, self.transactional)


def key_of(item: Item, key_names: Sequence[str]) -> Item:
    return {name: item[name] for name in key_names}


def touches(operation: str, body: Mapping[str, Any], key_schemas: Mapping[str, Sequence[str]]) -> list[Touch]:
    """The items one write request touches (PutItem, UpdateItem, DeleteItem, TransactWriteItems);
    ``key_schemas`` names each table's key attributes (a Put carries its key inside the item)."""
    if operation == "dynamodb.TransactWriteItems":
        found = []
        for entry in body.get("TransactItems", []):
            ((action, request),) = entry.items()
            found.append(_touch(action, request, key_schemas, transactional=True))
        return found
    actions = {"dynamodb.PutItem": "Put", "dynamodb.UpdateItem": "Update", "dynamodb.DeleteItem": "Delete"}
    if operation not in actions:
        return []
    return [_touch(actions[operation], body, key_schemas, transactional=False)]


def _touch(
    action: str, request: Mapping[str, Any], key_schemas: Mapping[str, Sequence[str]], transactional: bool
) -> Touch:
    table = str(request["TableName"])
    key = key_of(request["Item"], key_schemas[table]) if action == "Put" else dict(request["Key"])
    return Touch(table, key, action, transactional)


def total_units(writes: Sequence[ItemWrite]) -> int:
    return sum(write.units for write in writes)


def legacy_entry(message: Item) -> Item:
    """A message item (DynamoDB JSON) as the old history list held it: {direction, sid, body, at}."""
    fields = {name: message[name] for name in _LEGACY_FIELDS if name in message and "S" in message[name]}
    fields.setdefault("sid", {"S": "unknown"})
    return {"M": fields}


def legacy_record(record: Item, history: Sequence[Item]) -> Item:
    """The conversation record with ``history`` (message items, in order) on it as the old layout
    stored it: the ``messages`` list and the customer messages' sids in ``inbound_sids``."""
    legacy = dict(record)
    legacy["messages"] = {"L": [legacy_entry(message) for message in history]}
    sids = [
        str(message["sid"]["S"])
        for message in history
        if message.get("direction", {}).get("S") == "inbound" and "sid" in message
    ]
    if sids:  # a string set is never empty
        legacy["inbound_sids"] = {"SS": sids}
    return legacy


@dataclass(frozen=True)
class LegacyPrice:
    units: int
    writes: int
    # The largest record of the old shape these writes touched, and whether DynamoDB would have
    # refused it (over the 400 KB item limit).
    item_bytes: int

    @property
    def over_item_limit(self) -> bool:
        return self.item_bytes > ITEM_LIMIT_BYTES


def legacy_units(
    record_writes: Sequence[ItemWrite], history: Sequence[Item], added: Sequence[Item]
) -> LegacyPrice:
    """The record writes of one step priced on the old layout: each a standard write of the record
    (as read before and after it) with ``history`` on it; the last appends ``added``."""
    units = 0
    largest = 0
    for index, write in enumerate(record_writes):
        last = index == len(record_writes) - 1
        before = legacy_record(write.before, history) if write.before is not None else None
        after_history = [*history, *added] if last else history
        after = legacy_record(write.after, after_history) if write.after is not None else None
        units += write_units(before, after)
        largest = max(largest, item_size(before) if before else 0, item_size(after) if after else 0)
    return LegacyPrice(units, len(record_writes), largest)
