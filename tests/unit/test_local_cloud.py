"""The local runner against a real moto server (DynamoDB Local behind its front), with resources made by
boto3 instead of Terraform.

Fast (no terraform): proves the Lambda/API Gateway/SQS hops the e2e suite relies on.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_cloud.artifacts import write_deterministic_zip, write_manifest
from local_cloud.emulator import MotoEmulator
from local_cloud.processes import free_port
from local_cloud.runner import PackagingError, Runner
from local_cloud.worker import Invocation, Throttled

from .local_cloud_support import require_dynamodb_local, wait_for

REGION = "eu-west-1"
STAGE = "test"

ECHO_HANDLER = """
import json
import os
import sys
import time

import layer_helper


def lambda_handler(event, context):
    if "Records" in event:
        started = time.time()
        for record in event["Records"]:
            if record["body"].startswith("sleep:"):
                time.sleep(float(record["body"].split(":")[1]))
        event["worker"] = {"pid": os.getpid(), "started": started, "ended": time.time()}
        with open(os.environ["RECORD_FILE"], "a") as sink:
            sink.write(json.dumps(event) + "\\n")
        failed = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": failed}
    time.sleep(event.get("sleep", 0))
    print("echo handled", context.aws_request_id)
    payload = {
        "event": event,
        "env": dict(os.environ),
        "layer": layer_helper.VALUE,
        "sys_path": sys.path,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
    }
    return {"statusCode": 201, "headers": {"X-Echo": "yes"}, "body": json.dumps(payload)}
"""
BROKEN_HANDLER = 'raise ImportError("a dependency is missing from the package")\n'


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoEmulator]:
    require_dynamodb_local()
    with MotoEmulator(free_port(), log_dir=tmp_path_factory.mktemp("emulator-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("build")
    sources = tmp_path_factory.mktemp("sources")
    files = {
        "handler_echo.py": ECHO_HANDLER,
        "handler_broken.py": BROKEN_HANDLER,
        "layer_helper.py": "VALUE = 42\n",
    }
    for name, text in files.items():
        (sources / name).write_text(text)
    write_deterministic_zip(root / "layer.zip", [("python/layer_helper.py", sources / "layer_helper.py")])
    write_deterministic_zip(root / "echo.zip", [("handler.py", sources / "handler_echo.py")])
    write_deterministic_zip(root / "broken.zip", [("handler.py", sources / "handler_broken.py")])
    (root / "runtime").mkdir()
    write_manifest(root)
    return root


class Deployed:
    """What the fixture created, for assertions."""

    def __init__(self) -> None:
        self.queue_url = ""
        self.parallel_queue_url = ""
        self.dlq_url = ""
        self.api_id = ""
        self.api_key = ""
        self.api_key_id = ""
        self.record_file = Path()


def client(emulator: MotoEmulator, service: str) -> Any:
    return emulator.endpoints.client(service, REGION)


def add_route(
    apigw: Any, api_id: str, parent: str, part: str, method: str, fn_arn: str, key: bool = False
) -> str:
    resource = apigw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
    apigw.put_method(
        restApiId=api_id, resourceId=resource, httpMethod=method, authorizationType="NONE", apiKeyRequired=key
    )
    apigw.put_integration(
        restApiId=api_id,
        resourceId=resource,
        httpMethod=method,
        type="AWS_PROXY",
        integrationHttpMethod="POST",
        uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{fn_arn}/invocations",
    )
    return str(resource)


@pytest.fixture(scope="module")
def deployed(emulator: MotoEmulator, build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    out = Deployed()
    out.record_file = tmp_path_factory.mktemp("records") / "sqs.jsonl"
    lam, sqs, iam, apigw = (client(emulator, s) for s in ("lambda", "sqs", "iam", "apigateway"))
    role = iam.create_role(RoleName="runner-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    layer = lam.publish_layer_version(
        LayerName="shared", Content={"ZipFile": (build_dir / "layer.zip").read_bytes()}
    )
    arns = {}
    for name, artifact, timeout in (
        ("echo", "echo.zip", 10),
        ("slow", "echo.zip", 1),
        ("broken", "broken.zip", 5),
        ("para", "echo.zip", 10),
        ("single", "echo.zip", 10),
    ):
        arns[name] = lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="handler.lambda_handler",
            Code={"ZipFile": (build_dir / artifact).read_bytes()},
            Layers=[layer["LayerVersionArn"]],
            Timeout=timeout,
            Environment={"Variables": {"RECORD_FILE": str(out.record_file), "GREETING": "hello"}},
        )["FunctionArn"]
    out.dlq_url = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=out.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    out.queue_url = sqs.create_queue(
        QueueName="work", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=out.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lam.create_event_source_mapping(
        EventSourceArn=queue_arn,
        FunctionName="echo",
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    lam.put_function_concurrency(FunctionName="single", ReservedConcurrentExecutions=1)
    out.parallel_queue_url = sqs.create_queue(QueueName="parallel")["QueueUrl"]
    lam.create_event_source_mapping(
        EventSourceArn=sqs.get_queue_attributes(QueueUrl=out.parallel_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"],
        FunctionName="para",
        BatchSize=1,
    )
    out.api_id = apigw.create_rest_api(name="runner-test")["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=out.api_id)["items"] if r["path"] == "/")
    add_route(apigw, out.api_id, root, "echo", "POST", arns["echo"])
    add_route(apigw, out.api_id, root, "broken", "POST", arns["broken"])
    add_route(apigw, out.api_id, root, "single", "POST", arns["single"])
    add_route(apigw, out.api_id, root, "secure", "POST", arns["echo"], key=True)
    items = add_route(apigw, out.api_id, root, "items", "GET", arns["echo"])
    add_route(apigw, out.api_id, items, "{id}", "ANY", arns["echo"])
    apigw.create_deployment(restApiId=out.api_id, stageName=STAGE)
    key = apigw.create_api_key(name="runner-test", enabled=True)
    plan = apigw.create_usage_plan(name="runner-test", apiStages=[{"apiId": out.api_id, "stage": STAGE}])
    apigw.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    out.api_key = key["value"]
    out.api_key_id = key["id"]
    return out


@pytest.fixture(scope="module")
def runner(
    emulator: MotoEmulator, build_dir: Path, deployed: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runner]:
    work_dir = tmp_path_factory.mktemp("local")
    running = Runner(
        emulator.endpoints,
        build_dir,
        work_dir,
        region=REGION,
        api_port=0,
        log_dir=work_dir / "logs",
        throttle_wait=0.5,
    )
    running.start()
    yield running
    running.stop()


def test_discovers_what_was_deployed(runner: Runner, emulator: MotoEmulator) -> None:
    assert runner.topology is not None
    # The runner plays the mappings, so moto must not receive their messages itself meanwhile.
    lam = client(emulator, "lambda")
    assert {lam.get_event_source_mapping(UUID=m.uuid)["State"] for m in runner.topology.mappings} == {
        "Disabled"
    }
    assert set(runner.topology.functions) == {"echo", "slow", "broken", "para", "single"}
    assert len(runner.pollers) == 2
    assert {(r.stage, r.resource_path, r.method) for r in runner.topology.routes} >= {
        (STAGE, "/echo", "POST"),
        (STAGE, "/items/{id}", "ANY"),
    }


def test_post_reaches_handler_with_proxy_event(runner: Runner) -> None:
    url = f"{runner.api_base_url}/{STAGE}/echo?x=1&x=2"
    status, body = http("POST", url, b'{"hello": "world"}', {"Content-Type": "application/json"})
    assert status == 201
    event = body["event"]
    assert event["path"] == "/echo"
    assert event["resource"] == "/echo"
    assert event["httpMethod"] == "POST"
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["path"] == f"/{STAGE}/echo"
    assert event["requestContext"]["stage"] == STAGE
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["queryStringParameters"] == {"x": "2"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert body["layer"] == 42
    assert body["function_name"] == "echo"
    assert 0 < body["remaining_ms"] <= 10_000


def test_worker_sees_only_the_lambda_environment(runner: Runner) -> None:
    _, body = http("POST", f"{runner.api_base_url}/{STAGE}/echo", b"{}")
    env = body["env"]
    assert env["GREETING"] == "hello"
    assert env["AWS_ENDPOINT_URL"] == runner.endpoint_url
    # DynamoDB and its streams answer at the local cloud's DynamoDB Local, not at moto.
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"]
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == runner.endpoints.dynamodb != runner.endpoint_url
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    code_dir, layer_dir = body["sys_path"][:2]
    assert code_dir.endswith("lambda/echo/code") and layer_dir.endswith("lambda/echo/layer/python")
    assert not any("site-packages" in entry for entry in body["sys_path"])


def test_path_parameters_and_any_method(runner: Runner) -> None:
    status, body = http("DELETE", f"{runner.api_base_url}/{STAGE}/items/abc")
    assert status == 201
    assert body["event"]["pathParameters"] == {"id": "abc"}
    assert body["event"]["resource"] == "/items/{id}"


def test_unknown_route_or_method_is_missing_token(runner: Runner) -> None:
    for method, path in (
        ("POST", f"/{STAGE}/nowhere"),
        ("GET", f"/{STAGE}/echo"),
        ("POST", "/other-stage/echo"),
    ):
        status, body = http(method, runner.api_base_url + path, b"")
        assert (status, body) == (403, {"message": "Missing Authentication Token"}), (method, path)


def test_api_key_required(runner: Runner, deployed: Deployed) -> None:
    url = f"{runner.api_base_url}/{STAGE}/secure"
    assert http("POST", url, b"{}") == (403, {"message": "Forbidden"})
    assert http("POST", url, b"{}", {"x-api-key": "wrong"}) == (403, {"message": "Forbidden"})
    status, body = http("POST", url, b"{}", {"x-api-key": deployed.api_key})
    assert status == 201
    identity = body["event"]["requestContext"]["identity"]
    # What the functions bind a caller to a tenant by (ai_comms.api_access).
    assert (identity["apiKey"], identity["apiKeyId"]) == (deployed.api_key, deployed.api_key_id)
    # A route without a key requirement carries neither, as in API Gateway's $context.identity.
    status, body = http("POST", f"{runner.api_base_url}/{STAGE}/echo", b"{}", {"x-api-key": deployed.api_key})
    identity = body["event"]["requestContext"]["identity"]
    assert (identity["apiKey"], identity["apiKeyId"]) == (None, None)


def test_import_error_is_a_502(runner: Runner) -> None:
    status, body = http("POST", f"{runner.api_base_url}/{STAGE}/broken", b"{}")
    assert (status, body) == (502, {"message": "Internal server error"})
    failure = next(i for i in reversed(runner.stats) if i.function_name == "broken")
    assert failure.error is not None and failure.error["type"] == "Runtime.ImportModuleError"


def test_timeout_kills_and_restarts_the_worker(runner: Runner) -> None:
    timed_out = runner.invoke("slow", {"sleep": 5})
    assert timed_out.error is not None and timed_out.error["type"] == "Sandbox.Timedout"
    again = runner.invoke("slow", {})
    assert again.error is None and again.cold_start and again.init_ms is not None


def test_sqs_message_is_processed_and_deleted(
    runner: Runner, deployed: Deployed, emulator: MotoEmulator
) -> None:
    sqs = client(emulator, "sqs")
    sent = sqs.send_message(
        QueueUrl=deployed.queue_url,
        MessageBody="ok",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
    )

    def seen() -> dict[str, Any] | None:
        if not deployed.record_file.exists():
            return None
        for line in deployed.record_file.read_text().splitlines():
            for record in json.loads(line)["Records"]:
                if record["messageId"] == sent["MessageId"]:
                    return dict(record)
        return None

    record = wait_for(seen)
    assert record["eventSource"] == "aws:sqs"
    assert record["body"] == "ok"
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["eventSourceARN"].endswith(":work")
    assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(QueueUrl=deployed.queue_url, AttributeNames=["All"])[
            "Attributes"
        ]
        return (
            attributes["ApproximateNumberOfMessages"] == "0"
            and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
        )

    wait_for(drained)


def test_reported_failure_is_retried_then_dead_lettered(
    runner: Runner, deployed: Deployed, emulator: MotoEmulator
) -> None:
    sqs = client(emulator, "sqs")
    sent = sqs.send_message(QueueUrl=deployed.queue_url, MessageBody="fail")

    def in_dlq() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=deployed.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        return [m for m in messages if m["MessageId"] == sent["MessageId"]]

    assert wait_for(in_dlq, timeout=30, interval=0.5)
    receives = [
        record
        for line in deployed.record_file.read_text().splitlines()
        for record in json.loads(line)["Records"]
        if record["messageId"] == sent["MessageId"]
    ]
    # The runner disabled the mapping in moto, so no receive of moto's own used one up: as in AWS,
    # the handler sees exactly maxReceiveCount deliveries before the redrive.
    assert len(receives) == 3


def test_code_matching_no_artifact_is_a_packaging_error(
    emulator: MotoEmulator, build_dir: Path, deployed: Deployed, tmp_path: Path
) -> None:
    lam = client(emulator, "lambda")
    role = client(emulator, "iam").get_role(RoleName="runner-test")["Role"]["Arn"]
    write_deterministic_zip(tmp_path / "stale.zip", [("handler.py", build_dir / "echo.zip")])
    lam.create_function(
        FunctionName="stale",
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": (tmp_path / "stale.zip").read_bytes()},
    )
    try:
        with pytest.raises(PackagingError, match="function stale"):
            Runner(emulator.url, build_dir, tmp_path / "local", region=REGION, api_port=0).start()
    finally:
        lam.delete_function(FunctionName="stale")


# -- concurrency: a pool of execution environments per function -----------------------------------


def invoke_together(runner: Runner, function: str, events: list[dict[str, Any]]) -> list[Invocation]:
    results: list[Invocation | None] = [None] * len(events)
    gate = threading.Barrier(len(events))

    def call(index: int) -> None:
        gate.wait()
        results[index] = runner.invoke(function, events[index])

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(events))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def pid_of(invocation: Invocation) -> int:
    assert invocation.error is None, invocation.error
    return int(json.loads(invocation.result["body"])["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_parallel_invokes_scale_out_each_with_its_own_cold_start(runner: Runner) -> None:
    pool = runner.workers["para"]
    assert pool.concurrency == runner.concurrency == 4

    first = invoke_together(runner, "para", [{"sleep": 1.0}] * 4)

    assert len({pid_of(i) for i in first}) == 4 and all(i.cold_start and i.init_ms for i in first)
    assert pool.peak == 4 and pool.started == 4
    # Warm now: sequential invokes reuse the most recently freed environment, no new process.
    again = [runner.invoke("para", {}) for _ in range(3)]
    assert not any(i.cold_start for i in again) and len({pid_of(i) for i in again}) == 1
    assert pid_of(again[0]) in {pid_of(i) for i in first} and pool.started == 4


def test_more_invokes_than_the_limit_wait_for_a_free_environment(runner: Runner) -> None:
    pool = runner.workers["para"]
    invocations = invoke_together(runner, "para", [{"sleep": 0.5}] * 7)

    assert all(i.error is None for i in invocations)
    assert len({pid_of(i) for i in invocations}) <= 4 and pool.peak <= 4


def test_reserved_concurrency_caps_the_pool_and_the_api_answers_429(runner: Runner) -> None:
    pool = runner.workers["single"]
    assert pool.concurrency == 1
    holder = threading.Thread(target=runner.invoke, args=("single", {"sleep": 3}))
    holder.start()
    wait_for(lambda: pool.busy == 1)
    try:
        status, body = http("POST", f"{runner.api_base_url}/{STAGE}/single", b"{}")
        assert (status, body) == (429, {"message": "Rate Exceeded"})
        with pytest.raises(Throttled):
            runner.invoke("single", {}, wait=0.1)
        assert runner.throttles["single"] == 2
    finally:
        holder.join(30)
    # Free again: a direct invoke (no wait given) and the API both get through.
    assert runner.invoke("single", {}).error is None
    assert http("POST", f"{runner.api_base_url}/{STAGE}/single", b"{}")[0] == 201


def test_stop_ends_every_process_even_mid_invoke_and_a_later_invoke_starts_cold(runner: Runner) -> None:
    pool = runner.workers["para"]
    pids = {pid_of(i) for i in invoke_together(runner, "para", [{}] * 4)}
    running = threading.Thread(target=runner.invoke, args=("para", {"sleep": 8}))
    running.start()
    wait_for(lambda: pool.busy == 1)

    started = time.monotonic()
    pool.stop()
    running.join(15)

    assert time.monotonic() - started < 8  # the sleeping invocation was cut short, not awaited
    assert not any(alive(pid) for pid in pids)
    assert pool.busy == 0
    fresh = runner.invoke("para", {})
    assert fresh.cold_start and pid_of(fresh) not in pids


def test_sqs_batches_of_one_mapping_run_concurrently(
    runner: Runner, deployed: Deployed, emulator: MotoEmulator
) -> None:
    sqs = client(emulator, "sqs")
    assert {p.concurrency for p in runner.pollers} == {4}
    sent = {
        sqs.send_message(QueueUrl=deployed.parallel_queue_url, MessageBody="sleep:2")["MessageId"]
        for _ in range(4)
    }

    def batches() -> list[dict[str, Any]] | None:
        found = []
        for line in deployed.record_file.read_text().splitlines() if deployed.record_file.exists() else []:
            event = json.loads(line)
            if event["Records"][0]["messageId"] in sent:
                found.append(event)
        return found if len(found) == 4 else None

    found = wait_for(batches, timeout=30)
    intervals = sorted((e["worker"]["started"], e["worker"]["ended"]) for e in found)
    overlapping = sum(1 for (_, end), (start, _) in itertools.pairwise(intervals) if start < end)
    assert overlapping >= 1 and len({e["worker"]["pid"] for e in found}) >= 2
    assert sorted(e["Records"][0]["messageId"] for e in found) == sorted(sent)


def test_concurrent_updates_of_one_item_are_atomic_in_the_emulator(emulator: MotoEmulator) -> None:
    # The engine's conditional writes (leases, list_append of the history) need AWS's per-item
    # atomicity; moto's threaded DynamoDB loses updates, the local cloud's DynamoDB Local does not.
    dynamodb = client(emulator, "dynamodb")
    dynamodb.create_table(
        TableName="atomic",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    winners: list[int] = []

    def writer(index: int) -> None:
        own = client(emulator, "dynamodb")
        for step in range(20):
            own.update_item(
                TableName="atomic",
                Key={"pk": {"S": "one"}},
                UpdateExpression="SET messages = list_append(if_not_exists(messages, :empty), :new), "
                "seq = if_not_exists(seq, :zero) + :one",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":new": {"L": [{"S": f"{index}-{step}"}]},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                },
            )
        try:
            own.update_item(
                TableName="atomic",
                Key={"pk": {"S": "one"}},
                UpdateExpression="SET lease = :me",
                ConditionExpression="attribute_not_exists(lease)",
                ExpressionAttributeValues={":me": {"N": str(index)}},
            )
            winners.append(index)
        except own.exceptions.ConditionalCheckFailedException:
            pass

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    item = dynamodb.get_item(TableName="atomic", Key={"pk": {"S": "one"}}, ConsistentRead=True)["Item"]
    assert int(item["seq"]["N"]) == len(item["messages"]["L"]) == 160
    assert len(winners) == 1 and item["lease"]["N"] == str(winners[0])
