"""Opaque page cursors: the store's position, base64url JSON, checked on the way back in.

A cursor is only ever a position inside what the request may read anyway (its own tenant and
status, its own conversation): one naming anything else, or not decoding, is a 400 and never reaches
DynamoDB as a start key it would refuse.
"""

import base64
import binascii
import json

from ai_comms.errors import BadRequest

_MAX_VALUE_CHARS = 1024


def encode(position: dict[str, str]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _invalid() -> BadRequest:
    return BadRequest(
        "invalid cursor", details=[{"field": "query.cursor", "message": "not a cursor this request gave"}]
    )


def decode(cursor: str, fields: tuple[str, ...], expected: dict[str, str]) -> dict[str, str]:
    """The position a cursor names: exactly `fields`, all strings, agreeing with `expected`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise _invalid() from error
    if not isinstance(data, dict) or sorted(data) != sorted(fields):
        raise _invalid()
    if not all(isinstance(value, str) and 0 < len(value) <= _MAX_VALUE_CHARS for value in data.values()):
        raise _invalid()
    if any(data[name] != value for name, value in expected.items()):
        raise _invalid()
    return {str(name): str(value) for name, value in data.items()}
