"""Counts the AWS API calls each function makes: a forwarding proxy per function in front of the emulator.

Used by the benchmarks ("AWS API calls per webhook"): each worker's AWS_ENDPOINT_URL points at its
own proxy, so every call is attributed to exactly one function, and the SQS pollers (the runner's
own calls, which Lambda's event source mapping makes in AWS) are not counted.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def operation_of(headers: Any, body: bytes) -> str:
    """'dynamodb.GetItem' from the SigV4 scope and the X-Amz-Target header or the query Action."""
    found = _SERVICE.search(headers.get("Authorization", ""))
    service = found.group(1) if found else "unknown"
    target = headers.get("X-Amz-Target", "")
    if target:
        return f"{service}.{target.rsplit('.', 1)[-1]}"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return f"{service}.{action or 'unknown'}"


class CallCounter:
    """A proxy on a free loopback port that forwards to `upstream` and counts operations."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="call-counter", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CallCounter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        counter = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with counter._lock:
                    counter.calls[operation_of(self.headers, body)] += 1
                upstream = http.client.HTTPConnection(counter._host, counter._port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = upstream.getresponse()
                    payload = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Forward
