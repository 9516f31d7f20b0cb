"""The Lambda DynamoDB Streams event source mapping, played by one polling thread per enabled mapping.

Against the local cloud's DynamoDB Local (through its front on moto, through LocalStack there),
with the service's semantics as documented for DynamoDB event source mappings:

* every shard of the stream is read (DescribeStream, refreshed about once a second for new
  shards; GetShardIterator; GetRecords following NextShardIterator until the shard closes), a
  child shard only once its parent is done; ``StartingPosition`` TRIM_HORIZON starts at the oldest
  record of every shard, LATEST at the tip of the open shards (skipping closed ones) when the
  runner starts, and shards that appear later are always read from their start;
* the shards are polled about four times a second, like Lambda's base rate; records of one shard
  go to the function strictly in order, one batch at a time, in the exact Lambda event shape
  (``ApproximateCreationDateTime`` in epoch seconds, binary attributes base64-encoded);
* ``FilterCriteria``: records no filter matches are never delivered (the checkpoint moves past
  them); ``BatchSize`` caps a batch; ``MaximumBatchingWindowInSeconds`` holds a short batch back
  until the window since its first record has passed (approximated to the poll interval);
* a failed batch (a function error, a timeout) is retried from the same record, with a short
  backoff; with ``BisectBatchOnFunctionError`` it is split in two first (splits consume no retry);
  with ``ReportBatchItemFailures`` a response naming failed ``itemIdentifier``s (SequenceNumbers)
  moves the checkpoint to the lowest one and retries from there, an empty list or a plain success
  moves it past the batch, and an unknown or empty identifier fails the whole batch;
* ``MaximumRetryAttempts`` (-1: until the record is too old) and ``MaximumRecordAgeInSeconds`` (-1:
  DynamoDB Streams' 24 hours) bound the retries; then the batch is discarded and, with
  ``DestinationConfig.OnFailure`` naming an SQS queue, the documented invocation record (request
  and response context, ``DDBStreamBatchInfo`` with the shard and the sequence range) is sent
  there. DynamoDB Local rounds ``ApproximateCreationDateTime`` down to the minute, so a record's
  age counts from the later of that and the moment the poller first read it.

Not kept: ParallelizationFactor (one batch per shard at a time, as with the default 1), tumbling
windows, checkpoints across runner restarts (the cloud's state dies with the emulator anyway).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from local_cloud.discovery import MappingRecord
from local_cloud.polling import Invoke, MappingPoller
from local_cloud.sqs_poller import queue_url_for

LOG = logging.getLogger(__name__)
POLL_INTERVAL_SECONDS = 0.25
SHARD_REFRESH_SECONDS = 1.0
GET_RECORDS_LIMIT = 1000
STREAM_RETENTION_SECONDS = 24 * 3600
RETRY_BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0)


def _attribute_value(value: Any) -> Any:
    """boto3's parsed AttributeValue back to the JSON Lambda sends (bytes as base64)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {name: _attribute_value(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_attribute_value(inner) for inner in value]
    return value


def _epoch(value: Any) -> int | float:
    seconds = value.timestamp() if isinstance(value, datetime) else float(value)
    return int(seconds) if float(seconds).is_integer() else seconds


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One element of the ``Records`` list Lambda passes for a DynamoDB stream batch."""
    stream = dict(record["dynamodb"])
    if "ApproximateCreationDateTime" in stream:
        stream["ApproximateCreationDateTime"] = _epoch(stream["ApproximateCreationDateTime"])
    for image in ("Keys", "NewImage", "OldImage"):
        if image in stream:
            stream[image] = _attribute_value(stream[image])
    event: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # TTL deletions carry the service's identity
        event["userIdentity"] = record["userIdentity"]
    return event


def failed_records(
    batch: list[dict[str, Any]], invocation: Any, report_batch_item_failures: bool
) -> int | None:
    """Index of the first record to retry, or None when the whole batch succeeded.

    A function error, a timeout, or (with ReportBatchItemFailures) an empty, null or unknown
    itemIdentifier fail the batch from its first record; otherwise the lowest reported
    SequenceNumber is where the retry starts.
    """
    if invocation.error is not None:
        return 0
    result = invocation.result
    if not report_batch_item_failures or not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if not failures:
        return None
    positions = {record["dynamodb"]["SequenceNumber"]: index for index, record in enumerate(batch)}
    found: list[int] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in positions:
            return 0
        found.append(positions[identifier])
    return min(found)


@dataclass
class Shard:
    """What the poller knows of one shard: where it reads, and what it holds for the function."""

    shard_id: str
    parent_id: str | None
    start: str  # the iterator type of the first GetShardIterator: TRIM_HORIZON or LATEST
    iterator: str | None = None
    closed: bool = False  # GetRecords answered no NextShardIterator: nothing more will come
    last_read: str | None = None  # the last SequenceNumber read, to reopen an expired iterator
    pending: list[dict[str, Any]] = field(default_factory=list)  # filtered, not yet delivered
    read_at: dict[str, float] = field(default_factory=dict)  # SequenceNumber -> first read (epoch)
    splits: list[int] = field(default_factory=list)  # sizes of bisected batches still to run
    attempts: int = 0  # failed invokes of the batch at the head of ``pending``
    retry_at: float = 0.0
    first_pending_at: float | None = None

    @property
    def done(self) -> bool:
        return self.closed and not self.pending


class DynamoDBStreamPoller(MappingPoller):
    """Feeds one DynamoDB stream to one function until ``stop``: one thread, every shard in turn."""

    def __init__(self, mapping: MappingRecord, streams: Any, sqs: Any, region: str, invoke: Invoke) -> None:
        table = mapping.source_arn.split(":table/", 1)[1].split("/", 1)[0]
        super().__init__(mapping, invoke, f"ddb-stream-{table}")
        self._streams = streams
        self._sqs = sqs
        self._region = region
        self._shards: dict[str, Shard] = {}
        self._refreshed_at: float | None = None
        self._finished: set[str] = set()  # shards seen done at the last refresh
        self.discarded: list[dict[str, Any]] = []
        """The invocation records of discarded batches, in order (also sent to OnFailure)."""

    @property
    def positioned(self) -> bool:
        """True once every shard it reads has an iterator (a LATEST start is fixed from then on)."""
        reading = [shard for shard in self._shards.values() if not shard.closed]
        return bool(reading) and all(shard.iterator is not None for shard in reading)

    def backlog(self) -> int:
        """Records read and not yet delivered (a batching window, a retry backoff); what the stream
        holds beyond them shows only to a pass that starts later (``Runner.settled``)."""
        return sum(len(shard.pending) for shard in list(self._shards.values()))

    # -- the loop ------------------------------------------------------------------------------------

    def polled(self, received: int) -> None:
        if not received:
            self._stopping.wait(POLL_INTERVAL_SECONDS)

    def poll_once(self) -> int:
        self._refresh_shards()
        received = 0
        for shard in list(self._shards.values()):
            if self._stopping.is_set():
                break
            if shard.done or not self._parent_done(shard):
                continue
            received += self._read(shard)
            self._deliver(shard)
        return received

    # -- shards --------------------------------------------------------------------------------------

    def _refresh_shards(self) -> None:
        """DescribeStream about once a second, and at once when a shard ends (its child may wait)."""
        now = time.monotonic()
        finished = {shard_id for shard_id, shard in self._shards.items() if shard.done}
        recent = self._refreshed_at is not None and now - self._refreshed_at < SHARD_REFRESH_SECONDS
        if recent and finished <= self._finished:
            return
        first = self._refreshed_at is None
        self._refreshed_at, self._finished = now, finished
        for description in self._describe_shards():
            shard_id = description["ShardId"]
            if shard_id in self._shards:
                continue
            closed = "EndingSequenceNumber" in description.get("SequenceNumberRange", {})
            latest = first and self.mapping.starting_position == "LATEST"
            start = "LATEST" if latest else "TRIM_HORIZON"
            shard = Shard(shard_id, description.get("ParentShardId"), start)
            # LATEST when the mapping starts: what closed shards hold is history, never delivered.
            shard.closed = latest and closed
            self._shards[shard_id] = shard

    def _describe_shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self.mapping.source_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            request["ExclusiveStartShardId"] = last

    def _parent_done(self, shard: Shard) -> bool:
        parent = self._shards.get(shard.parent_id or "")
        return parent is None or parent.done

    def _open(self, shard: Shard) -> str:
        request: dict[str, Any] = {"StreamArn": self.mapping.source_arn, "ShardId": shard.shard_id}
        if shard.last_read is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_read)
        else:
            request["ShardIteratorType"] = shard.start
        return str(self._streams.get_shard_iterator(**request)["ShardIterator"])

    def _read(self, shard: Shard) -> int:
        """One GetRecords on the shard unless it holds a full batch already; returns records read."""
        if shard.closed or len(shard.pending) >= self.mapping.batch_size:
            return 0
        if shard.iterator is None:
            shard.iterator = self._open(shard)
        try:
            answer = self._streams.get_records(
                ShardIterator=shard.iterator, Limit=min(self.mapping.batch_size, GET_RECORDS_LIMIT)
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "ExpiredIteratorException":
                shard.iterator = None  # reopened after the last record read
                return 0
            if code == "TrimmedDataAccessException":
                shard.iterator, shard.last_read, shard.start = None, None, "TRIM_HORIZON"
                return 0
            raise
        records: list[dict[str, Any]] = answer.get("Records", [])
        shard.iterator = answer.get("NextShardIterator")
        shard.closed = shard.iterator is None
        now = time.time()
        for record in records:
            event = lambda_record(record, self.mapping.source_arn, self._region)
            sequence = event["dynamodb"]["SequenceNumber"]
            shard.last_read = sequence
            if self.mapping.filters.accepts(event):
                if not shard.pending:
                    shard.first_pending_at = time.monotonic()
                shard.pending.append(event)
                shard.read_at[sequence] = now
        return len(records)

    # -- delivery ------------------------------------------------------------------------------------

    def _deliver(self, shard: Shard) -> None:
        """Invoke for the batches at the head of the shard until it is empty or has to wait."""
        while shard.pending and not self._stopping.is_set():
            if time.monotonic() < shard.retry_at:
                return
            self._discard_expired(shard)
            if not shard.pending:
                return
            size = shard.splits[0] if shard.splits else self.mapping.batch_size
            # A short first batch waits for the batching window; retries and splits never do.
            fresh = not shard.splits and not shard.attempts and not shard.closed
            waited = time.monotonic() - (shard.first_pending_at or 0.0)
            if fresh and len(shard.pending) < size and waited < self.mapping.batching_window_seconds:
                return
            batch = shard.pending[:size]
            invocation = self.invoke({"Records": batch})
            first_failed = failed_records(batch, invocation, self.mapping.report_batch_item_failures)
            if first_failed is None:
                self._advance(shard, len(batch))
                continue
            if first_failed > 0:  # the records before the lowest failure succeeded
                self._advance(shard, first_failed, keep_attempts=True)
                batch = batch[first_failed:]
                if shard.splits:
                    shard.splits[0] = len(batch)
            elif invocation.error is not None and self.mapping.bisect_on_error and len(batch) > 1:
                half = math.ceil(len(batch) / 2)
                shard.splits[:1] = [half, len(batch) - half]
                continue  # a split consumes no retry attempt
            shard.attempts += 1
            retries = self.mapping.maximum_retry_attempts
            if retries != -1 and shard.attempts > retries:
                self._discard(shard, len(batch), "RetryAttemptsExhausted", invocation)
                continue
            backoff = RETRY_BACKOFF_SECONDS[min(shard.attempts, len(RETRY_BACKOFF_SECONDS)) - 1]
            shard.retry_at = time.monotonic() + backoff
            return

    def _advance(self, shard: Shard, count: int, keep_attempts: bool = False) -> None:
        """Move the checkpoint past the first ``count`` pending records."""
        for record in shard.pending[:count]:
            shard.read_at.pop(record["dynamodb"]["SequenceNumber"], None)
        del shard.pending[:count]
        if shard.splits and not keep_attempts:
            shard.splits.pop(0)
        if not keep_attempts:
            shard.attempts = 0
            shard.retry_at = 0.0
        shard.first_pending_at = time.monotonic() if shard.pending else None

    def _age(self, shard: Shard, record: dict[str, Any]) -> float:
        created = float(record["dynamodb"].get("ApproximateCreationDateTime", 0))
        read = shard.read_at.get(record["dynamodb"]["SequenceNumber"], created)
        return time.time() - max(created, read)

    def _discard_expired(self, shard: Shard) -> None:
        """Records past MaximumRecordAgeInSeconds (or the stream's retention) leave unprocessed."""
        limit = self.mapping.maximum_record_age_seconds
        limit = STREAM_RETENTION_SECONDS if limit == -1 else limit
        expired = 0
        while expired < len(shard.pending) and self._age(shard, shard.pending[expired]) > limit:
            expired += 1
        if expired:
            self._discard(shard, expired, "RecordAgeExceeded", None)

    def _discard(self, shard: Shard, count: int, condition: str, invocation: Any) -> None:
        batch = shard.pending[:count]
        record = self.invocation_record(shard.shard_id, batch, condition, invocation, shard.attempts)
        self.discarded.append(record)
        destination = self.mapping.on_failure_arn
        if destination and destination.startswith("arn:aws:sqs:"):
            queue_url = queue_url_for(self._sqs, destination)
            self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
        elif destination:
            LOG.warning("%s: on-failure destination %s is not an SQS queue", self.mapping.uuid, destination)
        LOG.warning(
            "%s: discarded %d records of %s (%s)", self.mapping.uuid, len(batch), shard.shard_id, condition
        )
        self._advance(shard, count)

    def invocation_record(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str, invocation: Any, attempts: int
    ) -> dict[str, Any]:
        """What Lambda sends an on-failure destination for a discarded stream batch."""

        def arrival(record: dict[str, Any]) -> str:
            seconds = float(record["dynamodb"].get("ApproximateCreationDateTime", 0))
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if invocation is not None and invocation.error is not None:
            response["functionError"] = "Unhandled"
        now = datetime.now(UTC)
        return {
            "requestContext": {
                "requestId": invocation.request_id if invocation is not None else str(uuid.uuid4()),
                "functionArn": self.mapping.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": response,
            "version": "1.0",
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": arrival(batch[0]),
                "approximateArrivalOfLastRecord": arrival(batch[-1]),
                "batchSize": len(batch),
                "streamArn": self.mapping.source_arn,
            },
        }
