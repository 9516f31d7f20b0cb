"""Conversation records: the latest conversation per customer and company address, inbound messages,
and the two global indexes the conversations API reads.

Keys and indexes:
- table (recipient_tel, conversation_id); the local index ``by-company-address`` sorts a customer's
  conversations by "<company address>#<created_at>" (the webhook's strongly consistent Query);
- ``by-tenant-status``: partition ``tenant_status`` = "<company>#<project>#<status>", sort
  ``last_activity_at``, projecting only what a listing shows. Every write that sets ``status`` sets
  ``tenant_status`` in the same expression (``TenantRef.status_key``), so the index never lists a
  conversation under a status it left. DynamoDB cannot derive one attribute from others, hence the
  copy; the projection keeps the index item a few hundred bytes, so the extra index write of each
  message (``last_activity_at`` moves) stays one write unit;
- ``by-conversation-id``: partition ``conversation_id``, keys only: a conversation found by its id
  alone (the API's paths), written once when the record is created since its keys never change.
"""

import time
from dataclasses import dataclass
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
TENANT_STATUS_INDEX = "by-tenant-status"
CONVERSATION_ID_INDEX = "by-conversation-id"
INBOUND_CLAIM_PREFIX = "twilio-inbound"
# The set clause and its value that keep the by-tenant-status index in step with a status write.
TENANT_STATUS_SET = "tenant_status = :tenant_status"


@dataclass(frozen=True)
class TenantRef:
    """The company and project a conversation belongs to: the first parts of its index key."""

    company_id: str
    project_id: str

    @classmethod
    def of(cls, conversation: Conversation) -> "TenantRef":
        return cls(conversation.company_id, conversation.project_id)

    def status_key(self, status: str) -> str:
        # Company and project ids never contain "#" (models.tenant), so the key is unambiguous.
        return f"{self.company_id}#{self.project_id}#{status}"

    def status_values(self, status: str) -> dict[str, Any]:
        """The ExpressionAttributeValues entry of TENANT_STATUS_SET for a write setting `status`."""
        return {":tenant_status": {"S": self.status_key(status)}}


@dataclass(frozen=True)
class Listed:
    """A conversation as the by-tenant-status index holds it."""

    recipient_tel: str
    conversation_id: str
    channel: str
    customer_address: str
    last_activity_at: str
    handoff_reason: str | None


@dataclass(frozen=True)
class ListedPage:
    conversations: list[Listed]
    # The index key after which the next page starts (LastEvaluatedKey as plain strings), or None.
    next_key: dict[str, str] | None


INDEX_KEY_FIELDS = ("tenant_status", "last_activity_at", "recipient_tel", "conversation_id")


# The newest conversations read to find an open one: a customer rarely has more with one number.
RECENT_CONVERSATIONS = 10


# models.lifecycle: a customer writing again into a conversation whose window closed.
CUSTOMER_RETURNS = guard("customer_returns")
CUSTOMER_RETURNS_FROM = frozenset(BY_NAME["customer_returns"].sources)
CLOSE = guard("close")
HANDBACK = guard("handback")


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


class ChangeRefused(Exception):
    """A conditional change of the conversation did not apply; ``current`` is the record as it is now
    (None: there is none)."""

    def __init__(self, current: Conversation | None) -> None:
        super().__init__("the conversation is not in a state this change applies to")
        self.current = current


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
            values.update(TenantRef.of(conversation).status_values(CUSTOMER_RETURNS[2]))
            sets += f", #status = :returned, {TENANT_STATUS_SET}"
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
                "UpdateExpression": (
                    f"SET #status = :closed, {TENANT_STATUS_SET}, closed_reason = :idle, updated_at = :now"
                ),
                "ConditionExpression": (
                    f"{condition} AND inbound_seq = :seq AND attribute_not_exists(pending_reply) AND "
                    "(attribute_not_exists(last_activity_at) OR last_activity_at = :last)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    **from_values,
                    ":closed": {"S": target},
                    **TenantRef.of(conversation).status_values(target),
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
        return to_item(index_fields(conversation.model_dump(mode="json")))

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

    def _change(self, conversation: Conversation, update: dict[str, Any]) -> Conversation:
        key = self.key(conversation.recipient_tel, conversation.conversation_id)
        try:
            answer = self._db.update_item(TableName=self._table, Key=key, ReturnValues="ALL_NEW", **update)
        except ClientError as error:
            if condition_failed(error):
                raise ChangeRefused(
                    self.get(conversation.recipient_tel, conversation.conversation_id)
                ) from error
            raise
        return Conversation.model_validate(from_item(answer["Attributes"]))

    def hand_back(self, conversation: Conversation, now: str, now_ms: int) -> Conversation:
        """From a person back to the AI, in one conditional update: the handoff flag cleared, status
        active, and answered_seq moved to inbound_seq as it stands at that instant, so no message the
        person handled is ever answered by the AI (a message recorded a moment later carries the AI
        route and is the first the AI answers). Refused (ChangeRefused) unless the conversation is
        handed off or ignored (models.lifecycle "handback"), no reply is being sent (its final write
        would move answered_seq back) and no reply processor holds the lease.

        The messages the person handled are noted for the AI's next turn (human_era_from/upto):
        from the answered_seq as read (the condition holds it), or, if the AI has not answered since
        an earlier handback, from where that one began, so a second handoff before the AI spoke again
        does not hide the first one's messages."""
        unanswered_since_last = (
            conversation.human_era_upto is not None
            and conversation.human_era_from is not None
            and conversation.answered_seq == conversation.human_era_upto
        )
        era_from = conversation.human_era_from if unanswered_since_last else conversation.answered_seq
        condition, from_values, target = HANDBACK
        return self._change(
            conversation,
            {
                "UpdateExpression": (
                    f"SET handoff_to_human = :false, #status = :active, {TENANT_STATUS_SET}, "
                    "updated_at = :now, human_era_from = :from, human_era_upto = inbound_seq, "
                    "answered_seq = inbound_seq"
                ),
                "ConditionExpression": (
                    f"{condition} AND answered_seq = :answered AND attribute_not_exists(pending_reply) AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :now_ms)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    **from_values,
                    ":false": {"BOOL": False},
                    ":active": {"S": target},
                    **TenantRef.of(conversation).status_values(target),
                    ":now": {"S": now},
                    ":from": {"N": str(era_from)},
                    ":answered": {"N": str(conversation.answered_seq)},
                    ":now_ms": {"N": str(now_ms)},
                },
            },
        )

    def close(self, conversation: Conversation, now: str, now_ms: int) -> Conversation:
        """Status closed, so the customer's next message opens a new conversation (open_for skips an
        ended one). Refused (ChangeRefused) for a conversation not open (models.lifecycle "close"),
        or one a reply is being sent in (its final write would hand it over again)."""
        condition, from_values, target = CLOSE
        return self._change(
            conversation,
            {
                "UpdateExpression": (
                    f"SET #status = :closed, {TENANT_STATUS_SET}, handoff_to_human = :false, "
                    "closed_reason = :person, closed_at = :now, updated_at = :now"
                ),
                "ConditionExpression": (
                    f"{condition} AND attribute_not_exists(pending_reply) AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :now_ms)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    **from_values,
                    ":closed": {"S": target},
                    **TenantRef.of(conversation).status_values(target),
                    ":false": {"BOOL": False},
                    ":person": {"S": "person"},
                    ":now": {"S": now},
                    ":now_ms": {"N": str(now_ms)},
                },
            },
        )

    def find(self, conversation_id: str) -> list[Conversation]:
        """Every record with this id (one, unless a request id was reused for another customer after
        its idempotency record expired): the keys from the by-conversation-id index, then each
        record read strongly consistently. The index lags its table by a moment: a conversation
        created this instant may not be found yet."""
        answer = self._db.query(
            TableName=self._table,
            IndexName=CONVERSATION_ID_INDEX,
            KeyConditionExpression="conversation_id = :c",
            ExpressionAttributeValues={":c": {"S": conversation_id}},
            Limit=10,
        )
        found = []
        for key in answer.get("Items", []):
            conversation = self.get(key["recipient_tel"]["S"], conversation_id)
            if conversation is not None:
                found.append(conversation)
        return found

    def by_status(
        self, tenant: TenantRef, status: str, limit: int, after: dict[str, str] | None = None
    ) -> ListedPage:
        """One page of a tenant's conversations in one status, the latest activity first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": TENANT_STATUS_INDEX,
            "KeyConditionExpression": "tenant_status = :k",
            "ExpressionAttributeValues": {":k": {"S": tenant.status_key(status)}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {name: {"S": value} for name, value in after.items()}
        answer = self._db.query(**kwargs)
        listed = []
        for raw in answer.get("Items", []):
            data = from_item(raw)
            listed.append(
                Listed(
                    recipient_tel=str(data["recipient_tel"]),
                    conversation_id=str(data["conversation_id"]),
                    channel=str(data.get("channel", "")),
                    customer_address=str(data.get("customer_address", "")),
                    last_activity_at=str(data["last_activity_at"]),
                    handoff_reason=data.get("handoff_reason"),
                )
            )
        last = answer.get("LastEvaluatedKey")
        next_key = {name: str(value["S"]) for name, value in last.items()} if last else None
        return ListedPage(listed, next_key)


def index_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A new record's attributes with the index keys derived from it: the local index's sort key, the
    tenant-status key, and a last activity (its creation, until a message moves it) so the record
    is listed from the start."""
    return {
        **data,
        "channel_created_at": Conversation.sort_key_for(data["company_address"], data["created_at"]),
        "tenant_status": TenantRef(data["company_id"], data["project_id"]).status_key(data["status"]),
        "last_activity_at": data.get("last_activity_at") or data["created_at"],
    }
