"""The benchmarks' view of one function's AWS calls, through its CallCounter (local_cloud.accounting).

Every call is timed at the proxy (forward to answer: the service's time, without the SDK's own
work) and noted with the DynamoDB table and key it names. While ``metering`` is on, each DynamoDB
write also has every item it touches read right before and right after it (strongly consistent
GetItems of the bench's own, not counted as the function's calls), which gives the write units it
costs (local_cloud.write_units). Metering adds those reads to the function's latency: latencies are
measured with it off.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from local_cloud.http_proxy import Answer, Request
from local_cloud.write_units import WRITE_OPERATIONS, Item, ItemWrite, touches

# (table, key) -> the item, or None when there is none.
type ItemReader = Callable[[str, Item], Item | None]


@dataclass(frozen=True)
class Call:
    function: str
    operation: str
    started: float  # time.monotonic()
    ms: float
    status: int
    table: str | None = None
    key: Item | None = None
    writes: tuple[ItemWrite, ...] = ()

    def names(self, text: str) -> bool:
        """Whether the call's key holds ``text`` (a conversation id, a customer's number)."""
        return self.key is not None and text in json.dumps(self.key)


class CallTap:
    """``counter.observe(tap)``: records the calls of ``function``."""

    def __init__(self, function: str, reader: ItemReader, key_schemas: Mapping[str, Sequence[str]]) -> None:
        self.function = function
        self._read = reader
        self._key_schemas = key_schemas
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self.metering = False

    def __call__(self, operation: str, request: Request, send: Callable[[], Answer]) -> Answer:
        body = _json(request.body) if operation.startswith("dynamodb.") else None
        touched = (
            touches(operation, body, self._key_schemas)
            if self.metering and body is not None and operation in WRITE_OPERATIONS
            else []
        )
        befores = [self._read(t.table, t.key) for t in touched]
        started = time.monotonic()
        answer = send()
        ms = (time.monotonic() - started) * 1000
        # A refused write (a failed condition, a cancelled transaction) is billed too, at the item's size.
        afters = [self._read(t.table, t.key) for t in touched] if answer.status == 200 else befores
        writes = tuple(
            ItemWrite(t.table, t.key, t.action, t.transactional, before, after)
            for t, before, after in zip(touched, befores, afters, strict=True)
        )
        table = body.get("TableName") if body else None
        key = body.get("Key") if body else None
        call = Call(
            self.function,
            operation,
            started,
            ms,
            answer.status,
            str(table) if table else None,
            key if isinstance(key, dict) else None,
            writes,
        )
        with self._lock:
            self._calls.append(call)
        return answer

    def mark(self) -> int:
        """Where the calls from now on start (for ``since``)."""
        with self._lock:
            return len(self._calls)

    def since(self, mark: int) -> list[Call]:
        with self._lock:
            return list(self._calls[mark:])


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def dynamodb_reader(dynamodb: Any) -> ItemReader:
    def read(table: str, key: Item) -> Item | None:
        item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item is not None else None

    return read


def key_schemas(dynamodb: Any, tables: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each table's key attribute names, partition key first."""
    schemas = {}
    for table in tables:
        schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        ordered = sorted(schema, key=lambda entry: entry["KeyType"] != "HASH")
        schemas[table] = tuple(str(entry["AttributeName"]) for entry in ordered)
    return schemas


@dataclass(frozen=True)
class ExtraCalls:
    """What some of a path's calls (a check) add to it, over ``sends`` runs of the path."""

    calls_per_send: float
    extra_per_send: float
    extra_by_operation: dict[str, float]
    extra_by_function: dict[str, float]
    # Each extra call's time, and each run's latency with the time of its own extra calls taken out.
    extra_ms: list[float]
    path_ms_without: list[float]


def extra_calls(
    calls: Sequence[Call], is_extra: Callable[[Call], bool], latencies: Mapping[str, float], sends: int
) -> ExtraCalls:
    """``latencies``: each run's latency by the text its calls name (the customer's number)."""
    extra = [call for call in calls if is_extra(call)]
    by_operation: dict[str, float] = {}
    by_function: dict[str, float] = {}
    for call in extra:
        by_operation[call.operation] = by_operation.get(call.operation, 0) + 1
        by_function[call.function] = by_function.get(call.function, 0) + 1
    without = [ms - sum(call.ms for call in extra if call.names(marker)) for marker, ms in latencies.items()]
    return ExtraCalls(
        calls_per_send=round(len(calls) / sends, 2),
        extra_per_send=round(len(extra) / sends, 2),
        extra_by_operation={op: round(count / sends, 2) for op, count in sorted(by_operation.items())},
        extra_by_function={fn: round(count / sends, 2) for fn, count in sorted(by_function.items())},
        extra_ms=[call.ms for call in extra],
        path_ms_without=without,
    )
