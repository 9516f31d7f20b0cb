"""What POST /initiate-conversation does: validate, check the tenant, publish ConversationRequested once.

API Gateway has already checked the client's API key against the usage plan before this code runs;
the key must also be one of the clients the project names (api_access): deny by default. A
recipient who opted out of the company address is refused (409 recipient_opted_out) before anything
is published; the channel sender checks again right before it sends.

The conversation id is derived from (company, project, request_id), so a client retrying with its
request_id always learns the same id. The publish is wrapped in Powertools idempotency keyed on the
same triple: a retry does not publish again, and reusing a request_id for a different request
(other recipient, channel or data) is refused with 409 instead of starting a second conversation
under one id. The sender's conditional create is the last guard when a retry outlives the record.
"""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from pydantic import ValidationError

from ai_comms.addresses import address_of
from ai_comms.api_access import ApiAccess
from ai_comms.clock import iso, utc_now
from ai_comms.config import Settings
from ai_comms.errors import BadRequest, Conflict, Forbidden, PayloadTooLarge, RetryLater
from ai_comms.masking import mask_address
from ai_comms.models.outbound import ConversationRequested, InitiateRequest, SendingContext
from ai_comms.models.tenant import ProjectConfig
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher, PublishFailed
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

logger = Logger(child=True)

# Fixed forever: changing it would give retried requests new conversation ids.
CONVERSATION_NAMESPACE = uuid.UUID("5b0f3c1e-8d4a-5c6b-9f27-3e1d2a4b6c80")
REQUEST_MEMORY_SECONDS = 24 * 3600
# A request is a few hundred bytes; project_data is capped at 8 KiB (models.outbound).
DEFAULT_MAX_BODY_BYTES = 16384


@dataclass(frozen=True)
class Accepted:
    conversation_id: str
    duplicate: bool


def conversation_id_for(company_id: str, project_id: str, request_id: str) -> str:
    return str(uuid.uuid5(CONVERSATION_NAMESPACE, f"{company_id}/{project_id}/{request_id}"))


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as [{field, message}], the field a dotted path into the body."""
    found: list[dict[str, str]] = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "body"
        found.append({"field": path, "message": item["msg"]})
    return found


def parse_request(body: str | None, is_base64: bool, max_bytes: int) -> InitiateRequest:
    if not body:
        raise BadRequest("empty body", details=[{"field": "body", "message": "a JSON object is required"}])
    if len(body) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(body, validate=True) if is_base64 else body.encode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError) as error:
        raise BadRequest("body is flagged base64 but is not") from error
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(
            "body is not JSON", details=[{"field": "body", "message": "a JSON object is required"}]
        ) from error
    if not isinstance(data, dict):
        raise BadRequest("body is not a JSON object", details=[{"field": "body", "message": "not an object"}])
    try:
        return InitiateRequest.model_validate(data)
    except ValidationError as error:
        details = field_errors(error)
        raise BadRequest(
            "invalid fields: " + ", ".join(sorted({d["field"] for d in details})), details=details
        ) from error


class InitiateService:
    def __init__(self, settings: Settings, dynamodb: Any, events: Any, access: ApiAccess) -> None:
        self._settings = settings
        self._tenants = TenantRepository(dynamodb, settings.company_table)
        self._consent = ConsentRepository(dynamodb, settings.consent_table)
        self._access = access
        self._publisher = EventPublisher(events, settings.event_bus_name)
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(
            settings.tenant_cache_seconds
        )
        self._idempotency = IdempotencyConfig(
            event_key_jmespath="[company_id, project_id, request_id]",
            payload_validation_jmespath="[channel_method, recipient, project_data]",
            expires_after_seconds=REQUEST_MEMORY_SECONDS,
            raise_on_no_idempotency_key=True,
            response_hook=self._on_duplicate,
        )
        persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb)
        self._publish_once = idempotent_function(
            data_keyword_argument="request",
            persistence_store=persistence,
            config=self._idempotency,
            key_prefix="initiate-conversation",
        )(self._publish)

    @classmethod
    def from_env(cls) -> "InitiateService":
        return cls(
            Settings.from_env(),
            aws_clients.lazy("dynamodb"),
            aws_clients.lazy("events"),
            ApiAccess.from_env(),
        )

    @property
    def max_body_bytes(self) -> int:
        return self._settings.max_body_bytes or DEFAULT_MAX_BODY_BYTES

    def register_context(self, context: Any) -> None:
        self._idempotency.register_lambda_context(context)

    def initiate(self, request: InitiateRequest, api_key_id: str | None) -> Accepted:
        project = self._projects.get_or_load(
            (request.company_id, request.project_id),
            lambda: self._tenants.get_project(request.company_id, request.project_id),
        )
        self._access.check(project, api_key_id)
        assert project is not None
        sending = self._sending_context(project, request)
        if self._consent.is_opted_out(sending.company_address, sending.customer_address):
            logger.info(
                "recipient opted out; nothing published", extra={"to": mask_address(sending.customer_address)}
            )
            raise Conflict("the recipient opted out of this company's messages", code="recipient_opted_out")
        conversation_id = conversation_id_for(request.company_id, request.project_id, request.request_id)
        payload = {**request.model_dump(mode="json"), "conversation_id": conversation_id}
        try:
            result = self._publish_once(request=payload, sending=sending)
        except IdempotencyValidationError as error:
            raise Conflict("request_id was already used for a different request") from error
        except IdempotencyAlreadyInProgressError as error:
            raise Conflict("a request with this request_id is being processed; retry shortly") from error
        except PublishFailed as error:
            logger.error("publish failed", extra={"conversation_id": conversation_id})
            raise RetryLater("event bus unavailable") from error
        return Accepted(
            conversation_id=str(result["conversation_id"]), duplicate=bool(result.get("duplicate"))
        )

    def _sending_context(self, project: ProjectConfig, request: InitiateRequest) -> SendingContext:
        channel = request.channel_method
        if project.status != "active":
            raise Forbidden("project is not active")
        runtime = self._settings.channels.get(channel)
        settings = project.channel(channel)
        if runtime is None or channel not in project.allowed_channels or settings is None:
            raise Forbidden(f"channel {channel!r} is not allowed for this project")
        if not settings.content_sid or not settings.template_variables:
            raise Forbidden(f"channel {channel!r} has no approved template configured for this project")
        return SendingContext(
            company_address=settings.address,
            customer_address=address_of(request.recipient.tel, runtime.address_prefix),
            content_sid=settings.content_sid,
            template_variables=settings.template_variables,
            twilio_secret_ref=settings.twilio_secret_ref,
            ai=project.ai,
        )

    def _publish(self, request: dict[str, Any], sending: SendingContext) -> dict[str, Any]:
        parsed = InitiateRequest.model_validate({k: v for k, v in request.items() if k != "conversation_id"})
        event = ConversationRequested(
            channel=parsed.channel_method,
            company_id=parsed.company_id,
            project_id=parsed.project_id,
            conversation_id=request["conversation_id"],
            request_id=parsed.request_id,
            recipient=parsed.recipient,
            project_data=parsed.project_data,
            sending=sending,
            requested_at=iso(utc_now()),
        )
        event_id = self._publisher.publish(event)
        logger.info(
            "conversation requested",
            extra={
                "conversation_id": event.conversation_id,
                "request_id": event.request_id,
                "channel": event.channel,
                "to": mask_address(sending.customer_address),
                "event_id": event_id,
            },
        )
        return {"conversation_id": event.conversation_id, "event_id": event_id}

    @staticmethod
    def _on_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
        logger.info(
            "repeated request answered from its record", extra={"key": idempotent_data.idempotency_key}
        )
        return {**response, "duplicate": True}
