"""Schemathesis against the committed OpenAPI document, the handler in process behind API Gateway's
key check, in a mocked account with the fakes: every generated request (valid and invalid, for the
tenant and for others, with the right key, another client's or none) is answered with a status the
document lists for it, never a 5xx, in the documented shape.

Generated tenants and ids rarely name a real one, so each example may swap in the demo tenant, the
agent desk's key and one of the seeded conversations (handed off, active, closed), to reach the
routes' own rules as well as their refusals.
"""

import json
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .apigw_wsgi import ApiGatewayWsgi
from .conversations_support import CLIENT_KEY_ID, OTHER_KEY_ID, TENANT, Agents, agents, handed_off
from .fuzz_support import EXAMPLES
from .reply_support import fakes, open_conversation, replies

__all__ = ["agents", "fakes", "replies"]

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "conversations-api.openapi.json"
KEYS = {"desk-key-0123456789abcdef": CLIENT_KEY_ID, "stranger-key-0123456789ab": OTHER_KEY_ID}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))


@pytest.fixture
def fuzz_desk(agents: Agents) -> dict[str, Any]:
    seeded = [
        handed_off(agents.cloud).conversation_id,
        handed_off(agents.cloud, wrote_hours_ago=30).conversation_id,
        open_conversation(agents.cloud, status="closed").conversation_id,
        agents.replies.conversation.conversation_id,
    ]
    app = ApiGatewayWsgi(agents.handler.lambda_handler, KEYS)
    return {"app": app, "conversations": seeded}


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)
def test_every_answer_is_documented_and_none_is_a_5xx(
    case: Any, data: Any, fuzz_desk: dict[str, Any]
) -> None:
    # Most examples are aimed at the tenant's own conversations with the desk's key, so the routes'
    # own rules (202, 409, ...) are reached as often as the refusals in front of them.
    aimed = data.draw(st.integers(0, 4), label="aimed") > 0
    if aimed or data.draw(st.booleans(), label="own tenant"):
        case.query = {**(case.query or {}), **TENANT}
    if case.path_parameters and (aimed or data.draw(st.booleans(), label="seeded conversation")):
        case.path_parameters["conversation_id"] = data.draw(st.sampled_from(fuzz_desk["conversations"]))
    key = next(iter(KEYS)) if aimed else data.draw(st.sampled_from([*KEYS, None]), label="key")
    headers = {"x-api-key": key} if key else {}

    response = case.call(headers=headers, app=fuzz_desk["app"])

    case.validate_response(response, checks=CHECKS, headers=headers)
    hypothesis.event(f"{case.method} {case.path} -> {response.status_code}")
    assert response.status_code < 500
