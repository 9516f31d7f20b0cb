"""Deciding a reply: the burst of customer messages after answered_seq becomes one pending reply.

In order: a failed or already answered conversation gets nothing; an inactive project sends
nothing (its messages went to people); a WhatsApp conversation whose 24-hour window closed gets
nothing (ReplyWindowClosed is published). Then the burst is read for consent: the last change a
keyword made is confirmed once, with the tenant's text, whoever has the conversation; the AI
answers what came after the last keyword, in one call, only when the customer is opted in (the
consent record, not the conversation, says so), no person has the conversation and it is not only
recorded. The reply is stored on the conversation (pending_reply) before anything is sent, with the
handoff it implies, so a retry never asks the AI again.

An answer the AI cannot give (cut short by its budget twice, cut by its content filter, refused, a
request OpenAI refuses as such) is never retried into a loop: the conversation goes to a person
with the reason, and the customer gets the tenant's handoff notice.
"""

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ai_comms.clock import iso, utc_now
from ai_comms.consent.burst import BurstReading, read_burst
from ai_comms.models.conversation import Conversation, PendingAction, PendingReply
from ai_comms.models.events import HandoffReason, ReplyWindowClosed
from ai_comms.models.message import Message, MessageAuthor
from ai_comms.models.tenant import ChannelSettings, ProjectConfig
from ai_comms.pausing import PauseGate
from ai_comms.providers.events import EventPublisher
from ai_comms.providers.openai_client import (
    AiClient,
    AiError,
    AiReply,
    ContextTooLong,
    CredentialsRefused,
    Incomplete,
    QuotaExhausted,
    Turn,
    Unanswerable,
)
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.sqs_heartbeat import VisibilityHeartbeat
from ai_comms.replies.ai_input import ai_text
from ai_comms.replies.record import (
    Outcome,
    PermanentFailure,
    RecordFailed,
    ReplySettings,
    fail_conversation,
    skipped,
)
from ai_comms.replies.tenant_config import TenantConfigs
from ai_comms.reply_window import window_closed
from ai_comms.splitting import split_message
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.messages import MessageRepository
from ai_comms.store.reply_records import LeaseLost, LeaseRef, ReplyRecords

logger = Logger(child=True)
metrics = Metrics()

# Turns a replacement AI conversation opens with when the old one outgrew the model.
CARRIED_OVER_MESSAGES = 20
# An answer cut short by max_output_tokens is asked once more with this many times the budget.
LARGER_BUDGET_FACTOR = 4
# The most of what was said while a person had the conversation that the AI's next turn reads.
HUMAN_ERA_MESSAGES = 50


def said_with_a_person(message: Message) -> bool:
    """A message of a person's time with the conversation: the customer's while it was with them (or
    the project was inactive), or the person's own."""
    return message.author == "agent" or (message.direction == "inbound" and message.route == "handoff")


@dataclass
class Draft:
    parts: list[str] = field(default_factory=list)
    authors: list[MessageAuthor] = field(default_factory=list)
    text: str = ""
    action: PendingAction = "none"
    handoff_reason: HandoffReason | None = None
    handoff_detail: str | None = None

    def add(self, part: str, author: MessageAuthor) -> None:
        self.parts.append(part)
        self.authors.append(author)
        if not self.text:
            self.text = part

    def handoff(self, notice: str, reason: HandoffReason, detail: str | None = None) -> None:
        """A person takes over: the customer gets the tenant's notice, not the AI's text."""
        self.action = "handoff"
        self.handoff_reason = reason
        self.handoff_detail = detail
        self.add(notice, "engine")


class ReplyDecider:
    def __init__(
        self,
        settings: ReplySettings,
        records: ReplyRecords,
        messages: MessageRepository,
        consent: ConsentRepository,
        configs: TenantConfigs,
        publisher: EventPublisher,
        ai: AiClient,
        gate: PauseGate,
    ) -> None:
        self._gate = gate
        self._settings = settings
        self._records = records
        self._messages = messages
        self._consent = consent
        self._configs = configs
        self._publisher = publisher
        self._ai = ai

    def decide(
        self, lease: LeaseRef, conversation: Conversation, heartbeat: VisibilityHeartbeat
    ) -> PendingReply | Outcome:
        """The reply to send (already stored as pending), or the outcome when there is none."""
        if conversation.status == "failed":
            self._records.release(lease)
            raise RecordFailed("conversation is marked failed", retry_in_seconds=1, permanent=True)
        upto = self._upto(conversation)
        if conversation.answered_seq >= upto:
            self._records.release(lease)
            return skipped("answered")
        try:
            project, channel = self._configs.of(conversation)
        except PermanentFailure as error:
            fail_conversation(self._records, lease, str(error))
            raise RecordFailed(str(error), retry_in_seconds=1, permanent=True) from error
        now = utc_now()
        if project.status != "active":
            # An inactive project sends nothing; its messages went to people (the handoff route).
            self._records.complete(lease, upto, [], iso(now), self._expires_at(now))
            logger.info("project inactive; nothing sent", extra={"upto_seq": upto})
            return skipped("inactive")
        burst = self._messages.inbound_between(conversation.conversation_id, conversation.answered_seq, upto)
        if self._window_closed(conversation, burst, now):
            return self._close_window(lease, conversation, upto, now)
        reading = read_burst(burst, project.consent)
        opted_out = self._consent.is_opted_out(conversation.company_address, conversation.customer_address)
        with_ai = not opted_out and not conversation.handoff_to_human and conversation.status != "ignored"

        draft = self._draft(lease, conversation, project, channel, upto, reading, with_ai, heartbeat)
        parts, authors, text, action = draft.parts, draft.authors, draft.text, draft.action
        if not parts:
            # Nothing to say: an opted-out customer writing, a conversation with a person or one
            # only recorded, an empty AI reply. The messages count as answered.
            self._records.complete(lease, upto, [], iso(now), self._expires_at(now))
            logger.info("nothing to send", extra={"upto_seq": upto, "opted_out": opted_out})
            return skipped("opted_out" if opted_out else "nothing_to_send")

        pending = PendingReply(
            upto_seq=upto,
            text=text,
            action=action,
            parts=parts,
            authors=authors,
            batch=int(now.timestamp() * 1000),
            handoff_reason=draft.handoff_reason,
            handoff_detail=draft.handoff_detail,
        )
        try:
            self._records.store_pending(lease, pending, iso(now), handoff=action == "handoff")
        except LeaseLost as error:
            # Nothing was sent: the record can safely come back.
            raise RecordFailed("lease lost before sending", retry_in_seconds=1) from error
        return pending

    def _draft(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        project: ProjectConfig,
        channel: ChannelSettings,
        upto: int,
        reading: BurstReading,
        with_ai: bool,
        heartbeat: VisibilityHeartbeat,
    ) -> "Draft":
        """What to send: the consent confirmation, then the AI's answer (or the handoff notice)."""
        draft = Draft()
        if reading.confirmation is not None:
            draft.action = reading.confirmation
            draft.add(
                channel.opt_out_confirmation if draft.action == "opt_out" else channel.opt_in_confirmation,
                "engine",
            )
        if with_ai and reading.for_ai:
            text = "\n\n".join(ai_text(m) for m in reading.for_ai)
            # A paused tenant's work waits (TenantPaused); after a pause this call is the probe.
            ended = self._gate.check(project.company_id, project.project_id)
            answer = self._ask_ai(lease, conversation, project, upto, text)
            if ended is not None:
                self._gate.lift(project.company_id, project.project_id)
            if not heartbeat.healthy:
                raise RecordFailed("visibility heartbeat failed", retry_in_seconds=1)
            if isinstance(answer, Unanswerable):
                draft.handoff(channel.handoff_notice, "ai_unanswerable", answer.reason)
            elif answer.action == "handoff":
                draft.text = answer.reply
                draft.handoff(channel.handoff_notice, "ai_action")
            else:
                draft.text = answer.reply
                for part in split_message(answer.reply):
                    draft.add(part, "ai")
        return draft

    @staticmethod
    def _upto(conversation: Conversation) -> int:
        """The last customer message this reply covers: every one recorded, unless an earlier attempt
        already put a shorter burst on the AI conversation; that burst is answered as it was, and
        the messages after it get their own reply."""
        marked = conversation.ai_turn_upto
        if marked is not None and conversation.answered_seq < marked <= conversation.inbound_seq:
            return marked
        return conversation.inbound_seq

    def _close_window(self, lease: LeaseRef, conversation: Conversation, upto: int, now: Any) -> Outcome:
        """Free-form replies are over: nothing is sent; ReplyWindowClosed tells who can send a template."""
        self._publisher.publish(
            ReplyWindowClosed(
                conversation_id=conversation.conversation_id,
                **conversation.parties(),
                upto_seq=upto,
                last_inbound_at=conversation.last_inbound_at or "",
                detected_at=iso(now),
            )
        )
        self._records.close_window(lease, upto, iso(now), change_status=conversation.status == "active")
        logger.info("reply window closed; nothing sent", extra={"upto_seq": upto})
        metrics.add_metric(name="RepliesSkipped", unit=MetricUnit.Count, value=1)
        return "window_closed"

    def _window_closed(self, conversation: Conversation, burst: list[Message], now: Any) -> bool:
        last = conversation.last_inbound_at or (burst[-1].at if burst else None)
        return window_closed(conversation.customer_address, last, now)

    def _api_key(self, project: ProjectConfig, fresh: bool = False) -> str:
        try:
            secret = get_secret_json(
                project.ai.openai_secret_ref, self._settings.base.secret_cache_seconds, force_fetch=fresh
            )
            return str(secret["api_key"])
        except (SecretUnavailable, KeyError) as error:
            logger.error("openai secret unavailable", extra={"project_id": project.project_id})
            raise RecordFailed("openai secret unavailable", retry_in_seconds=None) from error

    def _ask_ai(
        self, lease: LeaseRef, conversation: Conversation, project: ProjectConfig, upto: int, text: str
    ) -> AiReply | Unanswerable:
        """The AI's reply, or why it cannot give one (the caller hands the conversation to a person).

        A refused key is read again once (it may have been rotated) before the failure counts as the
        tenant's: retried later and alarmed, the conversation untouched."""
        try:
            return self._ask_ai_with(self._api_key(project), lease, conversation, project, upto, text)
        except CredentialsRefused:
            logger.warning(
                "OpenAI refused the key; reading it again", extra={"project_id": project.project_id}
            )
        try:
            return self._ask_ai_with(
                self._api_key(project, fresh=True), lease, conversation, project, upto, text
            )
        except CredentialsRefused as error:
            logger.error("OpenAI refuses the tenant's key", extra={"project_id": project.project_id})
            metrics.add_metric(name="TenantCredentialErrors", unit=MetricUnit.Count, value=1)
            raise self._gate.pause(project.company_id, project.project_id, "openai_key_refused") from error

    def _ask_ai_with(
        self,
        api_key: str,
        lease: LeaseRef,
        conversation: Conversation,
        project: ProjectConfig,
        upto: int,
        text: str,
    ) -> AiReply | Unanswerable:
        try:
            started = time.monotonic()
            turn = self._turn(lease, conversation, api_key, upto, text)
            turn.context = self._human_era(conversation, project)
            try:
                reply = self._reply(api_key, project, turn)
            except ContextTooLong:
                # Never the end of the conversation: it goes on in a new AI conversation that opens
                # with the last turns of this one.
                logger.warning("AI context too long; continuing in a new AI conversation")
                metrics.add_metric(name="AiConversationsRestarted", unit=MetricUnit.Count, value=1)
                replacement = self._open_ai_conversation(
                    lease,
                    conversation,
                    api_key,
                    replacing=turn.conversation_id,
                    with_human_era=project.ai.human_era_context,
                )
                self._records.begin_ai_turn(lease, replacement, upto, iso(utc_now()))
                reply = self._reply(api_key, project, Turn(replacement, text, context=turn.context))
            metrics.add_metric(
                name="AiLatency", unit=MetricUnit.Milliseconds, value=(time.monotonic() - started) * 1000
            )
        except CredentialsRefused:
            raise
        except LeaseLost as error:
            raise RecordFailed("lease lost before the AI call", retry_in_seconds=1) from error
        except Unanswerable as error:
            logger.warning("the AI cannot answer; a person takes over", extra={"reason": error.reason})
            metrics.add_metric(name="AiUnanswerable", unit=MetricUnit.Count, value=1)
            return error
        except QuotaExhausted as error:
            logger.error("the tenant's OpenAI quota is used up", extra={"project_id": project.project_id})
            metrics.add_metric(name="TenantQuotaErrors", unit=MetricUnit.Count, value=1)
            raise self._gate.pause(
                project.company_id, project.project_id, "openai_quota_exhausted"
            ) from error
        except AiError as error:
            logger.warning("AI unavailable; the record will be retried", extra={"error": str(error)})
            wait = error.retry_in_seconds
            raise RecordFailed(str(error), retry_in_seconds=math.ceil(wait) if wait else None) from error
        return reply

    def _reply(self, api_key: str, project: ProjectConfig, turn: Turn) -> AiReply:
        """The AI's answer; a response cut short by its token budget (reasoning counts too) is asked
        once more with a larger one, without putting the customer's messages on it again."""
        try:
            return self._ai.reply(api_key, project.ai, turn)
        except Incomplete as error:
            if error.incomplete_reason != "max_output_tokens":
                raise
            logger.info("AI answer cut short by its token budget; asking once with a larger one")
            turn.resume = True
            budget = project.ai.max_output_tokens * LARGER_BUDGET_FACTOR
            return self._ai.reply(api_key, project.ai, turn, max_output_tokens=budget)

    def _turn(self, lease: LeaseRef, conversation: Conversation, api_key: str, upto: int, text: str) -> Turn:
        """The AI conversation and input of this reply; `resume` when an earlier attempt may have put
        the same messages on it already (the marker is written before the first attempt)."""
        ai_conversation_id = conversation.ai_conversation_id
        if ai_conversation_id is None:
            ai_conversation_id = self._open_ai_conversation(lease, conversation, api_key)
        resume = (
            conversation.ai_turn_upto == upto and conversation.ai_turn_conversation_id == ai_conversation_id
        )
        if not resume:
            self._records.begin_ai_turn(lease, ai_conversation_id, upto, iso(utc_now()))
        return Turn(ai_conversation_id, text, resume=resume)

    def _human_era(self, conversation: Conversation, project: ProjectConfig) -> list[tuple[str, str]]:
        """What the customer and a person said between the AI's handoff and the handback, for the
        AI's first turn after it when the project wants it read (its latest HUMAN_ERA_MESSAGES). An
        agent speaks for the company as the AI does: their messages are the assistant's turns."""
        start, end = conversation.human_era_from, conversation.human_era_upto
        if not project.ai.human_era_context or start is None or end is None:
            return []
        if conversation.answered_seq != end:
            return []  # the AI has answered since the handback: it read them then, or was not to
        era = [
            m
            for m in self._messages.seq_range(conversation.conversation_id, start, end)
            if said_with_a_person(m) and not (m.direction == "inbound" and m.seq <= start)
        ][-HUMAN_ERA_MESSAGES:]
        return [("user", ai_text(m)) if m.direction == "inbound" else ("assistant", m.body) for m in era]

    def _open_ai_conversation(
        self,
        lease: LeaseRef,
        conversation: Conversation,
        api_key: str,
        replacing: str | None = None,
        with_human_era: bool = True,
    ) -> str:
        """Create the AI conversation (for a replacement, opened with the last turns of the old one)
        and keep its id on the record before it is used, so a retry continues the same one."""
        history: list[tuple[str, str]] = []
        if replacing is not None:
            recent = self._messages.history(
                conversation.conversation_id, limit=CARRIED_OVER_MESSAGES, newest_first=True
            ).messages
            history = [
                ("user" if m.direction == "inbound" else "assistant", m.body)
                for m in reversed(recent)
                if m.body.strip()
                and not (m.direction == "inbound" and m.seq > conversation.answered_seq)
                and (with_human_era or not said_with_a_person(m))
            ]
        created = self._ai.create_conversation(
            api_key,
            metadata={
                "company_id": conversation.company_id,
                "project_id": conversation.project_id,
                "conversation_id": conversation.conversation_id,
            },
            history=history,
        )
        try:
            self._records.set_ai_conversation(lease, created, iso(utc_now()), replacing=replacing)
        except LeaseLost as error:
            raise RecordFailed("lease lost before the AI call", retry_in_seconds=1) from error
        return created

    def _expires_at(self, now: Any) -> int:
        return int((now + timedelta(days=self._settings.base.conversation_ttl_days)).timestamp())
