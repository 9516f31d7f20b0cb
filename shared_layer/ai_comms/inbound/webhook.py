"""What the Twilio webhook does with a customer's message: authenticate, record once, route.

Order matters: nothing is read from the store with a request field before that field is checked
(a key DynamoDB would refuse is a 400, not a 500), and nothing is stored before the signature is
verified. A matched message is then one transaction (the conversation's next sequence number, the
message item, the MessageSid claim): once it commits the message is safe and the answer is 200.
Its ReplyReceived event is not published here: the messages table's stream carries every new
message to the outbox relay (inbound.outbox), which publishes it. So a failing event bus never
loses an accepted message, and a warm, matched message costs two AWS calls (one Query, one
TransactWriteItems). Twilio does not retry a webhook answered 5xx by default (only connection
failures and timeouts), so a 5xx is kept for failures before anything was stored.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from ai_comms.addresses import AddressError, tel_of
from ai_comms.clock import iso, utc_now
from ai_comms.config import ChannelRuntime, Settings
from ai_comms.errors import BadRequest, Forbidden, NotFound, RetryLater
from ai_comms.inbound.form import WEBHOOK_MAX_BODY_BYTES, decode_form
from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation
from ai_comms.models.events import ReplyReceived, ReplyRoute
from ai_comms.models.message import Message
from ai_comms.models.tenant import AddressRoute, ProjectConfig
from ai_comms.models.twilio_inbound import TwilioInbound
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher, PublishFailed
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.twilio_signature import FormParams, is_valid_signature
from ai_comms.store.claims import Claims
from ai_comms.store.conversations import INBOUND_CLAIM_PREFIX, ConversationRepository, Recorded
from ai_comms.store.dynamo import condition_failed
from ai_comms.store.messages import MessageRepository
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

logger = Logger(child=True)

# A message racing another of the same conversation re-reads it; past this many tries the
# conversation is too busy and Twilio gets a 503 (nothing was stored).
MAX_RECORD_ATTEMPTS = 4


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


class InboundService:
    def __init__(self, settings: Settings, dynamodb: Any, events: Any) -> None:
        self._settings = settings
        self._tenants = TenantRepository(dynamodb, settings.company_table)
        self._conversations = ConversationRepository(dynamodb, settings.conversations_table)
        self._messages = MessageRepository(dynamodb, settings.messages_table)
        self._claims = Claims(settings.idempotency_table, INBOUND_CLAIM_PREFIX)
        self._dynamodb = dynamodb
        self._publisher = EventPublisher(events, settings.event_bus_name)
        self._routes: TtlCache[str, AddressRoute | None] = TtlCache(settings.tenant_cache_seconds)
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(
            settings.tenant_cache_seconds
        )

    @classmethod
    def from_env(cls) -> "InboundService":
        return cls(Settings.from_env(), aws_clients.lazy("dynamodb"), aws_clients.lazy("events"))

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
        project = self._project_for(to, channel)
        self._verify(project, channel, request, params)
        try:
            inbound = TwilioInbound.model_validate(params.flat())
        except ValidationError as error:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in error.errors()})
            raise BadRequest("invalid fields: " + ", ".join(fields), details=fields) from error
        try:
            customer_tel = tel_of(inbound.from_, channel.address_prefix)
        except AddressError as error:
            raise BadRequest(f"From is not a {channel.name} address") from error
        for _ in range(MAX_RECORD_ATTEMPTS):
            conversation = self._conversations.latest_for(customer_tel, inbound.to)
            if conversation is None:
                return self._publish_unmatched(channel, project, inbound, customer_tel)
            recorded = self._record(conversation, inbound)
            if recorded is not None:
                return recorded
        logger.warning(
            "conversation kept changing; Twilio gets a 503", extra={"message_sid": inbound.message_sid}
        )
        raise RetryLater("conversation busy")

    def _project_for(self, to: str, channel: ChannelRuntime) -> ProjectConfig:
        route = self._routes.get_or_load(to, lambda: self._tenants.find_route(to))
        if route is None or route.channel != channel.name:
            # Answer as for a bad signature: the caller learns nothing about which numbers exist.
            logger.warning("no tenant for address", extra={"to": mask_address(to)})
            raise Forbidden("request not authenticated")
        key = (route.company_id, route.project_id)
        project = self._projects.get_or_load(key, lambda: self._tenants.get_project(*key))
        if project is None or project.channel(channel.name) is None:
            logger.warning("address routes to a missing project", extra={"to": mask_address(to)})
            raise Forbidden("request not authenticated")
        return project

    def _verify(
        self, project: ProjectConfig, channel: ChannelRuntime, request: WebhookRequest, params: FormParams
    ) -> None:
        settings = project.channels[channel.name]
        try:
            secret = get_secret_json(settings.twilio_secret_ref, self._settings.secret_cache_seconds)
        except SecretUnavailable as error:
            logger.error("twilio secret unavailable", extra={"project_id": project.project_id})
            raise RetryLater("credentials unavailable") from error
        signature = request.headers.get("x-twilio-signature", "")
        settings_header = request.headers.get("x-twilio-webhooks-signature-settings")
        token = str(secret.get("auth_token", ""))
        if not is_valid_signature(token, request.url, params, signature, settings_header):
            logger.warning("signature rejected", extra={"project_id": project.project_id})
            raise Forbidden("request not authenticated")
        account_sid = secret.get("account_sid")
        if account_sid and params.first("AccountSid") != account_sid:
            logger.warning("account sid does not match the tenant", extra={"project_id": project.project_id})
            raise Forbidden("request not authenticated")

    def _record(self, conversation: Conversation, inbound: TwilioInbound) -> Accepted | None:
        """Record the message on `conversation`; None when the record changed and must be read again."""
        now = utc_now()
        route: ReplyRoute = "handoff" if conversation.handoff_to_human else "ai_reply"
        message = Message(
            conversation_id=conversation.conversation_id,
            direction="inbound",
            author="customer",
            seq=conversation.inbound_seq + 1,
            sid=inbound.message_sid,
            body=inbound.body,
            at=iso(now),
            num_media=inbound.num_media,
            expires_at=self._expires_at(now),
            route=route,
            channel=conversation.channel,
            company_id=conversation.company_id,
            project_id=conversation.project_id,
            recipient_tel=conversation.recipient_tel,
            customer_address=conversation.customer_address,
            company_address=conversation.company_address,
        )
        outcome = self._conversations.record_inbound(
            conversation, message, self._messages, self._claims, self._expires_at(now)
        )
        if outcome is Recorded.CHANGED:
            return None
        duplicate = outcome is Recorded.DUPLICATE
        logger.info(
            "duplicate message dropped" if duplicate else "reply recorded",
            extra={
                "message_sid": inbound.message_sid,
                "route": route,
                "conversation_id": conversation.conversation_id,
                "inbound_seq": None if duplicate else message.seq,
                "from": mask_address(conversation.customer_address),
            },
        )
        return Accepted(route=route, duplicate=duplicate)

    def _publish_unmatched(
        self, channel: ChannelRuntime, project: ProjectConfig, inbound: TwilioInbound, customer_tel: str
    ) -> Accepted:
        """No conversation to record it on: claim the sid, publish the event, release the claim when
        the publish fails (nothing else was stored, so Twilio's retry may do it again)."""
        claim = self._claims.claim_request(inbound.message_sid, int(utc_now().timestamp()), "unmatched")
        try:
            self._dynamodb.put_item(**claim["Put"])
        except ClientError as error:
            if not condition_failed(error):
                raise
            logger.info("duplicate message dropped", extra={"message_sid": inbound.message_sid})
            return Accepted(route="unmatched", duplicate=True)
        event = ReplyReceived(
            channel=channel.name,
            route="unmatched",
            company_id=project.company_id,
            project_id=project.project_id,
            conversation_id=None,
            recipient_tel=customer_tel,
            customer_address=inbound.from_,
            company_address=inbound.to,
            message_sid=inbound.message_sid,
            body=inbound.body,
            num_media=inbound.num_media,
            received_at=iso(utc_now()),
        )
        try:
            event_id = self._publisher.publish(event)
        except (PublishFailed, ClientError, BotoCoreError) as error:
            logger.error("publish failed; the claim is released", extra={"message_sid": inbound.message_sid})
            try:
                self._dynamodb.delete_item(
                    TableName=self._claims.table, Key=self._claims.key(inbound.message_sid)
                )
            except (ClientError, BotoCoreError):
                logger.warning("claim not released; a retry within its lifetime is dropped")
            raise RetryLater("event bus unavailable") from error
        logger.info(
            "reply accepted",
            extra={"message_sid": inbound.message_sid, "route": "unmatched", "event_id": event_id},
        )
        return Accepted(route="unmatched", duplicate=False)

    def _expires_at(self, now: Any) -> int:
        return int((now + timedelta(days=self._settings.conversation_ttl_days)).timestamp())
