"""``moto_server`` with DynamoDB's per-item atomicity, which the engine's conditional writes rely on.

moto's server answers requests on many threads, and its DynamoDB backend takes no lock: UpdateItem
reads the item, checks the condition, evaluates the update expression and then writes. Two
concurrent updates of one item can therefore both pass a condition meant to admit only one (two
reply processors taking one lease), or one's ``list_append`` can overwrite the other's (a webhook's
inbound message lost from the history while its ``inbound_seq`` counts it). AWS applies each item
write atomically. Here every DynamoDB item operation holds one lock, so each is atomic as in AWS;
that costs little, since moto runs under one interpreter lock anyway.

Run as ``python moto_atomic.py -H 127.0.0.1 -p 5000`` (the arguments of ``moto_server``).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "transact_write_items",
)
_LOCK = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def patch() -> None:
    for name in _ITEM_OPERATIONS:
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))


if __name__ == "__main__":
    patch()
    main(sys.argv[1:])
