"""Answers customer messages: one AI call and one reply per burst, sent exactly once.

The webhook appends each inbound message to the conversation (inbound_seq + 1) and publishes one
event per message to the channel's AI-reply queue, delayed by the debounce window. For each event:

1. A cheap read drops work already done (answered_seq >= the event's inbound_seq: an SQS
   redelivery, or a message an earlier reply covered) and fails fast on a failed conversation.
2. A conditional lease makes this processor the only one answering the conversation. A processor
   that finds the lease held succeeds at once when the holder's reply covers its message (the lease
   notes the inbound_seq it covers); otherwise its record fails and comes back when the lease ends.
3. Every inbound message after answered_seq, in order, is read as one burst: opt-out keywords,
   the WhatsApp 24-hour window, then one AI call with all remaining messages.
4. The decided reply is stored as `pending_reply` before the first send. Before each send one
   conditional write marks the part attempted (`pending_reply.attempted`) and stores the previous
   part's sid; the last sid is stored by the final write itself. A retry finding a pending reply
   never calls the AI again and sends only the parts never attempted: a part attempted without a
   stored sid (its holder timed out, or a write after the send failed) may have reached the
   customer, so it is logged CRITICAL (alarmed), kept with the sid "unknown" and not resent. A send
   whose outcome Twilio left unknown (read timeout, connection dropped after the request) is
   treated the same way; only a send that certainly did not go out is retried.
5. The final write appends the reply to the history, sets answered_seq and drops the lease. A write
   that fails after Twilio accepted a message logs one CRITICAL line (alarmed) and the record is NOT
   retried: a retry could only send a duplicate. Operators reconcile such a conversation by hand
   (its pending_reply shows what was decided and which sids were recorded).

A message arriving during the AI call raises inbound_seq beyond the reply's upto_seq; its own
(delayed) event then gets its own reply. On handoff the flag is set with the pending reply (so later
messages route to the handoff queue at once), HandoffRequested is published, and the customer gets
the tenant's handoff notice instead of the AI's text: the tenant controls that wording, and the AI
wrote its text for a conversation it is leaving.
"""

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.clock import iso, parse_iso, utc_now
from ai_comms.config import Settings
from ai_comms.critical import log_post_send_failure
from ai_comms.masking import mask_address
from ai_comms.models.conversation import UNKNOWN_SID, Conversation, PendingReply, StoredMessage
from ai_comms.models.events import HandoffRequested, ReplyReceived, ReplyWindowClosed
from ai_comms.models.tenant import ChannelSettings, ProjectConfig
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher, PublishFailed
from ai_comms.providers.openai_client import AiClient, AiError
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.sqs_heartbeat import VisibilityHeartbeat, queue_url_from_arn
from ai_comms.providers.twilio_client import SendFailed, SendOutcomeUnknown, TwilioCredentials, TwilioSender
from ai_comms.replies.opt_out import read_burst
from ai_comms.splitting import split_message
from ai_comms.store.reply_records import ConversationMissing, LeaseHeld, LeaseLost, LeaseRef, ReplyRecords
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

logger = Logger(child=True)
metrics = Metrics()

WHATSAPP_PREFIX = "whatsapp:"
REPLY_WINDOW = timedelta(hours=24)
# What the AI reads for a message that carried only media: it must not see an empty turn.
MEDIA_ONLY_TEXT = "(The customer sent an attachment without text.)"
# A lease outlives its holder's invocation by this much, so clock skew cannot hand it over early.
LEASE_MARGIN_MS = 5_000
MAX_VISIBILITY_SECONDS = 900

Outcome = Literal[
    "replied", "covered", "skipped", "opted_out", "window_closed", "handed_off", "post_send_failure"
]


class RecordFailed(Exception):
    """The record must go back to the queue, visible again in `retry_in_seconds` (None: the backoff)."""

    def __init__(self, message: str, retry_in_seconds: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_in_seconds = retry_in_seconds
        self.permanent = permanent


class _PermanentFailure(Exception):
    """Will not heal by retrying (tenant misconfigured, request refused): fail the conversation."""


@dataclass(frozen=True)
class ReplySettings:
    base: Settings
    ai_timeout_seconds: float = 20.0
    ai_max_retries: int = 2
    twilio_timeout_seconds: float = 10.0
    heartbeat_interval_seconds: float = 10.0
    visibility_extend_seconds: int = 60
    retry_base_seconds: int = 10
    handoff_topic_arn: str = ""

    @classmethod
    def from_env(cls) -> "ReplySettings":
        env = os.environ.get
        return cls(
            base=Settings.from_env(),
            ai_timeout_seconds=float(env("OPENAI_TIMEOUT_SECONDS", "20")),
            ai_max_retries=int(env("OPENAI_MAX_RETRIES", "2")),
            twilio_timeout_seconds=float(env("TWILIO_TIMEOUT_SECONDS", "10")),
            heartbeat_interval_seconds=float(env("HEARTBEAT_INTERVAL_SECONDS", "10")),
            visibility_extend_seconds=int(env("VISIBILITY_EXTEND_SECONDS", "60")),
            retry_base_seconds=int(env("RETRY_BASE_SECONDS", "10")),
            handoff_topic_arn=env("HANDOFF_TOPIC_ARN", ""),
        )


@dataclass(frozen=True)
class QueuedRecord:
    """The SQS side of one record: enough to extend or shorten its visibility and name its lease."""

    message_id: str
    receipt_handle: str
    queue_arn: str
    receive_count: int
    request_id: str
    remaining_ms: Callable[[], int]

    @property
    def owner(self) -> str:
        return f"{self.request_id}/{self.message_id}/{self.receive_count}"


def parse_reply_event(body: str) -> ReplyReceived:
    """The ReplyReceived detail of an EventBridge event delivered to SQS; ValueError when it is not one."""
    envelope = json.loads(body)
    if not isinstance(envelope, dict) or envelope.get("detail-type") != ReplyReceived.DETAIL_TYPE:
        raise ValueError("not a ReplyReceived event")
    return ReplyReceived.model_validate(envelope.get("detail"))


def _now_ms() -> int:
    return int(utc_now().timestamp() * 1000)


def inbound_bodies(conversation: Conversation, after_seq: int, upto_seq: int) -> list[str]:
    """The bodies of inbound messages after_seq < seq <= upto_seq: the n-th inbound message is seq n."""
    inbound = [m for m in conversation.messages if m.direction == "inbound"]
    return [m.body for m in inbound[after_seq:upto_seq]]


class ReplyService:
    def __init__(
        self,
        settings: ReplySettings,
        dynamodb: Any,
        events: Any,
        sqs: Any,
        ai: AiClient,
        twilio: TwilioSender,
        sns: Any = None,
    ) -> None:
        self._settings = settings
        self._records = ReplyRecords(dynamodb, settings.base.conversations_table)
        self._tenants = TenantRepository(dynamodb, settings.base.company_table)
        self._publisher = EventPublisher(events, settings.base.event_bus_name)
        self._sqs = sqs
        self._sns = sns
        self._ai = ai
        self._twilio = twilio
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(
            settings.base.tenant_cache_seconds
        )
        self._queue_urls: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> "ReplyService":
        settings = ReplySettings.from_env()
        return cls(
            settings,
            aws_clients.client("dynamodb"),
            aws_clients.client("events"),
            aws_clients.client("sqs"),
            AiClient(
                base_url=settings.base.openai_base_url or None,
                timeout_seconds=settings.ai_timeout_seconds,
                max_retries=settings.ai_max_retries,
            ),
            TwilioSender(
                api_base_url=settings.base.twilio_api_base_url or None,
                timeout_seconds=settings.twilio_timeout_seconds,
            ),
            aws_clients.client("sns") if settings.handoff_topic_arn else None,
        )

    # SQS visibility ------------------------------------------------------------------------------

    def queue_url(self, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            self._queue_urls[queue_arn] = queue_url_from_arn(self._sqs, queue_arn)
        return self._queue_urls[queue_arn]

    def retry_delay(self, record: QueuedRecord) -> int:
        """Exponential backoff on the receive count: the queue's own timeout is sized for the worst case."""
        exponent = max(record.receive_count - 1, 0)
        return int(min(self._settings.retry_base_seconds * 2**exponent, MAX_VISIBILITY_SECONDS))

    def reschedule(self, record: QueuedRecord, failure: BaseException) -> None:
        """Make a failed record visible again when it is worth retrying, not after the queue's timeout.

        Best effort: without it the record returns after the queue's (long) visibility timeout.
        """
        seconds = failure.retry_in_seconds if isinstance(failure, RecordFailed) else None
        if seconds is None:
            seconds = self.retry_delay(record)
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.queue_url(record.queue_arn),
                ReceiptHandle=record.receipt_handle,
                VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as error:
            logger.warning("could not reschedule the record", extra={"error": type(error).__name__})

    # the work ------------------------------------------------------------------------------------

    def process(self, event: ReplyReceived, record: QueuedRecord) -> Outcome:
        ids = {"conversation_id": event.conversation_id, "inbound_seq": event.inbound_seq}
        if event.conversation_id is None or event.route != "ai_reply":
            logger.warning("event is not an AI reply; dropped", extra={**ids, "route": event.route})
            return self._skipped("not_ai_reply")
        my_seq = event.inbound_seq or 1
        current = self._records.get(event.recipient_tel, event.conversation_id)
        if current is None:
            logger.warning("conversation not found; dropped", extra=ids)
            return self._skipped("missing")
        if current.status == "failed":
            # Every delivery fails without work, so the message reaches the DLQ in maxReceiveCount.
            raise RecordFailed("conversation is marked failed", retry_in_seconds=1, permanent=True)
        if current.answered_seq >= my_seq:
            logger.info("already answered", extra={**ids, "answered_seq": current.answered_seq})
            return self._skipped("answered")
        if current.handoff_to_human and current.pending_reply is None:
            # (A pending reply is the handoff notice itself, still to be finished.)
            logger.info("conversation is with a human; no AI reply", extra=ids)
            return self._skipped("handed_off")

        lease = LeaseRef(event.recipient_tel, event.conversation_id, record.owner)
        heartbeat = VisibilityHeartbeat(
            self._sqs,
            self.queue_url(record.queue_arn),
            record.receipt_handle,
            interval=self._settings.heartbeat_interval_seconds,
            extend_to=self._settings.visibility_extend_seconds,
        )
        with heartbeat:
            return self._answer_until(lease, my_seq, record, heartbeat)

    def _answer_until(
        self, lease: LeaseRef, my_seq: int, record: QueuedRecord, heartbeat: VisibilityHeartbeat
    ) -> Outcome:
        """Answer up to every message the lease promised to cover (others may rely on that promise).

        Normally one round; more when an unfinished reply left by a dead processor covers less.
        """
        target = my_seq
        outcome: Outcome = "covered"
        for _ in range(3):
            now_ms = _now_ms()
            try:
                conversation = self._records.acquire(
                    lease, now_ms, now_ms + record.remaining_ms() + LEASE_MARGIN_MS
                )
            except ConversationMissing:
                return self._skipped("missing")
            except LeaseHeld as held:
                holder = held.conversation
                if (holder.lease_upto or 0) >= target:
                    logger.info("another processor's reply covers this message", extra={"seq": my_seq})
                    return self._skipped("covered_by_holder")
                wait_ms = max((holder.lease_until or now_ms) - now_ms, 0)
                raise RecordFailed(
                    "conversation is being answered by another processor",
                    retry_in_seconds=math.ceil(wait_ms / 1000) + 1,
                ) from held
            target = max(target, conversation.lease_upto or 0)
            try:
                outcome, covered = self._round(lease, conversation, heartbeat)
            except BaseException:
                self._release_quietly(lease)
                raise
            if outcome == "post_send_failure" or covered >= target:
                return outcome
        return outcome

    def _release_quietly(self, lease: LeaseRef) -> None:
        try:
            self._records.release(lease)
        except (ClientError, BotoCoreError):
            logger.warning("lease not released; it expires on its own")

    def _round(
        self, lease: LeaseRef, conversation: Conversation, heartbeat: VisibilityHeartbeat
    ) -> tuple[Outcome, int]:
        """One reply: resume the pending one, or decide, store and send a new one. Lease held throughout.

        Also answers up to which inbound message the conversation is now answered.
        """
        pending = conversation.pending_reply
        if pending is not None:
            return self._deliver(lease, conversation, pending, heartbeat), pending.upto_seq
        if conversation.status == "failed":
            self._records.release(lease)
            raise RecordFailed("conversation is marked failed", retry_in_seconds=1, permanent=True)
        upto = conversation.inbound_seq
        if conversation.handoff_to_human:
            self._records.release(lease)
            return self._skipped("handed_off"), upto
        if conversation.answered_seq >= upto:
            self._records.release(lease)
            return self._skipped("answered"), upto

        now = utc_now()
        if self._window_closed(conversation, now):
            self._publisher.publish(
                ReplyWindowClosed(
                    channel=conversation.channel,
                    company_id=conversation.company_id,
                    project_id=conversation.project_id,
                    conversation_id=conversation.conversation_id,
                    recipient_tel=conversation.recipient_tel,
                    customer_address=conversation.customer_address,
                    company_address=conversation.company_address,
                    upto_seq=upto,
                    last_inbound_at=conversation.last_inbound_at or "",
                    detected_at=iso(now),
                )
            )
            self._records.close_window(lease, upto, iso(now))
            logger.info("reply window closed; nothing sent", extra={"upto_seq": upto})
            metrics.add_metric(name="RepliesSkipped", unit=MetricUnit.Count, value=1)
            return "window_closed", upto

        bodies = inbound_bodies(conversation, conversation.answered_seq, upto)
        burst = read_burst(bodies, conversation.opted_out)
        try:
            project, channel = self._tenant(conversation)
        except _PermanentFailure as error:
            self._fail(lease, str(error))
            raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error

        parts: list[str] = []
        text = ""
        action: Literal["none", "handoff", "opt_out", "opt_in"] = "none"
        if burst.changed:
            action = "opt_out" if burst.opted_out else "opt_in"
            text = channel.opt_out_confirmation if burst.opted_out else channel.opt_in_confirmation
            parts.append(text)
            metrics.add_metric(
                name="OptOuts" if burst.opted_out else "OptIns", unit=MetricUnit.Count, value=1
            )
        if burst.ai_messages:
            reply = self._ask_ai(lease, conversation, project, burst.ai_messages)
            if not heartbeat.healthy:
                raise RecordFailed("visibility heartbeat failed", retry_in_seconds=1)
            text = reply.reply
            if reply.action == "handoff":
                action = "handoff"
                parts.append(channel.handoff_notice)
            else:
                parts.extend(split_message(reply.reply))

        if not parts:
            # Opted-out customer writing again, or an empty AI reply: answered, nothing to send.
            self._records.complete(lease, upto, [], iso(now), self._expires_at(now))
            logger.info("nothing to send", extra={"upto_seq": upto, "opted_out": burst.opted_out})
            return self._skipped("opted_out" if burst.opted_out else "empty_reply"), upto

        pending = PendingReply(upto_seq=upto, text=text, action=action, parts=parts)
        try:
            self._records.store_pending(
                lease,
                pending,
                iso(now),
                opted_out=burst.opted_out if burst.changed else None,
                handoff=action == "handoff",
            )
        except LeaseLost as error:
            # Nothing was sent: the record can safely come back.
            raise RecordFailed("lease lost before sending", retry_in_seconds=1) from error
        return self._deliver(lease, conversation, pending, heartbeat), upto

    def _window_closed(self, conversation: Conversation, now: Any) -> bool:
        if not conversation.customer_address.startswith(WHATSAPP_PREFIX):
            return False
        if conversation.last_inbound_at is None:
            return False
        return bool(now - parse_iso(conversation.last_inbound_at) > REPLY_WINDOW)

    def _tenant(self, conversation: Conversation) -> tuple[ProjectConfig, ChannelSettings]:
        key = (conversation.company_id, conversation.project_id)
        project = self._projects.get_or_load(key, lambda: self._tenants.get_project(*key))
        if project is None:
            raise _PermanentFailure("project not found")
        channel = project.channel(conversation.channel)
        if channel is None:
            raise _PermanentFailure(f"project has no {conversation.channel} settings")
        return project, channel

    def _ask_ai(
        self, lease: LeaseRef, conversation: Conversation, project: ProjectConfig, messages: list[str]
    ) -> Any:
        try:
            secret = get_secret_json(project.ai.openai_secret_ref, self._settings.base.secret_cache_seconds)
            api_key = str(secret["api_key"])
        except (SecretUnavailable, KeyError) as error:
            logger.error("openai secret unavailable", extra={"project_id": project.project_id})
            raise RecordFailed("openai secret unavailable", retry_in_seconds=None) from error
        texts = [m if m.strip() else MEDIA_ONLY_TEXT for m in messages]
        try:
            ai_conversation_id = conversation.ai_conversation_id
            if ai_conversation_id is None:
                ai_conversation_id = self._ai.create_conversation(
                    api_key,
                    metadata={
                        "company_id": conversation.company_id,
                        "project_id": conversation.project_id,
                        "conversation_id": conversation.conversation_id,
                    },
                )
                try:
                    self._records.set_ai_conversation(lease, ai_conversation_id, iso(utc_now()))
                except LeaseLost as error:
                    raise RecordFailed("lease lost before the AI call", retry_in_seconds=1) from error
            started = time.monotonic()
            reply = self._ai.reply(api_key, project.ai, ai_conversation_id, texts)
            metrics.add_metric(
                name="AiLatency", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
            )
        except AiError as error:
            if error.permanent:
                logger.error("AI refused the request; conversation failed", extra={"error": str(error)})
                self._fail(lease, str(error))
                raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error
            logger.warning("AI unavailable; the record will be retried", extra={"error": str(error)})
            raise RecordFailed(str(error), retry_in_seconds=None) from error
        return reply

    def _fail(self, lease: LeaseRef, reason: str) -> None:
        try:
            self._records.mark_failed(lease, reason, iso(utc_now()))
        except LeaseLost:
            logger.warning("lease lost before the conversation could be marked failed")
        metrics.add_metric(name="ConversationsFailed", unit=MetricUnit.Count, value=1)

    def _deliver(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        pending: PendingReply,
        heartbeat: VisibilityHeartbeat,
    ) -> Outcome:
        """Send the parts Twilio has not accepted yet, publish a handoff, then the final write."""
        try:
            _, channel = self._tenant(conversation)
            secret = get_secret_json(channel.twilio_secret_ref, self._settings.base.secret_cache_seconds)
            credentials = TwilioCredentials.from_secret(secret)
        except _PermanentFailure as error:
            self._fail(lease, str(error))
            raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error
        except (SecretUnavailable, KeyError) as error:
            logger.error("twilio secret unavailable", extra={"project_id": conversation.project_id})
            raise RecordFailed("twilio secret unavailable", retry_in_seconds=None) from error

        if pending.action == "handoff" and not pending.sent_sids and pending.attempted == 0:
            # Before the first send, so the final write can follow the last send directly. A retry
            # that finds nothing sent publishes again, with the same handoff_id.
            self._publish_handoff(conversation, pending)
            self._notify_people(conversation)
        sent = self._send_parts(lease, conversation, pending, heartbeat, credentials)
        if sent is None:
            return "post_send_failure"
        sids, sent_now, unknown_now = sent

        now = utc_now()
        outbound = [
            StoredMessage(direction="outbound", sid=sid, body=body, at=iso(now))
            for sid, body in zip(sids, pending.parts, strict=True)
        ]
        try:
            self._records.complete(lease, pending.upto_seq, outbound, iso(now), self._expires_at(now))
        except (LeaseLost, ClientError, BotoCoreError) as error:
            self._post_send_failure(error, lease, pending, sids[-1] if sids else None, len(sids) - 1)
            return "post_send_failure"

        metrics.add_metric(name="RepliesSent", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="MessagesSent", unit=MetricUnit.Count, value=sent_now)
        if unknown_now:
            metrics.add_metric(name="SendOutcomesUnknown", unit=MetricUnit.Count, value=unknown_now)
        logger.info(
            "reply sent",
            extra={
                "upto_seq": pending.upto_seq,
                "action": pending.action,
                "parts": len(pending.parts),
                "sent_now": sent_now,
                "outcome_unknown": unknown_now,
                "to": mask_address(conversation.customer_address),
            },
        )
        if pending.action == "handoff":
            metrics.add_metric(name="Handoffs", unit=MetricUnit.Count, value=1)
            return "handed_off"
        if pending.action == "opt_out":
            return "opted_out"
        return "replied"

    def _send_parts(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        pending: PendingReply,
        heartbeat: VisibilityHeartbeat,
        credentials: TwilioCredentials,
    ) -> tuple[list[str], int, int] | None:
        """Send every part never attempted; (sids of all parts, sent now, outcome unknown now).

        None after a send of ours whose sid could not be stored: the CRITICAL line is logged, and the
        reply must not be finished or retried. The last part's sid is left for the final write.
        """
        sent_now = 0
        unknown_now = 0
        sids = list(pending.sent_sids)
        recorded = len(sids)  # how many of `sids` the stored pending_reply holds
        unrecorded_send = False  # a send of ours whose sid is not stored yet
        if pending.unrecorded_attempt:
            # An earlier holder started this part's send and stored no sid (it timed out, or its
            # write failed after the send): it may have reached the customer, so it is not resent.
            unknown = SendOutcomeUnknown("send attempted earlier, no sid recorded")
            self._post_send_failure(unknown, lease, pending, None, len(sids))
            sids.append(UNKNOWN_SID)
            unknown_now += 1
        while len(sids) < len(pending.parts):
            index = len(sids)
            healthy = heartbeat.healthy
            if healthy or len(sids) > recorded:
                # Marks this part attempted (only when it is sent now) and stores the sids sent since
                # the last write: one conditional write per part.
                try:
                    self._records.record_progress(
                        lease, recorded, sids[recorded:], index + 1 if healthy else index
                    )
                except (LeaseLost, ClientError, BotoCoreError) as error:
                    if unrecorded_send:
                        self._post_send_failure(error, lease, pending, sids[-1], index - 1)
                        return None
                    # Nothing of ours went out unrecorded: the record can safely come back.
                    retry_in = 1 if isinstance(error, LeaseLost) else None
                    raise RecordFailed("progress not recorded before a send", retry_in) from error
                recorded, unrecorded_send = len(sids), False
            if not healthy:
                raise RecordFailed("visibility heartbeat failed", retry_in_seconds=1)
            sid = self._send_part(lease, conversation, pending, credentials, index, recorded)
            if sid == UNKNOWN_SID:
                unknown_now += 1
            else:
                sent_now += 1
            sids.append(sid)
            unrecorded_send = True
        return sids, sent_now, unknown_now

    def _send_part(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        pending: PendingReply,
        credentials: TwilioCredentials,
        index: int,
        recorded: int,
    ) -> str:
        """One part, already marked attempted: its sid, or UNKNOWN_SID when Twilio may have taken it."""
        try:
            return self._twilio.send_text(
                credentials,
                conversation.company_address,
                conversation.customer_address,
                pending.parts[index],
            )
        except SendOutcomeUnknown as error:
            # Twilio may have accepted it: kept as sent with an unknown sid, never resent.
            self._post_send_failure(error, lease, pending, None, index)
            return UNKNOWN_SID
        except SendFailed as error:
            if error.permanent:
                logger.error("Twilio refused the reply; conversation failed", extra={"error": str(error)})
                self._fail(lease, str(error))
                raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error
            logger.warning("Twilio unavailable; the record will be retried", extra={"error": str(error)})
            self._unmark_attempt(lease, recorded, index)
            raise RecordFailed(str(error), retry_in_seconds=None) from error

    def _publish_handoff(self, conversation: Conversation, pending: PendingReply) -> None:
        event = HandoffRequested(
            channel=conversation.channel,
            handoff_id=f"{conversation.conversation_id}#{pending.upto_seq}",
            company_id=conversation.company_id,
            project_id=conversation.project_id,
            conversation_id=conversation.conversation_id,
            recipient_tel=conversation.recipient_tel,
            customer_address=conversation.customer_address,
            company_address=conversation.company_address,
            upto_seq=pending.upto_seq,
            requested_at=iso(utc_now()),
        )
        try:
            self._publisher.publish(event)
        except (PublishFailed, ClientError, BotoCoreError) as error:
            logger.warning("handoff not published; the record will be retried")
            raise RecordFailed("handoff event not published", retry_in_seconds=None) from error

    def _notify_people(self, conversation: Conversation) -> None:
        """A ping on the handoff notice topic. Best effort: the event on the handoff queue is the
        durable hand-over, so a failed ping is logged and counted, never worth a retry."""
        if self._sns is None or not self._settings.handoff_topic_arn:
            return
        text = (
            f"Conversation {conversation.conversation_id} of {conversation.company_id}/"
            f"{conversation.project_id} on {conversation.channel} needs a person."
        )
        try:
            self._sns.publish(
                TopicArn=self._settings.handoff_topic_arn,
                Subject="Conversation handed to a person",
                Message=text,
                MessageAttributes={
                    "company_id": {"DataType": "String", "StringValue": conversation.company_id},
                    "channel": {"DataType": "String", "StringValue": conversation.channel},
                },
            )
        except (ClientError, BotoCoreError) as error:
            logger.error("handoff notice not published", extra={"error": type(error).__name__})
            metrics.add_metric(name="HandoffNoticeFailures", unit=MetricUnit.Count, value=1)

    def _unmark_attempt(self, lease: LeaseRef, recorded: int, index: int) -> None:
        """After a send that certainly did not go out: let a retry send that part again.

        Best effort: if this write fails, the retry treats the part as possibly sent (CRITICAL, not
        resent), which loses a part rather than risking a duplicate.
        """
        try:
            self._records.record_progress(lease, recorded, [], index)
        except (LeaseLost, ClientError, BotoCoreError) as error:
            logger.warning("attempt marker not cleared", extra={"error": type(error).__name__})

    def _post_send_failure(
        self, error: BaseException, lease: LeaseRef, pending: PendingReply, sid: str | None, part: int
    ) -> None:
        """The CRITICAL line (alarmed) for a part that went out, or may have, without a stored record."""
        log_post_send_failure(
            logger,
            error,
            conversation_id=lease.conversation_id,
            upto_seq=pending.upto_seq,
            message_sid=sid,
            part=part,
            parts=len(pending.parts),
        )
        metrics.add_metric(name="PostSendFailures", unit=MetricUnit.Count, value=1)

    def _expires_at(self, now: Any) -> int:
        return int((now + timedelta(days=self._settings.base.conversation_ttl_days)).timestamp())

    def _skipped(self, reason: str) -> Outcome:
        metrics.add_metric(name="RepliesSkipped", unit=MetricUnit.Count, value=1)
        logger.debug("nothing to do", extra={"reason": reason})
        return "covered" if reason in {"answered", "covered_by_holder"} else "skipped"
