"""Masks personal data before it reaches a log line: customers' numbers and message bodies."""

import re

_DIGITS = re.compile(r"\d")


def mask_address(address: str | None) -> str:
    """'whatsapp:+447700900123' -> 'whatsapp:+44*******23': enough to correlate, not to identify."""
    if not address:
        return ""
    prefix, _, number = address.rpartition(":")
    head = prefix + ":" if prefix else ""
    if len(number) <= 5:
        return head + "*" * len(number)
    return head + number[:3] + _DIGITS.sub("*", number[3:-2]) + number[-2:]


def mask_body(body: str | None) -> str:
    return f"<{len(body or '')} chars>"
