"""Lambda event filtering (an event source mapping's ``FilterCriteria``), as the runner plays it.

Lambda's filter patterns are the EventBridge pattern subset its documentation lists ("Control which
events Lambda sends to your function"); a record is delivered when it matches at least one of the
mapping's filters (up to five), and dropped otherwise: for a stream the checkpoint simply moves past
it, for SQS the message is deleted. Supported, per key of a pattern:

* nested objects: ``{"dynamodb": {"NewImage": {"status": {"S": ["open"]}}}}`` (every key must match);
* a list of alternatives, any of which may match: exact values (strings, numbers, booleans,
  ``null``, ``""``), ``{"prefix": ...}``, ``{"suffix": ...}``, ``{"equals-ignore-case": ...}``,
  ``{"exists": true|false}``, ``{"anything-but": value | [values] | {"prefix"|"suffix": ...}}``,
  ``{"numeric": [">", 0, "<=", 5]}`` (numeric strings count as numbers: DynamoDB's ``N``);
* a list in the record matches when any of its elements does.

For SQS, Lambda matches ``body`` as JSON when the body is a JSON object and as a plain string
otherwise; ``sqs_filter_view`` gives that view of an SQS record. A pattern that is not valid JSON,
or uses an operator outside this list, is an error at discovery (Lambda rejects it at
CreateEventSourceMapping), never a silent pass.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_MISSING = object()
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "exists", "anything-but", "numeric"})


class InvalidPattern(ValueError):
    """A filter pattern Lambda would refuse."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _numeric(value: Any, conditions: Sequence[Any]) -> bool:
    number = _number(value)
    if number is None:
        return False
    pairs = list(zip(conditions[::2], conditions[1::2], strict=True))
    return all(_COMPARISONS[symbol](number, float(bound)) for symbol, bound in pairs)


def _anything_but(value: Any, excluded: Any) -> bool:
    if isinstance(excluded, dict):
        return not any(_rule(value, {name: inner}) for name, inner in excluded.items())
    options = excluded if isinstance(excluded, list) else [excluded]
    return not any(_equal(value, option) for option in options)


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return value is expected
    if isinstance(expected, int | float):
        number = _number(value) if not isinstance(value, str) else None
        return number is not None and number == float(expected)
    return isinstance(value, str) and value == expected


def _rule(value: Any, rule: Any) -> bool:
    """One alternative of a leaf list against one value (``_MISSING`` when the key is absent)."""
    if not isinstance(rule, dict):
        return value is not _MISSING and _equal(value, rule)
    [(name, argument)] = rule.items()
    if name == "exists":
        return (value is not _MISSING) == bool(argument)
    if value is _MISSING:
        return False  # every other operator, anything-but included, needs the key present
    if name == "prefix":
        return isinstance(value, str) and value.startswith(str(argument))
    if name == "suffix":
        return isinstance(value, str) and value.endswith(str(argument))
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(argument).lower()
    if name == "anything-but":
        return _anything_but(value, argument)
    if name == "numeric":
        return _numeric(value, argument)
    raise InvalidPattern(f"unsupported filter operator {name!r}")


def _leaf(value: Any, alternatives: list[Any]) -> bool:
    if isinstance(value, list):
        if any(isinstance(rule, dict) and "exists" in rule for rule in alternatives):
            return any(_rule(value, rule) for rule in alternatives)
        return any(_rule(element, rule) for element in value for rule in alternatives)
    return any(_rule(value, rule) for rule in alternatives)


def matches(pattern: dict[str, Any], data: Any) -> bool:
    """True when ``data`` (a record as the function would receive it) matches ``pattern``."""
    for key, expected in pattern.items():
        value = data.get(key, _MISSING) if isinstance(data, dict) else _MISSING
        if isinstance(expected, dict):
            if not matches(expected, value if isinstance(value, dict) else {}):
                return False
        elif not _leaf(value, expected):
            return False
    return True


def _validate(pattern: Any, where: str = "") -> None:
    if not isinstance(pattern, dict) or not pattern:
        raise InvalidPattern(f"pattern{where} must be a non-empty JSON object")
    for key, expected in pattern.items():
        if isinstance(expected, dict):
            _validate(expected, f"{where}.{key}")
            continue
        if not isinstance(expected, list) or not expected:
            raise InvalidPattern(f"pattern{where}.{key} must be an object or a non-empty list")
        for rule in expected:
            if isinstance(rule, dict):
                if len(rule) != 1 or next(iter(rule)) not in _OPERATORS:
                    raise InvalidPattern(f"pattern{where}.{key}: unsupported rule {json.dumps(rule)}")
                name, argument = next(iter(rule.items()))
                if name == "numeric" and (len(argument) % 2 or not argument):
                    raise InvalidPattern(f"pattern{where}.{key}: numeric takes operator/value pairs")
            elif isinstance(rule, list):
                raise InvalidPattern(f"pattern{where}.{key}: nested lists are not a pattern")


@dataclass(frozen=True)
class RecordFilter:
    """A mapping's filters: no filters lets everything through."""

    patterns: tuple[dict[str, Any], ...] = ()

    @classmethod
    def parse(cls, filter_criteria: dict[str, Any] | None) -> RecordFilter:
        patterns = []
        for entry in (filter_criteria or {}).get("Filters", []) or []:
            try:
                pattern = json.loads(entry.get("Pattern", ""))
            except ValueError as error:
                raise InvalidPattern(f"filter pattern is not JSON: {entry.get('Pattern')!r}") from error
            _validate(pattern)
            patterns.append(pattern)
        return cls(tuple(patterns))

    def accepts(self, data: Any) -> bool:
        return not self.patterns or any(matches(pattern, data) for pattern in self.patterns)


def sqs_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """An SQS record as Lambda's filters see it: a JSON object body parsed, any other body a string."""
    try:
        body = json.loads(record.get("body", ""))
    except ValueError:
        return record
    return {**record, "body": body} if isinstance(body, dict) else record
