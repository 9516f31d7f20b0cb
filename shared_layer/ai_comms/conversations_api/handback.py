"""Handing a conversation back to the AI, and closing one: the rules people and tools share (the API
and `python -m ops conversation handback` both come here).

Handback is one conditional update (store.conversations.hand_back): the handoff flag cleared and
answered_seq moved to inbound_seq together, so the AI answers the customer's next message and never
one a person already handled. Whether the AI reads what was said meanwhile is the project's
``ai.human_era_context``; its next turn reads it from the messages noted by the same update.
Closing ends the conversation: the customer's next message opens a new one.
"""

from ai_comms.clock import iso, utc_now
from ai_comms.errors import Conflict, NotFound
from ai_comms.models.conversation import OPEN_STATUSES, Conversation
from ai_comms.models.lifecycle import BY_NAME
from ai_comms.store.conversations import ChangeRefused, ConversationRepository

# A reply finishing or a message arriving between the read and the write: read again, this often.
ATTEMPTS = 3
BUSY = "a reply is being sent in this conversation; retry in a few seconds"
HANDBACK_FROM = frozenset(BY_NAME["handback"].sources)
CLOSE_FROM = frozenset(BY_NAME["close"].sources)


def _now() -> tuple[str, int]:
    now = utc_now()
    return iso(now), int(now.timestamp() * 1000)


def hand_back(conversations: ConversationRepository, conversation: Conversation) -> Conversation:
    """The conversation as the handback left it; NotFound, or Conflict with the reason."""
    current: Conversation | None = conversation
    for _ in range(ATTEMPTS):
        if current is None:
            raise NotFound("no such conversation")
        if current.status not in HANDBACK_FROM:
            raise Conflict("the conversation is not with a person; nothing changed", code="not_handed_off")
        if current.pending_reply is not None:
            break
        now, now_ms = _now()
        if (current.lease_until or 0) >= now_ms:
            break
        try:
            return conversations.hand_back(current, now, now_ms)
        except ChangeRefused as refused:
            current = refused.current
    raise Conflict(BUSY, code="conversation_busy")


def close(conversations: ConversationRepository, conversation: Conversation) -> Conversation:
    """The conversation as closing left it (already closed: as it is); Conflict when it cannot be."""
    current: Conversation | None = conversation
    for _ in range(ATTEMPTS):
        if current is None:
            raise NotFound("no such conversation")
        if current.status == "closed":
            return current
        if current.status not in CLOSE_FROM:
            if current.status in OPEN_STATUSES:
                break  # the engine is still opening it: its own writes would reopen it
            raise Conflict(f"the conversation has ended ({current.status})", code="conversation_ended")
        if current.pending_reply is not None:
            break
        now, now_ms = _now()
        if (current.lease_until or 0) >= now_ms:
            break
        try:
            return conversations.close(current, now, now_ms)
        except ChangeRefused as refused:
            current = refused.current
    raise Conflict(BUSY, code="conversation_busy")
