"""Pausing a tenant's processing on a tenant-wide failure, and waiting the pause out.

Work for a paused project is parked, not failed: its queue record is sent again with a delay (up
to SQS's 15 minutes) and the original deleted, so no receive count climbs towards the DLQ while
the tenant fixes their credentials or billing. Parking sends before it deletes, so at worst a
record exists twice, which the consumers' own idempotency (answered_seq, send claims) absorbs.
The alarm is on the TenantPauses metric; the pause lifts by itself with the first success.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ai_comms.clock import utc_now
from ai_comms.store.tenant_pauses import Pause, TenantPauses

logger = Logger(child=True)
metrics = Metrics()

MAX_SQS_DELAY_SECONDS = 900


class TenantPaused(Exception):
    """The project is paused for `seconds` more: park the work, do not fail it."""

    def __init__(self, reason: str, seconds: int) -> None:
        super().__init__(f"tenant paused for {seconds} s: {reason}")
        self.reason = reason
        self.seconds = seconds


def _now_ms() -> int:
    return int(utc_now().timestamp() * 1000)


class PauseGate:
    def __init__(self, pauses: TenantPauses) -> None:
        self._pauses = pauses

    def check(self, company_id: str, project_id: str) -> Pause | None:
        """Raises TenantPaused while a pause lasts; the pause that ended (the probe follows) or None."""
        pause = self._pauses.get(company_id, project_id)
        if pause is None:
            return None
        remaining = pause.remaining_seconds(_now_ms())
        if remaining > 0:
            raise TenantPaused(pause.reason, remaining)
        return pause

    def pause(self, company_id: str, project_id: str, reason: str) -> TenantPaused:
        """Pause the project (longer each time in a row); the exception to raise."""
        pause = self._pauses.pause(company_id, project_id, reason, _now_ms())
        logger.error(
            "tenant paused",
            extra={
                "company_id": company_id,
                "project_id": project_id,
                "reason": reason,
                "pauses": pause.count,
            },
        )
        metrics.add_metric(name="TenantPauses", unit=MetricUnit.Count, value=1)
        return TenantPaused(reason, max(pause.remaining_seconds(_now_ms()), 1))

    def lift(self, company_id: str, project_id: str) -> None:
        if self._pauses.lift(company_id, project_id):
            logger.info("tenant pause lifted", extra={"company_id": company_id, "project_id": project_id})
            metrics.add_metric(name="TenantPausesLifted", unit=MetricUnit.Count, value=1)


def park(sqs: Any, queue_url: str, body: str, seconds: int) -> None:
    """Send the record's body again, visible after `seconds` (at most 15 minutes)."""
    sqs.send_message(
        QueueUrl=queue_url, MessageBody=body, DelaySeconds=max(0, min(seconds, MAX_SQS_DELAY_SECONDS))
    )
    metrics.add_metric(name="RecordsParked", unit=MetricUnit.Count, value=1)
