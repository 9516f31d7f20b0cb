"""Dead-letter queues: list them, peek at their messages, move them back to where they came from.

Peeking uses ReceiveMessage, which is the only way SQS shows a message: it hides the message and
adds one to its receive count. The CLI hides peeked messages briefly and releases them (visibility 0)
as soon as it is done, so they are back in the queue at once; the extra receive count is harmless on
a DLQ, which has no redrive policy of its own, and the count shown includes the peek.

Redrive prefers SQS StartMessageMoveTask (server side, moves every message to its original source
queue), and falls back to receive -> send -> delete where that API is missing (emulators) or cannot
do the job (a count limit, or the EventBridge DLQ whose messages name their target rule instead of a
source queue). The fallback sends before it deletes: a crash in between leaves a duplicate, never a
lost message, and the consumers are idempotent so a duplicate is dropped.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ai_comms.clock import iso
from ai_comms.masking import mask_address, mask_body
from ops.errors import NotFound, OpsError, UsageError
from ops.progress import Progress
from ops.target import Target, probe_client

DLQ_SUFFIX = "-dlq"
# How long a peeked or in-flight message stays hidden if the CLI dies before releasing it.
PEEK_HIDE_SECONDS = 30
REDRIVE_HIDE_SECONDS = 300
# Long polling asks every SQS host, so an empty answer means the queue is really empty.
RECEIVE_WAIT_SECONDS = 1
MOVE_TASK_POLL_SECONDS = 2.0
# Attributes EventBridge adds when it dead-letters an event; not part of the delivery itself.
EVENTBRIDGE_DLQ_ATTRIBUTES = frozenset(
    {"RULE_ARN", "TARGET_ARN", "ERROR_CODE", "ERROR_MESSAGE", "EXHAUSTED_RETRY_CONDITION", "RETRY_ATTEMPTS"}
)
_UNSUPPORTED_CODES = frozenset(
    {"InvalidAction", "UnknownOperationException", "UnsupportedOperation", "NotImplemented", "501"}
)


@dataclass(frozen=True)
class Queue:
    name: str
    url: str
    arn: str


@dataclass(frozen=True)
class DlqInfo:
    queue: Queue
    messages: int
    in_flight: int
    oldest_age_seconds: float | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class EventSummary:
    detail_type: str
    channel: str
    route: str
    ids: str
    customer: str
    body: str


@dataclass(frozen=True)
class Peeked:
    message_id: str
    sent_at: str
    receive_count: int
    summary: EventSummary
    target_arn: str | None
    error: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass
class RedriveResult:
    method: str
    destination: str
    moved: int = 0
    failed: int = 0
    skipped: int = 0
    delete_failed: int = 0
    planned: list[tuple[Peeked, str]] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.delete_failed)


def _arn_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    answer: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return answer


def resolve_queue(target: Target, ref: str) -> Queue:
    """A queue from its URL, its full name, or its name without "<prefix>-<workspace>-"."""
    sqs = target.client("sqs")
    if ref.startswith(("http://", "https://")):
        url = ref
    else:
        name = ref if ref.startswith(target.name + "-") else f"{target.name}-{ref}"
        url = target.dlq_urls.get(name, "")
        if not url:
            try:
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as error:
                if "NonExistentQueue" in error.response["Error"]["Code"] or "QueueDoesNotExist" in str(error):
                    raise NotFound(f"no queue named {name}") from error
                raise
    try:
        arn = _attributes(sqs, url)["QueueArn"]
    except ClientError as error:
        if "NonExistentQueue" in error.response["Error"]["Code"] or "QueueDoesNotExist" in str(error):
            raise NotFound(f"no queue at {url}") from error
        raise
    return Queue(name=_arn_name(arn), url=url, arn=arn)


def source_queues(target: Target, dlq: Queue, attributes: dict[str, str] | None = None) -> list[str]:
    """Names of the queues that dead-letter into `dlq`: its RedriveAllowPolicy, else their RedrivePolicy."""
    attributes = attributes if attributes is not None else _attributes(target.client("sqs"), dlq.url)
    names: list[str] = []
    allow = attributes.get("RedriveAllowPolicy")
    if allow:
        policy = json.loads(allow)
        if policy.get("redrivePermission") == "byQueue":
            names.extend(_arn_name(arn) for arn in policy.get("sourceQueueArns", []))
    paginator = target.client("sqs").get_paginator("list_dead_letter_source_queues")
    for page in paginator.paginate(QueueUrl=dlq.url):
        names.extend(url.rsplit("/", 1)[-1] for url in page.get("queueUrls", []))
    return sorted(set(names))


def _oldest_age(target: Target, name: str) -> float | None:
    """SQS has no 'oldest message' attribute; CloudWatch's queue metric is the way that doesn't receive."""
    now = datetime.now(UTC)
    try:
        answer = target.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": name}],
            StartTime=now - timedelta(minutes=15),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
    except ClientError:
        return None
    points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def _dlq_urls(target: Target) -> list[str]:
    if target.dlq_urls:
        return sorted(target.dlq_urls.values())
    urls: list[str] = []
    paginator = target.client("sqs").get_paginator("list_queues")
    for page in paginator.paginate(QueueNamePrefix=target.name + "-"):
        urls.extend(u for u in page.get("QueueUrls", []) if u.endswith(DLQ_SUFFIX))
    return sorted(urls)


def list_dlqs(target: Target) -> list[DlqInfo]:
    sqs = target.client("sqs")
    found: list[DlqInfo] = []
    for url in _dlq_urls(target):
        attributes = _attributes(sqs, url)
        queue = Queue(name=_arn_name(attributes["QueueArn"]), url=url, arn=attributes["QueueArn"])
        messages = int(attributes.get("ApproximateNumberOfMessages", "0"))
        sources = tuple(source_queues(target, queue, attributes))
        if not sources and queue.name == target.events_dlq_name:
            sources = ("(EventBridge rule targets)",)
        found.append(
            DlqInfo(
                queue=queue,
                messages=messages,
                in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
                oldest_age_seconds=_oldest_age(target, queue.name) if messages else None,
                sources=sources,
            )
        )
    return found


def summarize(body: str, reveal: bool = False) -> EventSummary:
    """What an operator needs to judge a message, without the customer's number or words."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return EventSummary("(not an event)", "-", "-", "-", "-", body if reveal else mask_body(body))
    inner = data.get("detail")
    detail: dict[str, Any] = inner if isinstance(inner, dict) else data
    ids = [
        f"{detail['company_id']}/{detail.get('project_id', '-')}" if detail.get("company_id") else "",
        f"conv={detail['conversation_id']}" if detail.get("conversation_id") else "",
        f"sid={detail['message_sid']}" if detail.get("message_sid") else "",
    ]
    customer = str(detail.get("customer_address") or detail.get("recipient_tel") or "")
    text = detail.get("body")
    return EventSummary(
        detail_type=str(data.get("detail-type") or "-"),
        channel=str(detail.get("channel") or "-"),
        route=str(detail.get("route") or "-"),
        ids=" ".join(i for i in ids if i) or "-",
        customer=(customer if reveal else mask_address(customer)) or "-",
        body=("-" if text is None else str(text) if reveal else mask_body(str(text))),
    )


def _peeked(message: dict[str, Any], reveal: bool) -> Peeked:
    attributes = message.get("Attributes", {})
    user = message.get("MessageAttributes", {})
    sent = attributes.get("SentTimestamp")
    error = " ".join(
        user[k]["StringValue"] for k in ("ERROR_CODE", "ERROR_MESSAGE") if "StringValue" in user.get(k, {})
    )
    return Peeked(
        message_id=message["MessageId"],
        sent_at=iso(datetime.fromtimestamp(int(sent) / 1000, UTC)) if sent else "-",
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
        summary=summarize(message.get("Body", ""), reveal),
        target_arn=user.get("TARGET_ARN", {}).get("StringValue"),
        error=error or None,
        raw=message,
    )


def _receive(sqs: Any, queue: Queue, count: int, hide_seconds: int) -> list[dict[str, Any]]:
    answer = sqs.receive_message(
        QueueUrl=queue.url,
        MaxNumberOfMessages=max(1, min(10, count)),
        VisibilityTimeout=hide_seconds,
        WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages: list[dict[str, Any]] = answer.get("Messages", [])
    return messages


def _release(sqs: Any, queue: Queue, handles: list[str]) -> None:
    """Make hidden messages visible again now rather than when their visibility timeout ends."""
    for start in range(0, len(handles), 10):
        chunk = handles[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=queue.url,
            Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)],
        )


def _drain(sqs: Any, queue: Queue, limit: int | None, hide_seconds: int) -> Iterator[list[dict[str, Any]]]:
    """Batches of distinct messages until `limit` or until a receive brings nothing new."""
    seen: set[str] = set()
    while limit is None or len(seen) < limit:
        wanted = 10 if limit is None else limit - len(seen)
        fresh = [m for m in _receive(sqs, queue, wanted, hide_seconds) if m["MessageId"] not in seen]
        if not fresh:
            return
        seen.update(m["MessageId"] for m in fresh)
        yield fresh


def peek(target: Target, queue: Queue, limit: int | None, reveal: bool = False) -> list[Peeked]:
    sqs = target.client("sqs")
    found: list[Peeked] = []
    handles: list[str] = []
    try:
        for batch in _drain(sqs, queue, limit, PEEK_HIDE_SECONDS):
            handles.extend(m["ReceiptHandle"] for m in batch)
            found.extend(_peeked(m, reveal) for m in batch)
    finally:
        _release(sqs, queue, handles)
    return found


# ---- redrive ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Where messages go: one queue, or each to the queue its EventBridge target ARN names."""

    queue: Queue | None
    per_message: bool
    several_sources: bool = False

    def label(self) -> str:
        if self.queue:
            return self.queue.name
        return "each message's EventBridge target" if self.per_message else "each message's source queue"


def _plan(target: Target, dlq: Queue, to: str | None) -> _Plan:
    if to:
        return _Plan(queue=resolve_queue(target, to), per_message=False)
    sources = source_queues(target, dlq)
    if len(sources) == 1:
        return _Plan(queue=resolve_queue(target, sources[0]), per_message=False)
    if len(sources) > 1:
        return _Plan(queue=None, per_message=False, several_sources=True)
    if dlq.name == target.events_dlq_name:
        return _Plan(queue=None, per_message=True)
    raise OpsError(f"{dlq.name} is no queue's dead-letter queue; name the destination with --to")


def _unsupported(error: Exception, target: Target) -> bool:
    """Is this 'the API does not exist here' rather than a real failure of the move?"""
    if isinstance(error, NotImplementedError):
        return True
    if not isinstance(error, ClientError):
        return False
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # Emulators answer an unknown action with a bare 500. On AWS an unknown action is a 4xx, so a 500
    # there is a real failure and must not start a second, competing move.
    return code in _UNSUPPORTED_CODES or status == 501 or (status == 500 and target.endpoint_url is not None)


def _move_client(target: Target) -> Any:
    """Against an emulator, ask once: an unimplemented action would otherwise be retried with backoff."""
    return probe_client(target, "sqs") if target.endpoint_url else target.client("sqs")


def _move_task(
    target: Target, dlq: Queue, plan: _Plan, wait_seconds: float, progress: Progress
) -> RedriveResult:
    sqs = _move_client(target)
    kwargs: dict[str, Any] = {"SourceArn": dlq.arn}
    if plan.queue:
        kwargs["DestinationArn"] = plan.queue.arn
    sqs.start_message_move_task(**kwargs)
    result = RedriveResult(method="move-task", destination=plan.label())
    deadline = time.monotonic() + wait_seconds
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        status = task.get("Status", "RUNNING")
        result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        progress.update(result.moved, total=task.get("ApproximateNumberOfMessagesToMove"), note=status)
        if status == "COMPLETED":
            return result
        if status in {"FAILED", "CANCELLED", "CANCELLING"}:
            result.failed = max(int(task.get("ApproximateNumberOfMessagesToMove", 0)) - result.moved, 1)
            result.note = f"move task {status}: {task.get('FailureReason', 'no reason given')}"
            return result
        if time.monotonic() >= deadline:
            result.failed = 1
            result.note = (
                f"move task still {status} after {wait_seconds:.0f}s; it continues server side "
                "(aws sqs list-message-move-tasks shows it)"
            )
            return result
        time.sleep(MOVE_TASK_POLL_SECONDS)


def _destination_for(
    target: Target, message: dict[str, Any], plan: _Plan, cache: dict[str, str]
) -> str | None:
    if plan.queue:
        return plan.queue.url
    arn = message.get("MessageAttributes", {}).get("TARGET_ARN", {}).get("StringValue", "")
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return None
    if arn not in cache:
        try:
            cache[arn] = target.client("sqs").get_queue_url(
                QueueName=parts[5], QueueOwnerAWSAccountId=parts[4]
            )["QueueUrl"]
        except ClientError:
            return None
    return cache[arn]


def _outgoing_attributes(message: dict[str, Any], drop_eventbridge: bool) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in message.get("MessageAttributes", {}).items():
        if drop_eventbridge and name in EVENTBRIDGE_DLQ_ATTRIBUTES:
            continue
        kept[name] = {k: v for k, v in value.items() if k in {"DataType", "StringValue", "BinaryValue"}}
    return kept


def _manual(target: Target, dlq: Queue, plan: _Plan, limit: int | None, progress: Progress) -> RedriveResult:
    sqs = target.client("sqs")
    result = RedriveResult(method="receive-send-delete", destination=plan.label())
    queues: dict[str, str] = {}
    keep_hidden: list[str] = []
    try:
        for batch in _drain(sqs, dlq, limit, REDRIVE_HIDE_SECONDS):
            by_destination: dict[str, list[dict[str, Any]]] = {}
            for message in batch:
                url = _destination_for(target, message, plan, queues)
                if url is None:
                    result.skipped += 1
                    keep_hidden.append(message["ReceiptHandle"])
                else:
                    by_destination.setdefault(url, []).append(message)
            for url, messages in by_destination.items():
                sent = sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {
                            "Id": str(i),
                            "MessageBody": m["Body"],
                            "MessageAttributes": _outgoing_attributes(m, drop_eventbridge=plan.per_message),
                        }
                        for i, m in enumerate(messages)
                    ],
                )
                ok = {int(e["Id"]) for e in sent.get("Successful", [])}
                for i, message in enumerate(messages):
                    if i not in ok:
                        result.failed += 1
                        keep_hidden.append(message["ReceiptHandle"])
                delivered = [messages[i] for i in sorted(ok)]
                if delivered:
                    deleted = sqs.delete_message_batch(
                        QueueUrl=dlq.url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(delivered)
                        ],
                    )
                    result.delete_failed += len(deleted.get("Failed", []))
                    result.moved += len(delivered)
                progress.update(result.moved + result.failed + result.skipped)
    finally:
        # Whatever was not moved goes back to the DLQ now, not after the hide timeout.
        _release(sqs, dlq, keep_hidden)
    if result.skipped:
        result.note = f"{result.skipped} message(s) name no SQS target; left in the DLQ (use --to)"
    if result.delete_failed:
        result.note += (
            f" {result.delete_failed} message(s) were sent but not deleted from the DLQ: they exist twice, "
            "and the idempotent consumers drop the duplicate"
        )
    return result


def redrive(
    target: Target,
    dlq: Queue,
    *,
    to: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    method: str = "auto",
    wait_seconds: float = 300.0,
    progress: Progress | None = None,
) -> RedriveResult:
    plan = _plan(target, dlq, to)
    if dry_run:
        result = RedriveResult(method="dry-run", destination=plan.label())
        cache: dict[str, str] = {}
        for item in peek(target, dlq, limit):
            url = _destination_for(target, item.raw, plan, cache) if not plan.several_sources else None
            label = (
                url.rsplit("/", 1)[-1] if url else plan.label() if plan.several_sources else "(no SQS target)"
            )
            result.planned.append((item, label))
        return result
    waiting = int(_attributes(target.client("sqs"), dlq.url).get("ApproximateNumberOfMessages", "0"))
    total = min(waiting, limit) if limit is not None else waiting
    progress = progress or Progress(f"redrive {dlq.name}", total)
    progress.update(0, total=total)
    use_task = method == "move-task" or (method == "auto" and limit is None and not plan.per_message)
    with progress:
        if use_task:
            try:
                return _move_task(target, dlq, plan, wait_seconds, progress)
            except (ClientError, NotImplementedError) as error:
                if method == "move-task" or not _unsupported(error, target):
                    raise
        if plan.several_sources:
            raise UsageError(f"{dlq.name} has several source queues; choose one with --to")
        result = _manual(target, dlq, plan, limit, progress)
        if use_task:
            result.note = (
                "StartMessageMoveTask is not available here; moved message by message. " + result.note
            ).strip()
        return result
