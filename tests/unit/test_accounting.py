"""The call counter's fault injection, driven by boto3 against moto's ThreadedMotoServer.

Each client is configured like the Lambdas' own (ai_comms.providers.aws_clients: standard retries,
``max_attempts=3``), so the tests pin down what the e2e fault suite relies on: the error codes
botocore parses per protocol, which faults its retries absorb, and that a delay beyond the read
timeout is a timeout. Note botocore's ``Config(retries={"max_attempts": 3})`` means 3 *retries*
(``total_max_attempts`` is the other spelling): 4 attempts in all, so 4 faults exhaust one call.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from local_cloud.accounting import CallCounter

REGION = "eu-west-1"
LAMBDA_LIKE = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
SDK_ATTEMPTS = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def proxy(moto_url: str) -> Iterator[CallCounter]:
    counter = CallCounter(moto_url).start()
    yield counter
    counter.stop()


def client(proxy: CallCounter, service: str, config: Config = LAMBDA_LIKE) -> Any:
    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=proxy.url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


@pytest.fixture
def table(proxy: CallCounter) -> str:
    name = f"t-{time.monotonic_ns()}"
    client(proxy, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def put(proxy: CallCounter, table: str, key: str) -> None:
    client(proxy, "dynamodb").put_item(TableName=table, Item={"pk": {"S": key}})


def stored(proxy: CallCounter, table: str, key: str) -> bool:
    return "Item" in client(proxy, "dynamodb").get_item(TableName=table, Key={"pk": {"S": key}})


def test_counts_calls_per_operation(proxy: CallCounter, table: str) -> None:
    put(proxy, table, "a")
    assert stored(proxy, table, "a")
    calls = proxy.snapshot()
    assert calls["dynamodb.CreateTable"] == 1
    assert calls["dynamodb.PutItem"] == 1 and calls["dynamodb.GetItem"] == 1


def test_a_500_on_every_attempt_exhausts_the_retries_and_nothing_reaches_the_emulator(
    proxy: CallCounter, table: str
) -> None:
    proxy.inject("dynamodb.PutItem", status=500, count=SDK_ATTEMPTS)
    with pytest.raises(ClientError) as raised:
        put(proxy, table, "lost")
    error = raised.value.response
    assert error["Error"]["Code"] == "InternalServerError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["ResponseMetadata"]["RetryAttempts"] == SDK_ATTEMPTS - 1
    assert proxy.faulted["dynamodb.PutItem"] == SDK_ATTEMPTS and proxy.pending_faults() == 0
    assert not stored(proxy, table, "lost")


def test_500s_short_of_every_attempt_are_absorbed_by_the_sdk_retries(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.PutItem", status=500, count=SDK_ATTEMPTS - 1)
    put(proxy, table, "kept")
    assert stored(proxy, table, "kept")
    assert proxy.snapshot()["dynamodb.PutItem"] == SDK_ATTEMPTS


def test_a_non_retryable_code_fails_at_once(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.UpdateItem", error_code="ConditionalCheckFailedException", count=3)
    with pytest.raises(ClientError) as raised:
        client(proxy, "dynamodb").update_item(
            TableName=table,
            Key={"pk": {"S": "x"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "1"}},
        )
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert proxy.pending_faults() == 2, "a 400 that is not throttling is not retried"
    proxy.clear_faults()
    assert proxy.pending_faults() == 0


def test_throttling_is_retried_like_a_5xx(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.PutItem", error_code="ProvisionedThroughputExceededException", count=2)
    put(proxy, table, "after-throttling")
    assert stored(proxy, table, "after-throttling")
    assert proxy.faulted["dynamodb.PutItem"] == 2


def test_after_skips_calls_and_match_narrows_them(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.PutItem", error_code="ValidationException", after=1, match="target")
    put(proxy, table, "other")  # does not match: neither skipped nor failed
    put(proxy, table, "target-1")  # matches: skipped by `after`
    with pytest.raises(ClientError):
        put(proxy, table, "target-2")
    put(proxy, table, "target-3")
    assert [stored(proxy, table, k) for k in ("other", "target-1", "target-2", "target-3")] == [
        True,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("service", "operation", "code", "call"),
    [
        (
            "events",
            "events.PutEvents",
            "InternalException",
            lambda c: c.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
        ),
        (
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            "ResourceNotFoundException",
            lambda c: c.get_secret_value(SecretId="nope/secret"),
        ),
        (
            "sqs",
            "sqs.GetQueueUrl",
            "AWS.SimpleQueueService.NonExistentQueue",
            lambda c: c.get_queue_url(QueueName="q"),
        ),
        (
            "sns",
            "sns.Publish",
            "AuthorizationError",
            lambda c: c.publish(TopicArn="arn:aws:sns:x", Message="m"),
        ),
    ],
    ids=["eventbridge-json-1.1", "secretsmanager-json-1.1", "sqs-json-1.0-query-compatible", "sns-query-xml"],
)
def test_each_protocol_gets_an_error_botocore_parses(
    proxy: CallCounter, service: str, operation: str, code: str, call: Any
) -> None:
    proxy.inject(operation, status=400, error_code=code)
    with pytest.raises(ClientError) as raised:
        call(client(proxy, service))
    assert raised.value.response["Error"]["Code"] == code
    assert "injected fault" in raised.value.response["Error"]["Message"]
    assert proxy.faulted[operation] == 1


def test_sqs_keeps_the_query_compatible_code_of_a_modeled_error(proxy: CallCounter) -> None:
    sqs = client(proxy, "sqs")
    proxy.inject("sqs.GetQueueUrl", status=400, error_code="QueueDoesNotExist")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="nowhere")


def test_a_delay_beyond_the_read_timeout_is_a_timeout_and_the_call_still_lands(
    proxy: CallCounter, table: str
) -> None:
    impatient = Config(
        connect_timeout=2, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1}
    )
    proxy.inject("dynamodb.PutItem", delay_seconds=2)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        client(proxy, "dynamodb", impatient).put_item(TableName=table, Item={"pk": {"S": "late"}})
    assert time.monotonic() - started < 2
    # Forwarded after the delay: the write the client gave up on is applied anyway (partial failure).
    deadline = time.monotonic() + 5
    while not stored(proxy, table, "late"):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_deliver_first_applies_the_write_and_the_retry_meets_it(proxy: CallCounter, table: str) -> None:
    impatient = Config(
        connect_timeout=2, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2}
    )
    proxy.inject("dynamodb.PutItem", delay_seconds=2, deliver_first=True)
    with pytest.raises(ClientError) as raised:
        client(proxy, "dynamodb", impatient).put_item(
            TableName=table,
            Item={"pk": {"S": "once"}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    # The first attempt landed; its retry finds the item: what a conditional write sees after a timeout.
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert stored(proxy, table, "once")


def test_a_delay_with_a_status_sleeps_then_fails(proxy: CallCounter, table: str) -> None:
    once = Config(retries={"mode": "standard", "total_max_attempts": 1})
    proxy.inject("dynamodb.GetItem", status=503, delay_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(ClientError) as raised:
        client(proxy, "dynamodb", once).get_item(TableName=table, Key={"pk": {"S": "x"}})
    assert time.monotonic() - started >= 0.5
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_injection_is_thread_safe(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.PutItem", error_code="ValidationException", count=10)
    dynamodb = client(proxy, "dynamodb")
    failures: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(5):
            try:
                dynamodb.put_item(TableName=table, Item={"pk": {"S": f"{n}-{i}"}})
            except ClientError as error:
                with lock:
                    failures.append(error.response["Error"]["Code"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == ["ValidationException"] * 10
    assert proxy.snapshot()["dynamodb.PutItem"] == 40


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"status": 200},
        {"status": 500, "count": 0},
        {"status": 500, "after": -1},
        {"status": 500, "delay_seconds": 1, "deliver_first": True},
    ],
    ids=["nothing", "not-an-error", "no-count", "negative-after", "deliver-first-with-error"],
)
def test_invalid_faults_are_refused(proxy: CallCounter, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        proxy.inject("dynamodb.PutItem", **kwargs)
    with pytest.raises(ValueError):
        proxy.inject("PutItem", status=500)


def test_json_error_body_shape(proxy: CallCounter, table: str) -> None:
    proxy.inject("dynamodb.GetItem", error_code="ResourceNotFoundException")
    dynamodb = client(proxy, "dynamodb")
    raw: dict[str, Any] = {}

    def keep(http_response: Any, **_: Any) -> None:
        raw["headers"] = dict(http_response.headers)
        raw["body"] = json.loads(http_response.content)

    dynamodb.meta.events.register("after-call.dynamodb.GetItem", keep)
    with pytest.raises(ClientError):
        dynamodb.get_item(TableName=table, Key={"pk": {"S": "x"}})
    assert raw["body"] == {
        "__type": "ResourceNotFoundException",
        "message": "injected fault (dynamodb.GetItem)",
    }
    assert raw["headers"]["x-amzn-ErrorType"] == "ResourceNotFoundException"
