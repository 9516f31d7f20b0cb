"""What both schemathesis suites of the conversations API share (tests/unit, in process; tests/e2e,
over HTTP on the local cloud): the committed OpenAPI document, the checks every answer is held to,
and how an example is aimed.

Generated tenants and ids rarely name a real one, so most examples (four in five) are aimed at the
test's own tenant, conversations and key: the routes' own rules (202, 409, ...) are reached as often
as the refusals in front of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "conversations-api.openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text(encoding="utf-8")))


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
        derandomize=True,
    )


def aim(
    case: Any,
    data: Any,
    tenant: Mapping[str, str],
    conversations: Sequence[str],
    own_key: str,
    other_keys: Sequence[str | None],
) -> dict[str, str]:
    """Aim `case` (in place) and return its headers: the tenant's query, a seeded conversation, the
    key (its own, another client's, a wrong one or none)."""
    aimed = data.draw(st.integers(0, 4), label="aimed") > 0
    if aimed or data.draw(st.booleans(), label="own tenant"):
        case.query = {**(case.query or {}), **tenant}
    if case.path_parameters and (aimed or data.draw(st.booleans(), label="seeded conversation")):
        case.path_parameters["conversation_id"] = data.draw(st.sampled_from(list(conversations)))
    key = own_key if aimed else data.draw(st.sampled_from([own_key, *other_keys]), label="key")
    return {"x-api-key": key} if key else {}
