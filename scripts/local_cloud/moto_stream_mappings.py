"""``moto_server`` that records Lambda event source mappings of DynamoDB streams it does not hold.

The local cloud's DynamoDB is DynamoDB Local (local_cloud.dynamodb_local), not moto's: a table's
stream ARN (``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>``, as the DynamoDB
front reports it) names a table moto has never seen, and moto 5.2.5's
``create_event_source_mapping`` looks the ARN up among its own queues, DynamoDB streams and
Kinesis streams and answers ``ResourceNotFoundException: Invalid EventSourceArn`` otherwise. So a
``terraform apply`` with a stream mapping would fail on moto although AWS accepts it.

Here a DynamoDB stream ARN that moto's own DynamoDB Streams does not list is recorded the way moto
records a mapping of one of its own streams (same model, same validation of the function and the
batch size, ``StartingPosition`` and every other setting kept), only not attached to a moto table,
which would never see a write anyway. moto never runs a mapping (no Docker); the local runner reads
this record and plays it against DynamoDB Local (local_cloud.dynamodb_stream_poller).

Applied by local_cloud.moto_server, the emulator's entry point.
"""

from __future__ import annotations

import re
from typing import Any

from moto.awslambda.models import EventSourceMapping, LambdaBackend
from moto.dynamodbstreams.models import dynamodbstreams_backends

STREAM_ARN = re.compile(r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[A-Za-z0-9_.-]{3,255}/stream/[^/]+")
_create = LambdaBackend.create_event_source_mapping


def _moto_holds(backend: LambdaBackend, arn: str) -> bool:
    streams = dynamodbstreams_backends[backend.account_id][backend.region_name]
    return any(stream["StreamArn"] == arn for stream in streams.list_streams())


def create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> EventSourceMapping:
    arn = str(spec.get("EventSourceArn") or "")
    if not STREAM_ARN.fullmatch(arn) or not spec.get("FunctionName") or _moto_holds(self, arn):
        return _create(self, spec)
    function = self._lambdas.get_function_by_name_or_arn_with_qualifier(spec["FunctionName"])
    mapping = EventSourceMapping(  # type: ignore[abstract]  # moto instantiates it the same way
        {
            **spec,
            "RegionName": self.region_name,
            "AccountId": self.account_id,
            "FunctionArn": function.function_arn,
        }
    )
    self._event_source_mappings[mapping.uuid] = mapping
    return mapping


def patch() -> None:
    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign]
