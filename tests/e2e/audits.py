"""Pure checks the security suite runs on what the e2e session left behind: log lines and policies.

Kept free of the emulator so unit tests can prove each check fails on a planted leak or wildcard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

# A full E.164 number: '+', 8-15 digits, not part of a longer run and not masked with '*'.
PHONE = re.compile(r"(?<![0-9*])\+[1-9][0-9]{7,14}(?![0-9*])")
MIN_BODY_CHARS = 12

# Actions that have no resource-level permissions, so AWS requires "Resource": "*" for them.
ACTIONS_REQUIRING_STAR_RESOURCE = {
    "xray:puttracesegments": "X-Ray's write API has no resource-level permissions",
    "xray:puttelemetryrecords": "X-Ray's write API has no resource-level permissions",
    "xray:getsamplingrules": "X-Ray sampling reads have no resource-level permissions",
    "xray:getsamplingtargets": "X-Ray sampling reads have no resource-level permissions",
    "cloudwatch:putmetricdata": "PutMetricData has no resource-level permissions",
}


@dataclass(frozen=True)
class Leak:
    source: str
    line_number: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line_number}: {self.kind}: {self.excerpt}"


def find_leaks(
    lines: Iterable[tuple[str, int, str]], secrets: Iterable[str], bodies: Iterable[str]
) -> list[Leak]:
    """Every (source, line number, text) line carrying a full phone number, a secret or a message body.

    The excerpt names what leaked without repeating it whole, so the report is not a leak itself.
    """
    secret_values = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)
    body_values = sorted({b for b in bodies if len(b) > MIN_BODY_CHARS}, key=len, reverse=True)
    found: list[Leak] = []
    for source, number, text in lines:
        for match in PHONE.finditer(text):
            found.append(Leak(source, number, "phone number", _hint(match.group())))
        found.extend(Leak(source, number, "secret value", _hint(s)) for s in secret_values if s in text)
        found.extend(Leak(source, number, "message body", _hint(b)) for b in body_values if b in text)
    return found


def _hint(value: str) -> str:
    return f"{value[:4]}...({len(value)} chars)"


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (secret payloads are JSON objects)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def policy_document(raw: Any) -> dict[str, Any]:
    """IAM answers documents as dicts, or URL-encoded JSON text depending on the client and API."""
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    try:
        parsed: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        parsed = json.loads(unquote(text))
    return parsed


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def identity_policy_findings(where: str, document: Mapping[str, Any]) -> list[str]:
    """Wildcards in an identity policy that AWS does not require."""
    found: list[str] = []
    for index, statement in enumerate(statements(document)):
        label = f"{where} statement {statement.get('Sid') or index}"
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement or "NotResource" in statement:
            found.append(f"{label}: NotAction/NotResource grants everything not listed")
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        for action in actions:
            if action == "*" or action.endswith(":*") or "*" in action.split(":", 1)[-1]:
                found.append(f"{label}: wildcard action {action!r}")
        resources = [str(r) for r in _as_list(statement.get("Resource"))]
        if "*" in resources:
            unexplained = [a for a in actions if a not in ACTIONS_REQUIRING_STAR_RESOURCE]
            if unexplained:
                found.append(f"{label}: Resource '*' for {unexplained}, which AWS can scope to ARNs")
    return found


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any("*" in _as_list(v) for v in principal.values())
    return False


def resource_policy_findings(
    where: str, document: Mapping[str, Any], account_root: str | None = None
) -> list[str]:
    """Resource policies (key, topic, queue, function): no open principal without a condition.

    In a key policy "Resource": "*" means the key itself, so it is fine; "kms:*" is fine only for
    the account root (the documented default that keeps the key administrable).
    """
    found: list[str] = []
    for index, statement in enumerate(statements(document)):
        label = f"{where} statement {statement.get('Sid') or index}"
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if _is_everyone(principal) and not statement.get("Condition"):
            found.append(f"{label}: Principal '*' without a condition")
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        wildcard = [a for a in actions if a == "*" or a.endswith(":*")]
        if wildcard:
            admins = _as_list(principal.get("AWS")) if isinstance(principal, Mapping) else []
            if not (account_root and admins == [account_root] and wildcard == ["kms:*"]):
                found.append(f"{label}: wildcard action {wildcard} for {principal!r}")
    return found
