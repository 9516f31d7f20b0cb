"""What the local cloud's loopback proxies share: a threaded HTTP/1.1 server, one request forwarded.

The proxies (accounting.CallCounter per function, dynamodb_front.DynamoDBFront) read a request
whole, decide what to do with it and either answer it themselves or forward its bytes upstream and
relay the answer. AWS SDK requests are small JSON or form bodies, so nothing is streamed.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from local_cloud.processes import Managed

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")
UPSTREAM_TIMEOUT = 60.0


def signing_scope(headers: Any) -> tuple[str, str]:
    """(region, service) of the request's SigV4 credential scope; ("", "unknown") when unsigned."""
    found = _SERVICE.search(headers.get("Authorization", ""))
    return (found.group(1), found.group(2)) if found else ("", "unknown")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Any  # http.client.HTTPMessage: case-insensitive get()
    body: bytes


def forward(
    upstream: str, request: Request, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> Answer:
    """Send ``request`` to ``upstream`` and relay the answer; ``body`` and ``headers`` replace its own."""
    parts = urlsplit(upstream)
    payload = request.body if body is None else body
    replaced = {name.lower() for name in headers or {}}
    sent = {
        name: value
        for name, value in request.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() not in replaced
    }
    sent.update(headers or {})
    sent["Content-Length"] = str(len(payload))
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connection = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT)
    try:
        connection.request(request.method, request.path, payload, sent)
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


class LoopbackProxy(Managed):
    """A ThreadingHTTPServer on 127.0.0.1 (port 0: a free one) calling ``serve`` for every request.

    Subclasses implement ``serve``: the answer, or None when the client should get none (it is
    gone, or the proxy is stopping).
    """

    def __init__(self, name: str, port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, request: Request) -> Answer | None:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: the headers and the body are two writes; with Nagle's algorithm a keep-alive
            # client waits for its own delayed ACK (~40 ms) before the body arrives.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = proxy.serve(Request(self.command, self.path, self.headers, body))
                if answer is None:
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    # A client that timed out (an injected delay) has hung up: nobody to answer.
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
