"""Conversation records: the latest conversation per customer and company address, inbound messages."""

import time
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.conversation import OPEN_STATUSES, Conversation
from ai_comms.models.lifecycle import BY_NAME, guard
from ai_comms.models.message import Message
from ai_comms.store.claims import Claims
from ai_comms.store.dynamo import (
    TransactionCancelled,
    condition_failed,
    from_item,
    to_item,
    transact_write,
)
from ai_comms.store.messages import MessageRepository

LATEST_INDEX = "by-company-address"
INBOUND_CLAIM_PREFIX = "twilio-inbound"


# The newest conversations read to find an open one: a customer rarely has more with one number.
RECENT_CONVERSATIONS = 10


# models.lifecycle: a customer writing again into a conversation whose window closed.
CUSTOMER_RETURNS = guard("customer_returns")
CUSTOMER_RETURNS_FROM = frozenset(BY_NAME["customer_returns"].sources)
CLOSE = guard("close")


class Recorded(Enum):
    RECORDED = "recorded"
    # The MessageSid was recorded before: a Twilio retry, nothing written.
    DUPLICATE = "duplicate"
    # The conversation changed since it was read (another message, a handoff), or another first
    # message opened it meanwhile: read it again.
    CHANGED = "changed"
    # The extra writes' condition failed (a keyword for the state the customer is in): nothing was
    # written; record the message without them.
    EXTRA_REFUSED = "extra_refused"


class ConversationRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    @staticmethod
    def key(recipient_tel: str, conversation_id: str) -> dict[str, Any]:
        return {"recipient_tel": {"S": recipient_tel}, "conversation_id": {"S": conversation_id}}

    def get(self, recipient_tel: str, conversation_id: str) -> Conversation | None:
        answer = self._db.get_item(
            TableName=self._table, Key=self.key(recipient_tel, conversation_id), ConsistentRead=True
        )
        return Conversation.model_validate(from_item(answer["Item"])) if "Item" in answer else None

    def open_for(
        self, recipient_tel: str, company_address: str
    ) -> tuple[Conversation | None, Conversation | None]:
        """(the newest open conversation, the newest of all) between a customer and a company address:
        one strongly consistent Query of the newest few on the local index, picked by state, so an
        ended conversation (closed, failed, undelivered) never captures a reply meant for an open one."""
        answer = self._db.query(
            TableName=self._table,
            IndexName=LATEST_INDEX,
            KeyConditionExpression="recipient_tel = :tel AND begins_with(channel_created_at, :addr)",
            ExpressionAttributeValues={":tel": {"S": recipient_tel}, ":addr": {"S": company_address + "#"}},
            ScanIndexForward=False,
            Limit=RECENT_CONVERSATIONS,
            ConsistentRead=True,
        )
        found = [Conversation.model_validate(from_item(item)) for item in answer.get("Items", [])]
        newest_open = next((c for c in found if c.status in OPEN_STATUSES), None)
        return newest_open, (found[0] if found else None)

    def latest_for(self, recipient_tel: str, company_address: str) -> Conversation | None:
        """One strongly consistent Query on the local index, newest first."""
        answer = self._db.query(
            TableName=self._table,
            IndexName=LATEST_INDEX,
            KeyConditionExpression="recipient_tel = :tel AND begins_with(channel_created_at, :addr)",
            ExpressionAttributeValues={":tel": {"S": recipient_tel}, ":addr": {"S": company_address + "#"}},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        return Conversation.model_validate(from_item(items[0])) if items else None

    def record_inbound(
        self,
        conversation: Conversation,
        message: Message,
        messages: MessageRepository,
        claims: Claims,
        expires_at: int,
        *,
        opens: bool = False,
        extra: list[dict[str, Any]] | None = None,
        closing: Conversation | None = None,
    ) -> Recorded:
        """Store a customer message: one transaction of small writes, whatever the history's size.

        The MessageSid claim that makes a Twilio retry a no-op; the conversation's next inbound
        sequence number (conditional on the record being as it was read, so two messages never take
        one number and a route decided on a stale record is never stored), or the conversation
        itself when the message opens it (`opens`: conditional on no one opening it first); then
        `extra` (a consent change) and the message item. `closing` is the idle conversation the new
        one replaces: closed in the same transaction, if it is still as it was read.
        """
        assert message.sid is not None
        conversation_write = (
            self._create_request(conversation)
            if opens
            else self._next_seq_request(conversation, message, expires_at)
        )
        extra = extra or []
        # The only write to a table with a stream goes last: moto (the unit tests' emulator)
        # leaks the stream record of a put it rolls back when a later item's condition fails.
        closes = [self._close_idle_request(closing, message.at)] if closing is not None else []
        items = [
            claims.claim_request(message.sid, int(time.time()), message.conversation_id),
            conversation_write,
            *closes,
            *extra,
            messages.put_new_request(message),
        ]
        try:
            transact_write(self._db, items)
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                return Recorded.DUPLICATE
            if cancelled.failed(1) or (closes and cancelled.failed(2)) or cancelled.conflict:
                return Recorded.CHANGED
            if any(cancelled.failed(2 + len(closes) + i) for i in range(len(extra))):
                return Recorded.EXTRA_REFUSED
            raise
        return Recorded.RECORDED

    def _next_seq_request(
        self, conversation: Conversation, message: Message, expires_at: int
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":seq": {"N": str(message.seq)},
            ":prev": {"N": str(conversation.inbound_seq)},
            ":at": {"S": message.at},
            ":expires": {"N": str(expires_at)},
            ":handoff": {"BOOL": conversation.handoff_to_human},
            ":status": {"S": conversation.status},
        }
        unchanged = "inbound_seq = :prev"
        if conversation.inbound_seq == 0:
            unchanged = "(attribute_not_exists(inbound_seq) OR inbound_seq = :prev)"
        handoff = "handoff_to_human = :handoff"
        if not conversation.handoff_to_human:
            handoff = "(attribute_not_exists(handoff_to_human) OR handoff_to_human = :handoff)"
        sets = (
            "SET inbound_seq = :seq, last_inbound_at = :at, last_activity_at = :at, "
            "updated_at = :at, expires_at = :expires"
        )
        if conversation.status in CUSTOMER_RETURNS_FROM:
            # The customer writing again reopens the window (the status read is the condition's).
            values[":returned"] = {"S": CUSTOMER_RETURNS[2]}
            sets += ", #status = :returned"
        return {
            "Update": {
                "TableName": self._table,
                "Key": self.key(conversation.recipient_tel, conversation.conversation_id),
                "UpdateExpression": sets,
                "ConditionExpression": (
                    f"attribute_exists(conversation_id) AND {unchanged} AND {handoff} AND #status = :status"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
            }
        }

    def _close_idle_request(self, conversation: Conversation, now: str) -> dict[str, Any]:
        """Close a conversation idle past its project's limit, if nothing happened in it since."""
        condition, from_values, target = CLOSE
        return {
            "Update": {
                "TableName": self._table,
                "Key": self.key(conversation.recipient_tel, conversation.conversation_id),
                "UpdateExpression": "SET #status = :closed, closed_reason = :idle, updated_at = :now",
                "ConditionExpression": (
                    f"{condition} AND inbound_seq = :seq AND attribute_not_exists(pending_reply) AND "
                    "(attribute_not_exists(last_activity_at) OR last_activity_at = :last)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    **from_values,
                    ":closed": {"S": target},
                    ":idle": {"S": "idle"},
                    ":now": {"S": now},
                    ":seq": {"N": str(conversation.inbound_seq)},
                    ":last": {"S": conversation.last_activity_at or ""},
                },
            }
        }

    def _create_request(self, conversation: Conversation) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": self.item(conversation),
                "ConditionExpression": "attribute_not_exists(conversation_id)",
            }
        }

    @staticmethod
    def item(conversation: Conversation) -> dict[str, Any]:
        item = to_item(conversation.model_dump(mode="json"))
        item["channel_created_at"] = {
            "S": Conversation.sort_key_for(conversation.company_address, conversation.created_at)
        }
        return item

    def put_new(self, conversation: Conversation) -> bool:
        """Create the record unless it exists; returns False when it already did."""
        item = self.item(conversation)
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(conversation_id)"
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True
