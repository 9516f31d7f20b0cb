"""Answers customer messages: one AI call and one reply per burst, sent exactly once.

The webhook records each customer message (inbound_seq + 1) and the outbox relay publishes one
event per message to the channel's AI-reply queue, delayed by the debounce window. For each event:

1. A cheap read drops work already done (answered_seq >= the event's inbound_seq: an SQS
   redelivery, or a message an earlier reply covered) and fails fast on a failed conversation.
2. A conditional lease makes this processor the only one answering the conversation. A processor
   that finds the lease held succeeds at once when the holder's reply covers its message (the lease
   notes the inbound_seq it covers); otherwise its record fails and comes back when the lease ends.
3. The reply is decided (replies.decide): every customer message after answered_seq, in order, as
   one burst, and stored on the record as `pending_reply` before anything is sent.
4. The reply is delivered (replies.deliver): each part sent once, then one final write stores the
   parts as message items, moves answered_seq on and drops the lease. A write that fails after
   Twilio accepted a message logs one CRITICAL line (alarmed) and the record is NOT retried: a
   retry could only send a duplicate.

A message arriving during the AI call raises inbound_seq beyond the reply's upto_seq; its own
(delayed) event then gets its own reply. On handoff the flag is set with the pending reply (so later
messages route to the handoff queue at once), HandoffRequested is published, and the customer gets
the tenant's handoff notice instead of the AI's text: the tenant controls that wording, and the AI
wrote its text for a conversation it is leaving.
"""

import math
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.clock import utc_now
from ai_comms.models.conversation import Conversation, PendingReply
from ai_comms.models.events import ReplyReceived
from ai_comms.pausing import PauseGate, TenantPaused, park
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher
from ai_comms.providers.openai_client import AiClient
from ai_comms.providers.sqs_heartbeat import VisibilityHeartbeat, queue_url_from_arn
from ai_comms.providers.twilio_client import TwilioSender
from ai_comms.replies.decide import ReplyDecider
from ai_comms.replies.deliver import ReplyDelivery
from ai_comms.replies.record import (
    LEASE_MARGIN_MS,
    MAX_VISIBILITY_SECONDS,
    Outcome,
    QueuedRecord,
    RecordFailed,
    ReplySettings,
    skipped,
)
from ai_comms.replies.tenant_config import TenantConfigs
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.messages import MessageRepository
from ai_comms.store.reply_records import ConversationMissing, LeaseHeld, LeaseRef, ReplyRecords
from ai_comms.store.tenant_pauses import TenantPauses
from ai_comms.store.tenants import TenantRepository

logger = Logger(child=True)


def _now_ms() -> int:
    return int(utc_now().timestamp() * 1000)


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
        base = settings.base
        self._records = ReplyRecords(dynamodb, base.conversations_table, base.messages_table)
        configs = TenantConfigs(TenantRepository(dynamodb, base.company_table), base.tenant_cache_seconds)
        publisher = EventPublisher(events, base.event_bus_name)
        messages = MessageRepository(dynamodb, base.messages_table)
        consent = ConsentRepository(dynamodb, base.consent_table)
        gate = PauseGate(TenantPauses(dynamodb, base.company_table, base.tenant_pause_seconds))
        self._decider = ReplyDecider(settings, self._records, messages, consent, configs, publisher, ai, gate)
        self._delivery = ReplyDelivery(
            settings, self._records, consent, configs, publisher, twilio, gate, sns
        )
        self._sqs = sqs
        self._queue_urls: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> "ReplyService":
        settings = ReplySettings.from_env()
        return cls(
            settings,
            aws_clients.lazy("dynamodb"),
            aws_clients.lazy("events"),
            aws_clients.lazy("sqs"),
            AiClient(
                base_url=settings.base.openai_base_url or None,
                timeout_seconds=settings.ai_timeout_seconds,
                max_retries=settings.ai_max_retries,
            ),
            TwilioSender(
                api_base_url=settings.base.twilio_api_base_url or None,
                timeout_seconds=settings.twilio_timeout_seconds,
            ),
            aws_clients.lazy("sns") if settings.handoff_topic_arn else None,
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

    def park(self, record: QueuedRecord, body: str, paused: TenantPaused) -> None:
        """The record waits out its tenant's pause as a new, delayed copy (no receive is counted)."""
        park(self._sqs, self.queue_url(record.queue_arn), body, paused.seconds)

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
        # The AI's messages, and any consent change (its confirmation goes out whoever has the
        # conversation).
        if event.conversation_id is None or (event.route != "ai_reply" and event.consent_change is None):
            logger.warning(
                "event is not for the reply processor; dropped", extra={**ids, "route": event.route}
            )
            return skipped("not_ai_reply")
        my_seq = event.inbound_seq or 1
        current = self._records.get(event.recipient_tel, event.conversation_id)
        if current is None:
            logger.warning("conversation not found; dropped", extra=ids)
            return skipped("missing")
        if current.status == "failed":
            # Every delivery fails without work, so the message reaches the DLQ in maxReceiveCount.
            raise RecordFailed("conversation is marked failed", retry_in_seconds=1, permanent=True)
        if current.answered_seq >= my_seq:
            logger.info("already answered", extra={**ids, "answered_seq": current.answered_seq})
            return skipped("answered")
        if current.handoff_to_human and current.pending_reply is None and event.consent_change is None:
            # (A pending reply is the handoff notice itself, still to be finished.)
            logger.info("conversation is with a human; no AI reply", extra=ids)
            return skipped("handed_off")

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
                return skipped("missing")
            except LeaseHeld as held:
                holder = held.conversation
                if (holder.lease_upto or 0) >= target:
                    logger.info("another processor's reply covers this message", extra={"seq": my_seq})
                    return skipped("covered_by_holder")
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
        if pending is None:
            decided = self._decider.decide(lease, conversation, heartbeat)
            if not isinstance(decided, PendingReply):
                return decided, conversation.inbound_seq
            pending = decided
        return self._delivery.deliver(lease, conversation, pending, heartbeat), pending.upto_seq
