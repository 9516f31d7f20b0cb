"""POST /initiate-conversation: a client starts a conversation. Parses the API Gateway event only."""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.errors import RequestError
from ai_comms.outbound import InitiateService, parse_request

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
service = InitiateService.from_env()


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


@app.post("/initiate-conversation")
def initiate() -> Response[str]:
    event = app.current_event
    request = parse_request(event.body, bool(event.is_base64_encoded), service.max_body_bytes)
    # API Gateway puts the key it accepted into the request context; the header is the same value.
    presented = event.request_context.identity.api_key or event.headers.get("x-api-key")
    accepted = service.initiate(request, presented)
    metrics.add_metric(
        name="RepeatedRequests" if accepted.duplicate else "ConversationsRequested",
        unit=MetricUnit.Count,
        value=1,
    )
    return _json(202, {"conversation_id": accepted.conversation_id, "status": "accepted"})


@app.exception_handler(RequestError)
def request_error(error: RequestError) -> Response[str]:
    logger.info("request refused", extra={"status": error.status_code, "reason": error.message})
    metrics.add_metric(name=f"Refused{error.status_code}", unit=MetricUnit.Count, value=1)
    body: dict[str, Any] = {"message": error.message}
    if error.details is not None:
        body["errors"] = error.details
    return _json(error.status_code, body)


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response[str]:
    logger.exception("initiate failed")
    metrics.add_metric(name="InitiateErrors", unit=MetricUnit.Count, value=1)
    return _json(500, {"message": "internal error"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service.register_context(context)
    return app.resolve(event, context)
