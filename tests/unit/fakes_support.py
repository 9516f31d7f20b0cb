"""Shared pieces of the fakes' tests: the fakes on port 0, the real SDKs pointed at them, raw HTTP calls
and a small server that receives Twilio's status callbacks."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from openai import OpenAI
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
COMPANY = "whatsapp:+14155550100"
CUSTOMER = "whatsapp:+447700900123"
CONTENT_SID = "HX" + "1" * 32


def call(
    base_url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Bearer sk-test")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until[T](probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def openai_fake() -> Iterator[OpenAIFake]:
    fake = OpenAIFake(port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    fake = TwilioFake(port=0, accounts={ACCOUNT_SID: AUTH_TOKEN}, status_interval_seconds=0.02).start()
    try:
        yield fake
    finally:
        fake.stop()


def ai_client(fake: OpenAIFake, *, max_retries: int = 0, timeout: float = 3.0) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=max_retries, timeout=timeout)


class RewritingHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Sends what the SDK addresses to https://api.twilio.com to the fake instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=3)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        url = url.replace("https://api.twilio.com", self.base_url, 1)
        return super().request(method, url, *args, **kwargs)


def twilio_client(fake: TwilioFake, account_sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> Client:
    return Client(account_sid, token, http_client=RewritingHttpClient(fake.url))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class CallbackServer:
    """A local endpoint for StatusCallback URLs: records every request, answers ``status``."""

    status: int = 204
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> CallbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
                owner.received.append(Received(self.path, dict(self.headers.items()), form))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, path: str = "/status") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def statuses(self) -> list[str]:
        return [r.form["MessageStatus"] for r in self.received]


@pytest.fixture
def callbacks() -> Iterator[CallbackServer]:
    server = CallbackServer().start()
    try:
        yield server
    finally:
        server.stop()
