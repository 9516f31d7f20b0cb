"""SQS "<channel>-outbound" queues: sends each requested conversation's first template. Batch parsing only."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.outbound.sender import ChannelSender, Outcome, SqsMessage

logger = Logger()
metrics = Metrics()
# A batch whose every record failed is still answered with batchItemFailures, not an invocation error:
# the records return to the queue the same way, without counting as function errors.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
sender = ChannelSender.from_env()


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> str:
    message = SqsMessage(
        message_id=record.message_id,
        body=record.body,
        receipt_handle=record.receipt_handle,
        queue_arn=record.event_source_arn,
        receive_count=int(record.attributes.approximate_receive_count or 1),
    )
    try:
        result = sender.handle(message, lambda_context.get_remaining_time_in_millis)
    except Exception:
        metrics.add_metric(name="OutboundFailures", unit=MetricUnit.Count, value=1)
        raise
    if result.outcome is Outcome.SENT:
        metrics.add_metric(name="TemplatesSent", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="RequestToSentLatency",
            unit=MetricUnit.Milliseconds,
            value=result.timings["request_to_sent_ms"],
        )
    elif result.outcome is Outcome.SENT_UNRECORDED:
        metrics.add_metric(name="PostSendUpdateFailures", unit=MetricUnit.Count, value=1)
    elif result.outcome is Outcome.OUTCOME_UNKNOWN:
        metrics.add_metric(name="SendOutcomesUnknown", unit=MetricUnit.Count, value=1)
    elif result.outcome is Outcome.WITHHELD:
        metrics.add_metric(name="TemplatesWithheldOptedOut", unit=MetricUnit.Count, value=1)
    elif result.outcome is Outcome.ALREADY_SENT:
        metrics.add_metric(name="DuplicateRequestsSkipped", unit=MetricUnit.Count, value=1)
    return result.outcome.value


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
