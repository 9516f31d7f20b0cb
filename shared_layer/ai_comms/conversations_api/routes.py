"""The conversations API's routes on Powertools' REST resolver, with request and answer validation
from the pydantic models (models.conversations_api) and the OpenAPI document generated from them.

Every route names its tenant in the query (company_id, project_id) and needs an API key the
project's api_clients name (conversations_api.access). Refusals are one JSON shape
({message, error?, errors?}) with their own status: 400 names the fields (Powertools' own 422 for a
validation error is answered 400 here), 403, 404, 409 with a stable `error` code, 413, and 503 when
DynamoDB, Secrets Manager or Twilio is unavailable (retry; a message id makes that safe).
"""

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from ai_comms.conversations_api.access import Caller
from ai_comms.conversations_api.service import ConversationsApi
from ai_comms.http_errors import install_error_handlers, json_response
from ai_comms.models.conversations_api import (
    CONVERSATION_ID_PATTERN,
    CURSOR_MAX_CHARS,
    MESSAGE_ID_PATTERN,
    TENANT_ID_PATTERN,
    AgentMessageAccepted,
    AgentMessageRequest,
    ConversationDetail,
    ConversationPage,
    ConversationState,
    ErrorAnswer,
    ListableStatus,
)

TAG = "conversations"
REFUSALS: dict[int, str] = {
    400: "Invalid request: `errors` names each field (`query.status`, `body.text`, ...).",
    403: "No API key, or one the project does not name in its api_clients; or an unknown tenant.",
    404: "No such conversation in this tenant.",
    409: "The conversation's state refuses it: `error` says why.",
    413: "The body is larger than the function accepts.",
    503: "DynamoDB, Secrets Manager or Twilio is unavailable: retry (with the same message id).",
}

Company = Annotated[str, Query(pattern=TENANT_ID_PATTERN, description="The tenant's company id.")]
Project = Annotated[str, Query(pattern=TENANT_ID_PATTERN, description="The tenant's project id.")]
ConversationId = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN)]
Cursor = Annotated[
    str | None, Query(max_length=CURSOR_MAX_CHARS, description="next_cursor of the previous page.")
]


def _answers(success: int, model: type[Any], description: str, *refusals: int) -> dict[int, OpenAPIResponse]:
    answers: dict[int, OpenAPIResponse] = {
        success: {"description": description, "content": {"application/json": {"model": model}}}
    }
    for status in refusals:
        answers[status] = {
            "description": REFUSALS[status],
            "content": {"application/json": {"model": ErrorAnswer}},
        }
    return answers


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    found = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ())]
        if item.get("type") == "json_invalid":
            found.append({"field": "body", "message": "not JSON"})
            continue
        found.append(
            {"field": ".".join(location) or "body", "message": str(item.get("msg") or item.get("type"))}
        )
    return found


def build_app(
    api: Callable[[], ConversationsApi], logger: Logger, metrics: Metrics
) -> APIGatewayRestResolver:
    """The resolver; `api` is called per request (the document is generated without one)."""
    app = APIGatewayRestResolver(enable_validation=True)
    install_error_handlers(app, logger, metrics, errors_metric="ConversationsApiErrors")

    @app.exception_handler(RequestValidationError)
    def invalid(error: RequestValidationError) -> Response[str]:
        details = _field_errors(error)
        metrics.add_metric(name="Refused400", unit=MetricUnit.Count, value=1)
        fields = ", ".join(sorted({d["field"] for d in details}))
        return json_response(400, {"message": f"invalid request: {fields}", "errors": details})

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported(error: RequestUnsupportedContentType) -> Response[str]:
        metrics.add_metric(name="Refused400", unit=MetricUnit.Count, value=1)
        return json_response(400, {"message": "body must be application/json"})

    @app.exception_handler([ClientError, BotoCoreError])
    def store_unavailable(error: Exception) -> Response[str]:
        logger.warning("dependency unavailable", extra={"error": type(error).__name__})
        metrics.add_metric(name="DependencyErrors", unit=MetricUnit.Count, value=1)
        return json_response(
            503, {"message": "a dependency is unavailable; retry", "error": "dependency_unavailable"}
        )

    def caller(company_id: str, project_id: str) -> Caller:
        # API Gateway puts the id of the key it accepted into the request context.
        return Caller(company_id, project_id, app.current_event.request_context.identity.api_key_id)

    @app.get(
        "/conversations",
        summary="List a tenant's conversations in one status, latest activity first",
        tags=[TAG],
        operation_id="listConversations",
        responses=_answers(200, ConversationPage, "One page of conversations.", 400, 403, 503),
    )
    def list_conversations(
        company_id: Company,
        project_id: Project,
        status: Annotated[ListableStatus, Query(description="Which conversations to list.")] = "handed_off",
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> ConversationPage:
        return api().list(caller(company_id, project_id), status, cursor, limit)

    @app.get(
        "/conversations/<conversation_id>",
        summary="A conversation's state and its messages in order, with their delivery statuses",
        tags=[TAG],
        operation_id="getConversation",
        responses=_answers(200, ConversationDetail, "The conversation.", 400, 403, 404, 503),
    )
    def get_conversation(
        conversation_id: ConversationId,
        company_id: Company,
        project_id: Project,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Messages per page.")] = 100,
    ) -> ConversationDetail:
        return api().detail(caller(company_id, project_id), conversation_id, cursor, limit)

    @app.post(
        "/conversations/<conversation_id>/messages",
        summary="Send the customer a person's message (once per message id)",
        tags=[TAG],
        operation_id="sendAgentMessage",
        status_code=HTTPStatus.ACCEPTED,
        responses=_answers(
            202, AgentMessageAccepted, "Twilio accepted the message.", 400, 403, 404, 409, 413, 503
        ),
    )
    def send_message(
        conversation_id: ConversationId,
        company_id: Company,
        project_id: Project,
        message: Annotated[AgentMessageRequest, Body()],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                pattern=MESSAGE_ID_PATTERN,
                description="A repeat with the same key and text is answered, never sent twice.",
            ),
        ] = None,
    ) -> AgentMessageAccepted:
        return api().send(caller(company_id, project_id), conversation_id, message, idempotency_key)

    @app.post(
        "/conversations/<conversation_id>/handback",
        summary="Give the conversation back to the AI, which answers the customer's next message",
        tags=[TAG],
        operation_id="handBackConversation",
        responses=_answers(200, ConversationState, "Handed back.", 400, 403, 404, 409, 413, 503),
    )
    def hand_back(
        conversation_id: ConversationId, company_id: Company, project_id: Project
    ) -> ConversationState:
        return api().hand_back(caller(company_id, project_id), conversation_id)

    @app.post(
        "/conversations/<conversation_id>/close",
        summary="Close the conversation: the customer's next message opens a new one",
        tags=[TAG],
        operation_id="closeConversation",
        responses=_answers(
            200, ConversationState, "Closed (or closed already).", 400, 403, 404, 409, 413, 503
        ),
    )
    def close(conversation_id: ConversationId, company_id: Company, project_id: Project) -> ConversationState:
        return api().close(caller(company_id, project_id), conversation_id)

    return app
