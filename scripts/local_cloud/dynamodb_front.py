"""The front of DynamoDB Local: what Terraform and the SDKs need of DynamoDB that it does not do.

A proxy on a loopback port between every DynamoDB and DynamoDB Streams client of the local cloud
(Terraform, the functions, the tests, the runner's stream pollers) and DynamoDB Local:

* it answers point-in-time recovery (``UpdateContinuousBackups``, ``DescribeContinuousBackups``)
  and tagging (``TagResource``, ``UntagResource``, ``ListTagsOfResource``) itself, keeping their
  state per table, because DynamoDB Local answers them ``UnknownOperationException`` and the
  provider's ``point_in_time_recovery`` blocks and ``default_tags`` call them on every table; tags
  given to ``CreateTable`` are kept too, and a table's state goes with ``DeleteTable``;
* it rewrites DynamoDB Local's ARNs (``arn:aws:dynamodb:ddblocal:000000000000:``) in answers to the
  request's region and the emulator's account, so ARNs agree with IAM policies and mappings in the
  emulator, and back in requests (``StreamArn``, shard iterators, table ARNs); likewise the
  ``awsRegion`` of stream records. A rewritten answer gets its ``x-amz-crc32`` recomputed, since
  the SDK checks it;
* everything else is forwarded byte for byte.

Nothing else is faked: items, conditions, transactions, indexes, TTL settings and streams are
DynamoDB Local's own.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_cloud.http_proxy import Answer, LoopbackProxy, Request, forward, signing_scope

LOCAL_REGION = "ddblocal"
LOCAL_ACCOUNT = "000000000000"
_LOCAL_ARN = f"arn:aws:dynamodb:{LOCAL_REGION}:{LOCAL_ACCOUNT}:".encode()
_LOCAL_RECORD_REGION = f'"awsRegion":"{LOCAL_REGION}"'.encode()
_API = "DynamoDB_20120810"
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
# AWS keeps 35 days of point-in-time recovery unless told otherwise.
DEFAULT_RECOVERY_DAYS = 35


@dataclass
class TableExtras:
    """What the front keeps for one table: its tags and its point-in-time recovery setting."""

    tags: dict[str, str] = field(default_factory=dict)
    pitr_enabled: bool = False
    pitr_since: float = 0.0
    recovery_period_days: int = DEFAULT_RECOVERY_DAYS

    def continuous_backups(self) -> dict[str, Any]:
        status = "ENABLED" if self.pitr_enabled else "DISABLED"
        description: dict[str, Any] = {"PointInTimeRecoveryStatus": status}
        if self.pitr_enabled:
            description.update(
                EarliestRestorableDateTime=self.pitr_since,
                LatestRestorableDateTime=max(self.pitr_since, time.time() - 300),
                RecoveryPeriodInDays=self.recovery_period_days,
            )
        return {"ContinuousBackupsStatus": "ENABLED", "PointInTimeRecoveryDescription": description}


def table_name(value: str) -> str:
    """A table name from a name or a table ARN (``arn:...:table/<name>[/...]``)."""
    if value.startswith("arn:"):
        return value.split(":", 5)[5].split("/")[1]
    return value


def json_answer(status: int, payload: dict[str, Any]) -> Answer:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Answer(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
        ],
        body,
    )


def error_answer(code: str, message: str) -> Answer:
    return json_answer(400, {"__type": _ERROR_PREFIX + code, "message": message})


class Refused(Exception):
    """An operation the front answers itself, refused with a DynamoDB error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = error_answer(code, message)


class DynamoDBFront(LoopbackProxy):
    """The proxy. ``url`` is the DynamoDB endpoint of the local cloud while it runs."""

    def __init__(self, upstream: str, account_id: str, port: int = 0) -> None:
        self.upstream = upstream
        self.account_id = account_id
        self._tables: dict[str, TableExtras] = {}
        self._lock = threading.Lock()
        super().__init__("dynamodb-front", port)
        self._own: dict[str, Callable[[Request, dict[str, Any]], dict[str, Any]]] = {
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
            "ListTagsOfResource": self._list_tags,
            "UpdateContinuousBackups": self._update_continuous_backups,
            "DescribeContinuousBackups": self._describe_continuous_backups,
        }
        # Requests may name the emulator's ARNs in any region (one shared database serves all).
        account = re.escape(account_id.encode())
        self._request_arn = re.compile(rb"arn:aws:dynamodb:[a-z0-9-]+:" + account + rb":")

    # -- the proxy ---------------------------------------------------------------------------------

    def serve(self, request: Request) -> Answer:
        target = request.headers.get("X-Amz-Target", "")
        api, _, operation = target.partition(".")
        region = signing_scope(request.headers)[0] or LOCAL_REGION
        if api == _API and operation in self._own:
            try:
                payload = json.loads(request.body or b"{}")
                return json_answer(200, self._own[operation](request, payload))
            except ValueError:
                return error_answer("SerializationException", "request body is not JSON")
            except Refused as refused:
                return refused.answer
        answer = self._forward(request, region)
        if api == _API and operation in {"CreateTable", "DeleteTable"} and answer.status == 200:
            self._after_table_change(operation, request)
        return answer

    def _forward(self, request: Request, region: str) -> Answer:
        body = self._request_arn.sub(_LOCAL_ARN, request.body)
        answer = forward(self.upstream, request, body)
        rewritten = answer.body.replace(
            _LOCAL_ARN, f"arn:aws:dynamodb:{region}:{self.account_id}:".encode()
        ).replace(_LOCAL_RECORD_REGION, f'"awsRegion":"{region}"'.encode())
        if rewritten == answer.body:
            return answer
        headers = [
            (name, str(zlib.crc32(rewritten) & 0xFFFFFFFF) if name.lower() == "x-amz-crc32" else value)
            for name, value in answer.headers
        ]
        return Answer(answer.status, headers, rewritten)

    def _after_table_change(self, operation: str, request: Request) -> None:
        payload = json.loads(request.body or b"{}")
        name = table_name(str(payload.get("TableName", "")))
        with self._lock:
            if operation == "DeleteTable":
                self._tables.pop(name, None)
            else:
                tags = {tag["Key"]: tag["Value"] for tag in payload.get("Tags", [])}
                self._tables[name] = TableExtras(tags=tags)

    def _existing(self, request: Request, name: str, code: str, message: str) -> TableExtras:
        """The table's extras; ``Refused(code, message)`` unless DynamoDB Local has the table."""
        answer = forward(
            self.upstream,
            request,
            json.dumps({"TableName": name}).encode(),
            {"X-Amz-Target": f"{_API}.DescribeTable"},
        )
        if answer.status != 200:
            raise Refused(code, message)
        with self._lock:
            return self._tables.setdefault(name, TableExtras())

    # -- tagging -------------------------------------------------------------------------------------

    def _tagged(self, request: Request, payload: dict[str, Any]) -> TableExtras:
        arn = str(payload.get("ResourceArn", ""))
        if not re.fullmatch(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}", arn):
            raise Refused("ValidationException", f"Invalid TableArn: {arn}")
        message = f"Requested resource not found: ResourceArn: {arn} not found"
        return self._existing(request, table_name(arn), "ResourceNotFoundException", message)

    def _tag_resource(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        extras = self._tagged(request, payload)
        with self._lock:
            extras.tags.update({tag["Key"]: tag["Value"] for tag in payload.get("Tags", [])})
        return {}

    def _untag_resource(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        extras = self._tagged(request, payload)
        with self._lock:
            for key in payload.get("TagKeys", []):
                extras.tags.pop(key, None)
        return {}

    def _list_tags(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        extras = self._tagged(request, payload)
        with self._lock:
            return {"Tags": [{"Key": key, "Value": value} for key, value in sorted(extras.tags.items())]}

    # -- point-in-time recovery ----------------------------------------------------------------------

    def _backups(self, request: Request, payload: dict[str, Any]) -> TableExtras:
        name = table_name(str(payload.get("TableName", "")))
        return self._existing(request, name, "TableNotFoundException", f"Table not found: {name}")

    def _update_continuous_backups(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        extras = self._backups(request, payload)
        specification = payload.get("PointInTimeRecoverySpecification") or {}
        if not isinstance(specification.get("PointInTimeRecoveryEnabled"), bool):
            raise Refused("ValidationException", "PointInTimeRecoveryEnabled is required")
        days = int(specification.get("RecoveryPeriodInDays") or DEFAULT_RECOVERY_DAYS)
        if not 1 <= days <= DEFAULT_RECOVERY_DAYS:
            raise Refused("ValidationException", "RecoveryPeriodInDays must be between 1 and 35")
        with self._lock:
            enabled = specification["PointInTimeRecoveryEnabled"]
            if enabled and not extras.pitr_enabled:
                extras.pitr_since = time.time()
            extras.pitr_enabled = enabled
            extras.recovery_period_days = days
            return {"ContinuousBackupsDescription": extras.continuous_backups()}

    def _describe_continuous_backups(self, request: Request, payload: dict[str, Any]) -> dict[str, Any]:
        extras = self._backups(request, payload)
        with self._lock:
            return {"ContinuousBackupsDescription": extras.continuous_backups()}
