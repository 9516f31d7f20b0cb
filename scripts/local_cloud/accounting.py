"""Counts the AWS API calls each function makes, and injects faults into them: a forwarding proxy per
function in front of the emulator.

Used by the benchmarks ("AWS API calls per webhook"): each worker's AWS_ENDPOINT_URL (and its
DynamoDB endpoints) point at its own proxy, so every call is attributed to exactly one function,
and the SQS pollers (the runner's own calls, which Lambda's event source mapping makes in AWS) are
not counted. Calls go on by the service of their SigV4 scope: ``routes`` names an upstream per
service (DynamoDB and DynamoDB Streams, both signed as ``dynamodb``, to the local cloud's
DynamoDB), everything else to ``upstream`` (the emulator).

Used by the fault suite (tests/e2e/test_faults.py): ``inject("dynamodb.UpdateItem", status=500,
count=3)`` makes the next three UpdateItem calls of that one function fail the way AWS fails them,
without reaching the emulator. What the SDK sees is what AWS sends:

* JSON protocols (DynamoDB, EventBridge, Secrets Manager, SQS: ``Content-Type:
  application/x-amz-json-1.0/1.1``): ``{"__type": "<code>", "message": ...}`` with the
  ``x-amzn-ErrorType`` header; plus ``x-amzn-query-error: <code>;Sender|Receiver``, which botocore
  reads for SQS (JSON 1.0 with ``awsQueryCompatible``) to give the same codes as the old query API;
* query protocol (SNS, STS: form bodies): the ``<ErrorResponse>`` XML document.

botocore's standard retry mode (ai_comms/providers/aws_clients.py: 3 attempts) retries 5xx answers,
throttling codes (``ThrottlingException``, ``ProvisionedThroughputExceededException``, ...) and
read timeouts, so ``count=3`` exhausts one call's attempts while ``count=1`` is absorbed by a retry.
A ``delay_seconds`` fault sleeps before answering: with no status it then *forwards* the call, as a
slow AWS whose answer the client stopped waiting for (read_timeout=5) would still have applied it;
that is the partial failure a timeout can leave behind. With ``deliver_first=True`` the call is
forwarded at once and only its answer is held back: the write surely lands before the client's
retry (the "applied, answer lost" case).

``match`` narrows a fault to calls whose request body contains that text (a conversation id, a
customer number, a secret name), so a fault meant for one test's conversation cannot hit another's
work that shares the function.

Used by the benchmarks' meters (local_cloud.call_tap): ``observe(around)`` hands every call that is
forwarded to ``around(operation, request, send)``, which must call ``send()`` once and return its
answer; it may look at the request and the answer and time the call. Faulted calls are not observed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from local_cloud.http_proxy import Answer, LoopbackProxy, Request, forward, signing_scope

# What observe() takes: (operation, request, send) -> the answer of send(), which forwards the call.
Around = Callable[[str, Request, Callable[[], Answer]], Answer]

_DEFAULT_CODES = {500: "InternalServerError", 503: "ServiceUnavailable", 400: "ValidationException"}


def operation_of(headers: Any, body: bytes) -> str:
    """'dynamodb.GetItem' from the SigV4 scope and the X-Amz-Target header or the query Action."""
    service = signing_scope(headers)[1]
    target = headers.get("X-Amz-Target", "")
    if target:
        return f"{service}.{target.rsplit('.', 1)[-1]}"
    action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
    return f"{service}.{action or 'unknown'}"


@dataclass
class Fault:
    """One injected fault: the next `count` matching calls of `operation`, after skipping `after`."""

    operation: str
    status: int | None
    error_code: str | None
    delay_seconds: float
    count: int
    after: int
    match: str | None
    deliver_first: bool = False

    @property
    def fails(self) -> bool:
        return self.status is not None or self.error_code is not None

    def answer_status(self) -> int:
        return self.status if self.status is not None else 400

    def answer_code(self) -> str:
        if self.error_code is not None:
            return self.error_code
        status = self.answer_status()
        return _DEFAULT_CODES.get(status, "InternalServerError" if status >= 500 else "ValidationException")


@dataclass(frozen=True)
class Served:
    """A fault as it was applied to one call (what the handler thread acts on)."""

    status: int | None
    error_code: str
    delay_seconds: float
    deliver_first: bool


def error_response(content_type: str, status: int, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers AWS answers an error with, in the protocol the request used."""
    request_id = str(uuid.uuid4())
    if "x-amz-json" in content_type:
        body = json.dumps({"__type": code, "message": message}).encode()
        fault_side = "Receiver" if status >= 500 else "Sender"
        return body, {
            "Content-Type": content_type.split(";", maxsplit=1)[0].strip(),
            "x-amzn-ErrorType": code,
            "x-amzn-query-error": f"{code};{fault_side}",
            "x-amzn-RequestId": request_id,
        }
    fault_side = "Receiver" if status >= 500 else "Sender"
    xml = (
        "<ErrorResponse><Error>"
        f"<Type>{fault_side}</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return xml.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}


class CallCounter(LoopbackProxy):
    """A proxy on a free loopback port that forwards to `upstream`, counts operations, injects faults."""

    def __init__(self, upstream: str, routes: Mapping[str, str] | None = None) -> None:
        self._upstream = upstream
        self._routes = dict(routes or {})
        self.calls: Counter[str] = Counter()
        # Calls answered by an injected fault (or delayed by one), by operation.
        self.faulted: Counter[str] = Counter()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._around: Around | None = None
        super().__init__("call-counter")

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    def observe(self, around: Around | None) -> None:
        """Hand every forwarded call to ``around`` from now on (None: stop observing)."""
        self._around = around

    # -- fault injection -----------------------------------------------------------------------------

    def inject(
        self,
        operation: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        delay_seconds: float = 0,
        count: int = 1,
        after: int = 0,
        match: str | None = None,
        deliver_first: bool = False,
    ) -> None:
        """Fail (or delay) the next `count` calls of `operation` ('dynamodb.UpdateItem'), after `after`.

        With `status` and/or `error_code` the call is answered with that AWS error and never reaches
        the emulator (`status` defaults to 400, the code to InternalServerError for 5xx and
        ValidationException for 4xx). With only `delay_seconds`, the call is forwarded after the
        delay, or (`deliver_first`) forwarded at once with its answer held back `delay_seconds`: the
        write lands, the client times out and retries it. `match`: only calls whose body contains
        this text count (for `after` too).
        Faults are kept in order; the first one that a call matches decides what happens to it.
        """
        if "." not in operation:
            raise ValueError("operation is '<service>.<Action>', e.g. 'dynamodb.UpdateItem'")
        if count < 1 or after < 0 or delay_seconds < 0:
            raise ValueError("count must be >= 1, after and delay_seconds >= 0")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if status is None and error_code is None and delay_seconds == 0:
            raise ValueError("a fault needs a status, an error_code or a delay_seconds")
        if deliver_first and (status is not None or error_code is not None or delay_seconds == 0):
            raise ValueError("deliver_first is a delay of the answer of a call that is forwarded")
        fault = Fault(operation, status, error_code, float(delay_seconds), count, after, match, deliver_first)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """Calls still to be faulted (the `after` skips not counted)."""
        with self._lock:
            return sum(fault.count for fault in self._faults)

    def _take_fault(self, operation: str, body: bytes) -> Served | None:
        text: str | None = None
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.operation != operation:
                    continue
                if fault.match is not None:
                    if text is None:
                        text = body.decode("utf-8", "replace")
                    if fault.match not in text:
                        continue
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.count -= 1
                if fault.count == 0:
                    del self._faults[index]
                self.faulted[operation] += 1
                code = fault.answer_code() if fault.fails else ""
                return Served(
                    fault.answer_status() if fault.fails else None,
                    code,
                    fault.delay_seconds,
                    fault.deliver_first,
                )
        return None

    # -- the proxy -----------------------------------------------------------------------------------

    def serve(self, request: Request) -> Answer | None:
        operation = operation_of(request.headers, request.body)
        with self._lock:
            self.calls[operation] += 1
        served = self._take_fault(operation, request.body)
        if served is not None and not served.deliver_first:
            if served.delay_seconds and self._stopping.wait(served.delay_seconds):
                return None
            if served.status is not None:
                payload, headers = error_response(
                    request.headers.get("Content-Type", ""),
                    served.status,
                    served.error_code,
                    f"injected fault ({operation})",
                )
                return Answer(served.status, list(headers.items()), payload)
        upstream = self._routes.get(operation.split(".", 1)[0], self._upstream)
        around = self._around
        if around is None or served is not None:
            answer = forward(upstream, request)
        else:
            answer = around(operation, request, lambda: forward(upstream, request))
        if served is not None and served.deliver_first and self._stopping.wait(served.delay_seconds):
            return None
        return answer
