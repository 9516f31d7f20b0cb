"""DynamoDB plumbing on the low-level client (the resource API costs cold start): attribute values,
transactions, condition failures."""

import uuid
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in data.items() if v is not None}


def to_value(value: Any) -> Any:
    return _serializer.serialize(_to_dynamo(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


class TransactionCancelled(Exception):
    """DynamoDB cancelled a transaction; ``reasons`` holds one code per item, in order.

    "None" for an item that was fine, "ConditionalCheckFailed" for a failed condition,
    "TransactionConflict" when another write raced it: the codes DynamoDB documents for
    TransactWriteItems' CancellationReasons.
    """

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("transaction cancelled: " + ", ".join(reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"

    @property
    def conflict(self) -> bool:
        return "TransactionConflict" in self.reasons


def transact_write(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    """One TransactWriteItems. The client request token makes the SDK's own retries of this call
    idempotent: a write applied whose answer was lost is not refused by its own conditions."""
    try:
        dynamodb.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as error:
        if error.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        reasons = [str(r.get("Code") or "None") for r in error.response.get("CancellationReasons") or []]
        raise TransactionCancelled(reasons) from error


def condition_failed(error: ClientError) -> bool:
    return bool(error.response["Error"]["Code"] == "ConditionalCheckFailedException")
