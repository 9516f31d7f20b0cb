"""The reply processor's unit of work: one SQS record, its settings, how it fails and what it yields."""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ai_comms.clock import iso, utc_now
from ai_comms.config import Settings
from ai_comms.models.events import ReplyReceived
from ai_comms.store.reply_records import LeaseLost, LeaseRef, ReplyRecords

logger = Logger(child=True)
metrics = Metrics()

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


class PermanentFailure(Exception):
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


def skipped(reason: str) -> Outcome:
    """Nothing to do for this record (already answered, covered by another processor, ...)."""
    metrics.add_metric(name="RepliesSkipped", unit=MetricUnit.Count, value=1)
    logger.debug("nothing to do", extra={"reason": reason})
    return "covered" if reason in {"answered", "covered_by_holder"} else "skipped"


def fail_conversation(records: ReplyRecords, lease: LeaseRef, reason: str) -> None:
    """A permanent failure: the conversation is marked failed with the reason."""
    try:
        records.mark_failed(lease, reason, iso(utc_now()))
    except LeaseLost:
        logger.warning("lease lost before the conversation could be marked failed")
    metrics.add_metric(name="ConversationsFailed", unit=MetricUnit.Count, value=1)
