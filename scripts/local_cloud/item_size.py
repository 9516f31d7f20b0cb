"""DynamoDB's item size and write units, computed the way AWS documents them.

"Item sizes and formats" (Amazon DynamoDB Developer Guide): an item's size is the sum of its
attribute names' UTF-8 lengths and its values' sizes; a string is its UTF-8 length; a number is
about one byte per two significant digits plus one; binary is its length; a boolean or null is one
byte; a list or map takes 3 bytes plus one per element beside its elements' sizes; a set is the sum
of its members. "Read/write capacity mode": a standard write costs one write unit per KB (1,024
bytes, rounded up) of the larger of the item before and after it; a transactional write costs two.
Used by the benchmarks and the tests that bound the conversation record.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

WRITE_UNIT_BYTES = 1024


def _number_size(text: str) -> int:
    # Leading and trailing zeros are trimmed: 1,700,000,000,000 has two significant digits.
    digits = "".join(map(str, Decimal(text).as_tuple().digits)).strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's JSON form ({"S": ...}, {"L": [...]}, ...)."""
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        raw = content if isinstance(content, bytes) else base64.b64decode(content)
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(member).encode("utf-8")) for member in content)
    if kind == "NS":
        return sum(_number_size(str(member)) for member in content)
    if kind == "BS":
        return sum(len(m if isinstance(m, bytes) else base64.b64decode(m)) for m in content)
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in content)
    if kind == "M":
        return 3 + sum(
            len(name.encode("utf-8")) + value_size(element) + 1 for name, element in content.items()
        )
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: dict[str, Any]) -> int:
    """Bytes of an item in DynamoDB's JSON form (as GetItem returns it)."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(
    before: dict[str, Any] | None, after: dict[str, Any] | None, transactional: bool = False
) -> int:
    """Write units one write of an item costs: the larger of its old and new size, per KB."""
    size = max(item_size(before) if before else 0, item_size(after) if after else 0)
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return units * 2 if transactional else units
