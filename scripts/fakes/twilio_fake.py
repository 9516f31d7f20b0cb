"""A fake of Twilio's Programmable Messaging API (2010-04-01 Messages), driven by the real ``twilio`` SDK.

twilio 9.x builds every URL from the domain's ``base_url`` (``https://api.twilio.com`` for the Api
domain) and hands the absolute URL to ``client.http_client.request``; with no edge or region set,
``Client.get_hostname`` leaves it untouched. So either of these points the SDK at the fake:

* an ``HttpClient`` that rewrites the URL prefix, which covers every domain the client touches::

      class RewritingHttpClient(TwilioHttpClient):
          def request(self, method, url, *args, **kwargs):
              url = url.replace("https://api.twilio.com", fake.url, 1)
              return super().request(method, url, *args, **kwargs)

      client = Client(account_sid, auth_token, http_client=RewritingHttpClient())

* or the Api domain's base URL on an existing client: ``client.api.base_url = fake.url``.

API routes:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json         send (form body) -> 201 message
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch an accepted message

Basic auth is checked as Twilio does for account credentials: the user must be the AccountSid in
the path and the password a non-empty token, otherwise 401 with error 20003. Validation errors use
Twilio's codes: 21604 (no To), 21603 (neither From nor MessagingServiceSid), 21602 (neither Body
nor ContentSid), 21617 (Body over 1600 characters), 21656 (ContentVariables not a JSON object).
Injected faults answer Twilio's error JSON (429 -> 20429, 500 -> 20500, ...).

Control routes besides the shared ones (see ``fakes.http_base``):

    GET  /fake/messages   every accepted message, oldest first

Run stand-alone with ``python -m fakes.twilio_fake --port 8081``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from typing import Any, ClassVar

from fakes.http_base import ControlRoute, FakeServer, JsonObject, Reply, Request, run_cli, utc_now_iso

DEFAULT_PORT = 8081
PORT_ENV = "AI_COMMS_TWILIO_FAKE_PORT"
API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")

_ERRORS: dict[int, tuple[int, str]] = {
    400: (20400, "Bad Request"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


def twilio_error(status: int, code: int, message: str) -> Reply:
    return Reply(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def rfc2822_now() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())


def num_segments(to: str, body: str) -> int:
    """SMS segment count (GSM-7 153/160, UCS-2 67/70); WhatsApp messages are never split."""
    if to.startswith("whatsapp:") or not body:
        return 1
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class TwilioFake(FakeServer):
    name: ClassVar[str] = "twilio-fake"

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        super().__init__(port, verbose=verbose)
        self._lock = threading.Lock()
        self._resources: dict[str, JsonObject] = {}
        self._accepted: list[JsonObject] = []

    # in-process control -----------------------------------------------------------------------------

    def messages(self) -> list[JsonObject]:
        with self._lock:
            return [dict(message) for message in self._accepted]

    def reset_state(self) -> None:
        with self._lock:
            self._resources.clear()
            self._accepted.clear()

    def control_routes(self) -> dict[tuple[str, str], ControlRoute]:
        return {("GET", "/fake/messages"): lambda _: Reply(200, self.messages())}

    # API --------------------------------------------------------------------------------------------

    def error_reply(self, status: int, message: str | None = None) -> Reply:
        code, default_message = _ERRORS.get(status, (20000 + status, "Error"))
        return twilio_error(status, code, message or default_message)

    def handle_api(self, request: Request) -> Reply:
        if match := _MESSAGES.match(request.path):
            if request.method != "POST":
                return self.error_reply(405, "Method not allowed")
            return self._authorized(request, match["account"]) or self._create(request, match["account"])
        if match := _MESSAGE.match(request.path):
            if request.method != "GET":
                return self.error_reply(405, "Method not allowed")
            return self._authorized(request, match["account"]) or self._fetch(match["account"], match["sid"])
        return self.error_reply(404, f"The requested resource {request.path} was not found")

    def _authorized(self, request: Request, account_sid: str) -> Reply | None:
        credentials = basic_auth(request.header("authorization"))
        if credentials is None or credentials[0] != account_sid or not credentials[1]:
            return self.error_reply(401)
        return None

    def _fetch(self, account_sid: str, sid: str) -> Reply:
        with self._lock:
            resource = self._resources.get(sid)
        if resource is None or resource["account_sid"] != account_sid:
            return self.error_reply(
                404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}"
                f"/Messages/{sid}.json was not found",
            )
        return Reply(200, resource)

    def _create(self, request: Request, account_sid: str) -> Reply:
        form = request.form()

        def first(name: str) -> str:
            values = form.get(name)
            return values[0] if values else ""

        to, from_, body = first("To"), first("From"), first("Body")
        service_sid, content_sid = first("MessagingServiceSid"), first("ContentSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service_sid:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not content_sid and not form.get("MediaUrl"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        content_variables: Any = None
        if first("ContentVariables"):
            try:
                content_variables = json.loads(first("ContentVariables"))
            except ValueError:
                content_variables = None
            if not isinstance(content_variables, dict):
                return twilio_error(400, 21656, "The ContentVariables Parameter is invalid.")

        sid = "SM" + secrets.token_hex(16)
        now = rfc2822_now()
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        media_urls = form.get("MediaUrl", [])
        resource: JsonObject = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": service_sid or None,
            "num_media": str(len(media_urls)),
            "num_segments": str(num_segments(to, body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": to,
            "uri": uri,
        }
        accepted: JsonObject = {
            "sid": sid,
            "account_sid": account_sid,
            "to": to,
            "from": from_ or None,
            "body": body,
            "content_sid": content_sid or None,
            "content_variables": content_variables,
            "messaging_service_sid": service_sid or None,
            "media_urls": media_urls,
            "status_callback": first("StatusCallback") or None,
            "received_at": utc_now_iso(),
        }
        with self._lock:
            self._resources[sid] = resource
            self._accepted.append(accepted)
        return Reply(201, resource, log={"message_sid": sid})


def main() -> None:
    run_cli(
        TwilioFake,
        default_port=DEFAULT_PORT,
        port_env=PORT_ENV,
        description="Fake Twilio Messages API on 127.0.0.1.",
    )


if __name__ == "__main__":
    main()
