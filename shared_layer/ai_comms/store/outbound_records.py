"""The conversation record as the sender moves it from "initiating" to "active", one condition per step.

    initiating --claim--> sending --sent--> active
        ^                    |
        +----release---------+ (send refused or failed: no message went out)
                             +--outcome unknown--> active, send_outcome_unknown (never resent)
    initiating/sending --> failed (permanent, or the last attempt)

Every write races with duplicate deliveries of the same request, so none of them reads and then
writes: the AI conversation id and the template variables are kept first-writer-wins
(``if_not_exists``), and only the holder of the "sending" claim may call Twilio. A claim is taken
only from "initiating" and lasts past its holder's invocation, so a claim found expired means its
holder ended after calling Twilio without recording the outcome (it died mid-send, or its final
write failed): Twilio has no idempotency key, so the template may be out, and the claim is closed as
"outcome unknown" instead of being taken again into a second send.
"""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.conversation import Conversation
from ai_comms.models.lifecycle import guard
from ai_comms.models.message import Message
from ai_comms.store.conversations import TENANT_STATUS_SET, TenantRef, index_fields
from ai_comms.store.dynamo import (
    TransactionCancelled,
    condition_failed,
    from_item,
    to_item,
    to_value,
    transact_write,
)
from ai_comms.store.messages import MessageRepository

SENT_STATUSES = frozenset({"active", "handed_off", "window_closed", "opted_out", "closed"})
# Ended without a send: nothing more to do for the request.
WITHHELD_STATUSES = frozenset({"undelivered"})


# The lifecycle's transitions these writes make (models.lifecycle): condition, values, target.
CLAIM = guard("claim_send")
RELEASE = guard("release_send")
WITHHELD = guard("withheld")
SENT = guard("template_sent")
FAILED = guard("request_failed")


@dataclass(frozen=True)
class OutboundRecord:
    """The fields of a stored conversation the sender decides on."""

    status: str
    ai_conversation_id: str | None
    template_variables: dict[str, str] | None
    template_sid: str | None
    send_claim_until: int | None
    last_error: str | None
    send_claim_id: str | None = None

    @property
    def sent(self) -> bool:
        return self.template_sid is not None or self.status in SENT_STATUSES

    @property
    def finished(self) -> bool:
        """Sent, or closed without a send: a redelivery has nothing to do."""
        return self.sent or self.status in WITHHELD_STATUSES

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "OutboundRecord":
        data = from_item(item)
        variables = data.get("template_variables")
        return cls(
            status=str(data.get("status", "initiating")),
            ai_conversation_id=data.get("ai_conversation_id"),
            template_variables={str(k): str(v) for k, v in variables.items()} if variables else None,
            template_sid=data.get("template_sid"),
            send_claim_until=data.get("send_claim_until"),
            last_error=data.get("last_error"),
            send_claim_id=data.get("send_claim_id"),
        )


class OutboundRecords:
    def __init__(self, dynamodb: Any, table: str, messages_table: str) -> None:
        self._db = dynamodb
        self._table = table
        self._messages = MessageRepository(dynamodb, messages_table)

    @staticmethod
    def _key(recipient_tel: str, conversation_id: str) -> dict[str, Any]:
        return {"recipient_tel": {"S": recipient_tel}, "conversation_id": {"S": conversation_id}}

    def create(self, conversation: Conversation, extra: dict[str, Any]) -> bool:
        """Create the record in status "initiating" unless it exists; False when it already did."""
        data = index_fields({**conversation.model_dump(mode="json"), **extra})
        try:
            self._db.put_item(
                TableName=self._table,
                Item=to_item(data),
                ConditionExpression="attribute_not_exists(conversation_id)",
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def get(self, recipient_tel: str, conversation_id: str) -> OutboundRecord | None:
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(recipient_tel, conversation_id), ConsistentRead=True
        )
        return OutboundRecord.from_item(answer["Item"]) if "Item" in answer else None

    def keep_first(self, recipient_tel: str, conversation_id: str, name: str, value: Any, now: str) -> Any:
        """Store `value` under `name` unless a value is there already; returns the stored one."""
        answer = self._db.update_item(
            TableName=self._table,
            Key=self._key(recipient_tel, conversation_id),
            UpdateExpression="SET #n = if_not_exists(#n, :v), updated_at = :now",
            ConditionExpression="attribute_exists(conversation_id)",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues={":v": to_value(value), ":now": {"S": now}},
            ReturnValues="ALL_NEW",
        )
        return from_item(answer["Attributes"])[name]

    def claim(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        until_ms: int,
        now: str,
    ) -> bool:
        """Take the right to send, only from "initiating": an expired "sending" claim is never re-taken
        (its holder may have sent; see ``close_unknown``)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(recipient_tel, conversation_id),
                UpdateExpression=(
                    f"SET #status = :sending, {TENANT_STATUS_SET}, send_claim_id = :id, "
                    "send_claim_until = :until, updated_at = :now ADD send_attempts :one"
                ),
                ConditionExpression=(
                    "attribute_exists(conversation_id) AND attribute_not_exists(template_sid) AND " + CLAIM[0]
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **CLAIM[1],
                    ":sending": {"S": CLAIM[2]},
                    **tenant.status_values(CLAIM[2]),
                    ":id": {"S": claim_id},
                    ":until": {"N": str(until_ms)},
                    ":now": {"S": now},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def release(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        reason: str,
        now: str,
    ) -> None:
        """Give the claim back after a send that certainly did not go out."""
        self._end_claim(RELEASE, tenant, recipient_tel, conversation_id, claim_id, reason, now)

    def withhold(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        reason: str,
        now: str,
    ) -> None:
        """Close the request without sending (the recipient opted out since it was accepted)."""
        self._end_claim(WITHHELD, tenant, recipient_tel, conversation_id, claim_id, reason, now)

    def _end_claim(
        self,
        transition: tuple[str, dict[str, Any], str],
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        reason: str,
        now: str,
    ) -> None:
        """Drop the send claim through a lifecycle transition (models.lifecycle), noting the reason;
        nothing when the claim is no longer this sender's."""
        condition, from_values, target = transition
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(recipient_tel, conversation_id),
                UpdateExpression=(
                    f"SET #status = :target, {TENANT_STATUS_SET}, last_error = :reason, "
                    "updated_at = :now REMOVE send_claim_id, send_claim_until"
                ),
                ConditionExpression=f"send_claim_id = :id AND {condition}",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    **from_values,
                    ":target": {"S": target},
                    **tenant.status_values(target),
                    ":reason": {"S": reason},
                    ":now": {"S": now},
                    ":id": {"S": claim_id},
                },
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    def complete(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        message: Message,
        timings: dict[str, int],
        now: str,
        expires_at: int,
    ) -> None:
        """The template went out: record its sid and its message item, open the conversation."""
        transact_write(
            self._db,
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(recipient_tel, conversation_id),
                        "UpdateExpression": (
                            f"SET #status = :active, {TENANT_STATUS_SET}, template_sid = :sid, "
                            "sent_at = :at, timings = :timings, "
                            "updated_at = :now, last_activity_at = :at, expires_at = :expires "
                            "REMOVE send_claim_id, send_claim_until, last_error"
                        ),
                        "ConditionExpression": f"send_claim_id = :id AND {SENT[0]}",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            **SENT[1],
                            ":active": {"S": SENT[2]},
                            **tenant.status_values(SENT[2]),
                            ":sid": {"S": str(message.sid)},
                            ":at": {"S": message.at},
                            ":timings": to_value(timings),
                            ":now": {"S": now},
                            ":expires": {"N": str(expires_at)},
                            ":id": {"S": claim_id},
                        },
                    }
                },
                self._messages.upsert_request(message),
            ],
        )

    def close_unknown(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        claim_id: str,
        message: Message,
        reason: str,
        now: str,
        expires_at: int,
    ) -> bool:
        """The template may have gone out (sid unknown): open the conversation, flagged, never resend.

        Conditional on the claim `claim_id` still being the record's, so of several deliveries finding
        the same stale claim exactly one closes it (False for the others).
        """
        try:
            transact_write(
                self._db,
                [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": self._key(recipient_tel, conversation_id),
                            "UpdateExpression": (
                                f"SET #status = :active, {TENANT_STATUS_SET}, send_outcome_unknown = :true, "
                                "last_error = :reason, "
                                "updated_at = :now, last_activity_at = :now, expires_at = :expires "
                                "REMOVE send_claim_id, send_claim_until"
                            ),
                            "ConditionExpression": f"{SENT[0]} AND send_claim_id = :id",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                **SENT[1],
                                ":active": {"S": SENT[2]},
                                **tenant.status_values(SENT[2]),
                                ":true": {"BOOL": True},
                                ":reason": {"S": reason},
                                ":now": {"S": now},
                                ":expires": {"N": str(expires_at)},
                                ":id": {"S": claim_id},
                            },
                        }
                    },
                    self._messages.upsert_request(message),
                ],
            )
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                return False
            raise
        return True

    def note_error(
        self,
        tenant: TenantRef,
        recipient_tel: str,
        conversation_id: str,
        reason: str,
        now: str,
        *,
        failed: bool,
    ) -> bool:
        """Record why an attempt failed; `failed` ends the request. Never touches a sent record."""
        expression = "SET last_error = :reason, updated_at = :now"
        # Only while the request is still being made: the failure's transition, from its sources.
        values: dict[str, Any] = {":reason": {"S": reason}, ":now": {"S": now}, **FAILED[1]}
        if failed:
            expression += f", #status = :failed, {TENANT_STATUS_SET}, failed_at = :now"
            values[":failed"] = {"S": FAILED[2]}
            values.update(tenant.status_values(FAILED[2]))
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(recipient_tel, conversation_id),
                UpdateExpression=expression,
                ConditionExpression=FAILED[0],
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True
