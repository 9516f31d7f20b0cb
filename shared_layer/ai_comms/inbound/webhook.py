"""What the Twilio webhook does with a customer's message: authenticate, record once, route.

Order matters: nothing is read from the store with a request field before that field is checked
(a key DynamoDB would refuse is a 400, not a 500), and nothing is stored before the signature is
verified. The message then joins the newest open conversation between the customer and the company
number (picked by state: an ended one never captures it), or opens a new one as the project's
first_contact policy says. Either way it is one transaction: the MessageSid claim, the
conversation's next sequence number (or the new conversation), a consent change when the message
is an opt-out or opt-in keyword, and the message item. Once it commits the message is safe and the
answer is 200. Its ReplyReceived event is not published here: the messages table's stream carries
every new message to the outbox relay (inbound.outbox), which publishes it. So a failing event bus
never loses an accepted message, and a warm, matched message costs two AWS calls (one Query, one
TransactWriteItems). Twilio does not retry a webhook answered 5xx by default (only connection
failures and timeouts), so a 5xx is kept for failures before anything was stored.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from ai_comms.addresses import AddressError, tel_of
from ai_comms.clock import iso, parse_iso, utc_now
from ai_comms.config import ChannelRuntime, Settings
from ai_comms.consent.keywords import keyword_of, normalised
from ai_comms.errors import BadRequest, NotFound, RetryLater
from ai_comms.inbound.form import WEBHOOK_MAX_BODY_BYTES, decode_form
from ai_comms.inbound.verify import TwilioRequests
from ai_comms.masking import mask_address
from ai_comms.models.consent import ConsentChange, ConsentChangeKind
from ai_comms.models.conversation import Conversation, ConversationStatus
from ai_comms.models.events import ReplyRoute
from ai_comms.models.message import InboundContent, Message
from ai_comms.models.tenant import ProjectConfig
from ai_comms.models.twilio_inbound import TwilioInbound
from ai_comms.providers import aws_clients
from ai_comms.store.claims import Claims
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import INBOUND_CLAIM_PREFIX, ConversationRepository, Recorded
from ai_comms.store.messages import MessageRepository
from ai_comms.store.tenants import TenantRepository

logger = Logger(child=True)

# A message racing another of the same conversation re-reads it; past this many tries the
# conversation is too busy and Twilio gets a 503 (nothing was stored).
MAX_RECORD_ATTEMPTS = 4
# Fixed forever: the ids of the conversations customers open follow from it.
FIRST_CONTACT_NAMESPACE = uuid.UUID("8c1f4f7e-3b2a-5d6c-9e0f-1a2b3c4d5e6f")
FIRST_CONTACT_STATUS: dict[str, ConversationStatus] = {
    "ai": "active",
    "handoff": "handed_off",
    "ignore": "ignored",
}


@dataclass(frozen=True)
class WebhookRequest:
    """The parts of an API Gateway request the webhook needs, free of the event format."""

    channel: str
    body: str | None
    is_base64: bool
    headers: Mapping[str, str]
    url: str


@dataclass(frozen=True)
class Accepted:
    route: ReplyRoute | None
    duplicate: bool
    consent_change: ConsentChangeKind | None = None


def route_for(project: ProjectConfig, conversation: Conversation) -> ReplyRoute:
    """Who takes the message: an inactive project's messages go to people, never to the AI."""
    if project.status != "active" or conversation.handoff_to_human or conversation.status == "handed_off":
        return "handoff"
    if conversation.status == "ignored":
        return "ignored"
    return "ai_reply"


class InboundService:
    def __init__(self, settings: Settings, dynamodb: Any) -> None:
        self._settings = settings
        self._requests = TwilioRequests(settings, TenantRepository(dynamodb, settings.company_table))
        self._conversations = ConversationRepository(dynamodb, settings.conversations_table)
        self._messages = MessageRepository(dynamodb, settings.messages_table)
        self._consent = ConsentRepository(dynamodb, settings.consent_table)
        self._claims = Claims(settings.idempotency_table, INBOUND_CLAIM_PREFIX)

    @classmethod
    def from_env(cls) -> "InboundService":
        return cls(Settings.from_env(), aws_clients.lazy("dynamodb"))

    @property
    def public_base_url(self) -> str:
        return self._settings.public_base_url

    def handle(self, request: WebhookRequest) -> Accepted:
        channel = self._settings.channels.get(request.channel)
        if channel is None:
            raise NotFound(f"unknown channel {request.channel!r}")
        params = decode_form(
            request.body, request.is_base64, self._settings.max_body_bytes or WEBHOOK_MAX_BODY_BYTES
        )
        to = params.first("To")
        if not to:
            raise BadRequest("missing field: To")
        try:
            # Before the tenant lookup uses it as a key: anything but a channel address is a 400.
            tel_of(to, channel.address_prefix)
        except AddressError as error:
            raise BadRequest(f"To is not a {channel.name} address") from error
        project = self._requests.project_for(to, channel)
        self._requests.verify(project, channel, request.url, request.headers, params)
        try:
            inbound = TwilioInbound.model_validate(params.flat())
        except ValidationError as error:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors()})
            raise BadRequest("invalid fields: " + ", ".join(fields), details=fields) from error
        try:
            customer_tel = tel_of(inbound.from_, channel.address_prefix)
        except AddressError as error:
            raise BadRequest(f"From is not a {channel.name} address") from error
        media_types = [params.first(f"MediaContentType{n}") or "unknown" for n in range(inbound.num_media)]
        content = inbound.content([media_type[:128] for media_type in media_types])
        keyword = keyword_of(inbound.body, project.consent)
        for _ in range(MAX_RECORD_ATTEMPTS):
            current, newest = self._conversations.open_for(customer_tel, inbound.to)
            closing = current if current is not None and self._idle(project, current) else None
            if closing is not None:
                current = None
            opens = current is None
            conversation = current or self._first_contact(project, channel, inbound, customer_tel, newest)
            recorded = self._record(project, conversation, inbound, content, keyword, opens, closing)
            if recorded is not None:
                return recorded
        logger.warning("conversation kept changing; answered 503", extra={"message_sid": inbound.message_sid})
        raise RetryLater("conversation busy")

    @staticmethod
    def _idle(project: ProjectConfig, conversation: Conversation) -> bool:
        """Idle past the project's limit: the customer's message opens a new conversation instead."""
        if not project.idle_close_hours or conversation.last_activity_at is None:
            return False
        idle = utc_now() - parse_iso(conversation.last_activity_at)
        return idle > timedelta(hours=project.idle_close_hours)

    def _first_contact(
        self,
        project: ProjectConfig,
        channel: ChannelRuntime,
        inbound: TwilioInbound,
        customer_tel: str,
        newest: Conversation | None,
    ) -> Conversation:
        """The conversation a customer's first message (or the first after the last one ended) opens,
        as the project's first_contact policy says. Its id follows from what came before, so two
        first messages racing each other open the same conversation, and the second joins it."""
        now = iso(utc_now())
        status = FIRST_CONTACT_STATUS[project.first_contact]
        seed = f"{inbound.to}|{customer_tel}|after:{newest.conversation_id if newest else '-'}"
        return Conversation(
            recipient_tel=customer_tel,
            conversation_id=str(uuid.uuid5(FIRST_CONTACT_NAMESPACE, seed)),
            channel=channel.name,
            company_id=project.company_id,
            project_id=project.project_id,
            company_address=inbound.to,
            customer_address=inbound.from_,
            status=status,
            handoff_to_human=status == "handed_off",
            opened_by="customer",
            created_at=now,
            updated_at=now,
        )

    def _record(
        self,
        project: ProjectConfig,
        conversation: Conversation,
        inbound: TwilioInbound,
        content: InboundContent | None,
        keyword: ConsentChangeKind | None,
        opens: bool,
        closing: Conversation | None = None,
    ) -> Accepted | None:
        """Record the message on `conversation`; None when the record changed and must be read again.

        A keyword changes the customer's consent in the same transaction; when the customer is in
        that state already, the message is recorded without it (a repeated STOP changes nothing and
        gets no second confirmation)."""
        now = utc_now()
        expires_at = self._expires_at(now)
        route = route_for(project, conversation)
        message = Message(
            conversation_id=conversation.conversation_id,
            direction="inbound",
            author="customer",
            seq=1 if opens else conversation.inbound_seq + 1,
            sid=inbound.message_sid,
            body=inbound.body,
            at=iso(now),
            num_media=inbound.num_media,
            content=content,
            expires_at=expires_at,
            route=route,
            **conversation.parties(),
            consent_change=keyword,
        )
        record = conversation
        if opens:
            record = conversation.model_copy(
                update={
                    "inbound_seq": 1,
                    "last_inbound_at": message.at,
                    "last_activity_at": message.at,
                    "expires_at": expires_at,
                }
            )
        write = self._conversations.record_inbound
        extra = self._consent_change(conversation, message) if keyword else []
        store = (self._messages, self._claims, expires_at)
        outcome = write(record, message, *store, opens=opens, extra=extra, closing=closing)
        if outcome is Recorded.EXTRA_REFUSED:
            message = message.model_copy(update={"consent_change": None})
            outcome = write(record, message, *store, opens=opens, closing=closing)
        if outcome is Recorded.CHANGED:
            return None
        duplicate = outcome is Recorded.DUPLICATE
        logger.info(
            "duplicate message dropped" if duplicate else "reply recorded",
            extra={
                "message_sid": inbound.message_sid,
                "route": route,
                "conversation_id": conversation.conversation_id,
                "opened": opens and not duplicate,
                "inbound_seq": None if duplicate else message.seq,
                "consent_change": None if duplicate else message.consent_change,
                "from": mask_address(conversation.customer_address),
            },
        )
        change = None if duplicate else message.consent_change
        return Accepted(route=route, duplicate=duplicate, consent_change=change)

    def _consent_change(self, conversation: Conversation, message: Message) -> list[dict[str, Any]]:
        assert message.consent_change is not None and message.sid is not None
        change = ConsentChange(
            state="opted_out" if message.consent_change == "opt_out" else "opted_in",
            at=message.at,
            source="keyword",
            keyword=normalised(message.body),
            message_sid=message.sid,
            conversation_id=conversation.conversation_id,
        )
        return self._consent.change_requests(
            conversation.company_address,
            conversation.customer_address,
            conversation.company_id,
            conversation.project_id,
            change,
        )

    def _expires_at(self, now: Any) -> int:
        return int((now + timedelta(days=self._settings.conversation_ttl_days)).timestamp())
