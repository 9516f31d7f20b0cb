"""API Gateway REST (v1) semantics the local API front reproduces: route matching, the Lambda proxy
event, and mapping the proxy response back to HTTP.

Handlers parse these events with Powertools' APIGatewayProxyEvent, so the shape follows what API
Gateway really sends (header casing kept, ``null`` rather than ``{}`` for absent parts, base64 bodies
only for the API's binary media types).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from local_cloud.discovery import RouteRecord

MISSING_TOKEN = {"message": "Missing Authentication Token"}
FORBIDDEN = {"message": "Forbidden"}
INTERNAL_ERROR = {"message": "Internal server error"}
TOO_LARGE = {"message": "Request Too Long"}
# API Gateway's payload quota.
MAX_REQUEST_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RouteMatch:
    route: RouteRecord
    path_parameters: dict[str, str]


def match_template(template: str, path: str) -> dict[str, str] | None:
    """Match ``/a/{id}/{proxy+}``-style resource paths; return the path parameters or None."""
    wanted = [part for part in template.split("/") if part]
    actual = [part for part in path.split("/") if part]
    parameters: dict[str, str] = {}
    for index, part in enumerate(wanted):
        if part.startswith("{") and part.endswith("+}"):
            if index >= len(actual):
                return None
            parameters[part[1:-2]] = "/".join(actual[index:])
            return parameters
        if index >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = actual[index]
        elif part != actual[index]:
            return None
    return parameters if len(actual) == len(wanted) else None


def _specificity(route: RouteRecord) -> tuple[int, int, int]:
    # API Gateway prefers literal segments over {param}, and {param} over {proxy+}.
    parts = [part for part in route.resource_path.split("/") if part]
    greedy = sum(part.endswith("+}") for part in parts)
    params = sum(part.startswith("{") for part in parts)
    return (greedy, params, -len(parts))


def find_route(routes: list[RouteRecord], stage: str, method: str, path: str) -> RouteMatch | None:
    """Pick the most specific resource for ``path`` in ``stage``; an exact method beats ANY."""
    candidates = sorted((r for r in routes if r.stage == stage), key=_specificity)
    for route in candidates:
        parameters = match_template(route.resource_path, path)
        if parameters is None:
            continue
        same_resource = [
            r for r in candidates if r.api_id == route.api_id and r.resource_path == route.resource_path
        ]
        for wanted in (method, "ANY"):
            for candidate in same_resource:
                if candidate.method == wanted:
                    return RouteMatch(candidate, parameters)
        return None
    return None


def is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in binary_media_types)


def _single_and_multi(
    pairs: list[tuple[str, str]],
) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(name, []).append(value)
    return single, multi


@dataclass(frozen=True)
class HttpRequest:
    method: str
    stage: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str


def build_proxy_event(
    request: HttpRequest,
    match: RouteMatch,
    account_id: str,
    api_key: str | None,
    api_key_id: str | None = None,
) -> dict[str, Any]:
    """The event API Gateway sends an AWS_PROXY Lambda integration.

    identity.apiKey and apiKeyId only on routes that require a key ("API Gateway mapping template
    and access logging variable reference", $context.identity.apiKey: "for methods that don't
    require an API key, this variable is null")."""
    headers = [*request.headers, ("X-Forwarded-Proto", "http")]
    single_headers, multi_headers = _single_and_multi(headers)
    query_single, query_multi = _single_and_multi(parse_qsl(request.query, keep_blank_values=True))
    lowered = {name.lower(): value for name, value in headers}
    route = match.route
    binary = is_binary(lowered.get("content-type"), route.binary_media_types)
    if not request.body:
        body: str | None = None
    elif binary:
        body = base64.b64encode(request.body).decode("ascii")
    else:
        body = request.body.decode("utf-8", errors="replace")
    now = time.time()
    return {
        "resource": route.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query_single,
        "multiValueQueryStringParameters": query_multi,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": route.api_id,
            "stage": request.stage,
            "path": f"/{request.stage}{request.path}",
            "resourcePath": route.resource_path,
            "httpMethod": request.method,
            "domainName": lowered.get("host", ""),
            "domainPrefix": lowered.get("host", "").split(".", 1)[0].split(":", 1)[0],
            "protocol": request.protocol,
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": lowered.get("user-agent"),
                "apiKey": api_key,
                "apiKeyId": api_key_id,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": body,
        "isBase64Encoded": bool(body) and binary,
    }


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, payload: dict[str, Any]) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def proxy_response(result: Any) -> HttpResponse:
    """Translate the handler's proxy result; a malformed one is a 502, as in API Gateway."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        return json_response(502, INTERNAL_ERROR)
    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values)
    multi_names = {name.lower() for name, _ in headers}
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in multi_names:
            headers.append((name, str(value)))
    raw_body = result.get("body") or ""
    if not isinstance(raw_body, str):
        return json_response(502, INTERNAL_ERROR)
    try:
        body = base64.b64decode(raw_body) if result.get("isBase64Encoded") else raw_body.encode("utf-8")
    except ValueError:
        return json_response(502, INTERNAL_ERROR)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(result["statusCode"], headers, body)
