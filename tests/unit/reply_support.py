"""Shared pieces of the reply processor tests: fakes on port 0, the handler in the mocked account, a poller.

Customer messages go through the real webhook handler, so the conversation record and the queued
EventBridge events are exactly what production produces; `Replies.deliver` then plays the SQS event
source mapping (real record shape, ReportBatchItemFailures) for the reply processor.
"""

import importlib
import importlib.util
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from ai_comms.clock import iso, utc_now
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.models.tenant import AiSettings
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.tenants import TenantRepository
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake
from local_cloud.sqs_poller import sqs_record

from .apigw import twilio_form, webhook_event
from .conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    BUS,
    COMPANY_NUMBER,
    CUSTOMER_NUMBER,
    REGION,
    TABLES,
    Cloud,
    demo_project,
    history,
)
from .lambda_context import FakeContext

OPENAI_SECRET = "t/tenants/acme/openai"
OPENAI_KEY = "sk-unit-openai-key"
# Short SDK backoff for injected 5xx faults: the SDK honours retry-after-ms.
FAST_RETRY = {"retry-after-ms": "10"}


@dataclass
class Replies:
    cloud: Cloud
    webhook: Any
    handler: Any
    openai: OpenAIFake
    twilio: TwilioFake
    conversation: Conversation
    queue_arn: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    failed_receipts: list[str] = field(default_factory=list)

    @property
    def queue_url(self) -> str:
        return self.cloud.queues["ai_reply"]

    def customer_says(self, *bodies: str) -> list[str]:
        sids = []
        for body in bodies:
            form = twilio_form(Body=body)
            answer = self.webhook.lambda_handler(webhook_event(form), FakeContext())
            assert answer["statusCode"] == 200, answer
            sids.append(form["MessageSid"])
        return sids

    def customer_says_form(self, **fields: str) -> str:
        """One message with any webhook fields (media, location, buttons, referral)."""
        form = twilio_form(**fields)
        answer = self.webhook.lambda_handler(webhook_event(form), FakeContext())
        assert answer["statusCode"] == 200, answer
        return form["MessageSid"]

    def receive(self, visibility: int = 30) -> list[dict[str, Any]]:
        if self.cloud.outbox is not None:
            self.cloud.outbox.pump()  # the recorded messages' events onto the bus
        messages: list[dict[str, Any]] = []
        for _ in range(5):
            answer = self.cloud.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                break
            messages.extend(batch)
        return messages

    def invoke(
        self, messages: list[dict[str, Any]], request_id: str = "req-1", handler: Any = None
    ) -> dict[str, Any]:
        event = {"Records": [sqs_record(m, self.queue_arn, REGION) for m in messages]}
        result: dict[str, Any] = (handler or self.handler).lambda_handler(
            event, FakeContext(aws_request_id=request_id)
        )
        self.results.append(result)
        return result

    def deliver(self, one_by_one: bool = False, delete: bool = True) -> list[str]:
        """Receive what is queued, invoke the processor, delete what succeeded; the failed message ids."""
        messages = self.receive()
        batches = [[m] for m in messages] if one_by_one else ([messages] if messages else [])
        failed: list[str] = []
        for index, batch in enumerate(batches):
            result = self.invoke(batch, request_id=f"req-{index}")
            failures = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            failed.extend(failures)
            self.failed_receipts += [m["ReceiptHandle"] for m in batch if m["MessageId"] in failures]
            for message in batch:
                if delete and message["MessageId"] not in failures:
                    self.cloud.sqs.delete_message(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
        return failed

    def other_container(self) -> Any:
        """A second copy of the handler module: what a concurrent Lambda execution environment runs."""
        spec = importlib.util.spec_from_file_location("reply_processor_other", self.handler.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def make_visible(self) -> None:
        """The failed messages visible again at once, as when their visibility timeout ends."""
        for receipt in self.failed_receipts:
            self.cloud.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        self.failed_receipts.clear()

    def stored(self) -> Conversation:
        found = ConversationRepository(self.cloud.dynamodb, TABLES["conversations"]).get(
            CUSTOMER_NUMBER, self.conversation.conversation_id
        )
        assert found is not None
        return found

    def history(self) -> list[Message]:
        return history(self.cloud, self.conversation.conversation_id)

    def update_conversation(self, expression: str, values: dict[str, Any]) -> None:
        self.cloud.dynamodb.update_item(
            TableName=TABLES["conversations"],
            Key=ConversationRepository.key(CUSTOMER_NUMBER, self.conversation.conversation_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": {"#s": "status"}} if "#s" in expression else {}),
        )

    def raw_item(self) -> dict[str, Any]:
        item: dict[str, Any] = self.cloud.dynamodb.get_item(
            TableName=TABLES["conversations"],
            Key=ConversationRepository.key(CUSTOMER_NUMBER, self.conversation.conversation_id),
        )["Item"]
        return item

    def ai_calls(self) -> list[dict[str, Any]]:
        return [r for r in self.openai.requests.snapshot() if r["path"] == "/v1/responses"]

    def sent(self) -> list[dict[str, Any]]:
        return self.twilio.messages()

    def queued(self, name: str) -> list[dict[str, Any]]:
        return self.cloud.drain(name)


def allow_long_replies(cloud: Cloud, max_output_tokens: int = 2000) -> None:
    """A token cap that fits a reply of several thousand characters: the model (and the fake, at about
    four characters a token) never writes more than max_output_tokens."""
    ai = AiSettings(
        instructions="Be brief.", openai_secret_ref=OPENAI_SECRET, max_output_tokens=max_output_tokens
    )
    TenantRepository(cloud.dynamodb, TABLES["company"]).put_project(
        demo_project(ai=ai), "2026-01-01T00:00:00Z"
    )


def open_conversation(cloud: Cloud, **fields: Any) -> Conversation:
    now = iso(utc_now())
    conversation = Conversation(
        recipient_tel=CUSTOMER_NUMBER,
        conversation_id="c-" + now,
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        company_address="whatsapp:" + COMPANY_NUMBER,
        customer_address="whatsapp:" + CUSTOMER_NUMBER,
        created_at=now,
        updated_at=now,
        **fields,
    )
    assert ConversationRepository(cloud.dynamodb, TABLES["conversations"]).put_new(conversation)
    return conversation


def extra_queue(cloud: Cloud, name: str, pattern: dict[str, Any]) -> None:
    """Route events matching `pattern` to a new queue `cloud.queues[name]`."""
    url = cloud.sqs.create_queue(QueueName=f"q-{name}")["QueueUrl"]
    arn = cloud.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    cloud.events.put_rule(Name=f"r-{name}", EventBusName=BUS, EventPattern=json.dumps(pattern))
    cloud.events.put_targets(Rule=f"r-{name}", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    cloud.queues[name] = url


@pytest.fixture
def fakes() -> Iterator[tuple[OpenAIFake, TwilioFake]]:
    openai = OpenAIFake(port=0).start()
    twilio = TwilioFake(port=0, accounts={ACCOUNT_SID: AUTH_TOKEN}).start()
    try:
        yield openai, twilio
    finally:
        openai.stop()
        twilio.stop()


@pytest.fixture
def replies(
    cloud: Cloud, webhook: Any, fakes: tuple[OpenAIFake, TwilioFake], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Replies]:
    openai, twilio = fakes
    monkeypatch.setenv("OPENAI_BASE_URL", openai.url + "/v1")
    monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.url)
    monkeypatch.setenv("OPENAI_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("HEARTBEAT_INTERVAL_SECONDS", "0.2")
    monkeypatch.setenv("VISIBILITY_EXTEND_SECONDS", "30")
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="t-handoff-notices")["TopicArn"]
    notices_url = cloud.sqs.create_queue(QueueName="q-notices")["QueueUrl"]
    notices_arn = cloud.sqs.get_queue_attributes(QueueUrl=notices_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=notices_arn)
    cloud.queues["notices"] = notices_url
    monkeypatch.setenv("HANDOFF_TOPIC_ARN", topic_arn)
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=OPENAI_SECRET, SecretString=json.dumps({"api_key": OPENAI_KEY})
    )
    import lambdas.reply_processor.handler as module

    handler = importlib.reload(module)
    conversation = open_conversation(cloud)
    queue_arn = cloud.sqs.get_queue_attributes(
        QueueUrl=cloud.queues["ai_reply"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    yield Replies(cloud, webhook, handler, openai, twilio, conversation, queue_arn)


def run_in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
