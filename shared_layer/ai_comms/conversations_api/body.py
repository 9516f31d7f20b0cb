"""The request body before the resolver reads it: bounded, decoded, JSON or nothing.

Powertools validates the body against the route's model before any route code runs, and reads it
through a lenient base64 decode: so the size limit (413), a body flagged base64 that is not, bytes
that are not UTF-8, and a content type that is not JSON (400) are settled here, on the raw event,
and never become a 500 inside the resolver.
"""

import base64
import binascii
from typing import Any

from ai_comms.errors import BadRequest, PayloadTooLarge, RequestError
from ai_comms.http_errors import json_response

JSON = "application/json"


def _content_type(headers: dict[str, Any]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "content-type":
            return str(value)
    return None


def prepared(event: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The event with its body as plain JSON text (or none); RequestError when it cannot be one."""
    body = event.get("body")
    if not body:
        return {**event, "body": None, "isBase64Encoded": False}
    # A base64 body is 4/3 of its bytes: refuse one that cannot fit before decoding it.
    if len(body) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeError) as error:
        raise BadRequest(
            "body is not UTF-8 JSON", details=[{"field": "body", "message": "a JSON object is required"}]
        ) from error
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body larger than {max_bytes} bytes")
    headers = dict(event.get("headers") or {})
    content_type = _content_type(headers)
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() != JSON:
        raise BadRequest(
            "body must be application/json",
            details=[{"field": "header.content-type", "message": "must be application/json"}],
        )
    return {**event, "body": text, "isBase64Encoded": False}


def refusal(error: RequestError) -> dict[str, Any]:
    """The proxy answer of a refusal made before the resolver ran, in the resolver's own shape."""
    body: dict[str, Any] = {"message": error.message}
    if error.code is not None:
        body["error"] = error.code
    if error.details is not None:
        body["errors"] = error.details
    response = json_response(error.status_code, body)
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": JSON},
        "body": response.body,
        "isBase64Encoded": False,
    }
