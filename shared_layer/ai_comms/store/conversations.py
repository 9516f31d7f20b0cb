"""Conversation records: the latest conversation per customer and company address, inbound messages."""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.conversation import Conversation, StoredMessage
from ai_comms.store.dynamo import from_item, to_value

LATEST_INDEX = "by-company-address"


@dataclass(frozen=True)
class RecordedInbound:
    conversation: Conversation
    inbound_seq: int
    already_recorded: bool


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

    def record_inbound(self, conversation: Conversation, message: StoredMessage) -> RecordedInbound:
        """Append the message once: a repeat of the same sid (a retry after a failed publish) is a no-op."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self.key(conversation.recipient_tel, conversation.conversation_id),
                UpdateExpression=(
                    "SET messages = list_append(if_not_exists(messages, :empty), :msg), "
                    "inbound_seq = if_not_exists(inbound_seq, :zero) + :one, "
                    "last_inbound_at = :at, updated_at = :at ADD inbound_sids :sids"
                ),
                ConditionExpression="attribute_exists(conversation_id) AND NOT contains(inbound_sids, :sid)",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":msg": {"L": [to_value(message.model_dump())]},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":at": {"S": message.at},
                    ":sids": {"SS": [message.sid]},
                    ":sid": {"S": message.sid},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            current = self.get(conversation.recipient_tel, conversation.conversation_id)
            if current is None:
                raise
            return RecordedInbound(current, current.inbound_seq, already_recorded=True)
        updated = Conversation.model_validate(from_item(answer["Attributes"]))
        return RecordedInbound(updated, updated.inbound_seq, already_recorded=False)

    def put_new(self, conversation: Conversation) -> bool:
        """Create the record unless it exists; returns False when it already did."""
        item = {k: to_value(v) for k, v in conversation.model_dump(mode="json").items() if v is not None}
        item["channel_created_at"] = {
            "S": Conversation.sort_key_for(conversation.company_address, conversation.created_at)
        }
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(conversation_id)"
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
