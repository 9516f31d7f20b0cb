"""Shared pieces of the outbound tests: a project with an approved template, requests, queue plumbing."""

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from ai_comms.models.tenant import AiSettings, ChannelSettings, ProjectConfig
from ai_comms.providers import aws_clients
from ai_comms.store.tenants import TenantRepository
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake
from local_cloud.sqs_poller import sqs_record

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BUS, COMPANY_NUMBER, CUSTOMER_NUMBER, REGION, TABLES, Cloud
from .lambda_context import FakeContext

CONTENT_SID = "HX" + "a" * 32
OPENAI_SECRET = "t/tenants/acme/openai"
OPENAI_KEY = "sk-unit-openai-key"
CLIENT_KEY = "unit-client-key-0123456789"
# API Gateway's ids of the clients' keys, and the clients Terraform names them (API_CLIENTS).
CLIENT = "unit-client"
CLIENT_KEY_ID = "k1unitclient"
OTHER_KEY_ID = "k2otherclient"
API_CLIENTS = {CLIENT_KEY_ID: CLIENT, OTHER_KEY_ID: "other-client"}
# The rule Terraform generates for each channel; the tests route the bus with exactly this pattern.
OUTBOUND_PATTERN = {
    "source": ["ai-comms.initiate-conversation"],
    "detail-type": ["ConversationRequested"],
    "detail": {"channel": ["whatsapp"], "route": ["outbound"]},
}


def outbound_project(**overrides: Any) -> ProjectConfig:
    data: dict[str, Any] = {
        "company_id": "acme",
        "project_id": "support",
        "allowed_channels": ["whatsapp"],
        "channels": {
            "whatsapp": ChannelSettings(
                address="whatsapp:" + COMPANY_NUMBER,
                twilio_secret_ref="t/tenants/acme/twilio",
                content_sid=CONTENT_SID,
                template_variables={"1": "The customer's first name", "2": "Why we are writing, briefly"},
            )
        },
        "ai": AiSettings(
            model="gpt-unit", instructions="You write for Acme.", openai_secret_ref=OPENAI_SECRET
        ),
        "api_clients": [CLIENT],
    }
    data.update(overrides)
    return ProjectConfig(**data)


def put_project(cloud: Cloud, project: ProjectConfig) -> None:
    TenantRepository(cloud.dynamodb, TABLES["company"]).put_project(project, "2026-01-01T00:00:00Z")


def request_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "company_id": "acme",
        "project_id": "support",
        "channel_method": "whatsapp",
        "request_id": "order-1001",
        "recipient": {"tel": CUSTOMER_NUMBER, "first_name": "Ada", "last_name": "Lovelace"},
        "project_data": {"order": "1001", "topic": "delivery slot"},
    }
    body.update(overrides)
    return body


def initiate_event(
    body: Any, *, api_key_id: str | None = CLIENT_KEY_ID, raw: str | None = None
) -> dict[str, Any]:
    """The proxy event of a request API Gateway admitted with the key `api_key_id` (None: no key)."""
    api_key = CLIENT_KEY if api_key_id else None
    text = raw if raw is not None else json.dumps(body)
    headers = {"Content-Type": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    if api_key is not None:
        headers["x-api-key"] = api_key
    return {
        "resource": "/initiate-conversation",
        "path": "/initiate-conversation",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "stage": "test",
            "path": "/test/initiate-conversation",
            "resourcePath": "/initiate-conversation",
            "httpMethod": "POST",
            "requestId": "r-1",
            "identity": {"sourceIp": "203.0.113.9", "apiKey": api_key, "apiKeyId": api_key_id},
        },
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class Outbound:
    """The outbound queue the whatsapp rule feeds, read the way the Lambda event source mapping does."""

    cloud: Cloud
    url: str
    arn: str

    def receive(self, wait: int = 0) -> list[dict[str, Any]]:
        answer = self.cloud.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait,
        )
        return list(answer.get("Messages", []))

    def lambda_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [sqs_record(m, self.arn, REGION) for m in messages]}

    def delete(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.cloud.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def outbound(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> Outbound:
    monkeypatch.setenv("API_CLIENTS", json.dumps(API_CLIENTS))
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name=OPENAI_SECRET, SecretString=json.dumps({"api_key": OPENAI_KEY}))
    put_project(cloud, outbound_project())
    url = cloud.sqs.create_queue(QueueName="q-whatsapp-outbound", Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]
    arn = cloud.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    cloud.events.put_rule(
        Name="r-whatsapp-outbound", EventBusName=BUS, EventPattern=json.dumps(OUTBOUND_PATTERN)
    )
    cloud.events.put_targets(Rule="r-whatsapp-outbound", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return Outbound(cloud=cloud, url=url, arn=arn)


@pytest.fixture
def initiate(outbound: Outbound) -> Any:
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    import lambdas.initiate_conversation.handler as module

    return importlib.reload(module)


def call_initiate(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = module.lambda_handler(event, FakeContext())
    return int(answer["statusCode"]), json.loads(answer["body"])


@pytest.fixture
def fakes() -> Iterator[tuple[OpenAIFake, TwilioFake]]:
    with (
        OpenAIFake(port=0) as openai_fake,
        TwilioFake(port=0, accounts={ACCOUNT_SID: AUTH_TOKEN}) as twilio_fake,
    ):
        yield openai_fake, twilio_fake


@pytest.fixture
def sender(outbound: Outbound, fakes: tuple[OpenAIFake, TwilioFake], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The channel sender's handler module against the fakes, with short timeouts and heartbeats."""
    return reload_sender(outbound, fakes, monkeypatch)


def reload_sender(
    outbound: Outbound, fakes: tuple[OpenAIFake, TwilioFake], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The handler module as a new container loads it, with the environment as it is now."""
    from aws_lambda_powertools.utilities import parameters

    openai_fake, twilio_fake = fakes
    monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.url + "/v1")
    monkeypatch.setenv("TWILIO_API_BASE_URL", twilio_fake.url)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setenv("OPENAI_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("CLAIM_WAIT_SECONDS", "5")
    parameters.clear_caches()
    aws_clients.clear()
    import lambdas.channel_sender.handler as module

    return importlib.reload(module)
