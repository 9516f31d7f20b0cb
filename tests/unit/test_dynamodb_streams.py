"""DynamoDB stream event source mappings as the runner plays them, against a real DynamoDB Local.

The emulator fixture is the local cloud's moto (stream mappings recorded by the patched server, SQS
for on-failure destinations) with DynamoDB Local behind its front. Poller tests drive
DynamoDBStreamPoller with an in-process function that records each event and answers as told; the
last test goes through the runner with a deployed function in its own process.
Java and the DynamoDB Local jar come from `make setup`; without them these tests fail and say so.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from local_cloud.artifacts import write_deterministic_zip, write_manifest
from local_cloud.discovery import DYNAMODB_STREAM, MappingRecord
from local_cloud.dynamodb_stream_poller import DynamoDBStreamPoller
from local_cloud.emulator import MotoEmulator
from local_cloud.event_filter import InvalidPattern, RecordFilter, matches
from local_cloud.processes import free_port
from local_cloud.runner import Runner

from .local_cloud_support import require_dynamodb_local, wait_for

REGION = "eu-west-1"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:000000000000:function:stream-test"
_names = itertools.count()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoEmulator]:
    require_dynamodb_local()
    with MotoEmulator(free_port(), log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


def client(emulator: MotoEmulator, service: str) -> Any:
    return emulator.endpoints.client(service, REGION)


def stream_table(emulator: MotoEmulator, view: str = "NEW_AND_OLD_IMAGES") -> tuple[str, str]:
    """A fresh table with a stream: (name, stream ARN)."""
    name = f"stream-{next(_names)}-{uuid.uuid4().hex[:6]}"
    table = client(emulator, "dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view},
    )["TableDescription"]
    return name, table["LatestStreamArn"]


def put(emulator: MotoEmulator, table: str, key: str, **attributes: Any) -> None:
    item = {"pk": {"S": key}, **attributes}
    client(emulator, "dynamodb").put_item(TableName=table, Item=item)


class FakeFunction:
    """Records every event; ``respond(event)`` gives (result, error) for each invoke."""

    def __init__(self, respond: Callable[[dict[str, Any]], tuple[Any, Any]] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._respond = respond or (lambda event: (None, None))
        self._lock = threading.Lock()

    def __call__(self, function_arn: str, event: dict[str, Any]) -> Any:
        assert function_arn == FUNCTION_ARN
        json.dumps(event)  # what reaches a function is JSON
        with self._lock:
            self.events.append(event)
        result, error = self._respond(event)
        return SimpleNamespace(result=result, error=error, request_id=str(uuid.uuid4()))

    def delivered(self) -> list[str]:
        with self._lock:
            return [r["dynamodb"]["Keys"]["pk"]["S"] for event in self.events for r in event["Records"]]

    def batches(self) -> list[list[str]]:
        with self._lock:
            return [[r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]] for event in self.events]


def mapping(stream_arn: str, **settings: Any) -> MappingRecord:
    values: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "source_arn": stream_arn,
        "function_arn": FUNCTION_ARN,
        "batch_size": 100,
        "report_batch_item_failures": False,
        "enabled": True,
    }
    values.update(settings)
    return MappingRecord(**values)


@pytest.fixture
def poll(emulator: MotoEmulator) -> Iterator[Callable[[MappingRecord, FakeFunction], DynamoDBStreamPoller]]:
    started: list[DynamoDBStreamPoller] = []

    def start(record: MappingRecord, function: FakeFunction) -> DynamoDBStreamPoller:
        poller = DynamoDBStreamPoller(
            record, client(emulator, "dynamodbstreams"), client(emulator, "sqs"), REGION, function
        )
        poller.start()
        started.append(poller)
        return poller

    yield start
    for poller in started:
        poller.stop()
    for poller in started:
        poller.join(5)
        assert not any(thread.is_alive() for thread in poller._threads), "poller did not stop in time"


def queue(emulator: MotoEmulator) -> tuple[str, str]:
    sqs = client(emulator, "sqs")
    url = sqs.create_queue(QueueName=f"on-failure-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def received(emulator: MotoEmulator, url: str) -> list[dict[str, Any]]:
    answer = client(emulator, "sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    messages = answer.get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


# -- the event -------------------------------------------------------------------------------------


def test_records_arrive_in_order_in_the_lambda_event_shape(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    dynamodb = client(emulator, "dynamodb")
    put(emulator, table, "a", n={"N": "7"}, blob={"B": b"\x00\x01\xff"}, tags={"SS": ["x", "y"]})
    put(emulator, table, "b")
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "8"}},
    )
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "b"}})
    function = FakeFunction()
    poll(mapping(stream_arn), function)

    wait_for(lambda: len(function.delivered()) == 4)
    records = [record for event in function.events for record in event["Records"]]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]
    for record in records:
        assert list(record) == [
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        ]
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == REGION and record["eventSourceARN"] == stream_arn
        created = record["dynamodb"]["ApproximateCreationDateTime"]
        assert isinstance(created, int | float) and not isinstance(created, bool)
        assert abs(time.time() - created) < 180  # DynamoDB Local rounds it down to the minute
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4
    insert, _, modify, remove = records
    assert insert["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    assert insert["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\x01\xff").decode()}
    assert insert["dynamodb"]["NewImage"]["n"] == {"N": "7"}
    assert sorted(insert["dynamodb"]["NewImage"]["tags"]["SS"]) == ["x", "y"]
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "7"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "8"}
    assert "NewImage" not in remove["dynamodb"] and remove["dynamodb"]["OldImage"]["pk"] == {"S": "b"}


def test_latest_starts_at_the_tip_and_trim_horizon_at_the_oldest_record(
    emulator: MotoEmulator, poll: Any
) -> None:
    table, stream_arn = stream_table(emulator)
    put(emulator, table, "before")
    latest, oldest = FakeFunction(), FakeFunction()
    poller = poll(mapping(stream_arn, starting_position="LATEST"), latest)
    poll(mapping(stream_arn, starting_position="TRIM_HORIZON"), oldest)
    wait_for(lambda: poller.positioned)
    put(emulator, table, "after")
    wait_for(lambda: latest.delivered() == ["after"] and oldest.delivered() == ["before", "after"])
    time.sleep(0.6)  # a few more polls deliver nothing more
    assert latest.delivered() == ["after"] and oldest.delivered() == ["before", "after"]


# -- filtering -------------------------------------------------------------------------------------


def test_filter_operators_follow_lambda_event_filtering() -> None:
    record = {
        "eventName": "INSERT",
        "dynamodb": {"NewImage": {"status": {"S": "open"}, "count": {"N": "5"}, "tags": {"SS": ["a", "b"]}}},
    }
    image = "dynamodb", "NewImage"

    def at(rule: Any, attribute: str = "status", kind: str = "S") -> dict[str, Any]:
        return {image[0]: {image[1]: {attribute: {kind: rule}}}}

    assert matches({"eventName": ["INSERT", "MODIFY"]}, record)
    assert not matches({"eventName": ["REMOVE"]}, record)
    assert matches(at(["open"]), record) and not matches(at(["opened"]), record)
    assert matches(at([{"prefix": "op"}]), record) and not matches(at([{"prefix": "cl"}]), record)
    assert matches(at([{"suffix": "en"}]), record)
    assert matches(at([{"equals-ignore-case": "OPEN"}]), record)
    assert matches(at([{"anything-but": ["closed", "archived"]}]), record)
    assert not matches(at([{"anything-but": "open"}]), record)
    assert matches(at([{"anything-but": {"prefix": "cl"}}]), record)
    assert matches({"dynamodb": {"NewImage": {"status": [{"exists": True}]}}}, record)
    assert matches({"dynamodb": {"NewImage": {"missing": [{"exists": False}]}}}, record)
    assert not matches({"dynamodb": {"NewImage": {"missing": [{"exists": True}]}}}, record)
    assert not matches({"dynamodb": {"OldImage": {"status": {"S": ["open"]}}}}, record)
    assert not matches({"dynamodb": {"NewImage": {"missing": {"S": [{"anything-but": "x"}]}}}}, record)
    assert matches(at([{"numeric": [">", 3, "<=", 5]}], "count", "N"), record)
    assert not matches(at([{"numeric": [">", 5]}], "count", "N"), record)
    assert matches(at(["b"], "tags", "SS"), record)  # any element of a list
    both = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["closed"]}}}}
    assert not matches(both, record)  # every key of a pattern must match
    either = RecordFilter.parse(
        {"Filters": [{"Pattern": json.dumps(both)}, {"Pattern": json.dumps({"eventName": ["INSERT"]})}]}
    )
    assert either.accepts(record) and RecordFilter().accepts(record)
    for bad in ("not json", json.dumps({"eventName": "INSERT"}), json.dumps({"a": [{"wildcard": "x*"}]})):
        with pytest.raises(InvalidPattern):
            RecordFilter.parse({"Filters": [{"Pattern": bad}]})


def test_records_no_filter_matches_are_never_delivered(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    opened = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": [{"prefix": "op"}]}}}}
    vip = {"dynamodb": {"NewImage": {"vip": {"BOOL": [True]}}}}
    criteria = {"Filters": [{"Pattern": json.dumps(opened)}, {"Pattern": json.dumps(vip)}]}
    function = FakeFunction()
    poll(mapping(stream_arn, filters=RecordFilter.parse(criteria)), function)
    put(emulator, table, "open-1", status={"S": "open"})
    put(emulator, table, "closed-1", status={"S": "closed"})
    put(emulator, table, "vip-1", vip={"BOOL": True})
    put(emulator, table, "open-1", status={"S": "open"}, touched={"N": "1"})  # a MODIFY
    put(emulator, table, "open-last", status={"S": "opening"})
    wait_for(lambda: "open-last" in function.delivered())
    assert function.delivered() == ["open-1", "vip-1", "open-last"]


# -- batching --------------------------------------------------------------------------------------


def test_batch_size_caps_a_batch_and_the_window_holds_a_short_one(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    delivered: dict[str, float] = {}

    def respond(event: dict[str, Any]) -> tuple[Any, Any]:
        for record in event["Records"]:
            delivered[record["dynamodb"]["Keys"]["pk"]["S"]] = time.monotonic()
        return None, None

    for key in ("k1", "k2", "k3", "k4"):
        put(emulator, table, key)
    function = FakeFunction(respond)
    poll(mapping(stream_arn, batch_size=2, batching_window_seconds=1.5), function)
    wait_for(lambda: len(function.delivered()) == 4)
    assert function.batches() == [["k1", "k2"], ["k3", "k4"]]  # full batches go at once
    put(emulator, table, "k5")
    written = time.monotonic()
    wait_for(lambda: "k5" in delivered)
    assert delivered["k5"] - written >= 1.2, "a short batch waits for the batching window"
    assert function.batches()[-1] == ["k5"]


# -- failures --------------------------------------------------------------------------------------


def sequence_of(event: dict[str, Any], key: str) -> str:
    return next(
        r["dynamodb"]["SequenceNumber"] for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == key
    )


def test_reported_failures_resume_from_the_lowest_failed_record(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    failures_left = {"x5": 2, "x3": 1}  # reported out of order: the lowest sequence number counts

    def respond(event: dict[str, Any]) -> tuple[Any, Any]:
        failures = []
        keys = {r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]}
        for key, left in failures_left.items():
            if key in keys and left:
                failures_left[key] -= 1
                failures.append({"itemIdentifier": sequence_of(event, key)})
        return {"batchItemFailures": failures}, None

    for index in range(1, 7):
        put(emulator, table, f"x{index}")
    function = FakeFunction(respond)
    poll(mapping(stream_arn, report_batch_item_failures=True), function)
    wait_for(lambda: len(function.batches()) >= 3)
    time.sleep(0.6)
    first, second, third = function.batches()
    assert first == ["x1", "x2", "x3", "x4", "x5", "x6"]
    assert second == ["x3", "x4", "x5", "x6"]  # x1, x2 checkpointed; x3 succeeds, x5 fails again
    assert third == ["x5", "x6"]


def test_an_unknown_item_identifier_fails_the_whole_batch(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    calls = itertools.count()

    def respond(event: dict[str, Any]) -> tuple[Any, Any]:
        if next(calls) == 0:
            return {"batchItemFailures": [{"itemIdentifier": "no-such-sequence"}]}, None
        return {"batchItemFailures": []}, None  # an empty list is a success

    put(emulator, table, "u1")
    put(emulator, table, "u2")
    function = FakeFunction(respond)
    poll(mapping(stream_arn, report_batch_item_failures=True), function)
    wait_for(lambda: len(function.batches()) >= 2)
    time.sleep(0.6)
    assert function.batches() == [["u1", "u2"], ["u1", "u2"]]


def test_bisect_isolates_a_bad_record_and_exhausted_retries_go_to_the_on_failure_queue(
    emulator: MotoEmulator, poll: Any
) -> None:
    table, stream_arn = stream_table(emulator)
    url, queue_arn = queue(emulator)

    def respond(event: dict[str, Any]) -> tuple[Any, Any]:
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        return (None, {"type": "ValueError", "message": "bad"}) if "b3" in keys else (None, None)

    for index in range(1, 5):
        put(emulator, table, f"b{index}")
    function = FakeFunction(respond)
    record = mapping(
        stream_arn, batch_size=4, bisect_on_error=True, maximum_retry_attempts=1, on_failure_arn=queue_arn
    )
    poller = poll(record, function)
    wait_for(lambda: function.batches()[-1:] == [["b4"]])
    # Splits cost no retry; the lone bad record is tried twice (1 retry), then discarded.
    assert function.batches() == [
        ["b1", "b2", "b3", "b4"],
        ["b1", "b2"],
        ["b3", "b4"],
        ["b3"],
        ["b3"],
        ["b4"],
    ]
    [sent] = wait_for(lambda: received(emulator, url))
    assert sent == poller.discarded[0]
    info = sent["DDBStreamBatchInfo"]
    bad_sequence = sequence_of(function.events[3], "b3")
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == bad_sequence
    assert info["batchSize"] == 1 and info["streamArn"] == stream_arn
    assert info["shardId"].startswith("shardId-")
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert sent["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert sent["requestContext"]["functionArn"] == FUNCTION_ARN
    assert sent["requestContext"]["approximateInvokeCount"] == 2
    assert sent["responseContext"]["functionError"] == "Unhandled"
    assert sent["version"] == "1.0" and sent["timestamp"].endswith("Z")


def test_records_past_their_maximum_age_are_discarded(emulator: MotoEmulator, poll: Any) -> None:
    table, stream_arn = stream_table(emulator)
    url, queue_arn = queue(emulator)
    function = FakeFunction(lambda event: (None, {"type": "Timeout", "message": "always"}))
    # -1 retries: retried until the record is too old (1 s here; AWS's minimum is 60).
    poll(mapping(stream_arn, maximum_record_age_seconds=1, on_failure_arn=queue_arn), function)
    put(emulator, table, "old")
    [sent] = wait_for(lambda: received(emulator, url), timeout=15)
    assert sent["requestContext"]["condition"] == "RecordAgeExceeded"
    assert sent["DDBStreamBatchInfo"]["batchSize"] == 1
    count = len(function.batches())
    assert count >= 2
    time.sleep(1.0)
    assert len(function.batches()) == count, "a discarded record is not retried again"


# -- through the runner ----------------------------------------------------------------------------

STREAM_HANDLER = """
import json
import os


def lambda_handler(event, context):
    with open(os.environ["RECORD_FILE"], "a") as sink:
        sink.write(json.dumps(event) + "\\n")
    return {"batchItemFailures": []}
"""


def test_the_runner_plays_a_stream_mapping_the_emulator_records(
    emulator: MotoEmulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    build = tmp_path_factory.mktemp("build")
    sources = tmp_path_factory.mktemp("sources")
    (sources / "handler.py").write_text(STREAM_HANDLER)
    write_deterministic_zip(build / "stream.zip", [("handler.py", sources / "handler.py")])
    (build / "runtime").mkdir()
    write_manifest(build)
    records_file = tmp_path_factory.mktemp("records") / "stream.jsonl"
    lam, iam = client(emulator, "lambda"), client(emulator, "iam")
    role = iam.create_role(RoleName=f"stream-{uuid.uuid4().hex[:6]}", AssumeRolePolicyDocument="{}")["Role"]
    function_name = f"stream-fn-{uuid.uuid4().hex[:6]}"
    lam.create_function(
        FunctionName=function_name,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": (build / "stream.zip").read_bytes()},
        Environment={"Variables": {"RECORD_FILE": str(records_file)}},
    )
    table, stream_arn = stream_table(emulator, "NEW_IMAGE")
    # moto 5.2.5 alone answers "Invalid EventSourceArn": the stream is DynamoDB Local's.
    uuid_ = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=function_name,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"eventName": ["INSERT"]})}]},
    )["UUID"]
    work = tmp_path_factory.mktemp("work")
    runner = Runner(emulator.endpoints, build, work, region=REGION, api_port=0, log_dir=work)
    runner.start()
    try:
        assert runner.topology is not None
        [played] = [m for m in runner.topology.mappings if m.uuid == uuid_]
        assert played.kind == DYNAMODB_STREAM and played.batch_size == 10
        assert played.report_batch_item_failures and played.starting_position == "TRIM_HORIZON"
        assert any(isinstance(p, DynamoDBStreamPoller) and p.mapping.uuid == uuid_ for p in runner.pollers)
        # The emulator's own mapping is off while the runner plays it.
        assert lam.get_event_source_mapping(UUID=uuid_)["State"] == "Disabled"
        put(emulator, table, "via-runner", note={"S": "hello"})
        put(emulator, table, "via-runner", note={"S": "changed"})  # a MODIFY: filtered out

        def events() -> list[dict[str, Any]]:
            if not records_file.exists():
                return []
            return [json.loads(line) for line in records_file.read_text().splitlines()]

        [event] = wait_for(events)
        time.sleep(0.6)
        assert len(events()) == 1
        [record] = event["Records"]
        assert record["eventName"] == "INSERT" and record["eventSourceARN"] == stream_arn
        assert record["dynamodb"]["NewImage"]["note"] == {"S": "hello"}
    finally:
        runner.stop()
    assert lam.get_event_source_mapping(UUID=uuid_)["State"] == "Enabled"
