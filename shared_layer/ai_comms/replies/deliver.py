"""Delivering a decided reply: each part sent once, the history written after the last.

Before each send one conditional write marks the part attempted and stores the previous part's sid;
the last sid goes in the final write, which stores the parts as message items, moves answered_seq
on and drops the lease. A part attempted without a stored sid may have reached the customer: it is
logged CRITICAL (alarmed), kept with the sid "unknown" and never resent; so is a send whose outcome
Twilio left unknown. Only a send that certainly did not go out is retried. A handoff is published
(and people notified) before the first send, so the final write can follow the last send directly.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.clock import iso, utc_now
from ai_comms.critical import log_post_send_failure
from ai_comms.delivery.callback_url import status_callback_url
from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation, PendingReply
from ai_comms.models.events import HandoffRequested
from ai_comms.models.message import UNKNOWN_SID, Message
from ai_comms.pausing import PauseGate
from ai_comms.providers.events import EventPublisher, PublishFailed
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.sqs_heartbeat import VisibilityHeartbeat
from ai_comms.providers.twilio_client import SendFailed, SendOutcomeUnknown, TwilioCredentials, TwilioSender
from ai_comms.replies.record import Outcome, PermanentFailure, RecordFailed, ReplySettings, fail_conversation
from ai_comms.replies.tenant_config import TenantConfigs
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.dynamo import TransactionCancelled
from ai_comms.store.messages import outbound_position
from ai_comms.store.reply_records import HandOver, LeaseLost, LeaseRef, ReplyRecords

logger = Logger(child=True)
metrics = Metrics()


@dataclass(frozen=True)
class Sent:
    """The parts sent so far (their sids), how many now, how many with an unknown outcome now, and
    the refusal that ended the reply early, if one did."""

    sids: list[str]
    sent_now: int
    unknown_now: int
    refused: SendFailed | None = None


class _Refused(Exception):
    def __init__(self, error: SendFailed) -> None:
        super().__init__(str(error))
        self.error = error


class ReplyDelivery:
    def __init__(
        self,
        settings: ReplySettings,
        records: ReplyRecords,
        consent: ConsentRepository,
        configs: TenantConfigs,
        publisher: EventPublisher,
        twilio: TwilioSender,
        gate: PauseGate,
        sns: Any = None,
    ) -> None:
        self._gate = gate
        self._settings = settings
        self._records = records
        self._consent = consent
        self._configs = configs
        self._publisher = publisher
        self._twilio = twilio
        self._sns = sns

    def deliver(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        pending: PendingReply,
        heartbeat: VisibilityHeartbeat,
    ) -> Outcome:
        """Send the parts Twilio has not accepted yet, publish a handoff, then the final write."""
        try:
            credentials = self._credentials(conversation)
        except PermanentFailure as error:
            fail_conversation(self._records, lease, str(error))
            raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error

        if pending.action == "handoff" and not pending.sent_sids and pending.attempted == 0:
            # Before the first send, so the final write can follow the last send directly. A retry
            # that finds nothing sent publishes again, with the same handoff_id.
            self._publish_handoff(conversation, pending)
            self._notify_people(conversation)
        sent = self._send_parts(lease, conversation, pending, heartbeat, credentials)
        if sent is None:
            return "post_send_failure"
        sids, sent_now, unknown_now = sent.sids, sent.sent_now, sent.unknown_now
        hand_over = self._hand_over(conversation, pending, sent.refused) if sent.refused else None

        now = utc_now()
        outbound = [
            Message(
                conversation_id=conversation.conversation_id,
                direction="outbound",
                author=pending.author_of(index),
                seq=pending.upto_seq,
                batch=pending.batch,
                part=index,
                sid=sid,
                body=body,
                at=iso(now),
                expires_at=self._expires_at(now),
            )
            for index, (sid, body) in enumerate(zip(sids, pending.parts[: len(sids)], strict=True))
        ]
        try:
            self._records.complete(
                lease, pending.upto_seq, outbound, iso(now), self._expires_at(now), hand_over=hand_over
            )
        except (LeaseLost, ClientError, BotoCoreError) as error:
            self._post_send_failure(error, lease, pending, sids[-1] if sids else None, len(sids) - 1)
            return "post_send_failure"

        if hand_over is not None:
            self._notify_people(conversation)
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
        if pending.action == "handoff" or hand_over is not None:
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
    ) -> "Sent | None":
        """Send every part never attempted.

        Right before each send the customer's consent is read: once they opted out (a STOP that came
        in while this reply was on its way) nothing more is sent but the opt-out confirmation, and
        the parts sent so far are the reply. So too when Twilio refuses a part for good: a blocked
        recipient (21610) is recorded as opted out, any other refusal hands the conversation to a
        person. None after a send of ours whose sid could not be stored: the CRITICAL line is
        logged, and the reply must not be finished or retried. The last part's sid is left for the
        final write.
        """
        sent_now = 0
        unknown_now = 0
        refusal: SendFailed | None = None
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
            try:
                withheld = not self._may_send(conversation, pending, index)
            except (ClientError, BotoCoreError) as error:
                if unrecorded_send:
                    self._post_send_failure(error, lease, pending, sids[-1], index - 1)
                    return None
                raise RecordFailed("consent not readable before a send", retry_in_seconds=None) from error
            if withheld:
                # The final write stores what was sent; nothing more is.
                logger.info("customer opted out; the rest of the reply is not sent", extra={"part": index})
                withheld_parts = len(pending.parts) - index
                metrics.add_metric(name="PartsWithheldOptedOut", unit=MetricUnit.Count, value=withheld_parts)
                break
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
            try:
                sid = self._send_part(lease, conversation, pending, credentials, index, recorded)
            except _Refused as refused:
                refusal = refused.error
                metrics.add_metric(
                    name="PartsNotSentRefused", unit=MetricUnit.Count, value=len(pending.parts) - index
                )
                break
            if sid == UNKNOWN_SID:
                unknown_now += 1
            else:
                sent_now += 1
            sids.append(sid)
            unrecorded_send = True
        return Sent(sids, sent_now, unknown_now, refusal)

    def _may_send(self, conversation: Conversation, pending: PendingReply, index: int) -> bool:
        """The consent check before a send: the opt-out confirmation goes to an opted-out customer
        (it is the answer to their STOP); nothing else does."""
        if pending.action == "opt_out" and pending.author_of(index) == "engine":
            return True
        return not self._consent.is_opted_out(conversation.company_address, conversation.customer_address)

    def _send_part(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        pending: PendingReply,
        credentials: TwilioCredentials,
        index: int,
        recorded: int,
    ) -> str:
        """One part, already marked attempted: its sid, or UNKNOWN_SID when Twilio may have taken it.

        Credentials Twilio refuses (a rotated auth token) are read again once and the part sent with
        them (a refusal means it did not go out); refused again, the tenant's failure is retried
        later and alarmed, never a reason to fail the conversation."""
        for attempt in range(2):
            try:
                return self._send_text(credentials, conversation, pending, index)
            except SendOutcomeUnknown as error:
                # Twilio may have accepted it: kept as sent with an unknown sid, never resent.
                self._post_send_failure(error, lease, pending, None, index)
                return UNKNOWN_SID
            except SendFailed as error:
                if error.credentials and attempt == 0:
                    logger.warning("Twilio refused the credentials; reading them again")
                    credentials = self._credentials(conversation, fresh=True)
                    continue
                if error.credentials:
                    logger.error(
                        "Twilio refuses the tenant's credentials",
                        extra={"project_id": conversation.project_id},
                    )
                    metrics.add_metric(name="TenantCredentialErrors", unit=MetricUnit.Count, value=1)
                    self._unmark_attempt(lease, recorded, index)
                    raise self._gate.pause(
                        conversation.company_id, conversation.project_id, "twilio_credentials_refused"
                    ) from error
                if error.permanent:
                    # Nothing went out; it never will, so nothing more is sent and the reply ends
                    # here (the caller records a blocked recipient, or hands over to a person).
                    logger.error("Twilio refused the reply for good", extra={"error": str(error)})
                    self._unmark_attempt(lease, recorded, index)
                    raise _Refused(error) from error
                else:
                    logger.warning(
                        "Twilio unavailable; the record will be retried", extra={"error": str(error)}
                    )
                self._unmark_attempt(lease, recorded, index)
                raise RecordFailed(str(error), retry_in_seconds=None) from error
        raise AssertionError("unreachable")

    def _send_text(
        self, credentials: TwilioCredentials, conversation: Conversation, pending: PendingReply, index: int
    ) -> str:
        position = outbound_position(pending.upto_seq, pending.batch, index)
        return self._twilio.send_text(
            credentials,
            conversation.company_address,
            conversation.customer_address,
            pending.parts[index],
            status_callback=status_callback_url(
                self._settings.base.public_base_url,
                conversation.channel,
                conversation.conversation_id,
                position,
            ),
        )

    def _credentials(self, conversation: Conversation, fresh: bool = False) -> TwilioCredentials:
        _, channel = self._configs.of(conversation)
        try:
            secret = get_secret_json(
                channel.twilio_secret_ref, self._settings.base.secret_cache_seconds, force_fetch=fresh
            )
            return TwilioCredentials.from_secret(secret)
        except (SecretUnavailable, KeyError) as error:
            logger.error("twilio secret unavailable", extra={"project_id": conversation.project_id})
            raise RecordFailed("twilio secret unavailable", retry_in_seconds=None) from error

    def _publish_handoff(self, conversation: Conversation, pending: PendingReply) -> None:
        event = HandoffRequested(
            **conversation.parties(),
            handoff_id=f"{conversation.conversation_id}#{pending.upto_seq}",
            conversation_id=conversation.conversation_id,
            upto_seq=pending.upto_seq,
            reason=pending.handoff_reason or "ai_action",
            detail=pending.handoff_detail,
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

    def _hand_over(
        self, conversation: Conversation, pending: PendingReply, refused: SendFailed
    ) -> HandOver | None:
        """What a refusal for good means. A recipient who blocked the sender (21610) is recorded as
        opted out (consent source "blocked"): nothing is sent to them until they opt in again. Any
        other refusal hands the conversation to a person, in the reply's final write."""
        if refused.recipient_unsubscribed:
            self._record_blocked(conversation, refused)
            return None
        detail = f"refused:{refused.code}"
        event = HandoffRequested(
            **conversation.parties(),
            handoff_id=f"{conversation.conversation_id}#refused#{pending.upto_seq}#{pending.batch}",
            conversation_id=conversation.conversation_id,
            upto_seq=pending.upto_seq,
            reason="reply_undelivered",
            detail=detail,
            requested_at=iso(utc_now()),
        )
        return HandOver("reply_undelivered", detail, event)

    def _record_blocked(self, conversation: Conversation, refused: SendFailed) -> None:
        try:
            self._consent.record_blocked(conversation, refused.code, iso(utc_now()))
        except (ClientError, BotoCoreError, TransactionCancelled) as error:
            # Twilio keeps refusing them; the next reply tries to record it again.
            logger.error("blocked recipient not recorded", extra={"error": type(error).__name__})
        metrics.add_metric(name="RecipientsBlocked", unit=MetricUnit.Count, value=1)

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
