"""Schemathesis over real HTTP on the local cloud: requests generated from the committed OpenAPI
document of the conversations API (docs/conversations-api.openapi.json) reach the deployed route
through the runner's API Gateway front and the function, which answers from DynamoDB Local.

Every answer must be one the document lists for its route, in its shape, and never a 5xx; most
examples name the test's own tenant, key and conversations (handed off, active, closed), so the
routes' own rules are reached as well as the refusals in front of them (the unit suite runs the
same document in process: tests/unit/test_fuzz_conversations_api.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st

from tests.conversations_api_fuzzing import CHECKS, aim, fuzz_settings, schema

from .conftest import Stack, random_tel
from .test_outbound import api_key

pytestmark = pytest.mark.e2e

# Each example is one HTTP request through the runner (a few ms to tens of ms): enough to reach every
# status of every route while keeping the suite's wall time small.
EXAMPLES = 25


@pytest.fixture(scope="module")
def desk(stack: Stack) -> dict[str, Any]:
    tenant = stack.tenant()
    seeded = [
        stack.conversation(tenant, random_tel(), status="handed_off", handoff_to_human=True),
        stack.conversation(tenant, random_tel()),
        stack.conversation(tenant, random_tel(), status="closed"),
    ]
    return {
        "base_url": stack.api_url(),
        "key": api_key(stack),
        "tenant": {"company_id": tenant.company_id, "project_id": tenant.project_id},
        "conversations": [c.conversation_id for c in seeded],
    }


@schema.parametrize()
@schema.given(data=st.data())
@fuzz_settings(EXAMPLES)
def test_every_answer_over_http_is_documented_and_none_is_a_5xx(
    case: Any, data: Any, desk: dict[str, Any]
) -> None:
    others = ["not-a-key-0123456789", None]
    headers = aim(case, data, desk["tenant"], desk["conversations"], desk["key"], others)

    response = case.call(base_url=desk["base_url"], headers=headers, timeout=30)

    case.validate_response(response, checks=CHECKS, headers=headers)
