"""Inspect a conversation and hand it back from a human to the AI.

Handback is one conditional update: it clears `handoff_to_human` only if it is set, so two operators
(or an operator and the engine) cannot race into a state nobody chose. The webhook routes a customer's
next message to the AI as soon as the flag is clear.
"""

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.clock import iso, utc_now
from ai_comms.models.consent import Consent
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import from_item
from ai_comms.store.messages import MessageRepository
from ops.errors import NotFound, OpsError
from ops.target import Target


def normalise_tel(tel: str) -> str:
    """Accept 'whatsapp:+44...' as well as '+44...': the table's key is the bare number."""
    return tel.strip().rpartition(":")[2]


def _repository(target: Target) -> ConversationRepository:
    return ConversationRepository(target.client("dynamodb"), target.conversations_table)


def all_for(target: Target, tel: str) -> list[Conversation]:
    """Every conversation of one customer number, oldest first (one partition: a Query, not a Scan)."""
    found: list[Conversation] = []
    paginator = target.client("dynamodb").get_paginator("query")
    for page in paginator.paginate(
        TableName=target.conversations_table,
        KeyConditionExpression="recipient_tel = :tel",
        ExpressionAttributeValues={":tel": {"S": normalise_tel(tel)}},
    ):
        found.extend(Conversation.model_validate(from_item(item)) for item in page.get("Items", []))
    return sorted(found, key=lambda c: c.created_at)


@dataclass(frozen=True)
class Shown:
    conversation: Conversation
    # How many conversations the customer's number has.
    count: int
    messages: list[Message]
    consent: Consent | None


def show(target: Target, tel: str, conversation_id: str | None) -> Shown:
    """The given conversation, or the customer's latest, with its messages in order."""
    if conversation_id:
        conversation = _repository(target).get(normalise_tel(tel), conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id} for that number")
        count = len(all_for(target, tel))
    else:
        conversations = all_for(target, tel)
        if not conversations:
            raise NotFound("no conversation for that number")
        conversation, count = conversations[-1], len(conversations)
    messages = MessageRepository(target.client("dynamodb"), target.messages_table)
    consent = ConsentRepository(target.client("dynamodb"), target.consent_table).get(
        conversation.company_address, conversation.customer_address
    )
    return Shown(conversation, count, list(messages.all_of(conversation.conversation_id)), consent)


def handback(target: Target, tel: str, conversation_id: str) -> Conversation:
    """Clear the handoff so the AI answers again; fails (OpsError) if the conversation was not handed off."""
    db = target.client("dynamodb")
    key = ConversationRepository.key(normalise_tel(tel), conversation_id)
    try:
        answer = db.update_item(
            TableName=target.conversations_table,
            Key=key,
            UpdateExpression="SET handoff_to_human = :false, #status = :active, updated_at = :now",
            # An opted-out customer stays silent after a handback too: every send checks consent.
            ConditionExpression="attribute_exists(conversation_id) AND handoff_to_human = :true",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":false": {"BOOL": False},
                ":true": {"BOOL": True},
                ":active": {"S": "active"},
                ":now": {"S": iso(utc_now())},
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        current: dict[str, Any] = db.get_item(
            TableName=target.conversations_table, Key=key, ConsistentRead=True
        )
        if "Item" not in current:
            raise NotFound(f"no conversation {conversation_id} for that number") from error
        raise OpsError(
            f"conversation {conversation_id} is not handed off to a human; nothing changed"
        ) from error
    return Conversation.model_validate(from_item(answer["Attributes"]))
