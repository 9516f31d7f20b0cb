"""Reopening a conversation whose last step failed, so its customer's messages are answered again.

One conditional update (models.lifecycle "retry"): from failed, undelivered or handed off back to
active, with answered_seq moved back to the last customer message that was answered by a reply
that reached them, and no person holding it. Only when no reply is on its way (no pending reply,
no live lease) and nothing arrived since the operator looked (inbound_seq unchanged): a retry never
races the engine into a duplicate.
"""

from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.conversation import Conversation
from ai_comms.models.lifecycle import guard
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import condition_failed, from_item

RETRY = guard("retry")


class RetryRefused(Exception):
    """The conversation changed, or is being worked on: nothing was changed."""


def reopen(
    dynamodb: Any, table: str, conversation: Conversation, answered_seq: int, now: str, now_ms: int
) -> Conversation:
    condition, from_values, target = RETRY
    try:
        answer = dynamodb.update_item(
            TableName=table,
            Key=ConversationRepository.key(conversation.recipient_tel, conversation.conversation_id),
            UpdateExpression=(
                "SET #status = :active, handoff_to_human = :false, answered_seq = :answered, "
                "updated_at = :now REMOVE failure_reason, last_error, handoff_reason, handoff_detail"
            ),
            ConditionExpression=(
                f"{condition} AND inbound_seq = :seen AND attribute_not_exists(pending_reply) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now_ms)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                **from_values,
                ":active": {"S": target},
                ":false": {"BOOL": False},
                ":answered": {"N": str(answered_seq)},
                ":now": {"S": now},
                ":seen": {"N": str(conversation.inbound_seq)},
                ":now_ms": {"N": str(now_ms)},
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if condition_failed(error):
            raise RetryRefused(
                "the conversation changed or a reply is on its way; nothing changed"
            ) from error
        raise
    return Conversation.model_validate(from_item(answer["Attributes"]))
