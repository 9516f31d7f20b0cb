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
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch a message, with its current status

Accounts are registered with the fake (``add_account`` or ``POST /fake/accounts``). Basic auth must be
a registered AccountSid with its auth token, and the path's AccountSid the authenticated one, else 401
with error 20003 (https://www.twilio.com/docs/errors/20003: "Using the wrong combination of Account SID
and Auth Token", "Using subaccount credentials to access master account"). Requests are then checked
against Twilio's rules (``fakes.twilio_rules``: 21604, 21603, 21602, 21655, 21656, 21658, 21617,
21910) and the scripted refusals (21610, 21611, 20429, ...), in the legacy or the RFC 9457 error format.
Each accepted message then lives its statuses and StatusCallback requests (``fakes.twilio_lifecycle``).

WhatsApp's customer service window (https://support.twilio.com/hc/en-us/articles/360038232293: a
session "lasts for 24 hours from the most recently received message"): the fake learns when a customer
last wrote from ``customer_wrote`` / ``POST /fake/inbound`` (the tests play the customer). A free-form
WhatsApp message (Body or media, no ContentSid) to a customer who has not written within 24 hours is
accepted (201) and ends ``undelivered`` with ErrorCode 63016; templates are sent at any time.

Control routes besides the shared ones (see ``fakes.http_base``):

    POST /fake/accounts   {"account_sid": "AC...", "auth_token": "...", "signing_key_sid": "HK...",
                           "signing_key": "..."}   register credentials (a signing key is optional)
    POST /fake/inbound    {"from": "whatsapp:+44...", "to": "whatsapp:+1415...", "at": "<ISO-8601>"}
                          the customer (from) wrote to the company number (to); "at" defaults to now
    POST /fake/refusals   {"code": 21610, "to": "...", "from": "...", "count": 2, "format": "problem",
                           "status": 400}   refuse matching sends (to/from optional, count: null = always)
    POST /fake/outcomes   {"status": "undelivered", "error_code": 63016, "to": "...", "count": 1}
                          how matching messages end: failed / undelivered (with an error_code) /
                          sent / delivered / read
    POST /fake/config     {"status_interval_seconds": 0.05, "callback_timeout_seconds": 15}
    GET  /fake/messages   every accepted message, oldest first, with its current status
    GET  /fake/callbacks  every StatusCallback request made: url, form, headers, http_status or error
    POST /fake/faults     also takes {"code": 21611, "format": "problem"} (Twilio error code and format)

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from fakes.http_base import (
    HOST,
    ControlError,
    ControlRoute,
    FakeServer,
    Fault,
    JsonObject,
    Reply,
    Request,
    run_cli,
    utc_now_iso,
)
from fakes.twilio_lifecycle import API_VERSION, Lifecycle, Step, Tracked, applied, plan, rfc2822
from fakes.twilio_rules import (
    ACCOUNT_SID,
    FORMATS,
    TwilioError,
    channel,
    content_variables_error,
    create_error,
)

DEFAULT_PORT = 8081
PORT_ENV = "AI_COMMS_TWILIO_FAKE_PORT"
# https://support.twilio.com/hc/en-us/articles/360038232293 (error 63016): 24 hours from the customer's
# most recent message.
WHATSAPP_WINDOW = timedelta(hours=24)
DEFAULT_STATUS_INTERVAL_SECONDS = 0.05
# DESIGN.md: "a webhook gets 15 s in all".
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 15.0
OUTCOME_STATUSES = ("failed", "undelivered", "sent", "delivered", "read")

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")


def twilio_error(status: int, code: int, message: str) -> Reply:
    """A legacy-format Twilio error (kept for callers of the old helper)."""
    return TwilioError(status, code, message).reply()


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


@dataclass
class _Rule:
    """A scripted refusal or outcome for the sends it matches (to / from; None matches any)."""

    to: str | None
    from_: str | None
    remaining: int | None
    refusal: TwilioError | None = None
    format: str = "legacy"
    outcome: Step | None = None

    def matches(self, to: str, from_: str) -> bool:
        return (self.to is None or self.to == to) and (self.from_ is None or self.from_ == from_)


class TwilioFake(FakeServer):
    name: ClassVar[str] = "twilio-fake"

    def __init__(
        self,
        port: int = 0,
        *,
        verbose: bool = False,
        host: str = HOST,
        accounts: dict[str, str] | None = None,
        status_interval_seconds: float = DEFAULT_STATUS_INTERVAL_SECONDS,
        callback_timeout_seconds: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(port, verbose=verbose, host=host)
        self._lock = threading.Lock()
        self._accounts: dict[str, str] = {}
        self._signing_keys: dict[str, tuple[str, str]] = {}
        self._resources: dict[str, JsonObject] = {}
        self._accepted: list[JsonObject] = []
        self._inbound: dict[tuple[str, str], datetime] = {}
        self._refusals: list[_Rule] = []
        self._outcomes: list[_Rule] = []
        self.lifecycle = Lifecycle(status_interval_seconds, callback_timeout_seconds)
        for sid, token in (accounts or {}).items():
            self.add_account(sid, token)

    def start(self) -> Self:
        super().start()
        self.lifecycle.start()
        return self

    def stop(self) -> None:
        self.lifecycle.stop()
        super().stop()

    # in-process control -----------------------------------------------------------------------------

    def add_account(
        self, account_sid: str, auth_token: str, signing_key: tuple[str, str] | None = None
    ) -> None:
        """Credentials the API accepts: Basic auth with this AccountSid and auth token. With a webhook
        signing key (its sid and secret) the account's StatusCallback requests are signed with it."""
        if not ACCOUNT_SID.match(account_sid):
            raise ValueError("account_sid must match ^AC[0-9a-fA-F]{32}$")
        if not auth_token:
            raise ValueError("auth_token must not be empty")
        if signing_key is not None and not all(signing_key):
            raise ValueError("a signing key needs its sid and its secret")
        with self._lock:
            self._accounts[account_sid] = auth_token
            if signing_key is None:
                self._signing_keys.pop(account_sid, None)
            else:
                self._signing_keys[account_sid] = signing_key

    def customer_wrote(self, customer: str, company: str, at: datetime | None = None) -> None:
        """The customer (``whatsapp:+44...``) wrote to the company address: opens the 24-hour window."""
        with self._lock:
            self._inbound[(customer, company)] = at or datetime.now(UTC)

    def refuse(
        self,
        code: int,
        *,
        to: str | None = None,
        from_: str | None = None,
        count: int | None = None,
        format: str = "legacy",
        status: int | None = None,
    ) -> None:
        """Answer matching sends with Twilio error ``code`` (21610, 21611, 20429, ...), ``count`` times
        (None: until reset), in the legacy or the RFC 9457 ("problem") format."""
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")
        if count is not None and count < 1:
            raise ValueError("count must be positive")
        rule = _Rule(to, from_, count, refusal=TwilioError.of(code, status=status), format=format)
        with self._lock:
            self._refusals.append(rule)

    def set_outcome(
        self,
        status: str,
        *,
        error_code: int | None = None,
        to: str | None = None,
        from_: str | None = None,
        count: int | None = None,
    ) -> None:
        """How matching messages end: failed or undelivered (with an ErrorCode), or sent/delivered/read."""
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"status must be one of {', '.join(OUTCOME_STATUSES)}")
        if (status in ("failed", "undelivered")) != (error_code is not None):
            raise ValueError("failed and undelivered need an error_code; other statuses take none")
        if count is not None and count < 1:
            raise ValueError("count must be positive")
        with self._lock:
            self._outcomes.append(_Rule(to, from_, count, outcome=Step(status, error_code)))

    def configure(
        self, *, status_interval_seconds: float | None = None, callback_timeout_seconds: float | None = None
    ) -> None:
        if status_interval_seconds is not None:
            if status_interval_seconds < 0:
                raise ValueError("status_interval_seconds must be non-negative")
            self.lifecycle.interval_seconds = float(status_interval_seconds)
        if callback_timeout_seconds is not None:
            if callback_timeout_seconds <= 0:
                raise ValueError("callback_timeout_seconds must be positive")
            self.lifecycle.callback_timeout_seconds = float(callback_timeout_seconds)

    def messages(self) -> list[JsonObject]:
        with self._lock:
            return [dict(message) for message in self._accepted]

    def message(self, sid: str) -> JsonObject | None:
        """The message resource as a fetch returns it now."""
        with self._lock:
            resource = self._resources.get(sid)
            return dict(resource) if resource is not None else None

    def callbacks(self) -> list[JsonObject]:
        return self.lifecycle.callbacks()

    def reset_state(self) -> None:
        self.lifecycle.clear()
        with self._lock:
            self._resources.clear()
            self._accepted.clear()
            self._inbound.clear()
            self._refusals.clear()
            self._outcomes.clear()

    def control_routes(self) -> dict[tuple[str, str], ControlRoute]:
        return {
            ("GET", "/fake/messages"): lambda _: Reply(200, self.messages()),
            ("GET", "/fake/callbacks"): lambda _: Reply(200, self.callbacks()),
            ("POST", "/fake/accounts"): self._control_accounts,
            ("POST", "/fake/inbound"): self._control_inbound,
            ("POST", "/fake/refusals"): self._control_refusals,
            ("POST", "/fake/outcomes"): self._control_outcomes,
            ("POST", "/fake/config"): self._control_config,
        }

    def _control_accounts(self, request: Request) -> Reply:
        payload = _object(request, {"account_sid", "auth_token", "signing_key_sid", "signing_key"})
        sid, token = payload.get("account_sid"), payload.get("auth_token")
        if not isinstance(sid, str) or not isinstance(token, str):
            raise ControlError('expected {"account_sid": "AC...", "auth_token": "..."}')
        key_sid, key = payload.get("signing_key_sid"), payload.get("signing_key")
        if key_sid is None and key is None:
            self.add_account(sid, token)
        elif isinstance(key_sid, str) and isinstance(key, str):
            self.add_account(sid, token, (key_sid, key))
        else:
            raise ControlError("signing_key_sid and signing_key are strings, given together")
        return Reply(200, {"account_sid": sid})

    def _control_inbound(self, request: Request) -> Reply:
        payload = _object(request, {"from", "to", "at"})
        customer, company, at = payload.get("from"), payload.get("to"), payload.get("at")
        if not isinstance(customer, str) or not isinstance(company, str):
            raise ControlError('expected {"from": "<customer address>", "to": "<company address>"}')
        when = None
        if at is not None:
            if not isinstance(at, str):
                raise ControlError("at must be an ISO-8601 timestamp")
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ControlError("at needs a time zone")
        self.customer_wrote(customer, company, when)
        return Reply(200, {"from": customer, "to": company})

    def _control_refusals(self, request: Request) -> Reply:
        payload = _object(request, {"code", "to", "from", "count", "format", "status"})
        code = payload.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            raise ControlError('expected {"code": <Twilio error code>, ...}')
        self.refuse(
            code,
            to=_optional_str(payload, "to"),
            from_=_optional_str(payload, "from"),
            count=_optional_int(payload, "count"),
            format=str(payload.get("format", "legacy")),
            status=_optional_int(payload, "status"),
        )
        return Reply(200, {"refusals": len(self._refusals)})

    def _control_outcomes(self, request: Request) -> Reply:
        payload = _object(request, {"status", "error_code", "to", "from", "count"})
        status = payload.get("status")
        if not isinstance(status, str):
            raise ControlError('expected {"status": "failed|undelivered|sent|delivered|read", ...}')
        self.set_outcome(
            status,
            error_code=_optional_int(payload, "error_code"),
            to=_optional_str(payload, "to"),
            from_=_optional_str(payload, "from"),
            count=_optional_int(payload, "count"),
        )
        return Reply(200, {"outcomes": len(self._outcomes)})

    def _control_config(self, request: Request) -> Reply:
        payload = _object(request, {"status_interval_seconds", "callback_timeout_seconds"})
        values = {}
        for key in ("status_interval_seconds", "callback_timeout_seconds"):
            value = payload.get(key)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ControlError(f"{key} must be a number")
            values[key] = value
        self.configure(**values)
        return Reply(
            200,
            {
                "status_interval_seconds": self.lifecycle.interval_seconds,
                "callback_timeout_seconds": self.lifecycle.callback_timeout_seconds,
            },
        )

    # errors -----------------------------------------------------------------------------------------

    def error_reply(self, status: int, message: str | None = None) -> Reply:
        return TwilioError.for_status(status, message).reply()

    def check_fault(self, fault: Fault) -> None:
        if fault.error is not None:
            raise ValueError("the Twilio fake takes a Twilio error code (code) and format, not an error name")
        if fault.format is not None and fault.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}")

    def fault_reply(self, fault: Fault) -> Reply:
        if fault.body is not None:
            return super().fault_reply(fault)
        if fault.code is not None:
            error = TwilioError.of(fault.code, status=fault.status)
        else:
            error = TwilioError.for_status(fault.status if fault.status is not None else 500)
        return error.reply(fault.format or "legacy")

    # API --------------------------------------------------------------------------------------------

    def handle_api(self, request: Request) -> Reply:
        if match := _MESSAGES.match(request.path):
            if request.method != "POST":
                return self.error_reply(405, "Method not allowed")
            return self._authorized(request, match["account"]) or self._create(request, match["account"])
        if match := _MESSAGE.match(request.path):
            if request.method != "GET":
                return self.error_reply(405, "Method not allowed")
            return self._authorized(request, match["account"]) or self._fetch(match["account"], match["sid"])
        return TwilioError.of(20404, f"The requested resource {request.path} was not found").reply()

    def _authorized(self, request: Request, account_sid: str) -> Reply | None:
        credentials = basic_auth(request.header("authorization"))
        with self._lock:
            token = self._accounts.get(credentials[0]) if credentials is not None else None
        # errors/20003: the AccountSid and auth token must be a registered pair, and the path's
        # AccountSid the authenticated account.
        if credentials is None or token is None or not secrets.compare_digest(token, credentials[1]):
            return TwilioError.of(20003).reply()
        if credentials[0] != account_sid:
            return TwilioError.of(20003).reply()
        return None

    def _fetch(self, account_sid: str, sid: str) -> Reply:
        resource = self.message(sid)
        if resource is None or resource["account_sid"] != account_sid:
            path = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
            return TwilioError.of(20404, f"The requested resource {path} was not found").reply()
        return Reply(200, resource)

    def _scripted(self, rules: list[_Rule], to: str, from_: str) -> _Rule | None:
        with self._lock:
            for rule in rules:
                if rule.matches(to, from_):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            rules.remove(rule)
                    return rule
        return None

    def _window_open(self, customer: str, company: str) -> bool:
        with self._lock:
            if company:
                wrote = self._inbound.get((customer, company))
            else:  # a Messaging Service picks the sender: any of the customer's conversations
                wrote = max((at for (c, _), at in self._inbound.items() if c == customer), default=None)
        return wrote is not None and datetime.now(UTC) - wrote <= WHATSAPP_WINDOW

    def _create(self, request: Request, account_sid: str) -> Reply:
        form = request.form()
        instance = request.path

        def first(name: str) -> str:
            values = form.get(name)
            return values[0] if values else ""

        if problem := create_error(form):
            return problem.reply("legacy", instance)
        to, from_, body = first("To"), first("From"), first("Body")
        service_sid, content_sid = first("MessagingServiceSid"), first("ContentSid")
        refusal = self._scripted(self._refusals, to, from_)
        if refusal is not None and refusal.refusal is not None:
            return refusal.refusal.reply(refusal.format, instance)
        content_variables: Any = None
        if first("ContentVariables") and content_variables_error(first("ContentVariables")) is None:
            content_variables = json.loads(first("ContentVariables"))

        scripted = self._scripted(self._outcomes, to, from_)
        template = bool(content_sid)
        window_open = channel(to) != "whatsapp" or template or self._window_open(to, from_)
        steps = plan(to, template, scripted.outcome if scripted else None, window_open)

        sid = "SM" + secrets.token_hex(16)
        now = rfc2822()
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
            # "Outbound Message Status in Status Callbacks": created "queued" without a Messaging
            # Service, "accepted" with one (the service picks the sender).
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
            "status": resource["status"],
            "error_code": None,
        }
        with self._lock:
            token = self._accounts[account_sid]
            signing_key = self._signing_keys.get(account_sid)
            self._accepted.append(accepted)
            self._resources[sid] = resource
            reply_body = dict(resource)

        def apply(step: Step) -> JsonObject:
            with self._lock:
                applied(resource, step)
                accepted["status"], accepted["error_code"] = step.status, resource["error_code"]
                return dict(resource)

        self.lifecycle.track(
            Tracked(sid, token, accepted["status_callback"], steps, apply, signing_key=signing_key)
        )
        return Reply(201, reply_body, log={"message_sid": sid})


def _object(request: Request, allowed: set[str]) -> JsonObject:
    payload = request.json()
    if not isinstance(payload, dict):
        raise ControlError("expected a JSON object")
    unknown = set(payload) - allowed
    if unknown:
        raise ControlError(f"unknown keys: {', '.join(sorted(unknown))}")
    return payload


def _optional_str(payload: JsonObject, key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise ControlError(f"{key} must be a string")
    return value


def _optional_int(payload: JsonObject, key: str) -> int | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ControlError(f"{key} must be an integer")
    return value


def wait_for_status(fake: TwilioFake, sid: str, status: str, timeout: float = 5.0) -> JsonObject:
    """Poll a message until it reaches ``status`` (tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        resource = fake.message(sid)
        if resource is not None and resource["status"] == status:
            return resource
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sid} is {resource and resource['status']}, not {status}, after {timeout} s")
        time.sleep(0.02)


def main() -> None:
    run_cli(
        TwilioFake,
        default_port=DEFAULT_PORT,
        port_env=PORT_ENV,
        description="Fake Twilio Messages API on 127.0.0.1.",
    )


if __name__ == "__main__":
    main()
