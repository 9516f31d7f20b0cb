"""A long conversation in seconds, for the benchmarks: turns written as the engine would have.

``extend`` adds the customer's messages after the record's ``inbound_seq`` up to ``last``, each
answered by the AI. Each turn goes onto the conversation's AI conversation through the engine's own
client (ai_comms.providers.openai_client.AiClient.reply: the project's instructions, the message as
the AI reads it, its context_management), so the OpenAI fake holds, and compacts, what OpenAI would
after that many replies. The messages are stored through the engine's MessageRepository with the
fields the webhook and the reply processor give them but the route: history stored without one is
answered history, which the outbox relay's filter passes over (terraform/outbox.tf), as it does
for ``ops migrate``. The record's counters move on as the replies would have moved them. Nothing
is sent and no event is published.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.models.tenant import ProjectConfig
from ai_comms.providers.openai_client import AiClient, Turn
from ai_comms.replies.ai_input import ai_text
from ai_comms.splitting import split_message
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository

TTL_DAYS = 30


def customer_text(seq: int) -> str:
    """What the customer writes in message ``seq``: a short question, as most chat messages are."""
    return f"Hi, this is message {seq}: where is my order?"


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def extend(
    dynamodb: Any,
    tables: dict[str, str],
    conversation: Conversation,
    last: int,
    project: ProjectConfig,
    ai: AiClient,
    api_key: str,
    text: Callable[[int], str] = customer_text,
) -> int:
    """Turns ``conversation.inbound_seq + 1 .. last`` (the record as read now, with its AI
    conversation); returns how many messages were stored."""
    first = conversation.inbound_seq + 1
    if last < first:
        return 0
    if conversation.ai_conversation_id is None:
        raise ValueError("the conversation has no AI conversation yet: let the engine answer once first")
    # Spread over the last seconds, in order, so every later real message comes after them.
    start = utc_now() - timedelta(milliseconds=10 * (last - first + 2))
    expires_at = int((utc_now() + timedelta(days=TTL_DAYS)).timestamp())
    messages: list[Message] = []
    for seq in range(first, last + 1):
        asked = start + timedelta(milliseconds=10 * (seq - first))
        answered = asked + timedelta(milliseconds=5)
        inbound = Message(
            conversation_id=conversation.conversation_id,
            direction="inbound",
            author="customer",
            seq=seq,
            sid=_sid("SM"),
            body=text(seq),
            at=iso(asked),
            expires_at=expires_at,
            **conversation.parties(),
        )
        reply = ai.reply(api_key, project.ai, Turn(conversation.ai_conversation_id, ai_text(inbound)))
        batch = int(answered.timestamp() * 1000)
        messages.append(inbound)
        messages += [
            Message(
                conversation_id=conversation.conversation_id,
                direction="outbound",
                author="ai",
                seq=seq,
                batch=batch,
                part=part,
                sid=_sid("SM"),
                body=body,
                at=iso(answered),
                expires_at=expires_at,
            )
            for part, body in enumerate(split_message(reply.reply))
        ]
    MessageRepository(dynamodb, tables["messages"]).put_all(messages)
    now = iso(utc_now())
    dynamodb.update_item(
        TableName=tables["conversations"],
        Key=ConversationRepository.key(conversation.recipient_tel, conversation.conversation_id),
        UpdateExpression=(
            "SET inbound_seq = :last, answered_seq = :last, last_inbound_at = :at, "
            "last_activity_at = :at, updated_at = :now"
        ),
        ConditionExpression="inbound_seq = :seq AND answered_seq = :seq",
        ExpressionAttributeValues={
            ":last": {"N": str(last)},
            ":seq": {"N": str(conversation.inbound_seq)},
            ":at": {"S": messages[-1].at},
            ":now": {"S": now},
        },
    )
    return len(messages)
