"""Every event the engine publishes, for the checks that Terraform's rules route each one."""

from ai_comms.models.events import (
    DeliveryFailed,
    EventDetail,
    HandoffRequested,
    ReplyReceived,
    ReplyWindowClosed,
)
from ai_comms.models.outbound import ConversationRequested

EVENT_TYPES: tuple[type[EventDetail], ...] = (
    ReplyReceived,
    ConversationRequested,
    HandoffRequested,
    ReplyWindowClosed,
    DeliveryFailed,
)
