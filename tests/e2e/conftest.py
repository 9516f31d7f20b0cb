"""The e2e fixture: one local cloud for the whole session, driven over real HTTP.

`stack` starts, once per session:
  - the fake OpenAI and fake Twilio servers (in-process threads, free ports; the real SDKs in the
    Lambdas reach them through the `openai_base_url` / `twilio_api_base_url` Terraform variables);
  - the emulator on a free port (moto, or LocalStack with EMULATOR=localstack; DynamoDB Local under
    both), `terraform apply` of the real root module into two workspaces side by side (MAIN
    "e2e<id>": whatsapp + an extra `sms` channel from tfvars; SIDE "e2e<id>b": defaults, with every
    request body base64-encoded by the API as with binaryMediaTypes ["*/*"]);
  - the local runner (functions from build/*.zip + layer, SQS pollers, the API front).

With EMULATOR=localstack-docker a LocalStack in Docker runs the functions itself: no runner, the
fakes listen on AI_COMMS_FAKES_HOST (an address Lambda containers reach), and every test that reads
the runner's records (call counters, consumed events, invocations) skips at that point
(`stack.runner`).

Tests share the stack, so each one seeds its own tenant with fresh numbers (`stack.tenant()`), which
keeps them independent. Every wait is bounded: `stack.wait_for(...)` polls until a deadline.

Useful members (see `Stack`): outputs(ws), api_url(ws), client(service), tenant(...),
conversation(...), post_webhook(...), queue_events(ws, key), wait_for(fn, timeout), openai, twilio,
cloud (LocalCloud: .runner.invoke/.runner.stats/.endpoint_url/.dynamodb_endpoint_url;
.runner.call_counters[function name] is the proxy between that function and the emulator and
DynamoDB: its AWS calls by operation).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest

from ai_comms.models.consent import Consent
from ai_comms.models.message import Message
from ai_comms.providers.twilio_signature import sign
from ai_comms.store.consent import ConsentRepository
from ai_comms.store.messages import MessageRepository
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake
from local_cloud.cloud import LocalCloud
from local_cloud.runner import Runner
from local_cloud.seeding import DEFAULT_PREFIXES, SeededTenant, open_conversation, seed_tenant
from local_cloud.terraform import Workspace

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
# Workspace names are unique per session: state of concurrent runs on one checkout never collides.
SESSION = os.environ.get("AI_COMMS_E2E_ID") or uuid.uuid4().hex[:4]
MAIN = f"e2e{SESSION}"
SIDE = f"e2e{SESSION}b"
# Debounce windows short enough for a quick suite, long enough for a 2-second burst.
E2E_CHANNELS = (
    '{whatsapp={debounce_seconds=4,address_prefix="whatsapp:"},sms={debounce_seconds=2,address_prefix=""}}'
)


_ISSUED_TELS: set[str] = set()


def random_tel() -> str:
    """A number no other test of the session has: the fake Twilio's messages are shared, and a
    reused number would count another test's messages as this one's."""
    while True:
        tel = "+4477009" + "".join(random.choice("0123456789") for _ in range(5))
        if tel not in _ISSUED_TELS:
            _ISSUED_TELS.add(tel)
            return tel


class Stack:
    def __init__(self, cloud: LocalCloud, openai: OpenAIFake, twilio: TwilioFake) -> None:
        self.cloud = cloud
        self.openai = openai
        self.twilio = twilio
        self._clients: dict[str, Any] = {}
        self._leftovers: dict[tuple[str, str], list[dict[str, Any]]] = {}

    @property
    def runner(self) -> Runner:
        """The local runner, whose records some tests read; they skip where the emulator runs the
        functions itself (EMULATOR=localstack-docker), which keeps no such records."""
        if self.cloud.runner is None:
            pytest.skip(f"needs the local runner's records; {self.cloud.emulator_kind} runs the functions")
        return self.cloud.runner

    def outputs(self, workspace: str = MAIN) -> dict[str, Any]:
        return self.cloud.outputs[workspace]

    def api_url(self, workspace: str = MAIN) -> str:
        return self.cloud.api_base_url(workspace)

    def client(self, service: str) -> Any:
        """A client of the local cloud (DynamoDB's at the DynamoDB endpoint), one per service."""
        if service not in self._clients:
            self._clients[service] = self.cloud.client(service)
        return self._clients[service]

    def tenant(
        self, workspace: str = MAIN, channels: tuple[str, ...] = ("whatsapp",), **kwargs: Any
    ) -> SeededTenant:
        numbers = {channel: random_tel().replace("+44770", "+1415", 1) for channel in channels}
        tenant = seed_tenant(
            self.client,
            self.outputs(workspace),
            company_id=kwargs.pop("company_id", "co-" + uuid.uuid4().hex[:10]),
            company_numbers=numbers,
            **kwargs,
        )
        self.twilio.add_account(tenant.account_sid, tenant.auth_token)  # the fake accepts only known accounts
        return tenant

    def conversation(
        self, tenant: SeededTenant, customer_tel: str | None = None, workspace: str = MAIN, **fields: Any
    ) -> Any:
        return open_conversation(
            self.client, self.outputs(workspace), tenant, customer_tel or random_tel(), **fields
        )

    def webhook_form(
        self,
        tenant: SeededTenant,
        customer_tel: str,
        body: str = "Hello",
        channel: str = "whatsapp",
        **extra: str,
    ) -> dict[str, str]:
        prefix = DEFAULT_PREFIXES.get(channel, "")
        form = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": tenant.account_sid,
            "From": prefix + customer_tel,
            "To": prefix + tenant.company_numbers[channel],
            "Body": body,
            "NumMedia": "0",
        }
        form.update(extra)
        return form

    def post_webhook(
        self,
        form: dict[str, str],
        tenant: SeededTenant | None,
        channel: str = "whatsapp",
        workspace: str = MAIN,
        signature: str | None = None,
    ) -> tuple[int, str]:
        url = f"{self.api_url(workspace)}/{channel}"
        # Twilio saw the customer write: the WhatsApp 24-hour window for free-form replies is open.
        self.twilio.customer_wrote(form.get("From", ""), form.get("To", ""))
        if signature is None:
            assert tenant is not None
            signature = sign(tenant.auth_token, url, form)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature:
            headers["X-Twilio-Signature"] = signature
        return self.http("POST", url, urlencode(form).encode(), headers)

    @staticmethod
    def http(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def queue_url(self, key: str, workspace: str = MAIN) -> str:
        return str(self.outputs(workspace)["queues"][key])

    def queue_events(self, key: str, workspace: str = MAIN, wait_seconds: float = 0) -> list[dict[str, Any]]:
        """Consume every event waiting in an output queue (for queues no function reads)."""
        url = self.queue_url(key, workspace)
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_seconds
        while True:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = answer.get("Messages", [])
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if not messages and time.monotonic() >= deadline:
                return found
            if not messages:
                time.sleep(0.2)

    def queue_arn(self, key: str, workspace: str = MAIN) -> str:
        answer = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url(key, workspace), AttributeNames=["QueueArn"]
        )
        return str(answer["Attributes"]["QueueArn"])

    def consumed_events(self, key: str, workspace: str = MAIN) -> list[dict[str, Any]]:
        """EventBridge events that a function received from this queue (through its SQS mapping)."""
        arn = self.queue_arn(key, workspace)
        found: list[dict[str, Any]] = []
        for event, _ in list(self.runner.history):
            for record in (event or {}).get("Records", []) if isinstance(event, dict) else []:
                if record.get("eventSourceARN") == arn:
                    found.append(json.loads(record["body"]))
        return found

    def has_consumer(self, key: str, workspace: str = MAIN) -> bool:
        arn = self.queue_arn(key, workspace)
        runner = self.cloud.runner
        if runner is None:  # the emulator polls its own mappings
            mappings = self.client("lambda").list_event_source_mappings(EventSourceArn=arn)
            return bool(mappings["EventSourceMappings"])
        assert runner.topology is not None
        return any(mapping.source_arn == arn for mapping in runner.topology.mappings)

    def routed(self, key: str, message_sid: str, workspace: str = MAIN) -> list[dict[str, Any]]:
        """The events for one message that reached a queue, whether a function consumed them or not."""
        # Never drain a queue a function consumes: the probe would steal the function's messages.
        if not self.has_consumer(key, workspace):
            pending = self.queue_events(key, workspace)
            self._leftovers.setdefault((workspace, key), []).extend(pending)
        seen = self.consumed_events(key, workspace) + self._leftovers.get((workspace, key), [])
        return [e for e in seen if e.get("detail", {}).get("message_sid") == message_sid]

    def history(self, conversation_id: str, workspace: str = MAIN) -> list[Message]:
        """A conversation's message items in order."""
        table = self.outputs(workspace)["tables"]["messages"]
        return list(MessageRepository(self.client("dynamodb"), table).all_of(conversation_id))

    def consent(self, tenant: SeededTenant, tel: str, channel: str = "whatsapp") -> Consent | None:
        """The customer's consent with the tenant's number (every conversation of theirs shares it)."""
        repository = ConsentRepository(self.client("dynamodb"), self.outputs()["tables"]["consent"])
        return repository.get(tenant.address(channel), DEFAULT_PREFIXES.get(channel, "") + tel)

    def ops(
        self, *args: str, stdin: str | None = None, workspace: str = MAIN
    ) -> subprocess.CompletedProcess[str]:
        """``python -m ops`` as an operator runs it, with the emulator's endpoints and test credentials."""
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.cloud.region,
            "AWS_REGION": self.cloud.region,
        }
        env.pop("AWS_ENDPOINT_URL", None)
        command = [
            sys.executable,
            "-m",
            "ops",
            "--workspace",
            workspace,
            "--endpoint-url",
            self.cloud.endpoint_url,
            "--dynamodb-endpoint-url",
            self.cloud.dynamodb_endpoint_url,
            *args,
        ]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, input=stdin, timeout=300, check=False, cwd=REPO
        )

    def settle(self, seconds: float) -> None:
        """Wait until nothing more can happen, or ``seconds``, whichever comes first: before a test
        asserts that no second reply, message or event came. Nothing more can happen once the runner
        has settled (``Runner.settled``: no invocation in flight, no stream record unread or held,
        no message waiting, delayed or in flight in a queue a function consumes) and the fake Twilio
        has no status callback to come, both seen twice in a row; a late duplicate would have to
        come from work one of those shows. Without a runner (EMULATOR=localstack-docker), ``seconds``.
        """
        deadline = time.monotonic() + seconds
        if self.cloud.runner is None:
            time.sleep(seconds)
            return
        quiet = 0
        while quiet < 2 and time.monotonic() < deadline:
            settled = self.twilio.lifecycle.pending() == 0 and self.cloud.runner.settled(
                timeout=max(deadline - time.monotonic(), 0.1)
            )
            quiet = quiet + 1 if settled else 0
            time.sleep(0.1)

    @staticmethod
    def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(interval)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("AWS_ENDPOINT_URL"):
        pytest.fail("AWS_ENDPOINT_URL is set: the e2e suite starts its own emulator")
    # Lambda containers (EMULATOR=localstack-docker) cannot reach this host's loopback.
    fakes_host = os.environ.get("AI_COMMS_FAKES_HOST") or "127.0.0.1"
    openai = OpenAIFake(port=0, host=fakes_host)
    twilio = TwilioFake(port=0, host=fakes_host)
    openai.start()
    twilio.start()
    fakes = (("openai_base_url", openai.url + "/v1"), ("twilio_api_base_url", twilio.url))
    workspaces = [
        # Short retry backoff: the fault suite waits for SQS retries and DLQ moves.
        Workspace(
            MAIN,
            "local.tfvars",
            (
                ("channels", E2E_CHANNELS),
                ("reply_retry_base_seconds", "2"),
                ("tenant_pause_seconds", "5"),
                *fakes,
            ),
        ),
        Workspace(SIDE, "local.tfvars", (("api_binary_media_types", '["*/*"]'), *fakes)),
    ]
    # AI_COMMS_BUILD_DIR: test a snapshot of build/ while the working tree keeps changing.
    build_dir = Path(os.environ["AI_COMMS_BUILD_DIR"]) if os.environ.get("AI_COMMS_BUILD_DIR") else None
    cloud = LocalCloud(build_dir=build_dir, work_dir=tmp_path_factory.mktemp("local-cloud"))
    try:
        # Each function reaches the emulator through its own call counter (counts, fault injection).
        cloud.start(emulator_port=0, api_port=0, workspaces=workspaces, count_calls=True)
        yield Stack(cloud, openai, twilio)
    finally:
        cloud.stop()
        openai.stop()
        twilio.stop()
