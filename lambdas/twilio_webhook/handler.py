"""POST /{channel}: Twilio's incoming-message webhook. Parses the API Gateway event; the logic is shared."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.errors import RequestError
from ai_comms.inbound import InboundService, WebhookRequest, public_url

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
service = InboundService.from_env()


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
    return _twiml(200)


@app.exception_handler(RequestError)
def request_error(error: RequestError) -> Response[str]:
    logger.info("request refused", extra={"status": error.status_code, "reason": error.message})
    metrics.add_metric(name=f"Refused{error.status_code}", unit=MetricUnit.Count, value=1)
    body: dict[str, object] = {"message": error.message}
    if error.details is not None:
        body["errors"] = error.details
    return Response(status_code=error.status_code, content_type="application/json", body=json.dumps(body))


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[str]:
    # A fault of ours or of a dependency: Twilio may retry, and the claim on the message was released.
    logger.exception("webhook failed")
    metrics.add_metric(name="WebhookErrors", unit=MetricUnit.Count, value=1)
    return Response(status_code=500, content_type="application/json", body='{"message":"internal error"}')


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service.register_context(context)
    return app.resolve(event, context)
