"""ops conversation retry: run a failed, undelivered or handed-over conversation's last step again.

The last step of a conversation is answering its customer: the messages after the last reply that
reached them (a reply Twilio reported failed or undelivered does not count) are answered once more,
as one burst, by the reply processor. The conversation is reopened (store.retries) and the event of
its newest customer message published again; the processor's own checks make a repeat harmless. A
conversation with nothing to answer (a template that never reached the customer, before any reply)
is not reopened: only a new request can reach that customer, and the command says so.
"""

from dataclasses import dataclass

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.delivery import FAILED_STATUSES
from ai_comms.models.lifecycle import BY_NAME
from ai_comms.models.message import Message
from ai_comms.providers.events import EventPublisher
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository
from ai_comms.store.retries import RetryRefused, reopen
from ops.conversations import normalise_tel
from ops.errors import NotFound, OpsError
from ops.target import Target

RETRY_FROM = frozenset(BY_NAME["retry"].sources)


@dataclass(frozen=True)
class Retried:
    conversation: Conversation
    answered_from: int
    messages: int


def reached(message: Message) -> bool:
    """An outbound message Twilio took and never reported failed."""
    delivery = message.delivery
    return message.sid is not None and not (delivery is not None and delivery.status in FAILED_STATUSES)


def retry(target: Target, tel: str, conversation_id: str) -> Retried:
    db = target.client("dynamodb")
    conversation = ConversationRepository(db, target.conversations_table).get(
        normalise_tel(tel), conversation_id
    )
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id} for that number")
    if conversation.status not in RETRY_FROM:
        raise OpsError(
            f"conversation {conversation_id} is {conversation.status}; only "
            f"{', '.join(sorted(RETRY_FROM))} conversations are retried"
        )
    history = list(MessageRepository(db, target.messages_table).all_of(conversation_id))
    answered = max((m.seq for m in history if m.direction == "outbound" and reached(m)), default=0)
    unanswered = [m for m in history if m.direction == "inbound" and m.seq > answered]
    if not unanswered:
        raise OpsError(
            f"conversation {conversation_id} has no customer message to answer (its template never "
            "reached the customer): send a new request to reach them"
        )
    reopened = reopen_or_explain(target, conversation, answered)
    last = unanswered[-1].model_copy(update={"route": "ai_reply"})
    EventPublisher(target.client("events"), target.bus_name).publish(last.reply_received())
    return Retried(reopened, answered, len(unanswered))


def reopen_or_explain(target: Target, conversation: Conversation, answered: int) -> Conversation:
    now = utc_now()
    try:
        return reopen(
            target.client("dynamodb"),
            target.conversations_table,
            conversation,
            answered,
            iso(now),
            int(now.timestamp() * 1000),
        )
    except RetryRefused as refused:
        raise OpsError(f"{refused}: look again with 'conversation show'") from refused
