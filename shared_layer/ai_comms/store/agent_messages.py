"""An agent's message on its way out: one record per (conversation, message id) in the idempotency
table, so a repeated request never sends a part twice, and the final write of the sent parts.

The record holds the text's digest (a repeat must be the same message), the message's place in the
conversation (seq, batch: fixed when it is first accepted, so every retry writes the same items),
how many parts there are, how many sends were started (``attempted``, written before each send) and
the sids Twilio returned. As in the reply processor: a part attempted without a recorded sid may have
reached the customer and is never sent again; only a send that certainly did not go out is unmarked.
The conversation record itself is not touched until the final write, and then only its activity
time and expiry: it stays small, and the message items carry the text.
"""

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.message import Message
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import TransactionCancelled, condition_failed, from_item, transact_write
from ai_comms.store.messages import MessageRepository

CLAIM_PREFIX = "agent-message"
# How long a message id is remembered: retries of one request come within minutes.
REMEMBER_SECONDS = 7 * 24 * 3600


@dataclass
class AgentSend:
    conversation_id: str
    message_id: str
    text_sha256: str
    seq: int
    batch: int
    parts: int
    attempted: int = 0
    sids: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def unrecorded_attempt(self) -> bool:
        """A send was started whose sid was never stored: it may have gone out."""
        return self.attempted > len(self.sids)


class ProgressLost(Exception):
    """The record changed under a conditional write: another request with the same id is sending."""


class AgentMessages:
    def __init__(
        self, dynamodb: Any, idempotency_table: str, conversations_table: str, messages_table: str
    ) -> None:
        self._db = dynamodb
        self._table = idempotency_table
        self._conversations_table = conversations_table
        self._messages = MessageRepository(dynamodb, messages_table)

    @staticmethod
    def key(conversation_id: str, message_id: str) -> dict[str, Any]:
        return {"id": {"S": f"{CLAIM_PREFIX}#{conversation_id}#{message_id}"}}

    def get(self, conversation_id: str, message_id: str, now_epoch: int) -> AgentSend | None:
        answer = self._db.get_item(
            TableName=self._table, Key=self.key(conversation_id, message_id), ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None
        data = from_item(item)
        if int(data.get("expiration", 0)) < now_epoch:
            return None  # forgotten: TTL deletes it in its own time
        return AgentSend(
            conversation_id=conversation_id,
            message_id=message_id,
            text_sha256=str(data["text_sha256"]),
            seq=int(data["seq"]),
            batch=int(data["batch"]),
            parts=int(data["parts"]),
            attempted=int(data.get("attempted", 0)),
            sids=[str(sid) for sid in data.get("sids", [])],
            done=bool(data.get("done", False)),
        )

    def start(self, send: AgentSend, now_epoch: int) -> bool:
        """Record the message before its first send; False when the id is taken (read it again)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    **self.key(send.conversation_id, send.message_id),
                    "text_sha256": {"S": send.text_sha256},
                    "seq": {"N": str(send.seq)},
                    "batch": {"N": str(send.batch)},
                    "parts": {"N": str(send.parts)},
                    "attempted": {"N": "0"},
                    "sids": {"L": []},
                    "done": {"BOOL": False},
                    "expiration": {"N": str(now_epoch + REMEMBER_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": {"N": str(now_epoch)}},
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def progress(self, send: AgentSend, recorded: int, new_sids: list[str], attempted: int) -> None:
        """Append the sids sent since the last write and set how many sends were started; conditional
        on the record holding `recorded` sids and the attempts it held, so two requests with one id
        never both send a part (ProgressLost for the one that loses)."""
        sets = ["attempted = :attempted"]
        values: dict[str, Any] = {
            ":attempted": {"N": str(attempted)},
            ":count": {"N": str(recorded)},
            ":was": {"N": str(send.attempted)},
        }
        if new_sids:
            sets.append("sids = list_append(sids, :sids)")
            values[":sids"] = {"L": [{"S": sid} for sid in new_sids]}
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self.key(send.conversation_id, send.message_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="size(sids) = :count AND attempted = :was",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if condition_failed(error):
                raise ProgressLost("another request is sending this message") from error
            raise
        send.sids = send.sids[:recorded] + new_sids
        send.attempted = attempted

    def finish(
        self,
        send: AgentSend,
        recorded: int,
        parts: list[Message],
        recipient_tel: str,
        now: str,
        expires_at: int,
    ) -> None:
        """The sent parts as message items, the conversation's activity and expiry moved on, and the
        record's sids (done when every part went out): one transaction of small items. Repeating it
        writes the same items again."""
        sids = [str(message.sid) for message in parts]
        done = len(sids) == send.parts
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self.key(send.conversation_id, send.message_id),
                    "UpdateExpression": "SET sids = :sids, done = :done",
                    "ConditionExpression": "size(sids) = :count",
                    "ExpressionAttributeValues": {
                        ":sids": {"L": [{"S": sid} for sid in sids]},
                        ":done": {"BOOL": done},
                        ":count": {"N": str(recorded)},
                    },
                }
            },
            {
                "Update": {
                    "TableName": self._conversations_table,
                    "Key": ConversationRepository.key(recipient_tel, send.conversation_id),
                    "UpdateExpression": (
                        "SET last_activity_at = :now, updated_at = :now, expires_at = :expires"
                    ),
                    "ConditionExpression": "attribute_exists(conversation_id)",
                    "ExpressionAttributeValues": {":now": {"S": now}, ":expires": {"N": str(expires_at)}},
                }
            },
            *(self._messages.upsert_request(message) for message in parts),
        ]
        try:
            transact_write(self._db, items)
        except TransactionCancelled as cancelled:
            if cancelled.failed(0):
                raise ProgressLost("another request recorded this message") from cancelled
            raise
        send.sids, send.done = sids, done
