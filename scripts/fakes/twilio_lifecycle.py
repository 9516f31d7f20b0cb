"""What happens to a message after the 201: its statuses over time and the StatusCallback requests.

Statuses (twilio_api_v2010.json ``message_enum_status``; "read" is WhatsApp only): a message created
with a From starts ``queued`` (no callback for the initial status: Twilio's "Outbound Message Status in
Status Callbacks" guide), then moves one step per ``interval`` seconds:

* WhatsApp: sent -> delivered -> read; SMS: sent -> delivered;
* ``failed`` (could not be sent, e.g. 63024, 63032) comes straight after queued; ``undelivered`` (a
  delivery receipt says it did not arrive, e.g. 63016) comes after sent; both carry an ErrorCode.

Each status after the first is POSTed (form-encoded) to the message's StatusCallback, signed as Twilio
signs webhooks: ``X-Twilio-Signature`` = ``twilio.request_validator.RequestValidator(auth_token)
.compute_signature(url, params)`` with the account's auth token. The fields are those Twilio sends for
messages: MessageSid, SmsSid, MessageStatus, SmsStatus, AccountSid, From, To, ApiVersion, ErrorCode when
failed or undelivered; for WhatsApp also ChannelPrefix, ChannelInstallSid, ChannelToAddress (the number,
last digits masked, as Twilio sends it), StructuredMessage on "sent" and EventType on
delivered/read/undelivered; MessagingServiceSid when the message has one. A callback that fails
(connection error, timeout, non-2xx) is logged and not retried: Twilio retries status callbacks only
when connection overrides on the URL ask for it, which this fake does not read.

The statuses of one message are applied (and their callbacks sent) in order; messages run side by side
on a few worker threads, so a slow callback endpoint delays only its own messages.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from fakes.http_base import JsonObject, utc_now_iso
from fakes.twilio_rules import DELIVERY_ERRORS, channel

API_VERSION = "2010-04-01"
WORKERS = 4


def rfc2822(at: float | None = None) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(at))


@dataclass
class Step:
    status: str
    error_code: int | None = None


@dataclass
class Tracked:
    """One accepted message: the steps still to come, and ``apply``, which records a step on the
    message (under its owner's lock) and returns the resource as it is now."""

    sid: str
    auth_token: str
    status_callback: str | None
    steps: list[Step]
    apply: Callable[[Step], JsonObject]
    generation: int = 0
    # The account's webhook signing key (sid, secret), when it has one: callbacks are then signed
    # with it (HMAC-SHA256) and carry X-Twilio-Webhooks-Signature-Settings naming it.
    signing_key: tuple[str, str] | None = None


def applied(resource: JsonObject, step: Step, now: float | None = None) -> None:
    """A step's effect on a message resource (twilio_api_v2010.json api.v2010.account.message)."""
    stamp = rfc2822(now)
    resource["status"] = step.status
    resource["date_updated"] = stamp
    if step.status == "sent":
        resource["date_sent"] = stamp
    if step.error_code is not None:
        # "error_code: The error code returned if the Message status is failed or undelivered";
        # error_message: "The description of the error_code".
        resource["error_code"] = step.error_code
        resource["error_message"] = DELIVERY_ERRORS.get(step.error_code)


def plan(to: str, template: bool, outcome: Step | None, window_open: bool) -> list[Step]:
    """The statuses a message goes through after queued."""
    whatsapp = channel(to) == "whatsapp"
    if outcome is None and whatsapp and not template and not window_open:
        # errors/63016: "You sent a free-form WhatsApp message more than 24 hours after the user's last
        # inbound message"; templates (ContentSid) may be sent at any time.
        outcome = Step("undelivered", 63016)
    if outcome is None:
        return [Step("sent"), Step("delivered"), *([Step("read")] if whatsapp else [])]
    if outcome.status == "failed":
        return [outcome]
    if outcome.status == "undelivered":
        return [Step("sent"), outcome]
    order = ["sent", "delivered", "read"] if whatsapp else ["sent", "delivered"]
    return [Step(status) for status in order[: order.index(outcome.status) + 1]]


def _masked(address: str) -> str:
    number = address.partition(":")[2] or address
    return number[:-4] + "XXXX" if len(number) > 4 else number


def callback_form(resource: JsonObject, step: Step) -> dict[str, str]:
    to, from_ = str(resource["to"]), str(resource.get("from") or "")
    form = {
        "MessageSid": str(resource["sid"]),
        "SmsSid": str(resource["sid"]),
        "AccountSid": str(resource["account_sid"]),
        "From": from_,
        "To": to,
        "MessageStatus": step.status,
        "SmsStatus": step.status,
        "ApiVersion": API_VERSION,
    }
    if resource.get("messaging_service_sid"):
        form["MessagingServiceSid"] = str(resource["messaging_service_sid"])
    if step.error_code is not None:
        form["ErrorCode"] = str(step.error_code)
    if channel(to) == "whatsapp":
        form["ChannelPrefix"] = "whatsapp"
        form["ChannelInstallSid"] = "XE" + uuid.uuid5(uuid.NAMESPACE_URL, from_).hex
        form["ChannelToAddress"] = _masked(to)
        if step.status == "sent":
            form["StructuredMessage"] = "false"
        if step.status in ("delivered", "read", "undelivered"):
            form["EventType"] = step.status.upper()
    elif step.status in ("delivered", "undelivered"):
        form["RawDlrDoneDate"] = time.strftime("%y%m%d%H%M", time.gmtime())
    return form


def sign(secret: str, url: str, form: dict[str, str], algorithm: str | None = None) -> str:
    return str(RequestValidator(secret).compute_signature(url, form, algorithm))


def signature_headers(message: Tracked, url: str, form: dict[str, str]) -> dict[str, str]:
    """X-Twilio-Signature with the account's auth token (HMAC-SHA1), or with its webhook signing key
    (HMAC-SHA256) and X-Twilio-Webhooks-Signature-Settings "key=<sid>,algorithm=<name>", the scheme
    twilio.request_validator verifies (SIGNATURE_SETTINGS_HEADER, get_signature_algorithm)."""
    if message.signing_key is None:
        return {"X-Twilio-Signature": sign(message.auth_token, url, form)}
    key_sid, secret = message.signing_key
    return {
        "X-Twilio-Signature": sign(secret, url, form, HMAC_SHA256),
        SIGNATURE_SETTINGS_HEADER: f"key={key_sid},algorithm={HMAC_SHA256}",
    }


class Lifecycle:
    """Moves tracked messages through their steps on a schedule and delivers their callbacks."""

    def __init__(self, interval_seconds: float, callback_timeout_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self.callback_timeout_seconds = callback_timeout_seconds
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, Tracked]] = []
        self._seq = itertools.count()
        self._jobs: queue.Queue[Tracked | None] = queue.Queue()
        self._callbacks: list[JsonObject] = []
        self._threads: list[threading.Thread] = []
        self._running = False
        self._generation = 0
        self._active = 0  # steps handed to the workers and not yet applied and delivered

    # lifecycle of the scheduler itself -----------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        self._threads = [threading.Thread(target=self._schedule, name="twilio-fake-scheduler", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"twilio-fake-status-{n}", daemon=True)
            for n in range(WORKERS)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._due.clear()
            self._lock.notify_all()
        for _ in range(WORKERS):
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=0.5)  # a worker blocked in a slow callback is a daemon: let it go
        self._threads = []
        self._jobs = queue.Queue()

    def clear(self) -> None:
        with self._lock:
            self._due.clear()
            self._callbacks.clear()
            self._generation += 1

    # tracking ------------------------------------------------------------------------------------------

    def track(self, message: Tracked) -> None:
        with self._lock:
            message.generation = self._generation
        self._after(message, self.interval_seconds)

    def callbacks(self) -> list[JsonObject]:
        with self._lock:
            return [dict(entry) for entry in self._callbacks]

    def pending(self) -> int:
        """Status steps still to come: scheduled, queued or being applied and delivered."""
        with self._lock:
            return len(self._due) + self._active

    def _after(self, message: Tracked, delay: float) -> None:
        with self._lock:
            if not self._running or not message.steps or message.generation != self._generation:
                return
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), message))
            self._lock.notify_all()

    def _schedule(self) -> None:
        while True:
            with self._lock:
                if not self._running:
                    return
                if not self._due:
                    self._lock.wait(0.5)
                    continue
                due_at = self._due[0][0]
                wait = due_at - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                _, _, message = heapq.heappop(self._due)
                self._active += 1
            self._jobs.put(message)

    def _work(self) -> None:
        while True:
            message = self._jobs.get()
            if message is None:
                return
            try:
                self._step(message)
            finally:
                with self._lock:
                    self._active -= 1

    def _step(self, message: Tracked) -> None:
        with self._lock:
            current = message.generation == self._generation
        if not current:
            return  # reset since it was scheduled
        step = message.steps.pop(0)
        resource = message.apply(step)
        if message.status_callback:
            self._deliver(message, step, resource)
        self._after(message, self.interval_seconds)

    def _deliver(self, message: Tracked, step: Step, resource: JsonObject) -> None:
        url = str(message.status_callback)
        parts = urlsplit(url)
        target = urlunsplit(parts._replace(fragment=""))  # a fragment never reaches the server
        form = callback_form(resource, step)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            **signature_headers(message, target, form),
            # Twilio's webhooks carry an idempotency token, the same on retries of one event.
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        entry: JsonObject = {
            "message_sid": form["MessageSid"],
            "url": url,
            "status": step.status,
            "form": form,
            "headers": {k: v for k, v in headers.items() if k != "User-Agent"},
            "sent_at": utc_now_iso(),
        }
        if parts.scheme not in ("http", "https"):
            entry.update(ok=False, error=f"not an http(s) URL: {url}")
            self._log_callback(message, entry)
            return
        data = urlencode(form).encode()
        request = urllib.request.Request(target, data=data, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.callback_timeout_seconds) as answer:  # noqa: S310
                entry["http_status"] = answer.status
                entry["ok"] = 200 <= answer.status < 300
        except urllib.error.HTTPError as error:
            entry["http_status"] = error.code
            entry["ok"] = False
            with contextlib.suppress(Exception):
                error.close()
        except Exception as error:  # connection refused, timeout: logged, never retried
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["ok"] = False
        self._log_callback(message, entry)

    def _log_callback(self, message: Tracked, entry: JsonObject) -> None:
        with self._lock:
            if message.generation == self._generation:
                self._callbacks.append(entry)
