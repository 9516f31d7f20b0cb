"""What the Twilio webhook does with a customer's message: authenticate, dedupe, record, route, publish.

Order matters: nothing is stored or published before the signature is verified, and a message is
claimed in the idempotency table before it is recorded, so a Twilio retry after success publishes
nothing; a failure before the publish releases the claim, so the retry does the work.
"""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from pydantic import ValidationError

from ai_comms.addresses import AddressError, tel_of
from ai_comms.clock import iso, utc_now
from ai_comms.config import ChannelRuntime, Settings
from ai_comms.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, RetryLater
from ai_comms.masking import mask_address
from ai_comms.models.conversation import StoredMessage
from ai_comms.models.events import ReplyReceived, ReplyRoute
from ai_comms.models.tenant import AddressRoute, ProjectConfig
from ai_comms.models.twilio_inbound import TwilioInbound
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher, PublishFailed
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.twilio_signature import FormParams, is_valid_signature
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

logger = Logger(child=True)

DEDUPE_SECONDS = 7 * 24 * 3600
MAX_FORM_FIELDS = 200


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


def public_url(
    public_base_url: str,
    channel: str,
    headers: Mapping[str, str],
    domain: str | None,
    stage_path: str | None,
    query: Mapping[str, list[str]] | None,
) -> str:
    """The URL Twilio signed: the configured public base wins; else scheme, host and the stage path."""
    if public_base_url:
        url = f"{public_base_url}/{channel}"
    else:
        scheme = headers.get("x-forwarded-proto") or "https"
        host = headers.get("host") or domain or ""
        url = f"{scheme}://{host}{stage_path or '/' + channel}"
    if query:
        url += "?" + urlencode([(k, v) for k, values in query.items() for v in values])
    return url


def decode_form(body: str | None, is_base64: bool, max_bytes: int) -> FormParams:
    if body is None or body == "":
        raise BadRequest("empty body")
    if len(body) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge("body too large")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest("body is flagged base64 but is not") from error
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_bytes:
        raise PayloadTooLarge("body too large")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("body is not a url-encoded form") from error
    params = FormParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


class InboundService:
    def __init__(self, settings: Settings, dynamodb: Any, events: Any) -> None:
        self._settings = settings
        self._tenants = TenantRepository(dynamodb, settings.company_table)
        self._conversations = ConversationRepository(dynamodb, settings.conversations_table)
        self._publisher = EventPublisher(events, settings.event_bus_name)
        self._routes: TtlCache[str, AddressRoute | None] = TtlCache(settings.tenant_cache_seconds)
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(
            settings.tenant_cache_seconds
        )
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="message_sid",
            expires_after_seconds=DEDUPE_SECONDS,
            raise_on_no_idempotency_key=True,
            response_hook=self._on_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)
        self._accept_once = idempotent_function(
            data_keyword_argument="message",
            persistence_store=persistence,
            config=self._idempotency,
            key_prefix="twilio-inbound",
        )(self._accept)

    @classmethod
    def from_env(cls) -> "InboundService":
        return cls(Settings.from_env(), aws_clients.client("dynamodb"), aws_clients.client("events"))

    @property
    def public_base_url(self) -> str:
        return self._settings.public_base_url

    def register_context(self, context: Any) -> None:
        self._idempotency.register_lambda_context(context)

    def handle(self, request: WebhookRequest) -> Accepted:
        channel = self._settings.channels.get(request.channel)
        if channel is None:
            raise NotFound(f"unknown channel {request.channel!r}")
        params = decode_form(request.body, request.is_base64, self._settings.max_body_bytes)
        to = params.first("To")
        if not to:
            raise BadRequest("missing field: To")
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
        message = {
            "message_sid": inbound.message_sid,
            "channel": channel.name,
            "company_id": project.company_id,
            "project_id": project.project_id,
            "customer_tel": customer_tel,
            "customer_address": inbound.from_,
            "company_address": inbound.to,
            "body": inbound.body,
            "num_media": inbound.num_media,
        }
        try:
            result = self._accept_once(message=message)
        except IdempotencyAlreadyInProgressError as error:
            raise RetryLater("this message is being processed") from error
        except PublishFailed as error:
            logger.error("publish failed; Twilio will retry", extra={"message_sid": inbound.message_sid})
            raise RetryLater("event bus unavailable") from error
        return Accepted(route=result.get("route"), duplicate=bool(result.get("duplicate")))

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

    def _accept(self, message: dict[str, Any]) -> dict[str, Any]:
        received_at = iso(utc_now())
        conversation = self._conversations.latest_for(message["customer_tel"], message["company_address"])
        conversation_id: str | None = None
        inbound_seq: int | None = None
        route: ReplyRoute = "unmatched"
        if conversation is not None:
            recorded = self._conversations.record_inbound(
                conversation,
                StoredMessage(
                    direction="inbound", sid=message["message_sid"], body=message["body"], at=received_at
                ),
            )
            conversation_id = conversation.conversation_id
            inbound_seq = recorded.inbound_seq
            route = "handoff" if recorded.conversation.handoff_to_human else "ai_reply"
        event = ReplyReceived(
            channel=message["channel"],
            route=route,
            company_id=message["company_id"],
            project_id=message["project_id"],
            conversation_id=conversation_id,
            recipient_tel=message["customer_tel"],
            customer_address=message["customer_address"],
            company_address=message["company_address"],
            message_sid=message["message_sid"],
            body=message["body"],
            num_media=message["num_media"],
            inbound_seq=inbound_seq,
            received_at=received_at,
        )
        event_id = self._publisher.publish(event)
        logger.info(
            "reply accepted",
            extra={
                "message_sid": message["message_sid"],
                "route": route,
                "conversation_id": conversation_id,
                "from": mask_address(message["customer_address"]),
                "event_id": event_id,
            },
        )
        return {"route": route, "event_id": event_id}

    @staticmethod
    def _on_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
        logger.info("duplicate message dropped", extra={"idempotency_key": idempotent_data.idempotency_key})
        return {**response, "duplicate": True}
