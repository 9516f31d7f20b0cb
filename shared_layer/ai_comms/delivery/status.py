"""What the status route does with a StatusCallback: authenticate, store the status once, react.

Checked like an incoming message (inbound.verify), with the company address in ``From`` (Twilio
reports on a message the company sent): the tenant's signature and AccountSid; then the conversation
the URL names must be that tenant's and that customer's, so one tenant can never write to another's
conversation, even with a valid signature of its own.

Each status is stored once with its message (store.delivery). A failure also changes what happens
next, in the same transaction:
- the opening template failed or was undelivered: the conversation is ``undelivered`` with the
  error (it never reached the customer; the company may try again with a new request);
- a reply was undelivered with 63016 (outside WhatsApp's 24-hour window): ReplyWindowClosed, and
  the conversation goes to a person (only a template reaches the customer now);
- a reply failed otherwise: the conversation goes to a person with the error code;
and every failure publishes DeliveryFailed. Events go through the outbox, so the function never
calls EventBridge and a failing bus never loses one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from ai_comms.addresses import AddressError, tel_of
from ai_comms.clock import iso, utc_now
from ai_comms.config import Settings
from ai_comms.delivery.callback_url import CONVERSATION_PARAM, POSITION_PARAM
from ai_comms.errors import BadRequest, Forbidden, NotFound
from ai_comms.inbound.form import WEBHOOK_MAX_BODY_BYTES, decode_form
from ai_comms.inbound.verify import NOT_AUTHENTICATED, TwilioRequests
from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation
from ai_comms.models.delivery import OUTSIDE_WINDOW, StatusCallback
from ai_comms.models.events import DeliveryFailed, HandoffRequested, ReplyWindowClosed
from ai_comms.models.lifecycle import guard
from ai_comms.providers import aws_clients
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.delivery import ConversationChange, DeliveryRecords, OutboxEvent, Stored
from ai_comms.store.messages import parse_position
from ai_comms.store.tenants import TenantRepository

logger = Logger(child=True)

STATUS_SOURCE = "ai-comms.status-callback"
# The lifecycle's transitions a failure makes (models.lifecycle).
TEMPLATE_UNDELIVERED = guard("template_undelivered")
HAND_OVER = guard("hand_over")
_CONVERSATION_ID_MAX = 128


@dataclass(frozen=True)
class StatusRequest:
    channel: str
    body: str | None
    is_base64: bool
    headers: Mapping[str, str]
    url: str
    query: Mapping[str, list[str]]


@dataclass(frozen=True)
class StatusResult:
    stored: Stored
    callback: StatusCallback
    template: bool


def _single(query: Mapping[str, list[str]], name: str) -> str:
    values = query.get(name) or []
    if len(values) != 1 or not values[0]:
        raise BadRequest(f"query parameter {name!r} is required once")
    return values[0]


class StatusService:
    def __init__(self, settings: Settings, dynamodb: Any) -> None:
        self._settings = settings
        self._requests = TwilioRequests(settings, TenantRepository(dynamodb, settings.company_table))
        self._conversations = ConversationRepository(dynamodb, settings.conversations_table)
        self._records = DeliveryRecords(dynamodb, settings.conversations_table, settings.messages_table)

    @classmethod
    def from_env(cls) -> "StatusService":
        return cls(Settings.from_env(), aws_clients.lazy("dynamodb"))

    @property
    def public_base_url(self) -> str:
        return self._settings.public_base_url

    def handle(self, request: StatusRequest) -> StatusResult:
        channel = self._settings.channels.get(request.channel)
        if channel is None:
            raise NotFound(f"unknown channel {request.channel!r}")
        conversation_id = _single(request.query, CONVERSATION_PARAM)
        position = _single(request.query, POSITION_PARAM)
        parsed = parse_position(position)
        if len(conversation_id) > _CONVERSATION_ID_MAX or parsed is None or not parsed[1]:
            raise BadRequest("the query does not name an outbound message")
        params = decode_form(
            request.body, request.is_base64, self._settings.max_body_bytes or WEBHOOK_MAX_BODY_BYTES
        )
        company = params.first("From") or ""
        try:
            tel_of(company, channel.address_prefix)
        except AddressError as error:
            raise BadRequest(f"From is not a {channel.name} address") from error
        project = self._requests.project_for(company, channel)
        self._requests.verify(project, channel, request.url, request.headers, params)
        try:
            callback = StatusCallback.model_validate(params.flat())
            recipient_tel = tel_of(callback.to, channel.address_prefix)
        except (ValidationError, AddressError) as error:
            raise BadRequest("not a status callback") from error

        conversation = self._conversations.get(recipient_tel, conversation_id)
        if conversation is None:
            raise NotFound("no such conversation")
        if (
            conversation.company_address != callback.from_
            or conversation.customer_address != callback.to
            or conversation.company_id != project.company_id
        ):
            logger.warning(
                "status for another tenant's conversation", extra={"project_id": project.project_id}
            )
            raise Forbidden(NOT_AUTHENTICATED)

        seq = parsed[0]
        template = seq == 0
        now = utc_now()
        at = iso(now)
        change, events = (
            (None, ())
            if not callback.failed
            else self._consequences(conversation, callback, position, seq, template, at)
        )
        stored = self._records.record(
            recipient_tel,
            conversation_id,
            position,
            callback,
            at,
            int((now + timedelta(days=self._settings.conversation_ttl_days)).timestamp()),
            int(now.timestamp()),
            change=change,
            events=events,
        )
        logger.info(
            "delivery status",
            extra={
                "conversation_id": conversation_id,
                "message_sid": callback.message_sid,
                "status": callback.status,
                "error_code": callback.error_code,
                "stored": stored.value,
                "to": mask_address(callback.to),
            },
        )
        return StatusResult(stored, callback, template)

    def _consequences(
        self,
        conversation: Conversation,
        callback: StatusCallback,
        position: str,
        seq: int,
        template: bool,
        at: str,
    ) -> tuple[ConversationChange | None, tuple[OutboxEvent, ...]]:
        common = {
            "channel": conversation.channel,
            "company_id": conversation.company_id,
            "project_id": conversation.project_id,
            "conversation_id": conversation.conversation_id,
            "recipient_tel": conversation.recipient_tel,
            "customer_address": conversation.customer_address,
            "company_address": conversation.company_address,
        }
        error = f"{callback.status}:{callback.error_code}" if callback.error_code else callback.status
        failed = DeliveryFailed(
            **common,
            message_sid=callback.message_sid,
            position=position,
            template=template,
            seq=seq,
            status=callback.status,
            error_code=callback.error_code,
            reported_at=at,
        )
        events: list[OutboxEvent] = [OutboxEvent(failed, callback.message_sid)]
        if template:
            # Only while the customer has not written: a reply proves the conversation reached them.
            condition, from_values, target = TEMPLATE_UNDELIVERED
            change = ConversationChange(
                update="SET #status = :undelivered, last_error = :error, updated_at = :now",
                condition=f"{condition} AND inbound_seq = :zero",
                values={
                    ":undelivered": {"S": target},
                    ":error": {"S": error},
                    ":now": {"S": at},
                    ":zero": {"N": "0"},
                    **from_values,
                },
                names={"#status": "status"},
            )
            return change, tuple(events)
        window = callback.error_code == OUTSIDE_WINDOW
        reason = "reply_window_closed" if window else "reply_undelivered"
        if window:
            closed = ReplyWindowClosed(
                **common, upto_seq=seq, last_inbound_at=conversation.last_inbound_at or "", detected_at=at
            )
            events.append(OutboxEvent(closed, callback.message_sid, STATUS_SOURCE))
        handoff = HandoffRequested(
            **common,
            handoff_id=f"{conversation.conversation_id}#undelivered#{callback.message_sid}",
            reason=reason,
            detail=error,
            upto_seq=seq,
            requested_at=at,
        )
        events.append(OutboxEvent(handoff, callback.message_sid, STATUS_SOURCE))
        # A person takes the conversation unless one has it already (or it ended).
        condition, from_values, target = HAND_OVER
        change = ConversationChange(
            update=(
                "SET handoff_to_human = :true, #status = :handed_off, handoff_reason = :reason, "
                "handoff_detail = :error, last_error = :error, updated_at = :now"
            ),
            condition=(
                f"{condition} AND (attribute_not_exists(handoff_to_human) OR handoff_to_human = :false)"
            ),
            values={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":handed_off": {"S": target},
                ":reason": {"S": reason},
                ":error": {"S": error},
                ":now": {"S": at},
                **from_values,
            },
            names={"#status": "status"},
        )
        return change, tuple(events)
