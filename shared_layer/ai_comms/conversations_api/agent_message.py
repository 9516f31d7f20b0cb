"""POST /conversations/{id}/messages: a person's message to the customer, through Twilio, sent once.

Sent synchronously, not queued: one Twilio send takes well under a second and a message is at most
three parts (4,096 characters in parts of 1,600), so even with a re-read of the credentials the
function ends far inside API Gateway's 29 seconds; and the person sees the outcome at once (the
customer opted out, the 24-hour window is closed, Twilio refused it) instead of a 202 for a message
that will fail later where nobody looks. A queue would add a second place to retry from without
making the send itself any safer: Twilio has no idempotency key, so safety comes from the record.

Steps, each safe to repeat with the same message id (the client's Idempotency-Key, or the body's
message_id):
1. the conversation must be the tenant's, with a person (handed_off), and inside WhatsApp's 24-hour
   window (conversation.last_inbound_at), else 409 and nothing is sent;
2. the message is recorded before its first send (store.agent_messages): the text's digest, its
   place in the conversation (seq = inbound_seq now, batch = now in ms) and its parts. A repeat with
   the same id and text is answered from the record and sends only parts never attempted; with
   another text it is refused (409 idempotency_key_reused);
3. for each part: consent is read right before it (opted out: 409 recipient_opted_out, nothing more
   sent), the part is marked attempted (with the previous part's sid), then sent with its
   StatusCallback. A send Twilio certainly refused is unmarked (a retry may send it); credentials
   Twilio refuses are read again once (a rotated token) before that counts; a send whose outcome is
   unknown is kept with the sid "unknown" and never sent again;
4. one transaction writes the sent parts as message items (author "agent") with the conversation's
   activity time and expiry.
A failure to record after Twilio accepted a part logs one CRITICAL line (alarmed) and stops: the
answer is still 202 (the customer has the message), and a retry never sends that part again.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.clock import iso, utc_now
from ai_comms.config import Settings
from ai_comms.conversations_api.access import Caller, TenantAccess
from ai_comms.critical import log_post_send_failure
from ai_comms.delivery.callback_url import status_callback_url
from ai_comms.errors import BadRequest, Conflict, RequestError, RetryLater
from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation
from ai_comms.models.conversations_api import AgentMessageAccepted, AgentMessageRequest
from ai_comms.models.message import UNKNOWN_SID, Message
from ai_comms.models.tenant import ChannelSettings
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.twilio_client import SendFailed, SendOutcomeUnknown, TwilioCredentials, TwilioSender
from ai_comms.reply_window import window_closed
from ai_comms.splitting import split_message
from ai_comms.store.agent_messages import AgentMessages, AgentSend, ProgressLost
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.dynamo import TransactionCancelled
from ai_comms.store.messages import outbound_position

logger = Logger(child=True)
metrics = Metrics()

OPTED_OUT = "the recipient opted out of this company's messages"
_STORE_ERRORS = (ClientError, BotoCoreError, TransactionCancelled)


class _NotSent(Exception):
    """Twilio certainly did not send the part; ``refusal`` is what the request is answered."""

    def __init__(self, refusal: RequestError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass
class _Progress:
    """The sids of the parts so far, how many the record holds, and whether the last is ours and
    not yet stored (the CRITICAL case if a write fails now)."""

    sids: list[str]
    recorded: int
    unrecorded_send: bool = False


def message_id_of(body_id: str | None, header_id: str | None) -> str:
    if body_id and header_id and body_id != header_id:
        raise BadRequest(
            "the Idempotency-Key header and message_id differ",
            details=[{"field": "body.message_id", "message": "differs from the Idempotency-Key header"}],
        )
    return body_id or header_id or uuid.uuid4().hex


class AgentMessageSender:
    def __init__(
        self,
        settings: Settings,
        access: TenantAccess,
        records: AgentMessages,
        consent: ConsentRepository,
        twilio: TwilioSender,
    ) -> None:
        self._settings = settings
        self._access = access
        self._records = records
        self._consent = consent
        self._twilio = twilio

    def send(
        self, caller: Caller, conversation_id: str, request: AgentMessageRequest, header_id: str | None
    ) -> AgentMessageAccepted:
        message_id = message_id_of(request.message_id, header_id)
        project, conversation = self._access.conversation(caller, conversation_id)
        digest = hashlib.sha256(request.text.encode("utf-8", "surrogatepass")).hexdigest()
        parts = split_message(request.text)
        now = utc_now()
        epoch = int(now.timestamp())
        send = self._records.get(conversation_id, message_id, epoch)
        if send is not None:
            if send.text_sha256 != digest:
                raise Conflict("this message id was used for another text", code="idempotency_key_reused")
            if send.done:
                return AgentMessageAccepted(
                    message_id=message_id, parts=send.parts, sent_parts=len(send.sids), repeated=True
                )
        self._check_sendable(conversation, now)
        channel = project.channel(conversation.channel)
        if channel is None:
            raise Conflict(
                f"the project has no {conversation.channel} settings", code="channel_not_configured"
            )
        if send is None:
            send = AgentSend(
                conversation_id=conversation_id,
                message_id=message_id,
                text_sha256=digest,
                seq=conversation.inbound_seq,
                batch=int(now.timestamp() * 1000),
                parts=len(parts),
            )
            if not self._records.start(send, epoch):
                raise Conflict("a message with this id is being sent", code="message_in_progress")
        credentials = self._credentials(channel)
        return self._deliver(send, conversation, parts, channel, credentials)

    @staticmethod
    def _check_sendable(conversation: Conversation, now: datetime) -> None:
        if conversation.status != "handed_off" or not conversation.handoff_to_human:
            raise Conflict(
                f"the conversation is {conversation.status}, not with a person", code="not_handed_off"
            )
        if window_closed(conversation.customer_address, conversation.last_inbound_at, now):
            raise Conflict(
                "the customer last wrote more than 24 hours ago: only an approved template reaches them",
                code="window_closed",
            )

    def _deliver(
        self,
        send: AgentSend,
        conversation: Conversation,
        parts: list[str],
        channel: ChannelSettings,
        credentials: TwilioCredentials,
    ) -> AgentMessageAccepted:
        progress = _Progress(sids=list(send.sids), recorded=len(send.sids))
        if send.unrecorded_attempt:
            # An earlier request started this part's send and stored no sid: it may be out.
            self._post_send_failure(
                SendOutcomeUnknown("send attempted earlier, no sid recorded"), send, None, len(progress.sids)
            )
            progress.sids.append(UNKNOWN_SID)
        refusal: RequestError | None = None
        while len(progress.sids) < send.parts:
            index = len(progress.sids)
            try:
                if self._consent.is_opted_out(conversation.company_address, conversation.customer_address):
                    refusal = Conflict(OPTED_OUT, code="recipient_opted_out")
                    break
                self._records.progress(send, progress.recorded, progress.sids[progress.recorded :], index + 1)
            except (ProgressLost, *_STORE_ERRORS) as error:
                if progress.unrecorded_send:
                    self._post_send_failure(error, send, progress.sids[-1], index - 1)
                    return self._accepted(send, progress)
                if isinstance(error, ProgressLost):
                    raise Conflict(
                        "a message with this id is being sent", code="message_in_progress"
                    ) from error
                raise
            progress.recorded, progress.unrecorded_send = len(progress.sids), False
            try:
                sid = self._send_part(send, conversation, parts[index], index, channel, credentials)
            except _NotSent as not_sent:
                self._unmark(send, progress.recorded, index)
                refusal = not_sent.refusal
                break
            progress.sids.append(sid)
            progress.unrecorded_send = True
            metrics.add_metric(name="AgentPartsSent", unit=MetricUnit.Count, value=1)
        self._finish(send, conversation, parts, progress)
        if refusal is not None:
            raise refusal
        metrics.add_metric(name="AgentMessagesSent", unit=MetricUnit.Count, value=1)
        logger.info(
            "agent message sent",
            extra={
                "conversation_id": send.conversation_id,
                "message_id": send.message_id,
                "parts": send.parts,
                "to": mask_address(conversation.customer_address),
            },
        )
        return self._accepted(send, progress)

    def _finish(
        self, send: AgentSend, conversation: Conversation, parts: list[str], progress: _Progress
    ) -> None:
        if not progress.sids:
            return
        now = utc_now()
        expires_at = int((now + timedelta(days=self._settings.conversation_ttl_days)).timestamp())
        items = [
            Message(
                conversation_id=send.conversation_id,
                direction="outbound",
                author="agent",
                seq=send.seq,
                batch=send.batch,
                part=index,
                sid=sid,
                body=parts[index],
                at=iso(now),
                expires_at=expires_at,
                message_id=send.message_id,
            )
            for index, sid in enumerate(progress.sids)
        ]
        try:
            self._records.finish(
                send, progress.recorded, items, conversation.recipient_tel, iso(now), expires_at
            )
        except (ProgressLost, *_STORE_ERRORS) as error:
            if progress.unrecorded_send:
                self._post_send_failure(error, send, progress.sids[-1], len(progress.sids) - 1)
                return
            raise

    def _send_part(
        self,
        send: AgentSend,
        conversation: Conversation,
        text: str,
        index: int,
        channel: ChannelSettings,
        credentials: TwilioCredentials,
    ) -> str:
        """One part, already marked attempted: its sid, or UNKNOWN_SID when Twilio may have taken it."""
        callback = status_callback_url(
            self._settings.public_base_url,
            conversation.channel,
            conversation.conversation_id,
            outbound_position(send.seq, send.batch, index),
        )
        for attempt in range(2):
            try:
                return self._twilio.send_text(
                    credentials,
                    conversation.company_address,
                    conversation.customer_address,
                    text,
                    status_callback=callback,
                )
            except SendOutcomeUnknown as error:
                self._post_send_failure(error, send, None, index)
                metrics.add_metric(name="SendOutcomesUnknown", unit=MetricUnit.Count, value=1)
                return UNKNOWN_SID
            except SendFailed as error:
                if error.credentials and attempt == 0:
                    logger.warning("Twilio refused the credentials; reading them again")
                    try:
                        credentials = self._credentials(channel, fresh=True)
                    except RequestError as unreadable:
                        raise _NotSent(unreadable) from error
                    continue
                raise _NotSent(self._refusal(conversation, error)) from error
        raise AssertionError("unreachable")

    def _refusal(self, conversation: Conversation, error: SendFailed) -> RequestError:
        if error.credentials:
            logger.error(
                "Twilio refuses the tenant's credentials", extra={"project_id": conversation.project_id}
            )
            metrics.add_metric(name="TenantCredentialErrors", unit=MetricUnit.Count, value=1)
            return RetryLater("Twilio refuses the tenant's credentials", code="dependency_unavailable")
        if error.recipient_unsubscribed:
            self._record_blocked(conversation, error)
            return Conflict(OPTED_OUT, code="recipient_opted_out")
        if error.permanent:
            logger.error("Twilio refused the agent message", extra={"error": str(error)})
            return Conflict(f"Twilio refused the message (error {error.code})", code="twilio_refused")
        logger.warning("Twilio unavailable", extra={"error": str(error)})
        return RetryLater(
            "Twilio is unavailable; retry with the same message id", code="dependency_unavailable"
        )

    def _record_blocked(self, conversation: Conversation, error: SendFailed) -> None:
        """Twilio 21610: the customer blocked the sender; recorded as their consent, as a reply does."""
        try:
            self._consent.record_blocked(conversation, error.code, iso(utc_now()))
        except _STORE_ERRORS as failure:
            logger.error("blocked recipient not recorded", extra={"error": type(failure).__name__})

    def _unmark(self, send: AgentSend, recorded: int, index: int) -> None:
        """After a send that certainly did not go out: a retry may send that part. Best effort: if
        this fails, a retry treats the part as possibly sent (never a duplicate, at worst a loss)."""
        try:
            self._records.progress(send, recorded, [], index)
        except (ProgressLost, *_STORE_ERRORS) as error:
            logger.warning("attempt marker not cleared", extra={"error": type(error).__name__})

    def _credentials(self, channel: ChannelSettings, fresh: bool = False) -> TwilioCredentials:
        try:
            secret = get_secret_json(
                channel.twilio_secret_ref, self._settings.secret_cache_seconds, force_fetch=fresh
            )
            return TwilioCredentials.from_secret(secret)
        except (SecretUnavailable, KeyError) as error:
            logger.error("twilio secret unavailable")
            raise RetryLater(
                "the tenant's Twilio credentials cannot be read", code="dependency_unavailable"
            ) from error

    def _post_send_failure(self, error: BaseException, send: AgentSend, sid: str | None, part: int) -> None:
        log_post_send_failure(
            logger,
            error,
            conversation_id=send.conversation_id,
            message_id=send.message_id,
            message_sid=sid,
            part=part,
            parts=send.parts,
        )
        metrics.add_metric(name="PostSendFailures", unit=MetricUnit.Count, value=1)

    @staticmethod
    def _accepted(send: AgentSend, progress: _Progress, repeated: bool = False) -> AgentMessageAccepted:
        return AgentMessageAccepted(
            message_id=send.message_id, parts=send.parts, sent_parts=len(progress.sids), repeated=repeated
        )
