"""Inspect a conversation and hand it back from a human to the AI.

Handback is the conversations API's (ai_comms.conversations_api.handback): one conditional update,
held to the lifecycle's "handback" transition (from handed_off or ignored, models.lifecycle), that
clears `handoff_to_human` and moves answered_seq to inbound_seq with it, so two operators (or an
operator and the engine) cannot race into a state nobody chose, and the AI answers the customer's
next message but never one a person already handled.
"""

from dataclasses import dataclass

from ai_comms.conversations_api.handback import hand_back
from ai_comms.errors import Conflict
from ai_comms.errors import NotFound as RequestNotFound
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
    """Give the conversation back to the AI with the conversations API's own rule (one conditional
    update that also marks every message so far answered, so the AI never answers what a person
    handled); OpsError if it is not handed off or a reply is being sent."""
    repository = _repository(target)
    conversation = repository.get(normalise_tel(tel), conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id} for that number")
    try:
        return hand_back(repository, conversation)
    except RequestNotFound as error:
        raise NotFound(f"no conversation {conversation_id} for that number") from error
    except Conflict as error:
        if error.code == "not_handed_off":
            raise OpsError(
                f"conversation {conversation_id} is not handed off to a human; nothing changed"
            ) from error
        raise OpsError(f"conversation {conversation_id}: {error.message}") from error
