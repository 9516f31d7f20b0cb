"""The API Gateway stand-in: one HTTP server serving every discovered REST API at /<stage>/<path>.

moto records REST APIs but has no execute-api data plane, so this server does the hop API Gateway
does: route, check the API key, build the proxy event, invoke the function, map the answer. Stage
names are Terraform workspaces, so the APIs of several workspaces share one port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_cloud.apigw_events import (
    FORBIDDEN,
    INTERNAL_ERROR,
    MAX_REQUEST_BYTES,
    MISSING_TOKEN,
    TOO_LARGE,
    HttpRequest,
    HttpResponse,
    build_proxy_event,
    find_route,
    json_response,
    proxy_response,
)
from local_cloud.discovery import RouteRecord
from local_cloud.worker import Throttled

LOG = logging.getLogger(__name__)
InvokeFn = Callable[[str, Any], Any]
"""(function ARN, event) -> the Invocation; failures are reported through ``.error``; raises
``Throttled`` when the function has no free execution environment (answered 429, as API Gateway
answers a throttled Lambda)."""
THROTTLED = {"message": "Rate Exceeded"}
# (api id, stage, presented key) -> the key's id when a usage plan of that stage holds it, else None.
KeyCheckFn = Callable[[str, str, str], str | None]
"""(api id, stage, presented key) -> whether a usage plan of that stage admits the key."""
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def check_stage_conflicts(routes: list[RouteRecord]) -> None:
    """Two APIs under one stage name would make /<stage>/... ambiguous on a shared port."""
    owners: dict[str, str] = {}
    for route in routes:
        owner = owners.setdefault(route.stage, route.api_id)
        if owner != route.api_id:
            raise ValueError(f"REST APIs {owner} and {route.api_id} both have a stage named {route.stage!r}")


class ApiFront:
    """Owns the server thread; ``handle`` is the pure request -> response part, easy to test."""

    def __init__(
        self,
        routes: list[RouteRecord],
        account_id: str,
        invoke: InvokeFn,
        key_id: KeyCheckFn,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
    ) -> None:
        check_stage_conflicts(routes)
        self.routes = routes
        self._account_id = account_id
        self._invoke = invoke
        self._key_id = key_id
        self._host = host
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="api-front", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def handle(self, request: HttpRequest) -> HttpResponse:
        if len(request.body) > MAX_REQUEST_BYTES:
            return json_response(413, TOO_LARGE)
        match = find_route(self.routes, request.stage, request.method, request.path)
        if match is None:
            return json_response(403, MISSING_TOKEN)
        api_key = next((value for name, value in request.headers if name.lower() == "x-api-key"), None)
        key_id = None
        if match.route.api_key_required:
            key_id = api_key and self._key_id(match.route.api_id, request.stage, api_key)
            if not key_id:
                return json_response(403, FORBIDDEN)
        event = build_proxy_event(request, match, self._account_id, api_key if key_id else None, key_id)
        try:
            invocation = self._invoke(match.route.function_arn, event)
        except Throttled:
            throttled = json_response(429, THROTTLED)
            throttled.headers.append(("x-amzn-ErrorType", "TooManyRequestsException"))
            return throttled
        if invocation.error is not None:
            return json_response(502, INTERNAL_ERROR)
        return proxy_response(invocation.result)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: the headers and the body are two writes; with Nagle's algorithm a keep-alive
            # client waits for its own delayed ACK (~40 ms) before the body arrives.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BYTES:
                    self._send(json_response(413, TOO_LARGE))
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                target, _, query = self.path.partition("?")
                _, _, rest = target.partition("/")
                stage, _, path = rest.partition("/")
                request = HttpRequest(
                    method=self.command,
                    stage=stage,
                    path="/" + path,
                    query=query,
                    headers=list(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    protocol=self.request_version,
                )
                try:
                    response = front.handle(request)
                except Exception:
                    LOG.exception("API front failed on %s %s", self.command, self.path)
                    response = json_response(500, INTERNAL_ERROR)
                self._send(response)

            def _send(self, response: HttpResponse) -> None:
                self.send_response(response.status)
                for name, value in response.headers:
                    if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug("api %s", format % args)

        for method in HTTP_METHODS:
            setattr(Handler, f"do_{method}", Handler._serve)
        return Handler
