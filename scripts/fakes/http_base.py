"""Plumbing shared by the fake OpenAI and fake Twilio servers.

Each fake is a standard-library ``ThreadingHTTPServer`` that runs on a daemon thread, so a test can
start one in-process on port 0 and the local runner can start one as ``python -m fakes.<name>``.
Both fakes offer the same control surface under ``/fake/``:

    POST /fake/faults   {"faults": [{"status": 500, "count": 2, "headers": {...}},
                                    {"delay_seconds": 3, "count": 1},
                                    {"status": 400, "body": {...}},
                                    {"error": "<a preset the fake names>"}]}
                        queues faults for the next API calls (``/fake/*`` is never faulted);
                        a fault with a delay and a failure sleeps, then fails; ``body`` is
                        answered as it is, ``error`` (and the fake's own keys, such as the
                        Twilio fake's ``code`` and ``format``) picks one of the fake's errors
    POST /fake/latency  {"seconds": 0.2}   delay added to every API call
    GET  /fake/requests every API call received, oldest first (Authorization header removed)
    POST /fake/reset    clears faults, latency, the request log and the fake's own state

Delays wait on the server's stop event, so ``stop()`` never hangs behind a sleeping request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024

type JsonObject = dict[str, Any]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fakes see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON; an empty body is ``{}``. Raises ValueError when malformed."""
        if not self.body.strip():
            return {}
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded, every value kept."""
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def parsed_body(self) -> Any:
        """Best-effort body for the request log: JSON, then form fields, then text."""
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return {key: values[0] if len(values) == 1 else values for key, values in self.form().items()}
        try:
            return self.json()
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


@dataclass
class Reply:
    """An HTTP answer; ``log`` fields are merged into this call's request-log entry."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    log: JsonObject = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Fault:
    """One injected failure or delay. ``error``, ``code`` and ``format`` are read by the fake itself
    (its error presets); ``body`` is answered as given; otherwise the fake's error for ``status``."""

    status: int | None
    delay_seconds: float
    count: int
    headers: dict[str, str]
    body: Any = None
    error: str | None = None
    code: int | None = None
    format: str | None = None

    @property
    def fails(self) -> bool:
        return self.status is not None or self.error is not None or self.code is not None

    @classmethod
    def parse(cls, raw: Any) -> Fault:
        if not isinstance(raw, dict):
            raise ValueError("each fault must be an object")
        unknown = set(raw) - {
            "status",
            "delay_seconds",
            "count",
            "headers",
            "body",
            "error",
            "code",
            "format",
        }
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        status = raw.get("status")
        delay = raw.get("delay_seconds", 0)
        count = raw.get("count", 1)
        headers = raw.get("headers", {})
        error, code, form = raw.get("error"), raw.get("code"), raw.get("format")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValueError("fault status must be an HTTP error status (400-599)")
        if not isinstance(delay, int | float) or delay < 0:
            raise ValueError("delay_seconds must be a non-negative number")
        if error is not None and not isinstance(error, str):
            raise ValueError("error must be the name of one of the fake's errors")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise ValueError("code must be an integer")
        if form is not None and not isinstance(form, str):
            raise ValueError("format must be a string")
        if "body" in raw and status is None:
            raise ValueError("a fault with a body needs a status")
        if not isinstance(count, int) or count < 1:
            raise ValueError("count must be a positive integer")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must map names to strings")
        fault = cls(
            status=status,
            delay_seconds=float(delay),
            count=count,
            headers=dict(headers),
            body=raw.get("body"),
            error=error,
            code=code,
            format=form,
        )
        if not fault.fails and fault.delay_seconds == 0:
            raise ValueError("a fault needs a status, an error, a delay_seconds, or a delay and a failure")
        return fault

    def one(self) -> Fault:
        return Fault(
            self.status,
            self.delay_seconds,
            1,
            dict(self.headers),
            self.body,
            self.error,
            self.code,
            self.format,
        )


class FaultQueue:
    """Faults consumed in order, one call at a time, each repeated ``count`` times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()

    def extend(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def take(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            head = self._faults[0]
            head.count -= 1
            if head.count == 0:
                self._faults.popleft()
            return head.one()

    def pending(self) -> int:
        with self._lock:
            return sum(fault.count for fault in self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JsonObject] = []

    def add(self, entry: JsonObject) -> JsonObject:
        with self._lock:
            self._entries.append(entry)
        return entry

    def update(self, entry: JsonObject, fields: JsonObject) -> None:
        with self._lock:
            entry.update(fields)

    def snapshot(self) -> list[JsonObject]:
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class ControlError(ValueError):
    """A malformed /fake/* request; answered with 400 and the message."""


type ControlRoute = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is a scenario the fakes create on purpose.
        # Anything else still deserves a traceback.
        if isinstance(sys.exception(), ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the headers and the body are two writes; with Nagle's algorithm a keep-alive
    # client waits for its own delayed ACK (~40 ms) before the body arrives.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.fake.verbose:
            super().log_message(format, *args)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(Reply(413, {"message": "request body too large"}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        self._send(self.server.fake._handle(request))

    def _send(self, reply: Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _dispatch
    do_POST = _dispatch
    do_DELETE = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch


class FakeServer:
    """A fake HTTP API on 127.0.0.1 (or ``host``) with faults, latency and a request log.

    Subclasses implement ``handle_api`` (every path outside ``/fake/``), ``error_reply`` (the
    service's own error shape, used for injected faults), and may add control routes and state.
    """

    name: ClassVar[str] = "fake"

    def __init__(self, port: int = 0, *, verbose: bool = False, host: str = HOST) -> None:
        # Another address only for callers outside this host's loopback (Lambda containers).
        self.host = host
        self._requested_port = port
        self.verbose = verbose
        self.faults = FaultQueue()
        self.requests = RequestLog()
        self._latency = 0.0
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"{self.name}-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise hold handler threads until the client hangs up.
        with self._state_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._state_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # in-process control (same effect as the /fake/* routes) ----------------------------------------

    def add_faults(self, *faults: JsonObject) -> None:
        parsed = [Fault.parse(raw) for raw in faults]
        for fault in parsed:
            self.check_fault(fault)
        self.faults.extend(parsed)

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be non-negative")
        self._latency = float(seconds)

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()
        self._latency = 0.0
        self.reset_state()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # subclass hooks ------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Reply:
        raise NotImplementedError

    def error_reply(self, status: int, message: str | None = None) -> Reply:
        raise NotImplementedError

    def check_fault(self, fault: Fault) -> None:
        """Refuse (ValueError) a fault naming an error this fake does not know."""
        if fault.error is not None or fault.code is not None or fault.format is not None:
            raise ValueError(f"{self.name} has no error presets, codes or formats")

    def fault_reply(self, fault: Fault) -> Reply:
        """The answer to an injected failure: its body as given, else the fake's error for its status."""
        status = fault.status if fault.status is not None else 500
        if fault.body is not None:
            return Reply(status, fault.body)
        return self.error_reply(status)

    def admission(self, request: Request) -> contextlib.AbstractContextManager[Reply | None]:
        """Held around the latency, faults and the API call: yields a refusal, or None to go on."""
        return contextlib.nullcontext()

    def control_routes(self) -> dict[tuple[str, str], ControlRoute]:
        return {}

    def reset_state(self) -> None:
        """Forget everything the fake API stored."""

    def log_fields(self, request: Request) -> JsonObject:
        """Extra fields for this call's request-log entry."""
        return {}

    # dispatch ------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Reply:
        if request.path == "/fake" or request.path.startswith("/fake/"):
            return self._handle_control(request)
        entry = self.requests.add(
            {
                "method": request.method,
                "path": request.path,
                "query": {key: values[0] for key, values in request.query.items()},
                "headers": {k: v for k, v in request.headers.items() if k != "authorization"},
                "body": request.parsed_body(),
                "timestamp": utc_now_iso(),
                **self.log_fields(request),
            }
        )
        with self.admission(request) as refused:
            if refused is not None:
                self.requests.update(entry, {"status": refused.status, **refused.log})
                return refused
            return self._serve(request, entry)

    def _serve(self, request: Request, entry: JsonObject) -> Reply:
        self.sleep(self._latency)
        fault = self.faults.take()
        if fault is not None:
            self.sleep(fault.delay_seconds)
            if fault.fails:
                reply = self.fault_reply(fault)
                reply.headers.update(fault.headers)
                self.requests.update(entry, {"status": reply.status, "fault": True})
                return reply
        try:
            reply = self.handle_api(request)
        except Exception as exc:  # an unexpected fake bug must surface as a 500, not a hung client
            reply = self.error_reply(500, f"{self.name} failed: {exc!r}")
        self.requests.update(entry, {"status": reply.status, **reply.log})
        return reply

    def _handle_control(self, request: Request) -> Reply:
        routes: dict[tuple[str, str], ControlRoute] = {
            ("POST", "/fake/faults"): self._control_faults,
            ("POST", "/fake/latency"): self._control_latency,
            ("GET", "/fake/requests"): lambda _: Reply(200, self.requests.snapshot()),
            ("POST", "/fake/reset"): self._control_reset,
            ("GET", "/fake/health"): lambda _: Reply(200, {"ok": True, "fake": self.name}),
            **self.control_routes(),
        }
        route = routes.get((request.method, request.path))
        if route is None:
            return Reply(404, {"error": f"no control route {request.method} {request.path}"})
        try:
            return route(request)
        except (ControlError, ValueError) as exc:
            return Reply(400, {"error": str(exc)})

    def _control_faults(self, request: Request) -> Reply:
        payload = request.json()
        raw = payload.get("faults") if isinstance(payload, dict) else None
        if not isinstance(raw, list):
            raise ControlError('expected {"faults": [...]}')
        self.add_faults(*raw)
        return Reply(200, {"pending": self.faults.pending()})

    def _control_latency(self, request: Request) -> Reply:
        payload = request.json()
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if not isinstance(seconds, int | float):
            raise ControlError('expected {"seconds": <number>}')
        self.set_latency(seconds)
        return Reply(200, {"seconds": self._latency})

    def _control_reset(self, _request: Request) -> Reply:
        self.reset()
        return Reply(200, {"reset": True})


def run_cli(
    factory: Callable[[int], FakeServer], *, default_port: int, port_env: str, description: str
) -> None:
    """``python -m fakes.<name>``: serve on 127.0.0.1 until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get(port_env) or default_port),
        help=f"port on {HOST} (default: ${port_env} or {default_port}; 0 picks a free port)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()

    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    fake = factory(args.port)
    fake.verbose = args.verbose
    fake.start()
    # One parseable line so a supervisor knows the port is bound (matters with --port 0).
    print(f"{fake.name} listening on {fake.url}", flush=True)
    while not done.wait(0.5):
        pass
    fake.stop()
