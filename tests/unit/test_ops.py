"""The ops CLI against in-process AWS (moto): each subcommand's output and exit code.

moto 5.2.5 implements StartReplay/DescribeReplay (it replays the whole archive at once, ignoring the
window and FilterArns) but not SQS StartMessageMoveTask/ListMessageMoveTasks, so redrive is tested
through its receive -> send -> delete fallback on moto, and the move-task path with botocore's
Stubber standing in for exactly the two calls moto lacks.
"""

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from ai_comms.masking import mask_address
from ai_comms.models.conversation import Conversation
from ai_comms.models.message import Message
from ai_comms.models.tenant import ProjectConfig
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import to_item, to_value
from ai_comms.store.messages import MessageRepository, outbound_position
from ai_comms.store.tenants import TenantRepository
from ops import dlq, replay
from ops.__main__ import main
from ops.errors import UsageError
from ops.progress import Progress
from ops.table import age, render
from ops.target import Target

from .conftest import create_tables

REGION = "eu-west-1"
WORKSPACE = "unit"
NAME = f"ai-comms-{WORKSPACE}"
CUSTOMER = "+447700900123"
COMPANY = "whatsapp:+14155550100"
EXAMPLE = Path(__file__).resolve().parents[2] / "scripts" / "ops" / "tenant.example.yaml"
SECRET_BODY = "my card number is 4111 and I live at 1 Secret Street"


@dataclass
class Env:
    sqs: Any
    events: Any
    dynamodb: Any
    queues: dict[str, str]
    bus_arn: str

    def arn(self, key: str) -> str:
        return str(
            self.sqs.get_queue_attributes(QueueUrl=self.queues[key], AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        )

    def depth(self, key: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queues[key],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def bodies(self, key: str) -> list[str]:
        found: list[str] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queues[key], MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            found.extend(m["Body"] for m in messages)


def _event(n: int = 1, **detail: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "channel": "whatsapp",
        "route": "ai_reply",
        "company_id": "acme",
        "project_id": "support",
        "conversation_id": f"conv-{n}",
        "recipient_tel": CUSTOMER,
        "customer_address": "whatsapp:" + CUSTOMER,
        "company_address": COMPANY,
        "message_sid": f"SM{n:032d}",
        "body": SECRET_BODY,
        "num_media": 0,
        "received_at": "2026-01-01T00:00:00.000Z",
    }
    base.update(detail)
    return base


def _envelope(n: int = 1) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": f"evt-{n}",
            "detail-type": "ReplyReceived",
            "source": "ai-comms.twilio-webhook",
            "detail": _event(n),
        }
    )


def _make_tables(dynamodb: Any) -> None:
    create_tables(
        dynamodb,
        {
            "company": f"{NAME}-company-data",
            "conversations": f"{NAME}-conversations",
            "idempotency": f"{NAME}-idempotency",
            "messages": f"{NAME}-messages",
            "consent": f"{NAME}-consent",
        },
    )


def _queue_with_dlq(sqs: Any, name: str) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
    )["QueueUrl"]
    return url, dlq_url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AI_COMMS_WORKSPACE": WORKSPACE,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # moto's long poll waits the full time on an empty queue; the answer is the same without it.
    monkeypatch.setattr(dlq, "RECEIVE_WAIT_SECONDS", 0)
    monkeypatch.setattr(dlq, "MOVE_TASK_POLL_SECONDS", 0)
    monkeypatch.setattr(replay, "POLL_SECONDS", 0)
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        _make_tables(dynamodb)
        queues: dict[str, str] = {}
        queues["ai-reply"], queues["ai-reply-dlq"] = _queue_with_dlq(sqs, f"{NAME}-whatsapp-ai-reply")
        queues["handoff"], queues["handoff-dlq"] = _queue_with_dlq(sqs, f"{NAME}-handoff")
        queues["events-dlq"] = sqs.create_queue(QueueName=f"{NAME}-events-dlq")["QueueUrl"]
        # Another workspace's queue: never listed.
        sqs.create_queue(QueueName="ai-comms-other-handoff-dlq")
        bus_arn = events.create_event_bus(Name=NAME)["EventBusArn"]
        events.create_archive(ArchiveName=f"{NAME}-archive", EventSourceArn=bus_arn)
        ai_reply_arn = sqs.get_queue_attributes(QueueUrl=queues["ai-reply"], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(
            Name=f"{NAME}-whatsapp-ai-reply",
            EventBusName=NAME,
            EventPattern=json.dumps({"detail-type": ["ReplyReceived"], "detail": {"route": ["ai_reply"]}}),
        )
        events.put_targets(
            Rule=f"{NAME}-whatsapp-ai-reply", EventBusName=NAME, Targets=[{"Id": "q", "Arn": ai_reply_arn}]
        )
        yield Env(sqs=sqs, events=events, dynamodb=dynamodb, queues=queues, bus_arn=bus_arn)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


# ---- command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "redrive"],
        ["replay"],
        ["tenant"],
        ["tenant", "put"],
        ["tenant", "get"],
        ["tenant", "list"],
        ["conversation"],
        ["conversation", "show"],
        ["conversation", "handback"],
    ],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*argv, "--help")[0] == 0
    assert "usage: python -m ops" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run()[0] == 2
    assert run("dlq", "frobnicate")[0] == 2
    assert run("dlq", "show", "x", "--max", "0")[0] == 2
    assert run("replay", "--from", "2026-01-01T00:00:00Z")[0] == 2


def test_a_workspace_is_required(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("AI_COMMS_WORKSPACE", raising=False)
    assert run("tenant", "list")[0] == 2
    assert "--workspace" in capsys.readouterr().err


def test_target_options_go_before_or_after_the_command(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_COMMS_WORKSPACE")
    assert run("--workspace", WORKSPACE, "dlq", "list")[0] == 0
    assert run("dlq", "list", "--workspace", WORKSPACE, "--name-prefix", "ai-comms")[0] == 0


def test_names_come_from_terraform_outputs(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "name": {"value": "custom-x", "type": "string"},
                "workspace": {"value": "x"},
                "tables": {"value": {"company_data": "c-table", "conversations": "v-table"}},
                "dlqs": {"value": {"custom-x-handoff-dlq": "http://q/custom-x-handoff-dlq"}},
            }
        )
    )
    target = Target.resolve(None, None, "eu-west-1", None, str(outputs))
    assert (target.workspace, target.name, target.company_table, target.conversations_table) == (
        "x",
        "custom-x",
        "c-table",
        "v-table",
    )
    assert target.dlq_urls == {"custom-x-handoff-dlq": "http://q/custom-x-handoff-dlq"}
    derived = Target.resolve("dev", None, "eu-west-1", None, None)
    assert (derived.company_table, derived.bus_name, derived.archive_name) == (
        "ai-comms-dev-company-data",
        "ai-comms-dev",
        "ai-comms-dev-archive",
    )


# ---- dlq ---------------------------------------------------------------------------------------------


def test_dlq_list_shows_every_dlq_of_the_workspace(env: Env) -> None:
    for n in range(2):
        env.sqs.send_message(QueueUrl=env.queues["ai-reply-dlq"], MessageBody=_envelope(n))
    code, out = run("dlq", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["QUEUE", "MESSAGES"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {f"{NAME}-whatsapp-ai-reply-dlq", f"{NAME}-handoff-dlq", f"{NAME}-events-dlq"}
    assert rows[f"{NAME}-whatsapp-ai-reply-dlq"].split()[1] == "2"
    assert rows[f"{NAME}-whatsapp-ai-reply-dlq"].endswith(f"{NAME}-whatsapp-ai-reply")
    assert "EventBridge rule targets" in rows[f"{NAME}-events-dlq"]


def test_dlq_show_masks_and_leaves_messages_in_place(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.sqs.send_message(QueueUrl=env.queues["ai-reply-dlq"], MessageBody=_envelope(7))
    code, out = run("dlq", "show", "whatsapp-ai-reply-dlq")
    assert code == 0
    assert "ReplyReceived" in out and "ai_reply" in out and "acme/support" in out and "conv=conv-7" in out
    assert mask_address("whatsapp:" + CUSTOMER) in out
    assert f"<{len(SECRET_BODY)} chars>" in out
    assert CUSTOMER not in out and "Secret Street" not in out
    assert "receive count" in capsys.readouterr().err
    # Released at once: visible and still there.
    assert env.sqs.receive_message(QueueUrl=env.queues["ai-reply-dlq"], VisibilityTimeout=0).get("Messages")

    code, out = run("dlq", "show", f"{NAME}-whatsapp-ai-reply-dlq", "--reveal")
    assert code == 0 and "Secret Street" in out and CUSTOMER in out


def test_dlq_show_limits_and_takes_urls(env: Env) -> None:
    for n in range(5):
        env.sqs.send_message(QueueUrl=env.queues["handoff-dlq"], MessageBody=_envelope(n))
    code, out = run("dlq", "show", env.queues["handoff-dlq"], "--max", "3")
    assert code == 0
    assert len(out.splitlines()) == 1 + 3
    assert env.depth("handoff-dlq") == 5


def test_dlq_show_of_an_empty_queue_and_of_text(env: Env) -> None:
    assert run("dlq", "show", "handoff-dlq") == (0, f"{NAME}-handoff-dlq: empty\n")
    env.sqs.send_message(QueueUrl=env.queues["handoff-dlq"], MessageBody="plain text, not JSON")
    code, out = run("dlq", "show", "handoff-dlq")
    assert code == 0 and "(not an event)" in out and "plain text" not in out


def test_dlq_unknown_queue_is_not_found(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("dlq", "show", "nope-dlq")[0] == 3
    assert run("dlq", "redrive", "nope-dlq")[0] == 3
    assert "no queue named ai-comms-unit-nope-dlq" in capsys.readouterr().err


def test_redrive_dry_run_lists_and_moves_nothing(env: Env) -> None:
    for n in range(3):
        env.sqs.send_message(QueueUrl=env.queues["ai-reply-dlq"], MessageBody=_envelope(n))
    code, out = run("dlq", "redrive", "whatsapp-ai-reply-dlq", "--dry-run")
    assert code == 0
    assert out.count(f"  {NAME}-whatsapp-ai-reply\n") == 3
    assert "dry run: 3 message(s) would move" in out
    assert env.depth("ai-reply-dlq") == 3 and env.depth("ai-reply") == 0


def test_redrive_falls_back_to_send_then_delete_where_move_tasks_are_missing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = [_envelope(n) for n in range(12)]
    for body in sent:
        env.sqs.send_message(
            QueueUrl=env.queues["ai-reply-dlq"],
            MessageBody=body,
            MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}},
        )
    code, out = run("dlq", "redrive", "whatsapp-ai-reply-dlq")
    assert code == 0, capsys.readouterr().err
    assert "moved:" in out and " 12" in out and "receive-send-delete" in out
    assert "StartMessageMoveTask is not available" in capsys.readouterr().err
    assert env.depth("ai-reply-dlq") == 0
    assert sorted(env.bodies("ai-reply")) == sorted(sent)


def test_redrive_max_moves_only_that_many(env: Env) -> None:
    for n in range(3):
        env.sqs.send_message(QueueUrl=env.queues["handoff-dlq"], MessageBody=_envelope(n))
    assert run("dlq", "redrive", "handoff-dlq", "--max", "2")[0] == 0
    assert env.depth("handoff-dlq") == 1 and env.depth("handoff") == 2


def test_events_dlq_messages_go_back_to_their_target(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    def eventbridge_failure(target_arn: str | None) -> dict[str, Any]:
        attributes = {
            "RULE_ARN": {"DataType": "String", "StringValue": "arn:aws:events:eu-west-1:123456789012:rule/x"},
            "ERROR_CODE": {"DataType": "String", "StringValue": "SQS.AccessDenied"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "denied"},
        }
        if target_arn:
            attributes["TARGET_ARN"] = {"DataType": "String", "StringValue": target_arn}
        return attributes

    env.sqs.send_message(
        QueueUrl=env.queues["events-dlq"],
        MessageBody=_envelope(1),
        MessageAttributes=eventbridge_failure(env.arn("ai-reply")),
    )
    env.sqs.send_message(
        QueueUrl=env.queues["events-dlq"],
        MessageBody=_envelope(2),
        MessageAttributes=eventbridge_failure("arn:aws:lambda:eu-west-1:123456789012:function:f"),
    )
    code, out = run("dlq", "show", "events-dlq")
    assert code == 0 and "SQS.AccessDenied denied" in out

    code, out = run("dlq", "redrive", "events-dlq")
    assert code == 1  # one message names no SQS target: partial
    assert "moved:" in out
    assert "left in the DLQ" in capsys.readouterr().err
    delivered = env.sqs.receive_message(QueueUrl=env.queues["ai-reply"], MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert [json.loads(m["Body"])["id"] for m in delivered] == ["evt-1"]
    assert "MessageAttributes" not in delivered[0]  # EventBridge's failure notes stay behind
    assert env.depth("events-dlq") == 1

    # An explicit destination takes the rest.
    assert run("dlq", "redrive", "events-dlq", "--to", "handoff")[0] == 0
    assert env.depth("events-dlq") == 0 and env.depth("handoff") == 1


def test_redrive_needs_a_destination_for_an_orphan_queue(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.sqs.create_queue(QueueName=f"{NAME}-orphan-dlq")
    assert run("dlq", "redrive", "orphan-dlq")[0] == 1
    assert "--to" in capsys.readouterr().err


def test_redrive_uses_the_move_task_where_sqs_has_it(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.sqs.send_message(QueueUrl=env.queues["handoff-dlq"], MessageBody=_envelope(1))
    dlq_arn = env.arn("handoff-dlq")
    mover = boto3.client("sqs", region_name=REGION)
    stub = Stubber(mover)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "task-1"},
        {"SourceArn": dlq_arn, "DestinationArn": env.arn("handoff")},
    )
    stub.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {
                    "Status": "RUNNING",
                    "ApproximateNumberOfMessagesMoved": 0,
                    "ApproximateNumberOfMessagesToMove": 1,
                }
            ]
        },
        {"SourceArn": dlq_arn, "MaxResults": 1},
    )
    stub.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {
                    "Status": "COMPLETED",
                    "ApproximateNumberOfMessagesMoved": 1,
                    "ApproximateNumberOfMessagesToMove": 1,
                }
            ]
        },
        {"SourceArn": dlq_arn, "MaxResults": 1},
    )
    monkeypatch.setattr(dlq, "_move_client", lambda target: mover)
    with stub:
        code, out = run("dlq", "redrive", "handoff-dlq")
    stub.assert_no_pending_responses()
    assert code == 0
    assert "move-task" in out


def test_a_failed_move_task_is_reported(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    dlq_arn = env.arn("handoff-dlq")
    mover = boto3.client("sqs", region_name=REGION)
    stub = Stubber(mover)
    stub.add_response("start_message_move_task", {"TaskHandle": "task-1"})
    stub.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {
                    "Status": "FAILED",
                    "ApproximateNumberOfMessagesMoved": 1,
                    "ApproximateNumberOfMessagesToMove": 4,
                    "FailureReason": "AccessDenied",
                }
            ]
        },
        {"SourceArn": dlq_arn, "MaxResults": 1},
    )
    monkeypatch.setattr(dlq, "_move_client", lambda target: mover)
    with stub:
        assert run("dlq", "redrive", "handoff-dlq")[0] == 1


def test_only_missing_apis_trigger_the_fallback() -> None:
    real = Target(workspace="w")
    emulator = Target(workspace="w", endpoint_url="http://127.0.0.1:5000")

    def error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
        )

    assert dlq._unsupported(NotImplementedError(), real)
    assert dlq._unsupported(error("InvalidAction", 400), real)
    assert dlq._unsupported(error("500", 500), emulator)
    assert not dlq._unsupported(error("InternalError", 500), real)
    assert not dlq._unsupported(error("AccessDenied", 403), emulator)


# ---- replay ------------------------------------------------------------------------------------------


def _publish(env: Env, count: int = 2) -> None:
    env.events.put_events(
        Entries=[
            {
                "EventBusName": NAME,
                "Source": "ai-comms.twilio-webhook",
                "DetailType": "ReplyReceived",
                "Detail": json.dumps(_event(n)),
            }
            for n in range(count)
        ]
    )
    env.bodies("ai-reply")  # the live delivery, consumed


def _window() -> tuple[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    return (now - timedelta(hours=1)).isoformat(), now.isoformat()


def test_replay_sends_archived_events_to_the_bus_and_repeats_safely(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish(env, 2)
    start, end = _window()
    code, out = run("replay", "--from", start, "--to", end, "--rule", "whatsapp-ai-reply")
    assert code == 0, capsys.readouterr().err
    assert "COMPLETED" in out and "no: started it" in out
    assert "replay ai-comms-unit-" in capsys.readouterr().err  # progress on stderr, not in the data
    replayed = [json.loads(b) for b in env.bodies("ai-reply")]
    assert sorted(e["detail"]["message_sid"] for e in replayed) == [f"SM{n:032d}" for n in range(2)]

    name = out.split("replay:", 1)[1].split()[0]
    described = env.events.describe_replay(ReplayName=name)
    assert described["Destination"]["Arn"] == env.bus_arn
    rule_arn = env.events.describe_rule(Name=f"{NAME}-whatsapp-ai-reply", EventBusName=NAME)["Arn"]
    assert described["Destination"]["FilterArns"] == [rule_arn]

    # The same command again: reports the first replay, starts nothing.
    code, again = run("replay", "--from", start, "--to", end, "--rule", f"{NAME}-whatsapp-ai-reply")
    assert code == 0 and "yes: reported the existing replay" in again and name in again
    assert len(env.events.list_replays(NamePrefix=NAME)["Replays"]) == 1
    assert env.bodies("ai-reply") == []

    # On purpose, a second attempt is a new replay.
    code, third = run("replay", "--from", start, "--to", end, "--rule", "whatsapp-ai-reply", "--attempt", "2")
    assert code == 0 and f"{name}-a2" in third


def test_replay_dry_run_starts_nothing(env: Env) -> None:
    start, end = _window()
    code, out = run("replay", "--from", start, "--to", end, "--dry-run")
    assert code == 0
    assert "not started (dry run)" in out and "all rules on the bus" in out
    assert env.events.list_replays(NamePrefix=NAME)["Replays"] == []


def test_replay_errors(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    start, end = _window()
    assert run("replay", "--from", end, "--to", start)[0] == 2
    assert run("replay", "--from", "yesterday", "--to", end)[0] == 2
    assert run("replay", "--from", start, "--to", end, "--rule", "no-such-rule")[0] == 3
    assert run("replay", "--from", start, "--to", end, "--workspace", "elsewhere")[0] == 3
    assert "no event archive named ai-comms-elsewhere-archive" in capsys.readouterr().err


def test_replay_names_are_stable_unique_and_valid() -> None:
    target = Target(workspace="w")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=1)
    name = replay.replay_name(target, start, end, [])
    assert name == "ai-comms-w-20260101T000000-20260101T010000"
    assert replay.replay_name(target, start, end, []) == name
    assert replay.replay_name(target, start, end, ["arn:r1"]) != name
    long_a = replay.replay_name(Target(workspace="a" * 40), start, end, ["arn:r1"], attempt=3)
    long_b = replay.replay_name(Target(workspace="a" * 39 + "b"), start, end, ["arn:r1"], attempt=3)
    assert len(long_a) <= 64 and len(long_b) <= 64 and long_a != long_b
    assert replay.parse_time("2026-01-01T00:00:00") == start
    assert replay.parse_time("2026-01-01T01:00:00+01:00") == start


# ---- tenant ------------------------------------------------------------------------------------------


def test_tenant_put_get_round_trip(env: Env, tmp_path: Path) -> None:
    code, out = run("tenant", "put", str(EXAMPLE))
    assert code == 0 and "written: acme/support" in out
    code, text = run("tenant", "get", "acme", "support")
    assert code == 0
    expected = ProjectConfig.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert ProjectConfig.model_validate(yaml.safe_load(text)) == expected
    code, text = run("tenant", "get", "acme", "support", "--format", "json")
    assert code == 0 and ProjectConfig.model_validate(json.loads(text)) == expected

    # What get prints, put reads: edit and write back, as JSON this time.
    changed = json.loads(text) | {"status": "inactive"}
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(changed))
    assert run("tenant", "put", str(path))[0] == 0
    stored = TenantRepository(env.dynamodb, f"{NAME}-company-data").get_project("acme", "support")
    assert stored is not None and stored.status == "inactive"


def test_tenant_put_reports_each_invalid_field(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["company_id"] = "Not Valid"
    data["channels"]["whatsapp"]["address"] = "whatsapp:0800"
    data["surprise"] = True
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert run("tenant", "put", str(path))[0] == 2
    err = capsys.readouterr().err
    assert "company_id:" in err and "channels.whatsapp.address:" in err and "surprise:" in err
    assert run("tenant", "list")[1].splitlines()[1:] == []

    path.write_text("company_id: [unclosed")
    assert run("tenant", "put", str(path))[0] == 2
    assert run("tenant", "put", str(tmp_path / "missing.yaml"))[0] == 2


def test_tenant_put_refuses_another_projects_number(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("tenant", "put", str(EXAMPLE))[0] == 0
    other = yaml.safe_load(EXAMPLE.read_text()) | {"company_id": "globex"}
    path = tmp_path / "globex.yaml"
    path.write_text(yaml.safe_dump(other))
    assert run("tenant", "put", str(path))[0] == 1
    assert "whatsapp:+14155550100 belongs to acme/support" in capsys.readouterr().err
    assert run("tenant", "get", "globex", "support")[0] == 3


def test_tenant_dry_run_validates_only(env: Env) -> None:
    assert run("tenant", "put", str(EXAMPLE), "--dry-run") == (
        0,
        "valid: acme/support (not written: dry run)\n",
    )
    assert run("tenant", "get", "acme", "support")[0] == 3


def test_tenant_list(env: Env, tmp_path: Path) -> None:
    assert run("tenant", "put", str(EXAMPLE))[0] == 0
    second = yaml.safe_load(EXAMPLE.read_text())
    second["project_id"] = "billing"
    second["status"] = "inactive"
    second["channels"]["whatsapp"]["address"] = "whatsapp:+14155550199"
    path = tmp_path / "billing.yaml"
    path.write_text(yaml.safe_dump(second))
    assert run("tenant", "put", str(path))[0] == 0
    code, out = run("tenant", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["COMPANY", "PROJECT", "STATUS", "CHANNELS", "ADDRESSES"]
    assert lines[1].split() == ["acme", "billing", "inactive", "whatsapp", "whatsapp:+14155550199"]
    assert lines[2].split() == ["acme", "support", "active", "whatsapp", "whatsapp:+14155550100"]


# ---- conversation ------------------------------------------------------------------------------------


def _conversation(env: Env, conversation_id: str, created_at: str, **fields: Any) -> Conversation:
    conversation = Conversation(
        recipient_tel=CUSTOMER,
        conversation_id=conversation_id,
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        company_address=COMPANY,
        customer_address="whatsapp:" + CUSTOMER,
        created_at=created_at,
        updated_at=created_at,
        **fields,
    )
    assert ConversationRepository(env.dynamodb, f"{NAME}-conversations").put_new(conversation)
    common = {"conversation_id": conversation_id, "at": created_at}
    MessageRepository(env.dynamodb, f"{NAME}-messages").put_all(
        [
            Message(
                direction="outbound", author="template", seq=0, sid="SMout1", body="Hello from Acme", **common
            ),
            Message(direction="inbound", author="customer", seq=1, sid="SMin1", body=SECRET_BODY, **common),
        ]
    )
    return conversation


def test_conversation_show_latest_masked(env: Env) -> None:
    _conversation(env, "conv-old", "2026-01-01T00:00:00.000Z")
    _conversation(env, "conv-new", "2026-02-01T00:00:00.000Z", handoff_to_human=True, status="handed_off")
    code, out = run("conversation", "show", "whatsapp:" + CUSTOMER)
    assert code == 0
    assert "conv-new" in out and "conv-old" not in out and "2 for this number" in out
    assert "handed_off" in out
    assert "SMin1" in out and "inbound" in out and f"<{len(SECRET_BODY)} chars>" in out
    assert CUSTOMER not in out and "Secret Street" not in out and mask_address("whatsapp:" + CUSTOMER) in out

    code, out = run("conversation", "show", CUSTOMER, "--conversation-id", "conv-old", "--reveal")
    assert code == 0 and "conv-old" in out and "Secret Street" in out


def test_conversation_show_not_found(env: Env) -> None:
    assert run("conversation", "show", "+447700900999")[0] == 3
    _conversation(env, "conv-1", "2026-01-01T00:00:00.000Z")
    assert run("conversation", "show", CUSTOMER, "--conversation-id", "nope")[0] == 3


def test_conversation_handback(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    _conversation(env, "conv-1", "2026-01-01T00:00:00.000Z", handoff_to_human=True, status="handed_off")
    code, out = run("conversation", "handback", CUSTOMER, "conv-1")
    assert code == 0 and "handed back: conv-1 is active" in out
    stored = ConversationRepository(env.dynamodb, f"{NAME}-conversations").get(CUSTOMER, "conv-1")
    assert stored is not None and not stored.handoff_to_human and stored.status == "active"

    # Not (or no longer) handed off: nothing to do, and a script can tell.
    assert run("conversation", "handback", CUSTOMER, "conv-1")[0] == 1
    assert "not handed off" in capsys.readouterr().err
    assert run("conversation", "handback", CUSTOMER, "conv-missing")[0] == 3


def test_conversation_retry_answers_what_came_after_the_last_reply_that_arrived(env: Env) -> None:
    _conversation(
        env,
        "conv-r",
        "2026-01-01T00:00:00.000Z",
        status="handed_off",
        handoff_to_human=True,
        handoff_reason="reply_undelivered",
        inbound_seq=2,
        answered_seq=2,
    )
    at = "2026-01-01T00:01:00.000Z"
    MessageRepository(env.dynamodb, f"{NAME}-messages").put_all(
        [
            Message(conversation_id="conv-r", direction="outbound", author="ai", seq=1, batch=1, sid="SMr1",
                    body="a reply that arrived", at=at),
            Message(conversation_id="conv-r", direction="inbound", author="customer", seq=2, sid="SMin2",
                    body="and then?", at=at, route="handoff", channel="whatsapp", company_id="acme",
                    project_id="support", recipient_tel=CUSTOMER, customer_address="whatsapp:" + CUSTOMER,
                    company_address=COMPANY),
            Message(conversation_id="conv-r", direction="outbound", author="ai", seq=2, batch=2, sid="SMr2",
                    body="a reply Twilio could not deliver", at=at),
        ]
    )  # fmt: skip
    env.dynamodb.update_item(
        TableName=f"{NAME}-messages",
        Key=MessageRepository.key("conv-r", outbound_position(2, 2, 0)),
        UpdateExpression="SET status_undelivered = :entry",
        ExpressionAttributeValues={
            ":entry": to_value({"status": "undelivered", "at": at, "error_code": 63032})
        },
    )
    code, out = run("conversation", "retry", CUSTOMER, "conv-r")
    assert code == 0 and "answers its 1 customer message(s) after #1 once" in out
    stored = ConversationRepository(env.dynamodb, f"{NAME}-conversations").get(CUSTOMER, "conv-r")
    assert stored is not None and stored.status == "active" and not stored.handoff_to_human
    assert stored.answered_seq == 1 and stored.handoff_reason is None
    [message] = env.sqs.receive_message(QueueUrl=env.queues["ai-reply"])["Messages"]
    detail = json.loads(message["Body"])["detail"]
    assert detail["route"] == "ai_reply" and detail["inbound_seq"] == 2 and detail["message_sid"] == "SMin2"

    # Active now: nothing to retry, and a script can tell.
    assert run("conversation", "retry", CUSTOMER, "conv-r")[0] == 1


def test_conversation_retry_of_a_template_that_never_arrived_says_what_to_do(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = _conversation(env, "conv-u", "2026-01-01T00:00:00.000Z", status="undelivered")
    MessageRepository(env.dynamodb, f"{NAME}-messages").put_all([])
    env.dynamodb.delete_item(
        TableName=f"{NAME}-messages", Key=MessageRepository.key(conversation.conversation_id, "0000000001#in")
    )
    assert run("conversation", "retry", CUSTOMER, "conv-u")[0] == 1
    assert "send a new request" in capsys.readouterr().err


def test_aws_errors_exit_1(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.dynamodb.delete_table(TableName=f"{NAME}-company-data")
    assert run("tenant", "list")[0] == 1
    assert "error: AWS ResourceNotFoundException" in capsys.readouterr().err


# ---- rendering -----------------------------------------------------------------------------------------


def test_tables_align_columns() -> None:
    text = render(["name", "count"], [("a", 1), ("longer", 22), ("x\ny", None)], right=(1,))
    assert text.splitlines() == ["NAME    COUNT", "a           1", "longer     22", "x y         -"]
    assert [age(s) for s in (None, 5, 125, 3 * 3600 + 60, 2 * 86400 + 7200)] == [
        "-",
        "5s",
        "2m05s",
        "3h01m",
        "2d02h",
    ]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_tty_and_lines_elsewhere() -> None:
    tty = _Tty()
    with Progress("moving", 4, stream=tty) as bar:
        for _ in range(4):
            bar.advance()
    assert "\r" in tty.getvalue() and "[##############################] 4/4" in tty.getvalue()

    log = io.StringIO()
    with Progress("moving", 4, stream=log, interval_seconds=3600) as lines:
        for _ in range(4):
            lines.advance()
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == ["moving: 1/4 (25%)", "moving: 4/4 (100%)"]


# ---- migrate -----------------------------------------------------------------------------------------


def _legacy_conversation(env: Env, conversation_id: str, turns: int) -> list[dict[str, str]]:
    """A conversation as the old layout stored it: the whole history in one list on the record."""
    at = "2026-03-01T10:00:00.000Z"
    entries = [{"direction": "outbound", "sid": "SMtpl", "body": "[template HX1] {{1}}=Ada", "at": at}]
    for n in range(1, turns + 1):
        entries.append({"direction": "inbound", "sid": f"SMin{n}", "body": f"question {n}", "at": at})
        entries.append({"direction": "outbound", "sid": f"SMout{n}a", "body": f"answer {n}", "at": at})
        entries.append({"direction": "outbound", "sid": f"SMout{n}b", "body": f"more {n}", "at": at})
    conversation = Conversation(
        recipient_tel=CUSTOMER,
        conversation_id=conversation_id,
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        company_address=COMPANY,
        customer_address="whatsapp:" + CUSTOMER,
        inbound_seq=turns,
        answered_seq=turns,
        created_at=at,
        updated_at=at,
    )
    item = to_item({**conversation.model_dump(mode="json"), "messages": entries})
    item["inbound_sids"] = {"SS": [f"SMin{n}" for n in range(1, turns + 1)]}
    item["channel_created_at"] = {"S": Conversation.sort_key_for(COMPANY, at)}
    env.dynamodb.put_item(TableName=f"{NAME}-conversations", Item=item)
    return entries


def _history(env: Env, conversation_id: str) -> list[Message]:
    return list(MessageRepository(env.dynamodb, f"{NAME}-messages").all_of(conversation_id))


def _raw(env: Env, conversation_id: str) -> dict[str, Any]:
    key = {"recipient_tel": {"S": CUSTOMER}, "conversation_id": {"S": conversation_id}}
    item: dict[str, Any] = env.dynamodb.get_item(TableName=f"{NAME}-conversations", Key=key)["Item"]
    return item


def test_migrate_dry_run_counts_and_writes_nothing(env: Env, tmp_path: Path) -> None:
    _legacy_conversation(env, "legacy-1", turns=3)
    code, out = run("migrate", "--dry-run", "--state", str(tmp_path / "state.json"))
    assert code == 0 and "would move 10 messages of 1 conversations" in out
    assert _history(env, "legacy-1") == [] and "messages" in _raw(env, "legacy-1")
    assert not (tmp_path / "state.json").exists()


def test_migrate_moves_the_history_to_items_in_order_and_is_idempotent(env: Env, tmp_path: Path) -> None:
    entries = _legacy_conversation(env, "legacy-1", turns=3)
    state = str(tmp_path / "state.json")

    code, out = run("migrate", "--state", state)

    assert code == 0 and "moved 10 messages of 1 conversations" in out
    history = _history(env, "legacy-1")
    assert [(m.direction, m.sid, m.body) for m in history] == [
        (e["direction"], e["sid"], e["body"]) for e in entries
    ]
    assert [m.author for m in history[:3]] == ["template", "customer", "ai"]
    assert [m.seq for m in history] == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert all(m.expires_at for m in history)
    raw = _raw(env, "legacy-1")
    assert "messages" not in raw and "inbound_sids" not in raw
    assert raw["inbound_seq"] == {"N": "3"} and raw["last_activity_at"]["S"] == entries[-1]["at"]
    # A second run finds nothing to do; the items are untouched.
    code, out = run("migrate", "--state", state)
    assert code == 0 and "moved 0 messages of 0 conversations" in out
    assert _history(env, "legacy-1") == history


def test_migrate_resumes_after_an_interruption(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_comms.store import legacy_history

    for n in range(5):
        _legacy_conversation(env, f"legacy-{n}", turns=2)
    monkeypatch.setattr(legacy_history, "PAGE_SIZE", 2)
    state = tmp_path / "state.json"
    retire = legacy_history.LegacyHistory.retire
    calls = {"n": 0}

    def interrupted(self: Any, record: Any, last: str | None) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return retire(self, record, last)

    monkeypatch.setattr(legacy_history.LegacyHistory, "retire", interrupted)
    assert run("migrate", "--state", str(state))[0] == 130
    assert json.loads(state.read_text())["conversations"] == 2  # the first page's checkpoint

    monkeypatch.setattr(legacy_history.LegacyHistory, "retire", retire)
    code, out = run("migrate", "--state", str(state))
    assert code == 0 and "of 3 conversations" in out
    assert not state.exists()
    for n in range(5):
        assert len(_history(env, f"legacy-{n}")) == 7 and "messages" not in _raw(env, f"legacy-{n}")


def test_migrate_leaves_a_history_that_disagrees_with_its_counter(env: Env, tmp_path: Path) -> None:
    _legacy_conversation(env, "legacy-1", turns=2)
    env.dynamodb.update_item(
        TableName=f"{NAME}-conversations",
        Key={"recipient_tel": {"S": CUSTOMER}, "conversation_id": {"S": "legacy-1"}},
        UpdateExpression="SET inbound_seq = :five",
        ExpressionAttributeValues={":five": {"N": "5"}},
    )
    code, out = run("migrate", "--state", str(tmp_path / "state.json"))
    assert code == 1 and "does not match inbound_seq, left as it is: legacy-1" in out
    assert _history(env, "legacy-1") == [] and "messages" in _raw(env, "legacy-1")


# ---- consent -----------------------------------------------------------------------------------------


def test_consent_set_show_and_export(env: Env, tmp_path: Path) -> None:
    assert run("tenant", "put", str(EXAMPLE))[0] == 0
    code, out = run("consent", "show", "acme", "support", CUSTOMER)
    assert code == 0 and "opted_in (never asked)" in out and CUSTOMER not in out

    args = ("consent", "set", "acme", "support", "whatsapp:" + CUSTOMER, "--by", "ada@acme")
    code, out = run(*args, "--state", "opted_out", "--reason", "asked by phone")
    assert code == 0 and out.strip().endswith("opted_out")
    code, out = run(*args, "--state", "opted_out", "--reason", "a repeat")
    assert code == 0 and "nothing changed" in out
    code, out = run(*args, "--state", "opted_in", "--reason", "asked to hear from us again")

    code, out = run("consent", "show", "acme", "support", CUSTOMER, "--reveal")
    assert code == 0 and CUSTOMER in out and "opted_in since" in out
    assert "asked by phone" in out and "ada@acme" in out and "a repeat" not in out

    target = tmp_path / "consent.csv"
    assert run("consent", "export", "acme", "support", "--output", str(target))[0] == 0
    assert target.stat().st_mode & 0o077 == 0
    lines = target.read_text().splitlines()
    assert lines[0].startswith("company_address,customer_address,state,changed_at,source")
    assert [line.split(",")[2] for line in lines[1:]] == ["opted_out", "opted_in"]
    assert lines[-1].endswith(",yes")
    code, text = run("consent", "export", "acme", "support", "--format", "json")
    exported = json.loads(text)
    assert code == 0 and [row["reason"] for row in exported] == [
        "asked by phone",
        "asked to hear from us again",
    ]
    assert {row["customer_address"] for row in exported} == {"whatsapp:" + CUSTOMER}


def test_local_finds_the_local_cloud_from_its_endpoints_file(tmp_path: Path) -> None:
    described = {
        "emulator_url": "http://127.0.0.1:5123",
        "dynamodb_url": "http://127.0.0.1:8123",
        "region": "eu-west-1",
        "workspaces": {"local": {"outputs": {"name": "ai-comms-local", "tables": {"consent": "c-table"}}}},
    }
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(described))
    target = Target.local(None, str(path))
    assert (target.workspace, target.endpoint_url, target.dynamodb_endpoint_url) == (
        "local",
        "http://127.0.0.1:5123",
        "http://127.0.0.1:8123",
    )
    assert target.consent_table == "c-table" and target.messages_table == "ai-comms-local-messages"
    with pytest.raises(UsageError, match="make local"):
        Target.local(None, str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="not one the local cloud runs"):
        Target.local("prod", str(path))
