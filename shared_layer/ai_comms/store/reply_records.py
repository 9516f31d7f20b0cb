"""The reply processor's conditional writes on a conversation: lease, pending reply, sent sids, outcome.

One processor at a time answers a conversation: it holds a lease (owner + expiry in epoch ms) taken
with a condition, and every later write is conditional on still owning it, so a processor whose lease
expired can never overwrite the work of the one that took over.
"""

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.conversation import Conversation, PendingReply
from ai_comms.models.events import HandoffReason, HandoffRequested
from ai_comms.models.lifecycle import guard
from ai_comms.models.message import Message
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import TransactionCancelled, condition_failed, from_item, to_value, transact_write
from ai_comms.store.messages import MessageRepository
from ai_comms.store.outbox import outbox_put_request

# The lifecycle's transitions these writes make (models.lifecycle).
HAND_OVER = guard("hand_over")
WINDOW_CLOSED = guard("window_closed")
MISCONFIGURED = guard("tenant_misconfigured")


class LeaseHeld(Exception):
    """Another processor is answering the conversation."""

    def __init__(self, conversation: Conversation) -> None:
        super().__init__("conversation is leased by another processor")
        self.conversation = conversation


class LeaseLost(Exception):
    """Our lease expired and was taken over, or the record changed under a guarded write."""


class ConversationMissing(Exception):
    pass


@dataclass(frozen=True)
class HandOver:
    """A person takes the conversation in the reply's final write, announced through the outbox."""

    reason: HandoffReason
    detail: str | None
    event: HandoffRequested


@dataclass(frozen=True)
class LeaseRef:
    recipient_tel: str
    conversation_id: str
    owner: str

    @property
    def key(self) -> dict[str, Any]:
        return ConversationRepository.key(self.recipient_tel, self.conversation_id)


class ReplyRecords:
    def __init__(self, dynamodb: Any, table: str, messages_table: str) -> None:
        self._db = dynamodb
        self._table = table
        self._conversations = ConversationRepository(dynamodb, table)
        self._messages = MessageRepository(dynamodb, messages_table)

    def get(self, recipient_tel: str, conversation_id: str) -> Conversation | None:
        return self._conversations.get(recipient_tel, conversation_id)

    def acquire(self, lease: LeaseRef, now_ms: int, until_ms: int) -> Conversation:
        """Take the lease when it is free or expired; the answer is the record as it now stands.

        The lease also notes the inbound sequence it covers, read atomically with the take.
        """
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=lease.key,
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_until = :until, "
                    "lease_upto = if_not_exists(inbound_seq, :zero)"
                ),
                ConditionExpression=(
                    "attribute_exists(conversation_id) AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":owner": {"S": lease.owner},
                    ":until": {"N": str(until_ms)},
                    ":now": {"N": str(now_ms)},
                    ":zero": {"N": "0"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            current = self.get(lease.recipient_tel, lease.conversation_id)
            if current is None:
                raise ConversationMissing(lease.conversation_id) from error
            raise LeaseHeld(current) from error
        return Conversation.model_validate(from_item(answer["Attributes"]))

    def release(self, lease: LeaseRef) -> bool:
        """Give the lease back early; False when it was no longer ours (nothing to undo then)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=lease.key,
                UpdateExpression="REMOVE lease_owner, lease_until, lease_upto",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": {"S": lease.owner}},
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def _guarded(
        self,
        lease: LeaseRef,
        update: str,
        values: dict[str, Any],
        extra_condition: str = "",
        names: dict[str, str] | None = None,
    ) -> None:
        condition = "lease_owner = :owner" + (f" AND ({extra_condition})" if extra_condition else "")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": lease.key,
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {":owner": {"S": lease.owner}, **values},
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._db.update_item(**kwargs)
        except ClientError as error:
            if condition_failed(error):
                raise LeaseLost("lease lost or record changed") from error
            raise

    def set_ai_conversation(
        self, lease: LeaseRef, ai_conversation_id: str, now: str, replacing: str | None = None
    ) -> None:
        """Keep the AI conversation's id: the first one, or a new one replacing `replacing`."""
        values = {":ai": {"S": ai_conversation_id}, ":now": {"S": now}}
        condition = "attribute_not_exists(ai_conversation_id)"
        if replacing is not None:
            values[":old"] = {"S": replacing}
            condition = "ai_conversation_id = :old"
        self._guarded(lease, "SET ai_conversation_id = :ai, updated_at = :now", values, condition)

    def begin_ai_turn(self, lease: LeaseRef, ai_conversation_id: str, upto_seq: int, now: str) -> None:
        """Note, before the customer's messages up to `upto_seq` are put on the AI conversation, that
        they may be there from now on: a retry reads the AI conversation before sending them again."""
        self._guarded(
            lease,
            "SET ai_turn_upto = :upto, ai_turn_conversation_id = :ai, updated_at = :now",
            {":upto": {"N": str(upto_seq)}, ":ai": {"S": ai_conversation_id}, ":now": {"S": now}},
        )

    def store_pending(self, lease: LeaseRef, pending: PendingReply, now: str, handoff: bool = False) -> None:
        """Save the decided reply before the first send, with the handoff it implies.

        The handoff flag is written here, not after sending, so it holds even when the final write
        fails; it is set only if no one set it meanwhile.
        """
        sets = ["pending_reply = :pending", "updated_at = :now"]
        values: dict[str, Any] = {":pending": to_value(pending.model_dump()), ":now": {"S": now}}
        extra = ""
        names = None
        if handoff:
            sets += [
                "handoff_to_human = :true",
                "#status = :status",
                "handoff_reason = :reason",
                "handoff_detail = :detail",
            ]
            values.update(
                {
                    ":true": {"BOOL": True},
                    ":false": {"BOOL": False},
                    ":status": {"S": "handed_off"},
                    ":reason": {"S": pending.handoff_reason or "ai_action"},
                    ":detail": {"S": pending.handoff_detail} if pending.handoff_detail else {"NULL": True},
                }
            )
            names = {"#status": "status"}
            condition, from_values, _ = HAND_OVER
            values.update(from_values)
            extra = f"(attribute_not_exists(handoff_to_human) OR handoff_to_human = :false) AND {condition}"
        self._guarded(lease, "SET " + ", ".join(sets), values, extra, names)

    def record_progress(self, lease: LeaseRef, recorded: int, new_sids: list[str], attempted: int) -> None:
        """Append the sids sent since the last write and set how many parts have been attempted.

        Written before each send with attempted = index + 1, so a part attempted without a recorded
        sid is never sent again (Twilio may have accepted it). The same write carries the previous
        part's sid, so this is one conditional write per part. `recorded` is how many sids the record
        holds now: a stale writer cannot append twice.
        """
        sets = ["pending_reply.attempted = :attempted"]
        values: dict[str, Any] = {":attempted": {"N": str(attempted)}, ":count": {"N": str(recorded)}}
        if new_sids:
            sets.append("pending_reply.sent_sids = list_append(pending_reply.sent_sids, :sids)")
            values[":sids"] = {"L": [{"S": sid} for sid in new_sids]}
        self._guarded(lease, "SET " + ", ".join(sets), values, "size(pending_reply.sent_sids) = :count")

    def complete(
        self,
        lease: LeaseRef,
        upto_seq: int,
        outbound: list[Message],
        now: str,
        expires_at: int,
        hand_over: HandOver | None = None,
    ) -> None:
        """The final write: the sent parts as message items, answered_seq, no pending reply, lease
        released, the conversation's expiry moved on (and, for a hand-over, the flag and its event
        in the outbox); one transaction touching only small items."""
        sets = ["answered_seq = :upto", "updated_at = :now", "expires_at = :expires"]
        values: dict[str, Any] = {
            ":owner": {"S": lease.owner},
            ":upto": {"N": str(upto_seq)},
            ":now": {"S": now},
            ":expires": {"N": str(expires_at)},
        }
        names: dict[str, str] = {}
        if outbound:
            sets.append("last_activity_at = :now")
        if hand_over is not None:
            sets += [
                "handoff_to_human = :true",
                "#status = :handed_off",
                "handoff_reason = :reason",
                "handoff_detail = :detail",
            ]
            values.update(
                {
                    ":true": {"BOOL": True},
                    ":handed_off": {"S": "handed_off"},
                    ":reason": {"S": hand_over.reason},
                    ":detail": {"S": hand_over.detail} if hand_over.detail else {"NULL": True},
                }
            )
            names["#status"] = "status"
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": lease.key,
            "UpdateExpression": "SET "
            + ", ".join(sets)
            + " REMOVE pending_reply, lease_owner, lease_until, lease_upto",
            "ConditionExpression": "lease_owner = :owner",
            "ExpressionAttributeValues": values,
        }
        if names:
            update["ExpressionAttributeNames"] = names
        items: list[dict[str, Any]] = [{"Update": update}]
        items += [self._messages.upsert_request(m) for m in outbound]
        if hand_over is not None:
            event = hand_over.event
            items.append(
                outbox_put_request(
                    self._messages.table, event, event.handoff_id, now, int(time.time()), source=None
                )
            )
        if len(items) == 1:
            try:
                self._db.update_item(**update)
            except ClientError as error:
                if condition_failed(error):
                    raise LeaseLost("lease lost before the final write") from error
                raise
            return
        try:
            transact_write(self._db, items)
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                raise LeaseLost("lease lost before the final write") from cancelled
            raise

    def close_window(self, lease: LeaseRef, upto_seq: int, now: str, change_status: bool = True) -> None:
        """The messages up to `upto_seq` came after the window: answered with nothing. An active
        conversation becomes window_closed; one a person has (or one ignored) keeps its status."""
        values: dict[str, Any] = {":upto": {"N": str(upto_seq)}, ":now": {"S": now}}
        sets = "SET answered_seq = :upto, updated_at = :now"
        condition = ""
        if change_status:
            condition, from_values, target = WINDOW_CLOSED
            values.update({**from_values, ":closed": {"S": target}})
            sets += ", #status = :closed"
        self._guarded(
            lease,
            sets + " REMOVE lease_owner, lease_until, lease_upto",
            values,
            condition,
            names={"#status": "status"} if change_status else None,
        )

    def mark_failed(self, lease: LeaseRef, reason: str, now: str) -> None:
        """A permanent failure: later deliveries fail fast on this status and reach the DLQ."""
        condition, from_values, target = MISCONFIGURED
        self._guarded(
            lease,
            "SET #status = :failed, failure_reason = :reason, updated_at = :now "
            "REMOVE lease_owner, lease_until, lease_upto",
            {":failed": {"S": target}, ":reason": {"S": reason}, ":now": {"S": now}, **from_values},
            condition,
            names={"#status": "status"},
        )
