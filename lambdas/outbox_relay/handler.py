"""The messages table's stream: publishes each recorded customer message's ReplyReceived event.

Reports partial failures (ReportBatchItemFailures): Lambda retries the shard from the first record
the relay could not publish.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.config import Settings
from ai_comms.inbound.outbox import OutboxRelay
from ai_comms.providers import aws_clients
from ai_comms.providers.events import EventPublisher

logger = Logger()
metrics = Metrics()
relay = OutboxRelay(EventPublisher(aws_clients.lazy("events"), Settings.from_env().event_bus_name))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = relay.relay(event.get("Records") or [])
    metrics.add_metric(name="EventsRelayed", unit=MetricUnit.Count, value=result.published)
    if result.skipped:
        metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=result.skipped)
    if result.failed_from is None:
        return {"batchItemFailures": []}
    metrics.add_metric(name="RelayRetries", unit=MetricUnit.Count, value=1)
    return {"batchItemFailures": [{"itemIdentifier": result.failed_from}]}
