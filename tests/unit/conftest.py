"""In-process AWS (moto's mock_aws) with the tables, bus routing and a tenant the webhook needs."""

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from ai_comms.models.message import Message
from ai_comms.models.tenant import AiSettings, ChannelSettings, ProjectConfig
from ai_comms.providers import aws_clients
from ai_comms.providers.secrets import forget_forced_reads
from ai_comms.store.messages import MessageRepository
from ai_comms.store.tenants import TenantRepository

from .outbox_pump import OutboxPump

REGION = "eu-west-1"
COMPANY_NUMBER = "+14155550100"
CUSTOMER_NUMBER = "+447700900123"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "unit-auth-token"
TABLES = {
    "company": "t-company-data",
    "conversations": "t-conversations",
    "idempotency": "t-idempotency",
    "messages": "t-messages",
    "consent": "t-consent",
}
BUS = "t-bus"


@dataclass
class Cloud:
    dynamodb: Any
    sqs: Any
    events: Any
    queues: dict[str, str]
    outbox: OutboxPump | None = None

    def drain(self, name: str) -> list[dict[str, Any]]:
        """Every event waiting in a queue, as EventBridge delivered it (after the outbox relay ran)."""
        if self.outbox is not None:
            self.outbox.pump()
        found: list[dict[str, Any]] = []
        for _ in range(5):
            answer = self.sqs.receive_message(QueueUrl=self.queues[name], MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                break
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queues[name], ReceiptHandle=message["ReceiptHandle"])
        return found


def create_tables(dynamodb: Any, names: dict[str, str] = TABLES) -> None:
    """The tables with the keys and indexes Terraform declares (modules/tables)."""
    dynamodb.create_table(
        TableName=names["company"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "company_id", "KeyType": "HASH"},
            {"AttributeName": "project_id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "company_id", "AttributeType": "S"},
            {"AttributeName": "project_id", "AttributeType": "S"},
        ],
    )
    dynamodb.create_table(
        TableName=names["conversations"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "recipient_tel", "KeyType": "HASH"},
            {"AttributeName": "conversation_id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "recipient_tel", "AttributeType": "S"},
            {"AttributeName": "conversation_id", "AttributeType": "S"},
            {"AttributeName": "channel_created_at", "AttributeType": "S"},
            {"AttributeName": "tenant_status", "AttributeType": "S"},
            {"AttributeName": "last_activity_at", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-tenant-status",
                "KeySchema": [
                    {"AttributeName": "tenant_status", "KeyType": "HASH"},
                    {"AttributeName": "last_activity_at", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["channel", "customer_address", "handoff_reason"],
                },
            },
            {
                "IndexName": "by-conversation-id",
                "KeySchema": [{"AttributeName": "conversation_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-company-address",
                "KeySchema": [
                    {"AttributeName": "recipient_tel", "KeyType": "HASH"},
                    {"AttributeName": "channel_created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.create_table(
        TableName=names["messages"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "conversation_id", "KeyType": "HASH"},
            {"AttributeName": "position", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "conversation_id", "AttributeType": "S"},
            {"AttributeName": "position", "AttributeType": "S"},
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.create_table(
        TableName=names["consent"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "company_address", "KeyType": "HASH"},
            {"AttributeName": "customer_address", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "company_address", "AttributeType": "S"},
            {"AttributeName": "customer_address", "AttributeType": "S"},
        ],
    )
    dynamodb.create_table(
        TableName=names["idempotency"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )


def _routing(events: Any, sqs: Any) -> dict[str, str]:
    events.create_event_bus(Name=BUS)
    queues: dict[str, str] = {}
    for route in ("ai_reply", "handoff", "unmatched"):
        url = sqs.create_queue(QueueName=f"q-{route}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=f"r-{route}", EventBusName=BUS, EventPattern=json.dumps({"detail": {"route": [route]}})
        )
        events.put_targets(Rule=f"r-{route}", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
        queues[route] = url
    # Terraform's "<channel>-consent" rule: a consent change outside the AI route is the reply
    # processor's too (its confirmation goes out whoever has the conversation).
    consent = {"route": [{"anything-but": ["ai_reply"]}], "consent_change": ["opt_out", "opt_in"]}
    events.put_rule(Name="r-consent", EventBusName=BUS, EventPattern=json.dumps({"detail": consent}))
    arn = sqs.get_queue_attributes(QueueUrl=queues["ai_reply"], AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_targets(Rule="r-consent", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return queues


def history(cloud: Cloud, conversation_id: str) -> list[Message]:
    """A conversation's message items in order."""
    return list(MessageRepository(cloud.dynamodb, TABLES["messages"]).all_of(conversation_id))


def demo_project(**overrides: Any) -> ProjectConfig:
    data: dict[str, Any] = {
        "company_id": "acme",
        "project_id": "support",
        "allowed_channels": ["whatsapp"],
        "channels": {
            "whatsapp": ChannelSettings(
                address="whatsapp:" + COMPANY_NUMBER, twilio_secret_ref="t/tenants/acme/twilio"
            )
        },
        "ai": AiSettings(instructions="Be brief.", openai_secret_ref="t/tenants/acme/openai"),
    }
    data.update(overrides)
    return ProjectConfig(**data)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "COMPANY_TABLE": TABLES["company"],
        "CONVERSATIONS_TABLE": TABLES["conversations"],
        "IDEMPOTENCY_TABLE": TABLES["idempotency"],
        "MESSAGES_TABLE": TABLES["messages"],
        "CONSENT_TABLE": TABLES["consent"],
        "EVENT_BUS_NAME": BUS,
        "CHANNELS": json.dumps({"whatsapp": {"address_prefix": "whatsapp:"}, "sms": {"address_prefix": ""}}),
        "POWERTOOLS_METRICS_NAMESPACE": "AiCommsTest",
        "POWERTOOLS_SERVICE_NAME": "unit",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with mock_aws():
        aws_clients.clear()
        forget_forced_reads()
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        create_tables(dynamodb)
        queues = _routing(events, sqs)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(
            Name="t/tenants/acme/twilio",
            SecretString=json.dumps({"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}),
        )
        TenantRepository(dynamodb, TABLES["company"]).put_project(demo_project(), "2026-01-01T00:00:00Z")
        # botocore addresses DynamoDB Streams by the account in the stream ARN, a host moto does not serve.
        streams = boto3.client(
            "dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
        )
        outbox = OutboxPump(dynamodb, streams, TABLES["messages"])
        yield Cloud(dynamodb=dynamodb, sqs=sqs, events=events, queues=queues, outbox=outbox)
        aws_clients.clear()


@pytest.fixture
def webhook(cloud: Cloud) -> Any:
    """The handler module, imported inside the mocked account as a fresh container would."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    import lambdas.twilio_webhook.handler as module

    return importlib.reload(module)
