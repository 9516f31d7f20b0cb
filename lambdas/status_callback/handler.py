"""POST /{channel}/status: Twilio's StatusCallback for every message the engine sends. Parses the
API Gateway event; the logic is shared (ai_comms.delivery.status)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.delivery.callback_url import status_path
from ai_comms.delivery.status import StatusRequest, StatusService
from ai_comms.http_errors import install_error_handlers
from ai_comms.inbound.form import public_url
from ai_comms.store.delivery import Stored

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
service = StatusService.from_env()
install_error_handlers(app, logger, metrics, errors_metric="StatusCallbackErrors")


@app.post("/<channel>/status")
def status(channel: str) -> Response[str]:
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    query = event.multi_value_query_string_parameters or {}
    url = public_url(
        service.public_base_url,
        status_path(channel),
        headers,
        event.request_context.domain_name,
        event.request_context.path,
        query,
    )
    result = service.handle(
        StatusRequest(
            channel=channel,
            body=event.body,
            is_base64=bool(event.is_base64_encoded),
            headers=headers,
            url=url,
            query=query,
        )
    )
    if result.stored is Stored.DUPLICATE:
        metrics.add_metric(name="StatusDuplicatesDropped", unit=MetricUnit.Count, value=1)
    else:
        callback = result.callback
        metrics.add_metric(name="StatusesRecorded", unit=MetricUnit.Count, value=1)
        with single_metric(
            name="DeliveryStatuses", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
        ) as m:
            m.add_dimension(name="status", value=callback.status)
        if callback.failed:
            with single_metric(
                name="DeliveryFailures", unit=MetricUnit.Count, value=1, namespace=metrics.namespace
            ) as m:
                m.add_dimension(name="error_code", value=str(callback.error_code or "none"))
                m.add_dimension(name="message", value="template" if result.template else "reply")
    return Response(status_code=200, content_type="text/plain", body="")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
