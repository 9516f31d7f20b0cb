"""POST /{channel}: Twilio's incoming-message webhook. Parses the API Gateway event; the logic is shared."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.http_errors import install_error_handlers
from ai_comms.inbound.form import public_url
from ai_comms.inbound.webhook import InboundService, WebhookRequest

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
service = InboundService.from_env()
install_error_handlers(app, logger, metrics, errors_metric="WebhookErrors")


def _twiml(status: int) -> Response[str]:
    return Response(status_code=status, content_type="text/xml", body=EMPTY_TWIML)


@app.post("/<channel>")
def receive(channel: str) -> Response[str]:
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    url = public_url(
        service.public_base_url,
        channel,
        headers,
        event.request_context.domain_name,
        event.request_context.path,
        event.multi_value_query_string_parameters,
    )
    accepted = service.handle(
        WebhookRequest(
            channel=channel,
            body=event.body,
            is_base64=bool(event.is_base64_encoded),
            headers=headers,
            url=url,
        )
    )
    metrics.add_metric(
        name="DuplicatesDropped" if accepted.duplicate else "RepliesAccepted", unit=MetricUnit.Count, value=1
    )
    if accepted.consent_change is not None:
        name = "OptOutsRecorded" if accepted.consent_change == "opt_out" else "OptInsRecorded"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return _twiml(200)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
