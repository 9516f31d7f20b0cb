"""The conversations API (GET /conversations, GET /conversations/{id}, POST .../messages, .../handback,
.../close): people take conversations over from the AI. Parses the API Gateway event only."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_comms.conversations_api.body import prepared, refusal
from ai_comms.conversations_api.routes import build_app
from ai_comms.conversations_api.service import ConversationsApi
from ai_comms.errors import RequestError

logger = Logger()
metrics = Metrics()
service = ConversationsApi.from_env()
app = build_app(lambda: service, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        event = prepared(event, service.max_body_bytes)
    except RequestError as error:
        logger.info("request refused", extra={"status": error.status_code, "reason": error.message})
        return refusal(error)
    return app.resolve(event, context)
