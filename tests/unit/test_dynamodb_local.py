"""DynamoDB Local (a real process on a free port) behind the local cloud's front.

The front answers what DynamoDB Local does not implement (PITR, tags), speaks the emulator's region
and account in ARNs both ways and forwards everything else untouched (per-item atomicity through it:
tests/unit/test_local_cloud.py). Java and the jar come from
`make setup`; without them these tests fail and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_cloud.dynamodb_front import DynamoDBFront
from local_cloud.dynamodb_local import DynamoDBLocal
from local_cloud.tools import ToolMissing

from .local_cloud_support import require_dynamodb_local

ACCOUNT = "210987654321"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBLocal]:
    require_dynamodb_local()
    with DynamoDBLocal(log_file=tmp_path_factory.mktemp("ddb") / "dynamodb-local.log") as running:
        yield running


@pytest.fixture(scope="module")
def front(dynamodb_local: DynamoDBLocal) -> Iterator[DynamoDBFront]:
    with DynamoDBFront(dynamodb_local.url, ACCOUNT) as running:
        yield running


def client(url: str, service: str = "dynamodb", region: str = REGION) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def create(dynamodb: Any, name: str, **extra: Any) -> dict[str, Any]:
    return dict(
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )["TableDescription"]
    )


def test_dynamodb_local_alone_lacks_pitr_and_tags_and_speaks_ddblocal_arns(
    dynamodb_local: DynamoDBLocal,
) -> None:
    # What the front is for: without it, the provider's PITR and tag calls fail.
    raw = client(dynamodb_local.url)
    table = create(raw, "raw-table")
    assert table["TableArn"] == "arn:aws:dynamodb:ddblocal:000000000000:table/raw-table"
    with pytest.raises(raw.exceptions.ClientError, match="UnknownOperationException"):
        raw.describe_continuous_backups(TableName="raw-table")
    with pytest.raises(raw.exceptions.ClientError, match="Tagging is not currently supported"):
        raw.list_tags_of_resource(ResourceArn=table["TableArn"])


def test_arns_speak_the_request_region_and_the_emulator_account(front: DynamoDBFront) -> None:
    dynamodb = client(front.url)
    table = create(
        dynamodb, "arn-table", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )
    assert table["TableArn"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/arn-table"
    stream_arn = table["LatestStreamArn"]
    assert stream_arn.startswith(f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/arn-table/stream/")
    # Another region sees the same (shared) table under its own region's ARN.
    other = client(front.url, region="us-east-2").describe_table(TableName="arn-table")["Table"]
    assert other["TableArn"] == f"arn:aws:dynamodb:us-east-2:{ACCOUNT}:table/arn-table"
    dynamodb.put_item(TableName="arn-table", Item={"pk": {"S": "a"}, "blob": {"B": b"\x00\xff"}})
    # The rewritten ARNs go back to DynamoDB Local unchanged for it: streams work end to end.
    streams = client(front.url, "dynamodbstreams")
    description = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    assert description["StreamArn"] == stream_arn
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=description["Shards"][0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert iterator.startswith(stream_arn)
    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    assert record["awsRegion"] == REGION
    assert record["dynamodb"]["NewImage"]["blob"] == {"B": b"\x00\xff"}  # the CRC32 the SDK checks held
    assert [s["StreamArn"] for s in streams.list_streams(TableName="arn-table")["Streams"]] == [stream_arn]


def test_tags_are_kept_per_table_from_create_table_on_and_go_with_the_table(front: DynamoDBFront) -> None:
    dynamodb = client(front.url)
    project = [{"Key": "Project", "Value": "ai-comms"}]
    arn = create(dynamodb, "tagged-table", Tags=project)["TableArn"]
    assert dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"] == project
    dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": "Workspace", "Value": "w"}])
    dynamodb.untag_resource(ResourceArn=arn, TagKeys=["Project"])
    assert dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "Workspace", "Value": "w"}]
    dynamodb.delete_table(TableName="tagged-table")
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.list_tags_of_resource(ResourceArn=arn)
    create(dynamodb, "tagged-table")
    assert dynamodb.list_tags_of_resource(ResourceArn=arn)["Tags"] == []
    with pytest.raises(dynamodb.exceptions.ClientError, match="ValidationException"):
        dynamodb.tag_resource(ResourceArn="not-an-arn", Tags=[{"Key": "k", "Value": "v"}])


def test_point_in_time_recovery_is_kept_per_table(front: DynamoDBFront) -> None:
    dynamodb = client(front.url)
    create(dynamodb, "pitr-table")
    described = dynamodb.describe_continuous_backups(TableName="pitr-table")["ContinuousBackupsDescription"]
    assert described["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    enabled = dynamodb.update_continuous_backups(
        TableName="pitr-table", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert enabled["PointInTimeRecoveryStatus"] == "ENABLED" and enabled["RecoveryPeriodInDays"] == 35
    assert "EarliestRestorableDateTime" in enabled
    described = dynamodb.describe_continuous_backups(TableName="pitr-table")["ContinuousBackupsDescription"]
    assert described["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    with pytest.raises(dynamodb.exceptions.TableNotFoundException):
        dynamodb.describe_continuous_backups(TableName="no-such-table")
    with pytest.raises(dynamodb.exceptions.ClientError, match="RecoveryPeriodInDays"):
        dynamodb.update_continuous_backups(
            TableName="pitr-table",
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 99},
        )


def test_missing_jar_fails_with_the_setup_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_COMMS_DYNAMODB_LOCAL_DIR", str(tmp_path))
    with pytest.raises(ToolMissing, match="make setup"):
        DynamoDBLocal().start()
