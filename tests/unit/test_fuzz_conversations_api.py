"""Schemathesis against the committed OpenAPI document, the handler in process behind API Gateway's
key check, in a mocked account with the fakes: every generated request (valid and invalid, for the
tenant and for others, with the right key, another client's or none) is answered with a status the
document lists for it, never a 5xx, in the documented shape.

Generated tenants and ids rarely name a real one, so each example may swap in the demo tenant, the
agent desk's key and one of the seeded conversations (handed off, active, closed), to reach the
routes' own rules as well as their refusals.
"""

from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from tests.conversations_api_fuzzing import CHECKS, aim, fuzz_settings, schema

from .apigw_wsgi import ApiGatewayWsgi
from .conversations_support import CLIENT_KEY_ID, OTHER_KEY_ID, TENANT, Agents, agents, handed_off
from .fuzz_support import EXAMPLES
from .reply_support import fakes, open_conversation, replies

__all__ = ["agents", "fakes", "replies"]

KEYS = {"desk-key-0123456789abcdef": CLIENT_KEY_ID, "stranger-key-0123456789ab": OTHER_KEY_ID}


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
@fuzz_settings(EXAMPLES)
def test_every_answer_is_documented_and_none_is_a_5xx(
    case: Any, data: Any, fuzz_desk: dict[str, Any]
) -> None:
    own, *others = KEYS
    headers = aim(case, data, TENANT, fuzz_desk["conversations"], own, [*others, None])

    response = case.call(headers=headers, app=fuzz_desk["app"])

    case.validate_response(response, checks=CHECKS, headers=headers)
    hypothesis.event(f"{case.method} {case.path} -> {response.status_code}")
    assert response.status_code < 500
