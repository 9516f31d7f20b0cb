"""Shared pieces of the conversations API tests: the handler in the mocked account beside the webhook
and the reply processor (reply_support), API Gateway's proxy events, conversations in any state."""

import importlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.tenant import AiSettings
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.tenants import TenantRepository

from .conftest import COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, demo_project
from .lambda_context import FakeContext
from .reply_support import OPENAI_SECRET, Replies

CLIENT = "agent-desk"
CLIENT_KEY_ID = "k3agentdesk"
OTHER_KEY_ID = "k4stranger"
API_CLIENTS = {CLIENT_KEY_ID: CLIENT, OTHER_KEY_ID: "stranger"}
TENANT = {"company_id": "acme", "project_id": "support"}
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"

# The resource of each route, as API Gateway names it in the proxy event.
_RESOURCES = [
    ("/conversations/{conversation_id}/messages", re.compile(r"^/conversations/([^/]+)/messages$")),
    ("/conversations/{conversation_id}/handback", re.compile(r"^/conversations/([^/]+)/handback$")),
    ("/conversations/{conversation_id}/close", re.compile(r"^/conversations/([^/]+)/close$")),
    ("/conversations/{conversation_id}", re.compile(r"^/conversations/([^/]+)$")),
    ("/conversations", re.compile(r"^/conversations$")),
]


def api_event(
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    key_id: str | None = CLIENT_KEY_ID,
    raw: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """The REST proxy event of a request API Gateway admitted with key `key_id` (None: no key)."""
    resource, parameters = path, None
    for template, pattern in _RESOURCES:
        match = pattern.match(path)
        if match:
            resource = template
            parameters = {"conversation_id": match.group(1)} if match.groups() else None
            break
    all_headers = {"Host": HOST, **({"Content-Type": "application/json"} if body is not None else {})}
    all_headers.update(headers or {})
    text = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "stage": "test",
            "path": f"/test{path}",
            "resourcePath": resource,
            "httpMethod": method,
            "requestId": "r-1",
            "identity": {"sourceIp": "203.0.113.9", "apiKey": "k" if key_id else None, "apiKeyId": key_id},
        },
        "body": text,
        "isBase64Encoded": base64_body,
    }


def content_type(answer: dict[str, Any]) -> str:
    """The answer's Content-Type, whichever of API Gateway's two header maps carries it."""
    single = answer.get("headers") or {}
    multi = {name: values[-1] for name, values in (answer.get("multiValueHeaders") or {}).items()}
    return str({**multi, **single}.get("Content-Type", ""))


@dataclass
class Agents:
    replies: Replies
    handler: Any

    @property
    def cloud(self) -> Any:
        return self.replies.cloud

    def call(
        self, method: str, path: str, query: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        event = api_event(method, path, TENANT if query is None else query, **kwargs)
        answer = self.handler.lambda_handler(event, FakeContext())
        assert content_type(answer).startswith("application/json"), answer
        return int(answer["statusCode"]), json.loads(answer["body"])

    def say(
        self, conversation_id: str, text: str, message_id: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"text": text}
        if message_id is not None:
            body["message_id"] = message_id
        return self.call("POST", f"/conversations/{conversation_id}/messages", body=body, **kwargs)

    def stored(self, conversation: Conversation) -> Conversation:
        found = ConversationRepository(self.cloud.dynamodb, TABLES["conversations"]).get(
            conversation.recipient_tel, conversation.conversation_id
        )
        assert found is not None
        return found

    def raw(self, conversation: Conversation) -> dict[str, Any]:
        item: dict[str, Any] = self.cloud.dynamodb.get_item(
            TableName=TABLES["conversations"],
            Key=ConversationRepository.key(conversation.recipient_tel, conversation.conversation_id),
        )["Item"]
        return item


def handed_off(cloud: Any, wrote_hours_ago: float | None = 1.0, **fields: Any) -> Conversation:
    """A conversation a person has, the customer's last message that long ago (None: never)."""
    now = iso(utc_now())
    values: dict[str, Any] = {
        "recipient_tel": CUSTOMER_NUMBER,
        "conversation_id": "h-" + uuid.uuid4().hex,
        "channel": "whatsapp",
        "company_id": "acme",
        "project_id": "support",
        "company_address": "whatsapp:" + COMPANY_NUMBER,
        "customer_address": "whatsapp:" + CUSTOMER_NUMBER,
        "status": "handed_off",
        "handoff_to_human": True,
        "handoff_reason": "ai_action",
        "last_inbound_at": None
        if wrote_hours_ago is None
        else iso(utc_now() - timedelta(hours=wrote_hours_ago)),
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    conversation = Conversation(**values)
    assert ConversationRepository(cloud.dynamodb, TABLES["conversations"]).put_new(conversation)
    return conversation


def allow_client(cloud: Any, human_era_context: bool = False, **overrides: Any) -> None:
    """The demo project, naming the agent desk's client, with the AI settings the test wants."""
    ai = AiSettings(
        instructions="Be brief.", openai_secret_ref=OPENAI_SECRET, human_era_context=human_era_context
    )
    project = demo_project(api_clients=[CLIENT], ai=ai, **overrides)
    TenantRepository(cloud.dynamodb, TABLES["company"]).put_project(project, "2026-01-01T00:00:00Z")


def load_handler() -> Any:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    import lambdas.conversations_api.handler as module

    return importlib.reload(module)


@pytest.fixture
def agents(replies: Replies, monkeypatch: pytest.MonkeyPatch) -> Agents:
    """The conversations API's handler as a fresh container loads it, on the same fakes as the
    reply processor; the demo project names the agent desk's client."""
    monkeypatch.setenv("API_CLIENTS", json.dumps(API_CLIENTS))
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "2")
    allow_client(replies.cloud)
    return Agents(replies, load_handler())


def query(**extra: str) -> dict[str, str]:
    return {**TENANT, **extra}


def encoded(**extra: str) -> str:
    return urlencode(query(**extra))
