"""API Gateway's REST front as a WSGI app around a Lambda handler, for tools that speak HTTP to an app
in process (schemathesis): the x-api-key checked against known keys (else API Gateway's own 403,
the function never invoked), the request turned into the proxy event, the proxy answer into HTTP."""

import base64
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from .conversations_support import api_event
from .lambda_context import FakeContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class ApiGatewayWsgi:
    def __init__(self, handler: Handler, key_ids: dict[str, str]) -> None:
        self._handler = handler
        self._key_ids = dict(key_ids)
        self.invocations = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            name[5:].replace("_", "-").title(): str(value)
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = str(environ["CONTENT_TYPE"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        key_id = self._key_ids.get(headers.get("X-Api-Key", ""))
        if key_id is None:
            return self._reply(
                start_response, 403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}'
            )
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True))
        try:
            text = body.decode("utf-8") if body else None
            encoded = False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        event = api_event(
            str(environ["REQUEST_METHOD"]),
            str(environ.get("PATH_INFO") or "/"),
            query or None,
            headers=headers,
            key_id=key_id,
            raw=text,
            base64_body=encoded,
        )
        self.invocations += 1
        answer = self._handler(event, FakeContext())
        out = {name: values[-1] for name, values in (answer.get("multiValueHeaders") or {}).items()}
        out.update(answer.get("headers") or {})
        raw = answer.get("body") or ""
        payload = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        return self._reply(start_response, int(answer["statusCode"]), out, payload)

    @staticmethod
    def _reply(
        start_response: Callable[..., Any], status: int, headers: dict[str, str], body: bytes
    ) -> list[bytes]:
        start_response(f"{status} {'OK' if status < 400 else 'Refused'}", list(headers.items()))
        return [body]
