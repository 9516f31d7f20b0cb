"""A paced load of signed Twilio webhooks through the local cloud's HTTP API, and its accounting.

Shared by the e2e load test and ``make bench``, so both measure the same thing the same way:

- ``plan_load`` spreads N messages from C customers over about D seconds as bursts: each customer
  sends a few messages a quarter second apart (one burst, coalesced by the debounce window into one
  reply), then waits ``D / bursts`` seconds (at least ``MIN_BURST_GAP``, so a burst's reply is done
  before the next begins); customers are staggered so the overall rate stays even.
- ``drive`` sends the plan on schedule from a bounded pool of sender threads, each request signed
  like Twilio's. A 429 (every execution environment of the webhook busy) is retried with the same
  MessageSid after a short backoff, as Twilio does with a retry policy; any other answer is final.
- ``account`` checks that every message was stored once, routed, answered by exactly one AI call and
  one reply, and returns the figures (rate, latency percentiles, replies per burst, duplicates).

Nothing here asserts a wall-clock limit: on a shared 2-core machine only counts are reliable.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ai_comms.providers.twilio_signature import sign

MIN_BURST_GAP = 12.0
"""Seconds between a customer's bursts: debounce (up to 4 s here) plus a reply under load."""
BURST_SPACING = 0.25
"""Seconds between the messages of one burst."""
MAX_ATTEMPTS = 8
HTTP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Customer:
    tel: str
    conversation_id: str
    address: str
    """The customer's address as Twilio writes it (``whatsapp:+44...`` or ``+44...``)."""


@dataclass(frozen=True)
class Planned:
    at: float
    """Seconds after the start of the run."""
    customer: Customer
    burst: int
    sid: str
    body: str


@dataclass(frozen=True)
class Sent:
    planned: Planned
    status: int
    latency_ms: float
    """Of the attempt that got the final answer."""
    attempts: int
    started: float
    """Seconds after the start of the run, first attempt."""
    finished: float


@dataclass
class LoadRun:
    sent: list[Sent] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def throttled(self) -> int:
        return sum(s.attempts - 1 for s in self.sent)

    def figures(self) -> dict[str, Any]:
        latencies = [s.latency_ms for s in self.sent if s.status == 200]
        slips = [s.started - s.planned.at for s in self.sent]
        return {
            "messages": len(self.sent),
            "customers": len({s.planned.customer.tel for s in self.sent}),
            "duration_s": round(self.duration_s, 1),
            "rate_msgs_per_s": round(len(self.sent) / self.duration_s, 2) if self.duration_s else 0.0,
            "webhook_ms": percentiles(latencies),
            "statuses": dict(Counter(str(s.status) for s in self.sent)),
            "throttled_429_retried": self.throttled,
            "max_schedule_slip_s": round(max(slips, default=0.0), 2),
        }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99)}


def plan_load(customers: Sequence[Customer], total: int, duration_s: float) -> list[Planned]:
    """``total`` messages from ``customers`` over about ``duration_s`` seconds, in time order."""
    if not customers or total < 1:
        return []
    bursts = max(1, int(duration_s // MIN_BURST_GAP))
    gap = max(duration_s / bursts, MIN_BURST_GAP) if bursts > 1 else duration_s
    plan: list[Planned] = []
    for index, customer in enumerate(customers):
        count = total // len(customers) + (1 if index < total % len(customers) else 0)
        offset = gap * index / len(customers)
        sizes = [count // bursts + (1 if b < count % bursts else 0) for b in range(bursts)]
        number = 0
        for burst, size in enumerate(sizes):
            for position in range(size):
                number += 1
                tag = uuid.uuid4().hex[:8]
                plan.append(
                    Planned(
                        at=offset + burst * gap + position * BURST_SPACING,
                        customer=customer,
                        burst=burst,
                        sid="SM" + uuid.uuid4().hex,
                        body=f"load message {number} of customer {index} burst {burst} ({tag})",
                    )
                )
    return sorted(plan, key=lambda p: p.at)


def webhook_form(planned: Planned, account_sid: str, company_address: str) -> dict[str, str]:
    return {
        "MessageSid": planned.sid,
        "AccountSid": account_sid,
        "From": planned.customer.address,
        "To": company_address,
        "Body": planned.body,
        "NumMedia": "0",
    }


def post_form(url: str, form: dict[str, str], auth_token: str) -> tuple[int, float]:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(auth_token, url, form),
    }
    request = urllib.request.Request(url, data=urlencode(form).encode(), headers=headers, method="POST")  # noqa: S310
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except OSError:
        status = 0  # connection refused or reset, or timed out
    return status, (time.perf_counter() - started) * 1000


def drive(
    plan: Sequence[Planned],
    url: str,
    auth_token: str,
    account_sid: str,
    company_address: str,
    senders: int = 16,
) -> LoadRun:
    """Send every planned webhook at its time (or as soon as a sender is free), then wait for all."""
    run = LoadRun()
    lock = threading.Lock()
    origin = time.monotonic()

    def send(planned: Planned) -> None:
        form = webhook_form(planned, account_sid, company_address)
        started = time.monotonic() - origin
        status, latency = 0, 0.0
        attempt = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            status, latency = post_form(url, form, auth_token)
            if status not in (0, 429) or attempt == MAX_ATTEMPTS:
                break
            time.sleep(min(0.25 * 2**attempt, 4.0))
        sent = Sent(planned, status, latency, attempt, started, time.monotonic() - origin)
        with lock:
            run.sent.append(sent)

    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="load-sender") as pool:
        futures = []
        for planned in plan:
            delay = planned.at - (time.monotonic() - origin)
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, planned))
        for future in futures:
            future.result()
    run.duration_s = max((s.finished for s in run.sent), default=0.0)
    return run


def ai_inputs(requests: Iterable[Mapping[str, Any]], ai_conversation_id: str | None) -> list[list[str]]:
    """The customer messages of each AI call made for one AI conversation (the fake's request log)."""
    calls = []
    for request in requests:
        if request.get("path") != "/v1/responses" or request.get("conversation_id") != ai_conversation_id:
            continue
        body = request.get("body") or {}
        texts: list[str] = []
        for item in body.get("input") or []:
            if isinstance(item, dict) and item.get("role") == "user":
                texts.extend(str(item.get("content", "")).split("\n\n"))
        calls.append(texts)
    return calls


def account(
    plan: Sequence[Planned],
    records: Mapping[str, Any],
    histories: Mapping[str, Sequence[Any]],
    replies: Mapping[str, Sequence[Mapping[str, Any]]],
    ai_requests: Sequence[Mapping[str, Any]],
    consumed_sids: Counter[str],
) -> tuple[dict[str, Any], list[str]]:
    """Figures and problems. ``records``: tel -> Conversation; ``histories``: tel -> its message
    items (ai_comms.models.message.Message) in order; ``replies``: tel -> the Twilio fake's
    messages to that customer; ``consumed_sids``: how often each MessageSid was consumed from the
    AI-reply queue. A problem is any message not stored exactly once, not routed, not covered by
    exactly one AI call, or a conversation not fully answered or answered more than once.
    """
    problems: list[str] = []
    by_tel: dict[str, list[Planned]] = {}
    for planned in plan:
        by_tel.setdefault(planned.customer.tel, []).append(planned)
    replies_total = ai_calls_total = duplicates = bursts_total = redeliveries = 0
    for tel, messages in by_tel.items():
        record = records.get(tel)
        name = f"customer {tel[-4:]}"
        if record is None:
            problems.append(f"{name}: conversation missing")
            continue
        history = histories.get(tel, [])
        stored = Counter(m.sid for m in history if m.direction == "inbound")
        for planned in messages:
            if stored[planned.sid] != 1:
                problems.append(f"{name}: {planned.sid} stored {stored[planned.sid]} times")
            if consumed_sids[planned.sid] < 1:
                problems.append(f"{name}: {planned.sid} never consumed from the AI-reply queue")
            redeliveries += max(consumed_sids[planned.sid] - 1, 0)
        if extra := set(stored) - {m.sid for m in messages}:
            problems.append(f"{name}: unexpected inbound messages {sorted(extra)}")
        if not (record.inbound_seq == record.answered_seq == len(messages)):
            problems.append(
                f"{name}: inbound_seq {record.inbound_seq}, answered_seq {record.answered_seq}, "
                f"sent {len(messages)}"
            )
        if record.lease_owner is not None or record.pending_reply is not None:
            problems.append(f"{name}: a reply is still in progress")
        calls = ai_inputs(ai_requests, record.ai_conversation_id)
        covered = Counter(text for call in calls for text in call)
        for planned in messages:
            if covered[planned.body] != 1:
                problems.append(f"{name}: message {planned.sid} answered by {covered[planned.body]} AI calls")
        sent = list(replies.get(tel, []))
        outbound = [m for m in history if m.direction == "outbound"]
        if not sent:
            problems.append(f"{name}: no reply")
        if not (len(sent) == len(outbound) == len(calls)):
            problems.append(
                f"{name}: {len(sent)} replies sent, {len(outbound)} recorded, {len(calls)} AI calls"
            )
        duplicates += max(len(sent) - len(calls), 0) + sum(max(n - 1, 0) for n in covered.values())
        replies_total += len(sent)
        ai_calls_total += len(calls)
        bursts_total += len({p.burst for p in messages})
    figures = {
        "bursts": bursts_total,
        "replies": replies_total,
        "ai_calls": ai_calls_total,
        "replies_per_burst": round(replies_total / bursts_total, 3) if bursts_total else 0.0,
        "duplicate_replies": duplicates,
        "sqs_redeliveries": redeliveries,
        "unanswered_conversations": sum(
            1
            for tel, messages in by_tel.items()
            if tel not in records or records[tel].answered_seq < len(messages)
        ),
    }
    return figures, problems


def settled(records: Mapping[str, Any], expected: Mapping[str, int]) -> bool:
    """Every conversation answered up to the messages sent to it, with no reply in progress."""
    return all(
        (record := records.get(tel)) is not None
        and record.inbound_seq == count
        and record.answered_seq >= count
        and record.lease_owner is None
        and record.pending_reply is None
        for tel, count in expected.items()
    )


def expected_counts(plan: Iterable[Planned]) -> dict[str, int]:
    return dict(Counter(p.customer.tel for p in plan))
