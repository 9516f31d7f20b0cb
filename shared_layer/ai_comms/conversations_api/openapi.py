"""The conversations API's OpenAPI document, generated from the resolver itself.

Powertools documents a 422 for every validated route; this API answers validation errors 400 in its
one error shape (routes.py), so the 422 and its schemas are taken out and nothing documented is an
answer the API never gives. Every route needs the x-api-key header (API Gateway checks it).
"""

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from ai_comms.conversations_api.routes import build_app

TITLE = "AI Multi-Comms Engine: conversations API"
VERSION = "1.0.0"
DESCRIPTION = (
    "The human side of the engine: list a tenant's conversations, read one with its history, send "
    "the customer a person's message, hand a conversation back to the AI, close it. Every request "
    "names its tenant (company_id, project_id) and carries an API key the project names."
)
_UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document(app: APIGatewayRestResolver | None = None) -> dict[str, Any]:
    def no_service() -> Any:
        raise RuntimeError("the document is generated without a service")

    resolver = app or build_app(no_service, Logger(service="openapi"), Metrics(namespace="openapi"))
    schema = json.loads(
        resolver.get_openapi_json_schema(
            title=TITLE,
            version=VERSION,
            description=DESCRIPTION,
            security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
            security=[{"apiKey": []}],
        )
    )
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for name in _UNUSED_SCHEMAS:
        schemas.pop(name, None)
    return dict(schema)


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
