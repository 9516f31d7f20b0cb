"""A small evaluator for the CloudWatch Logs JSON filter patterns the Terraform declares.

Only the subset used there: `{ $.path = "string" && $.other = 123 }`: equality on dotted paths,
joined by &&. Anything else is refused rather than guessed.
"""

import json
import re
from typing import Any

_TERM = re.compile(
    r'^\$\.(?P<path>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)$'
)

Condition = tuple[tuple[str, ...], Any]


class FilterPatternError(ValueError):
    pass


def parse_pattern(pattern: str) -> list[Condition]:
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise FilterPatternError("not a JSON filter pattern")
    body = text[1:-1].strip()
    if not body or "||" in body:
        raise FilterPatternError("only non-empty && conjunctions are supported")
    conditions: list[Condition] = []
    for term in body.split("&&"):
        match = _TERM.match(term.strip())
        if match is None:
            raise FilterPatternError(f"unsupported term: {term.strip()!r}")
        conditions.append((tuple(match["path"].split(".")), json.loads(match["value"])))
    return conditions


def matches(conditions: list[Condition], event: dict[str, Any]) -> bool:
    for path, expected in conditions:
        value: Any = event
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        if value != expected:
            return False
    return True
