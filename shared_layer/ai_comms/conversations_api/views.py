"""The stored records as the API shows them: customers' addresses masked, delivery statuses read."""

from datetime import datetime

from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation
from ai_comms.models.conversations_api import (
    ConversationState,
    ConversationSummary,
    DeliveryView,
    HistoryMessage,
)
from ai_comms.models.delivery import StatusEntry
from ai_comms.models.message import Message
from ai_comms.reply_window import window_closed
from ai_comms.store.conversations import Listed
from ai_comms.store.messages import position_of


def summary(listed: Listed, status: str) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=listed.conversation_id,
        channel=listed.channel,
        customer=mask_address(listed.customer_address),
        status=status,
        last_activity_at=listed.last_activity_at,
        handoff_reason=listed.handoff_reason,
    )


def state(conversation: Conversation, now: datetime) -> ConversationState:
    return ConversationState(
        conversation_id=conversation.conversation_id,
        company_id=conversation.company_id,
        project_id=conversation.project_id,
        channel=conversation.channel,
        customer=mask_address(conversation.customer_address),
        status=conversation.status,
        handed_off=conversation.handoff_to_human,
        handoff_reason=conversation.handoff_reason,
        reply_window_open=not window_closed(conversation.customer_address, conversation.last_inbound_at, now),
        inbound_seq=conversation.inbound_seq,
        answered_seq=conversation.answered_seq,
        last_inbound_at=conversation.last_inbound_at,
        last_activity_at=conversation.last_activity_at,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )


def _delivery(entry: StatusEntry) -> DeliveryView:
    return DeliveryView(status=entry.status, at=entry.at, error_code=entry.error_code)


def message(item: Message) -> HistoryMessage:
    current = item.delivery
    return HistoryMessage(
        position=position_of(item),
        direction=item.direction,
        author=item.author,
        body=item.body,
        at=item.at,
        sid=item.sid,
        message_id=item.message_id,
        delivery=_delivery(current) if current is not None else None,
        statuses=[_delivery(entry) for entry in item.statuses],
    )
