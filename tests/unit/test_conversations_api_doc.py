"""The conversations API's committed OpenAPI document, its README table and its Terraform routes all
say what the resolver serves."""

import json
import re
import sys
from pathlib import Path

from ai_comms.conversations_api.openapi import document, render

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import conversations_api_doc  # noqa: E402


def test_the_committed_document_is_the_generated_one() -> None:
    assert (ROOT / "docs" / "conversations-api.openapi.json").read_text() == render(document())


def test_the_readme_table_is_generated_from_the_document() -> None:
    readme = (ROOT / "README.md").read_text()
    assert conversations_api_doc.readme_with(readme, conversations_api_doc.summary(document())) == readme
    assert conversations_api_doc.main(["--check"]) == 0


def test_terraform_routes_are_the_documented_operations() -> None:
    text = (ROOT / "terraform" / "conversations.tf").read_text()
    routes = set(re.findall(r'\{ path = "([^"]+)", method = "([A-Z]+)" \}', text))
    documented = {
        (path.lstrip("/"), method.upper())
        for path, operations in document()["paths"].items()
        for method in operations
    }
    assert routes and routes == documented


def test_no_answer_is_documented_that_the_api_never_gives() -> None:
    schema = document()
    statuses = {
        status for ops in schema["paths"].values() for op in ops.values() for status in op["responses"]
    }
    assert "422" not in statuses and statuses <= {"200", "202", "400", "403", "404", "409", "413", "503"}
    assert schema["security"] == [{"apiKey": []}]
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert json.loads(render(schema)) == schema
