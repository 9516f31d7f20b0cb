"""Schemathesis over real HTTP on the local cloud: requests generated from the committed OpenAPI
document of the conversations API (docs/conversations-api.openapi.json) reach the deployed route
through the runner's API Gateway front and the function, which answers from DynamoDB Local.

Every answer must be one the document lists for its route, in its shape, and never a 5xx; most
examples name the test's own tenant, key and conversations (handed off, active, closed), so the
routes' own rules are reached as well as the refusals in front of them (the unit suite runs the
same document in process: tests/unit/test_fuzz_conversations_api.py).
"""

from __future__ import annotations

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

from .conftest import REPO, Stack, random_tel
from .test_outbound import api_key

pytestmark = pytest.mark.e2e

DOCUMENT = REPO / "docs" / "conversations-api.openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Each example is one HTTP request through the runner (a few ms to tens of ms): enough to reach every
# status of every route while keeping the suite's wall time small.
EXAMPLES = 25

schema = schemathesis.openapi.from_dict(json.loads(Path(DOCUMENT).read_text(encoding="utf-8")))


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
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_every_answer_over_http_is_documented_and_none_is_a_5xx(
    case: Any, data: Any, desk: dict[str, Any]
) -> None:
    aimed = data.draw(st.integers(0, 4), label="aimed") > 0
    if aimed or data.draw(st.booleans(), label="own tenant"):
        case.query = {**(case.query or {}), **desk["tenant"]}
    if case.path_parameters and (aimed or data.draw(st.booleans(), label="seeded conversation")):
        case.path_parameters["conversation_id"] = data.draw(st.sampled_from(desk["conversations"]))
    key = desk["key"] if aimed else data.draw(st.sampled_from([desk["key"], "not-a-key-0123456789", None]))
    headers = {"x-api-key": key} if key else {}

    response = case.call(base_url=desk["base_url"], headers=headers, timeout=30)

    case.validate_response(response, checks=CHECKS, headers=headers)
