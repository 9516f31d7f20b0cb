"""What the channel sender does with one ConversationRequested: one approved template, sent once.

Steps, each safe to repeat (see ``outbound_records`` for the record's states):

1. create the conversation record ("initiating") unless it exists; a sent one ends here;
2. read the tenant's secrets by the references the event carries (cached per container);
3. create the OpenAI conversation and keep its id on the record *before* anything is sent, so a
   retry reuses it and the customer's replies continue that same AI conversation;
4. ask the AI for the template variables (JSON schema from the project's template config) and keep
   them on the record, so a retry after a Twilio failure does not ask again;
5. claim the send, send the template (ContentSid + ContentVariables), then record sid, history and
   timings. A failure after Twilio accepted the message is logged CRITICAL once and not retried.
   So is a send whose outcome is unknown (read timeout, connection dropped after the request, or a
   claim found expired: its holder ended after calling Twilio without recording the result): the
   conversation is opened with ``send_outcome_unknown`` set, and the template is never sent again.

Any failure before the send is recorded on the conversation (``last_error``; status "failed" when it
cannot heal or on the queue's last receive) and re-raised, so the record is reported in
batchItemFailures and reaches the DLQ after the queue's maxReceiveCount.

The whole record runs under a visibility heartbeat; when it fails, another consumer may already hold
the message, so the record is failed (the claim still prevents a second send).
"""

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from ai_comms.clock import iso, parse_iso, utc_now
from ai_comms.config import Settings
from ai_comms.critical import log_post_send_failure
from ai_comms.delivery.callback_url import status_callback_url
from ai_comms.masking import mask_address
from ai_comms.models.consent import ConsentChange
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import UNKNOWN_SID, Message
from ai_comms.models.outbound import ConversationRequested
from ai_comms.outbound.template_values import normalised_values
from ai_comms.pausing import PauseGate, TenantPaused, park
from ai_comms.providers import aws_clients
from ai_comms.providers.openai_client import (
    AiClient,
    CredentialsRefused,
    Incomplete,
    QuotaExhausted,
    Unanswerable,
)
from ai_comms.providers.secrets import get_secret_json
from ai_comms.providers.sqs_heartbeat import VisibilityHeartbeat, queue_url_from_arn
from ai_comms.providers.twilio_client import SendFailed, SendOutcomeUnknown, TwilioCredentials, TwilioSender
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.conversations import TenantRef
from ai_comms.store.messages import outbound_position
from ai_comms.store.outbound_records import OutboundRecord, OutboundRecords
from ai_comms.store.tenant_pauses import TenantPauses

logger = Logger(child=True)
metrics = Metrics()

# A live claim is given this long past its holder's own deadline before anyone may take it over.
CLAIM_MARGIN_MS = 5_000
CLAIM_POLL_SECONDS = 0.5
# An answer cut short by max_output_tokens is asked once more with this many times the budget.
LARGER_BUDGET_FACTOR = 4


class Outcome(StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    # The recipient opted out after the request was accepted: nothing sent, the conversation closed.
    WITHHELD = "withheld"
    SENT_UNRECORDED = "sent_unrecorded"
    OUTCOME_UNKNOWN = "outcome_unknown"
    # The tenant is paused (credentials or quota): the request waits as a delayed copy of itself.
    PARKED = "parked"


class OutboundFailure(Exception):
    """A record that must be retried by SQS (or, when permanent, ends in the DLQ without retrying work)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class HeartbeatLost(OutboundFailure):
    pass


@dataclass(frozen=True)
class SqsMessage:
    """The parts of an SQS record the sender uses, free of the event format."""

    message_id: str
    body: str
    receipt_handle: str
    queue_arn: str
    receive_count: int


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    conversation_id: str
    timings: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SenderSettings:
    ai_timeout_seconds: float = 20.0
    ai_max_retries: int = 2
    twilio_timeout_seconds: float = 10.0
    heartbeat_beats_per_timeout: int = 3
    max_receives: int = 3
    claim_wait_seconds: float = 20.0
    retry_base_seconds: int = 10

    @classmethod
    def from_env(cls) -> "SenderSettings":
        return cls(
            ai_timeout_seconds=float(os.environ.get("OPENAI_TIMEOUT_SECONDS", "20")),
            ai_max_retries=int(os.environ.get("OPENAI_MAX_RETRIES", "2")),
            twilio_timeout_seconds=float(os.environ.get("TWILIO_TIMEOUT_SECONDS", "10")),
            heartbeat_beats_per_timeout=int(os.environ.get("HEARTBEAT_BEATS_PER_TIMEOUT", "3")),
            max_receives=int(os.environ.get("MAX_RECEIVES", "3")),
            claim_wait_seconds=float(os.environ.get("CLAIM_WAIT_SECONDS", "20")),
            retry_base_seconds=int(os.environ.get("RETRY_BASE_SECONDS", "10")),
        )


def _tenant(request: ConversationRequested) -> TenantRef:
    return TenantRef(request.company_id, request.project_id)


def parse_request(body: str) -> ConversationRequested:
    """The detail of the EventBridge event SQS delivers; anything else can never succeed."""
    try:
        envelope = json.loads(body)
        if envelope.get("detail-type") != ConversationRequested.DETAIL_TYPE:
            raise OutboundFailure(f"not a {ConversationRequested.DETAIL_TYPE} event", permanent=True)
        return ConversationRequested.model_validate(envelope["detail"])
    except (json.JSONDecodeError, AttributeError, KeyError, ValidationError) as error:
        raise OutboundFailure(f"unreadable request ({type(error).__name__})", permanent=True) from error


def render_variables(content_sid: str, variables: dict[str, str]) -> str:
    """The history entry of a template: what the customer saw, readable by people and the AI."""
    filled = " | ".join(f"{{{{{name}}}}}={value}" for name, value in sorted(variables.items()))
    return f"[template {content_sid}] {filled}"


def _ms_between(start: str, end: str) -> int:
    return max(0, int((parse_iso(end) - parse_iso(start)).total_seconds() * 1000))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


class ChannelSender:
    def __init__(
        self,
        settings: Settings,
        sender: SenderSettings,
        dynamodb: Any,
        sqs: Any,
        ai: AiClient,
        twilio: TwilioSender,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._records = OutboundRecords(dynamodb, settings.conversations_table, settings.messages_table)
        self._consent = ConsentRepository(dynamodb, settings.consent_table)
        self._gate = PauseGate(TenantPauses(dynamodb, settings.company_table, settings.tenant_pause_seconds))
        self._sqs = sqs
        self._ai = ai
        self._twilio = twilio
        self._sleep = sleep
        self._queue_urls: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> "ChannelSender":
        settings = Settings.from_env()
        sender = SenderSettings.from_env()
        return cls(
            settings,
            sender,
            aws_clients.lazy("dynamodb"),
            aws_clients.lazy("sqs"),
            AiClient(settings.openai_base_url, sender.ai_timeout_seconds, sender.ai_max_retries),
            TwilioSender(settings.twilio_api_base_url, sender.twilio_timeout_seconds),
        )

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            self._queue_urls[arn] = queue_url_from_arn(self._sqs, arn)
        return self._queue_urls[arn]

    def handle(self, message: SqsMessage, remaining_ms: Callable[[], int]) -> SendResult:
        """One queue record under a visibility heartbeat; raises when SQS must keep the record."""
        request = parse_request(message.body)
        queue_url = self._queue_url(message.queue_arn)
        # The queue's own timeout, read per record (one cheap call beside seconds of AI work), so the
        # heartbeat follows any change of the queue instead of a copy in the environment.
        visibility = int(
            self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])[
                "Attributes"
            ]["VisibilityTimeout"]
        )
        heartbeat = VisibilityHeartbeat(
            self._sqs,
            queue_url,
            message.receipt_handle,
            interval=max(visibility, 1) / self._sender.heartbeat_beats_per_timeout,
            extend_to=max(visibility, 1),
        )
        with heartbeat:
            try:
                result = self._process(request, message, heartbeat, remaining_ms)
            except TenantPaused as paused:
                logger.warning("tenant paused; request parked", extra={"seconds": paused.seconds})
                park(self._sqs, queue_url, message.body, paused.seconds)
                return SendResult(Outcome.PARKED, request.conversation_id)
            except Exception as error:
                self._record_failure(request, message, error)
                self._reschedule(queue_url, message, error)
                raise
        if not heartbeat.healthy:
            # The work is done and recorded; a redelivery will find it sent and stop there.
            raise HeartbeatLost("visibility heartbeat failed while the record was processed")
        return result

    def _process(
        self,
        request: ConversationRequested,
        message: SqsMessage,
        heartbeat: VisibilityHeartbeat,
        remaining_ms: Callable[[], int],
    ) -> SendResult:
        started = iso(utc_now())
        tel, conversation_id = request.recipient.tel, request.conversation_id
        record = self._create_or_get(request, started)
        if record.finished:
            logger.info("already done; nothing to do", extra={"conversation_id": conversation_id})
            return SendResult(Outcome.ALREADY_SENT, conversation_id)
        if record.status == "failed":
            raise OutboundFailure(f"request already failed: {record.last_error}", permanent=True)

        sending = request.sending
        # A paused tenant's request waits; after a pause this attempt is the probe.
        ended = self._gate.check(request.company_id, request.project_id)
        twilio = TwilioCredentials.from_secret(
            get_secret_json(sending.twilio_secret_ref, self._settings.secret_cache_seconds)
        )
        ai_started = time.monotonic()
        variables = self._variables_reading_key_again(request, record)
        ai_ms = int((time.monotonic() - ai_started) * 1000)

        claim_id = f"{message.message_id}:{uuid.uuid4().hex[:8]}"
        body = render_variables(sending.content_sid, variables)
        not_claimed = self._claim(request, claim_id, body, heartbeat, remaining_ms)
        if not_claimed is not None:
            return SendResult(not_claimed, conversation_id)
        # The customer may have opted out since the request was accepted: checked right before the send.
        if self._consent.is_opted_out(sending.company_address, sending.customer_address):
            self._records.withhold(
                _tenant(request), tel, conversation_id, claim_id, "recipient_opted_out", iso(utc_now())
            )
            logger.info("recipient opted out; template not sent", extra={"conversation_id": conversation_id})
            return SendResult(Outcome.WITHHELD, conversation_id)

        send_started = time.monotonic()
        try:
            sid = self._send_template(twilio, request, variables)
        except SendFailed as error:  # certainly not sent: a retry may send
            if error.recipient_unsubscribed:
                return self._blocked(request, claim_id, error)
            self._records.release(
                _tenant(request), tel, conversation_id, claim_id, _reason(error), iso(utc_now())
            )
            if error.credentials:
                metrics.add_metric(name="TenantCredentialErrors", unit=MetricUnit.Count, value=1)
                raise self._gate.pause(
                    request.company_id, request.project_id, "twilio_credentials_refused"
                ) from error
            raise
        except Exception as error:
            # SendOutcomeUnknown (or anything unexpected): Twilio may have accepted the template, so
            # the claim is closed as "outcome unknown" instead of being released into a resend.
            self._close_unknown(request, claim_id, body, error)
            return SendResult(Outcome.OUTCOME_UNKNOWN, conversation_id)
        if ended is not None:
            self._gate.lift(request.company_id, request.project_id)
        sent_at = iso(utc_now())
        timings = {
            "queue_ms": _ms_between(request.requested_at, started),
            "ai_ms": ai_ms,
            "send_ms": int((time.monotonic() - send_started) * 1000),
            "request_to_sent_ms": _ms_between(request.requested_at, sent_at),
        }
        history = self._template_message(request, sid, body, sent_at)
        try:
            self._records.complete(
                _tenant(request),
                tel,
                conversation_id,
                claim_id,
                history,
                timings,
                sent_at,
                self._expires_at(utc_now()),
            )
        except Exception as error:
            log_post_send_failure(
                logger, error, conversation_id=conversation_id, message_sid=sid, channel=request.channel
            )
            return SendResult(Outcome.SENT_UNRECORDED, conversation_id, timings)
        logger.info(
            "template sent",
            extra={
                "conversation_id": conversation_id,
                "message_sid": sid,
                "to": mask_address(sending.customer_address),
                **timings,
            },
        )
        return SendResult(Outcome.SENT, conversation_id, timings)

    def _variables_reading_key_again(
        self, request: ConversationRequested, record: OutboundRecord
    ) -> dict[str, str]:
        """The variables; a key OpenAI refuses is read again once (it may have been rotated), and
        refused again it pauses the tenant."""
        try:
            return self._variables(request, record)
        except CredentialsRefused:
            logger.warning("OpenAI refused the key; reading it again")
        again = self._records.get(request.recipient.tel, request.conversation_id) or record
        try:
            return self._variables(request, again, fresh_key=True)
        except CredentialsRefused as error:
            metrics.add_metric(name="TenantCredentialErrors", unit=MetricUnit.Count, value=1)
            raise self._gate.pause(request.company_id, request.project_id, "openai_key_refused") from error

    def _variables(
        self, request: ConversationRequested, record: OutboundRecord, fresh_key: bool = False
    ) -> dict[str, str]:
        """The template's variables as the AI wrote them, kept on the record (first writer wins) with
        the AI conversation they were written in, so a retry asks nothing again."""
        if record.template_variables is not None:
            return record.template_variables
        sending, tel, conversation_id = request.sending, request.recipient.tel, request.conversation_id
        secret = get_secret_json(
            sending.ai.openai_secret_ref, self._settings.secret_cache_seconds, force_fetch=fresh_key
        )
        openai_key = str(secret.get("api_key", ""))
        ai_conversation_id = record.ai_conversation_id
        if ai_conversation_id is None:
            created = self._ai.create_conversation(
                openai_key,
                {
                    "company_id": request.company_id,
                    "project_id": request.project_id,
                    "conversation_id": conversation_id,
                    "channel": request.channel,
                },
            )
            ai_conversation_id = str(
                self._records.keep_first(tel, conversation_id, "ai_conversation_id", created, iso(utc_now()))
            )
        # A conversation an earlier attempt created may hold that attempt's question already.
        resume = record.ai_conversation_id is not None
        written = normalised_values(self._ask_variables(request, openai_key, ai_conversation_id, resume))
        stored = self._records.keep_first(tel, conversation_id, "template_variables", written, iso(utc_now()))
        return normalised_values({str(k): str(v) for k, v in stored.items()})

    def _ask_variables(
        self, request: ConversationRequested, openai_key: str, ai_conversation_id: str, resume: bool
    ) -> dict[str, str]:
        """The AI's values; an answer cut short by its token budget is asked once more with a larger
        one. What the AI cannot write (filtered, refused) fails the request for good, with the
        reason: asking again the same way would not help."""
        sending = request.sending
        context = self._ai_context(request)
        try:
            try:
                return self._ai.template_variables(
                    openai_key,
                    sending.ai,
                    ai_conversation_id,
                    sending.template_variables,
                    context,
                    resume=resume,
                )
            except Incomplete as error:
                if error.incomplete_reason != "max_output_tokens":
                    raise
                return self._ai.template_variables(
                    openai_key,
                    sending.ai,
                    ai_conversation_id,
                    sending.template_variables,
                    context,
                    max_output_tokens=sending.ai.max_output_tokens * LARGER_BUDGET_FACTOR,
                    resume=True,
                )
        except QuotaExhausted as error:
            metrics.add_metric(name="TenantQuotaErrors", unit=MetricUnit.Count, value=1)
            raise self._gate.pause(
                request.company_id, request.project_id, "openai_quota_exhausted"
            ) from error
        except Unanswerable as error:
            metrics.add_metric(name="AiUnanswerable", unit=MetricUnit.Count, value=1)
            raise OutboundFailure(
                f"the AI cannot write the template's values ({error.reason})", True
            ) from error

    def _blocked(self, request: ConversationRequested, claim_id: str, error: SendFailed) -> SendResult:
        """Twilio refused the template because the recipient blocked the sender (21610): recorded as
        their consent (source "blocked", so no later request sends to them either) and the
        conversation closed undelivered. Never retried: it cannot succeed until they opt in again."""
        sending, tel, conversation_id = request.sending, request.recipient.tel, request.conversation_id
        now = iso(utc_now())
        change = ConsentChange.blocked(error.code, conversation_id, now)
        self._consent.change(
            sending.company_address, sending.customer_address, request.company_id, request.project_id, change
        )
        tenant = _tenant(request)
        self._records.withhold(tenant, tel, conversation_id, claim_id, "recipient_unsubscribed", now)
        metrics.add_metric(name="RecipientsBlocked", unit=MetricUnit.Count, value=1)
        logger.info(
            "recipient blocked the sender; template not sent", extra={"conversation_id": conversation_id}
        )
        return SendResult(Outcome.WITHHELD, conversation_id)

    def _send_template(
        self, twilio: TwilioCredentials, request: ConversationRequested, variables: dict[str, str]
    ) -> str:
        """Send the template; credentials Twilio refuses are read again once (a rotated auth token)
        and the template sent with them: a refusal means it did not go out."""
        sending = request.sending
        callback = status_callback_url(
            self._settings.public_base_url,
            request.channel,
            request.conversation_id,
            outbound_position(0, self._batch(request), 0),
        )
        for attempt in range(2):
            try:
                return self._twilio.send_template(
                    twilio,
                    sending.company_address,
                    sending.customer_address,
                    sending.content_sid,
                    variables,
                    status_callback=callback,
                )
            except SendFailed as refused:
                if not refused.credentials or attempt:
                    raise
                logger.warning("Twilio refused the credentials; reading them again")
                secret = get_secret_json(
                    sending.twilio_secret_ref, self._settings.secret_cache_seconds, force_fetch=True
                )
                twilio = TwilioCredentials.from_secret(secret)
        raise AssertionError("unreachable")

    def _create_or_get(self, request: ConversationRequested, now: str) -> OutboundRecord:
        sending = request.sending
        moment = utc_now()
        conversation = Conversation(
            recipient_tel=request.recipient.tel,
            conversation_id=request.conversation_id,
            channel=request.channel,
            company_id=request.company_id,
            project_id=request.project_id,
            company_address=sending.company_address,
            customer_address=sending.customer_address,
            status="initiating",
            created_at=now,
            updated_at=now,
            expires_at=self._expires_at(moment),
        )
        extra = {
            "request_id": request.request_id,
            "requested_at": request.requested_at,
            "content_sid": sending.content_sid,
            "first_name": request.recipient.first_name,
        }
        if self._records.create(conversation, extra):
            logger.info("conversation created", extra={"conversation_id": request.conversation_id})
            return OutboundRecord("initiating", None, None, None, None, None)
        record = self._records.get(request.recipient.tel, request.conversation_id)
        if record is None:  # created and deleted in between: an operator's doing, try again later
            raise OutboundFailure("conversation record vanished")
        return record

    @staticmethod
    def _ai_context(request: ConversationRequested) -> dict[str, Any]:
        # The AI needs who and what, never how to reach the customer.
        recipient = request.recipient.model_dump(exclude={"tel", "email"}, exclude_none=True)
        return {"recipient": recipient, "project_data": request.project_data, "channel": request.channel}

    def _claim(
        self,
        request: ConversationRequested,
        claim_id: str,
        body: str,
        heartbeat: VisibilityHeartbeat,
        remaining_ms: Callable[[], int],
    ) -> Outcome | None:
        """Take the send claim, waiting a bounded time while a live holder finishes.

        None when the claim is ours; otherwise the outcome to report without sending.
        """
        tel, conversation_id = request.recipient.tel, request.conversation_id
        wait_until = time.monotonic() + min(
            self._sender.claim_wait_seconds, max(0.0, remaining_ms() / 1000 - 10)
        )
        while True:
            if not heartbeat.healthy:
                raise HeartbeatLost("visibility heartbeat failed before the send")
            now_ms = int(time.time() * 1000)
            until_ms = now_ms + remaining_ms() + CLAIM_MARGIN_MS
            tenant = _tenant(request)
            if self._records.claim(tenant, tel, conversation_id, claim_id, until_ms, iso(utc_now())):
                return None
            record = self._records.get(tel, conversation_id)
            if record is None:
                raise OutboundFailure("conversation record vanished")
            if record.finished:
                logger.info("another delivery finished it", extra={"conversation_id": conversation_id})
                return Outcome.ALREADY_SENT
            if record.status == "failed":
                raise OutboundFailure(f"request failed meanwhile: {record.last_error}", permanent=True)
            if (
                record.status == "sending"
                and record.send_claim_id is not None
                and (record.send_claim_until or 0) < now_ms
            ):
                # The claim outlasts its holder's invocation: that holder ended after calling Twilio
                # without recording the result. The template may be out; never send it again.
                stale = SendOutcomeUnknown(f"send claim {record.send_claim_id} expired without a result")
                if self._close_unknown(request, record.send_claim_id, body, stale):
                    return Outcome.OUTCOME_UNKNOWN
                continue  # another delivery closed it meanwhile: the next read sees it sent
            if time.monotonic() >= wait_until:
                raise OutboundFailure("another delivery is still sending this conversation")
            self._sleep(CLAIM_POLL_SECONDS)

    def _reschedule(self, queue_url: str, message: SqsMessage, error: Exception) -> None:
        """Visible again after a backoff, not after the visibility the heartbeat kept extending.

        A permanent failure comes back at once: the record is failed and each redelivery fails fast,
        so the message reaches the DLQ in seconds with no further AI or Twilio call.
        """
        permanent = bool(getattr(error, "permanent", False))
        exponent = max(message.receive_count - 1, 0)
        seconds = 1 if permanent else self._sender.retry_base_seconds * 2**exponent
        try:
            self._sqs.change_message_visibility(
                QueueUrl=queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=min(seconds, 43_200),
            )
        except Exception as failure:  # best effort: without it the record returns after the timeout
            logger.warning("could not reschedule the record", extra={"error": type(failure).__name__})

    def _close_unknown(
        self, request: ConversationRequested, claim_id: str, body: str, error: BaseException
    ) -> bool:
        """The CRITICAL line (alarmed) and the record closed as "outcome unknown"; False if another
        delivery closed it first. A failed write leaves the claim to expire: the next delivery finds
        it stale and closes it, still without sending."""
        tel, conversation_id = request.recipient.tel, request.conversation_id
        now = iso(utc_now())
        history = self._template_message(request, UNKNOWN_SID, body, now)
        try:
            closed = self._records.close_unknown(
                _tenant(request),
                tel,
                conversation_id,
                claim_id,
                history,
                _reason(error),
                now,
                self._expires_at(utc_now()),
            )
        except Exception:
            logger.exception(
                "could not record the unknown outcome", extra={"conversation_id": conversation_id}
            )
            closed = True  # our outcome stands; a later delivery closes the stale claim
        if closed:
            log_post_send_failure(
                logger,
                error,
                conversation_id=conversation_id,
                message_sid=None,
                channel=request.channel,
                send_outcome="unknown",
            )
        return closed

    def _expires_at(self, moment: Any) -> int:
        return int((moment + timedelta(days=self._settings.conversation_ttl_days)).timestamp())

    @staticmethod
    def _batch(request: ConversationRequested) -> int:
        return int(parse_iso(request.requested_at).timestamp() * 1000)

    def _template_message(self, request: ConversationRequested, sid: str, body: str, at: str) -> Message:
        """The opening template as a message item: it follows no customer message (seq 0)."""
        return Message(
            conversation_id=request.conversation_id,
            direction="outbound",
            author="template",
            seq=0,
            batch=self._batch(request),
            sid=sid,
            body=body,
            at=at,
            expires_at=self._expires_at(utc_now()),
        )

    def _record_failure(self, request: ConversationRequested, message: SqsMessage, error: Exception) -> None:
        permanent = bool(getattr(error, "permanent", False))
        last_attempt = message.receive_count >= self._sender.max_receives
        reason = _reason(error)
        give_up = permanent or last_attempt
        try:
            recorded = self._records.note_error(
                _tenant(request),
                request.recipient.tel,
                request.conversation_id,
                reason,
                iso(utc_now()),
                failed=give_up,
            )
        except Exception:  # the original error is what SQS and the logs must see
            logger.exception(
                "could not record the failure", extra={"conversation_id": request.conversation_id}
            )
            recorded = False
        logger.error(
            "conversation request failed",
            extra={
                "conversation_id": request.conversation_id,
                "reason": reason,
                "permanent": permanent,
                "receive_count": message.receive_count,
                "marked_failed": give_up and recorded,
            },
        )
