"""One error policy for every API function: refusals answer their own status, never a 500.

RequestError subclasses carry their status; a path or method no route matches is 404 (the resolver
raises NotFoundError, which the catch-all must not turn into a 500); anything else is our fault,
logged with its traceback and answered 500 without details.
"""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit

from ai_comms.errors import RequestError


def json_response(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def install_error_handlers(
    app: APIGatewayRestResolver, logger: Logger, metrics: Metrics, errors_metric: str
) -> None:
    @app.exception_handler(RequestError)
    def request_error(error: RequestError) -> Response[str]:
        logger.info("request refused", extra={"status": error.status_code, "reason": error.message})
        metrics.add_metric(name=f"Refused{error.status_code}", unit=MetricUnit.Count, value=1)
        body: dict[str, Any] = {"message": error.message}
        if error.code is not None:
            body["error"] = error.code
        if error.details is not None:
            body["errors"] = error.details
        return json_response(error.status_code, body)

    @app.not_found
    def no_route(error: NotFoundError) -> Response[str]:
        metrics.add_metric(name="Refused404", unit=MetricUnit.Count, value=1)
        return json_response(404, {"message": "not found"})

    @app.exception_handler(Exception)
    def unexpected_error(error: Exception) -> Response[str]:
        logger.exception("request failed")
        metrics.add_metric(name=errors_metric, unit=MetricUnit.Count, value=1)
        return json_response(500, {"message": "internal error"})
