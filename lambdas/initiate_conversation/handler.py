"""POST /initiate-conversation: a client starts a conversation. Parses the API Gateway event only."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.http_errors import install_error_handlers, json_response
from ai_comms.outbound.initiate import InitiateService, parse_request

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
service = InitiateService.from_env()
install_error_handlers(app, logger, metrics, errors_metric="InitiateErrors")


@app.post("/initiate-conversation")
def initiate() -> Response[str]:
    event = app.current_event
    request = parse_request(event.body, bool(event.is_base64_encoded), service.max_body_bytes)
    # API Gateway puts the id of the key it accepted into the request context.
    accepted = service.initiate(request, event.request_context.identity.api_key_id)
    metrics.add_metric(
        name="RepeatedRequests" if accepted.duplicate else "ConversationsRequested",
        unit=MetricUnit.Count,
        value=1,
    )
    return json_response(202, {"conversation_id": accepted.conversation_id, "status": "accepted"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service.register_context(context)
    return app.resolve(event, context)
