"""The conversations API's operations, wired to the stores and Twilio once per container."""

import os
from typing import Any

from ai_comms.api_access import ApiAccess
from ai_comms.clock import utc_now
from ai_comms.config import Settings
from ai_comms.conversations_api import handback
from ai_comms.conversations_api.access import Caller, TenantAccess
from ai_comms.conversations_api.agent_message import AgentMessageSender
from ai_comms.conversations_api.reading import Reading
from ai_comms.conversations_api.views import state
from ai_comms.models.conversations_api import (
    AgentMessageAccepted,
    AgentMessageRequest,
    ConversationDetail,
    ConversationPage,
    ConversationState,
    ListableStatus,
)
from ai_comms.providers import aws_clients
from ai_comms.providers.twilio_client import TwilioSender
from ai_comms.store.agent_messages import AgentMessages
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.messages import MessageRepository
from ai_comms.store.tenants import TenantRepository

# An agent's text is at most 4,096 characters; JSON escapes can make that about 50 KB.
DEFAULT_MAX_BODY_BYTES = 65536


class ConversationsApi:
    def __init__(self, settings: Settings, dynamodb: Any, access: ApiAccess, twilio: TwilioSender) -> None:
        self._settings = settings
        self._conversations = ConversationRepository(dynamodb, settings.conversations_table)
        messages = MessageRepository(dynamodb, settings.messages_table)
        self._access = TenantAccess(
            TenantRepository(dynamodb, settings.company_table),
            self._conversations,
            access,
            settings.tenant_cache_seconds,
        )
        self._reading = Reading(self._access, self._conversations, messages)
        self._sender = AgentMessageSender(
            settings,
            self._access,
            AgentMessages(
                dynamodb, settings.idempotency_table, settings.conversations_table, settings.messages_table
            ),
            ConsentRepository(dynamodb, settings.consent_table),
            twilio,
        )

    @classmethod
    def from_env(cls) -> "ConversationsApi":
        settings = Settings.from_env()
        return cls(
            settings,
            aws_clients.lazy("dynamodb"),
            ApiAccess.from_env(),
            TwilioSender(
                api_base_url=settings.twilio_api_base_url or None,
                timeout_seconds=float(os.environ.get("TWILIO_TIMEOUT_SECONDS", "5")),
            ),
        )

    @property
    def max_body_bytes(self) -> int:
        return self._settings.max_body_bytes or DEFAULT_MAX_BODY_BYTES

    def list(
        self, caller: Caller, status: ListableStatus, cursor: str | None, limit: int
    ) -> ConversationPage:
        return self._reading.page(caller, status, cursor, limit)

    def detail(
        self, caller: Caller, conversation_id: str, cursor: str | None, limit: int
    ) -> ConversationDetail:
        return self._reading.detail(caller, conversation_id, cursor, limit)

    def send(
        self, caller: Caller, conversation_id: str, request: AgentMessageRequest, idempotency_key: str | None
    ) -> AgentMessageAccepted:
        return self._sender.send(caller, conversation_id, request, idempotency_key)

    def hand_back(self, caller: Caller, conversation_id: str) -> ConversationState:
        _, conversation = self._access.conversation(caller, conversation_id)
        return state(handback.hand_back(self._conversations, conversation), utc_now())

    def close(self, caller: Caller, conversation_id: str) -> ConversationState:
        _, conversation = self._access.conversation(caller, conversation_id)
        return state(handback.close(self._conversations, conversation), utc_now())
