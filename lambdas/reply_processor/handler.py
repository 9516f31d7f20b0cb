"""The channels' AI-reply queues: answer each customer burst once. Parses the SQS batch; the logic is shared.

Records fail individually (ReportBatchItemFailures): a failed record is rescheduled on its own
backoff and the rest of the batch is deleted.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ai_comms.pausing import TenantPaused
from ai_comms.replies.record import QueuedRecord, RecordFailed, parse_reply_event
from ai_comms.replies.service import ReplyService

logger = Logger()
metrics = Metrics()
# A fully failed batch is reported item by item too, not raised: each record keeps its own backoff.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
service = ReplyService.from_env()


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> str:
    queued = QueuedRecord(
        message_id=record.message_id,
        receipt_handle=record.receipt_handle,
        queue_arn=record.event_source_arn,
        receive_count=int(record.attributes.approximate_receive_count or "1"),
        request_id=lambda_context.aws_request_id,
        remaining_ms=lambda_context.get_remaining_time_in_millis,
    )
    logger.append_keys(message_id=record.message_id)
    try:
        event = parse_reply_event(record.body)
    except (ValueError, ValidationError):
        # Not retryable, but failing it keeps the evidence: the redrive policy moves it to the DLQ.
        logger.error("record is not a ReplyReceived event")
        metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=1)
        raise
    logger.append_keys(conversation_id=event.conversation_id)
    try:
        return service.process(event, queued)
    except TenantPaused as paused:
        # Parked, not failed: the tenant's credentials or quota, not this record, are the problem.
        logger.warning(
            "tenant paused; record parked", extra={"reason": paused.reason, "seconds": paused.seconds}
        )
        try:
            service.park(queued, record.body, paused)
        except Exception:
            logger.exception("record not parked; it returns after its backoff")
            service.reschedule(queued, paused)
            raise
        return "parked"
    except RecordFailed as failure:
        logger.warning("record failed", extra={"reason": str(failure), "permanent": failure.permanent})
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=1)
        service.reschedule(queued, failure)
        raise
    except Exception as error:
        logger.exception("record failed unexpectedly")
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=1)
        service.reschedule(queued, error)
        raise
    finally:
        logger.remove_keys(["message_id", "conversation_id"])


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
