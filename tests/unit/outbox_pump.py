"""Plays the messages table's stream mapping in-process: new stream records to the outbox relay.

The relay handler runs exactly as Lambda would run it on the stream (the record shape of a DynamoDB
Streams event, ReportBatchItemFailures honoured: a failed record and every later one come again).
"""

import importlib
from datetime import datetime
from typing import Any

from .lambda_context import FakeContext


def lambda_stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it over: the source ARN added, times as epoch seconds."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


class OutboxPump:
    def __init__(self, dynamodb: Any, streams: Any, table: str) -> None:
        self._streams = streams
        self.stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        self._shard_id = shard["ShardId"]
        # The checkpoint: the last record read. Each pump asks for a fresh iterator after it, as a
        # consumer whose iterator expired would (moto swaps a table's stream object on a rolled-back
        # transaction, so an old iterator would read a shard that no longer is the table's).
        self._after: str | None = None
        self._pending: list[dict[str, Any]] = []
        self.handler: Any = None
        self.invocations: list[dict[str, Any]] = []

    def load(self) -> Any:
        """The relay's handler module, imported inside the mocked account as a fresh container would."""
        if self.handler is None:
            self.handler = importlib.reload(importlib.import_module("lambdas.outbox_relay.handler"))
        return self.handler

    def pump(self) -> int:
        """Deliver every record not yet relayed; returns how many the relay took."""
        self.load()
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._after}
            if self._after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self._streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=self._shard_id, **position
        )["ShardIterator"]
        while iterator is not None:
            answer = self._streams.get_records(ShardIterator=iterator)
            records = answer.get("Records", [])
            if not records:
                break
            self._pending.extend(lambda_stream_record(r, self.stream_arn) for r in records)
            self._after = records[-1]["dynamodb"]["SequenceNumber"]
            iterator = answer.get("NextShardIterator")
        if not self._pending:
            return 0
        event = {"Records": list(self._pending)}
        result = self.handler.lambda_handler(event, FakeContext())
        self.invocations.append(result)
        failures = [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]
        if not failures:
            taken = len(self._pending)
            self._pending = []
            return taken
        first = next(i for i, r in enumerate(self._pending) if r["dynamodb"]["SequenceNumber"] == failures[0])
        self._pending = self._pending[first:]
        return first
