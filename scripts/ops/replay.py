"""Replay a time window of the event archive onto the bus, safely repeatable.

Safety has two layers. The replay's name is derived from the window (and the rules), and EventBridge
refuses a second replay with the same name, so running the same command twice reports the first
replay instead of starting another. And every consumer is idempotent (the webhook dedupes on the
MessageSid, the reply processor answers each inbound sequence once), so even a deliberate second
replay of the same events (`--attempt 2`) sends no second reply: it only re-checks that work is done.

`--rule` narrows the replay to the targets of those rules (StartReplay's Destination.FilterArns);
without it every rule on the bus sees the replayed events, as it saw the originals.
"""

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ops.errors import NotFound, UsageError
from ops.progress import Progress
from ops.target import Target

POLL_SECONDS = 2.0
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
_NAME_LIMIT = 64


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC (the engine's clock)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise UsageError(f"not an ISO 8601 time: {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replay_name(target: Target, start: datetime, end: datetime, rules: list[str], attempt: int = 1) -> str:
    """Same window + rules -> same name, which is what makes repeating the command a no-op.

    Replay names are unique per account and region, not per bus, so the name carries the workspace.
    """
    stamp = f"{start.astimezone(UTC):%Y%m%dT%H%M%S}-{end.astimezone(UTC):%Y%m%dT%H%M%S}"
    suffix = stamp
    if rules:
        suffix += "-r" + hashlib.sha256(",".join(sorted(rules)).encode()).hexdigest()[:8]
    if attempt > 1:
        suffix += f"-a{attempt}"
    name = f"{target.name}-{suffix}"
    if len(name) > _NAME_LIMIT:
        # Keep it unique per workspace when a long prefix has to be cut.
        digest = hashlib.sha256(target.name.encode()).hexdigest()[:6]
        head = target.name[: _NAME_LIMIT - len(suffix) - len(digest) - 2]
        name = f"{head}-{digest}-{suffix}"
    return name


@dataclass
class ReplayReport:
    name: str
    state: str
    existed: bool
    archive: str
    window: tuple[datetime, datetime]
    rules: list[str]
    archive_events: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.state in {"COMPLETED", "DRY-RUN"}


def _archive(target: Target) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = target.client("events").describe_archive(ArchiveName=target.archive_name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise NotFound(f"no event archive named {target.archive_name}") from error
        raise
    return answer


def _rule_arn(target: Target, rule: str) -> str:
    name = rule if rule.startswith(target.name + "-") else f"{target.name}-{rule}"
    try:
        answer = target.client("events").describe_rule(Name=name, EventBusName=target.bus_name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            raise NotFound(f"no rule named {name} on bus {target.bus_name}") from error
        raise
    return str(answer["Arn"])


def _existing(target: Target, name: str) -> dict[str, Any] | None:
    try:
        answer: dict[str, Any] = target.client("events").describe_replay(ReplayName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise
    return answer


def _share(replay: dict[str, Any], start: datetime, end: datetime) -> int:
    """How far through the window the replay is, in percent (DescribeReplay's last replayed time)."""
    last = replay.get("EventLastReplayedTime")
    if not isinstance(last, datetime):
        return 100 if replay.get("State") == "COMPLETED" else 0
    span = (end - start).total_seconds() or 1.0
    return max(0, min(100, int((last - start).total_seconds() * 100 / span)))


def replay(
    target: Target,
    start: datetime,
    end: datetime,
    rules: list[str],
    *,
    dry_run: bool = False,
    attempt: int = 1,
    wait_seconds: float = 600.0,
    progress: Progress | None = None,
) -> ReplayReport:
    if start >= end:
        raise UsageError("--from must be before --to")
    if attempt < 1:
        raise UsageError("--attempt must be 1 or more")
    archive = _archive(target)
    rule_arns = [_rule_arn(target, rule) for rule in rules]
    name = replay_name(target, start, end, rule_arns, attempt)
    report = ReplayReport(
        name=name,
        state="DRY-RUN",
        existed=False,
        archive=str(archive.get("ArchiveArn") or target.archive_name),
        window=(start, end),
        rules=rule_arns,
        archive_events=archive.get("EventCount"),
    )
    existing = _existing(target, name)
    if dry_run:
        if existing:
            report.existed = True
            report.details = existing
        return report
    events = target.client("events")
    if existing is None:
        destination: dict[str, Any] = {"Arn": archive["EventSourceArn"]}
        if rule_arns:
            destination["FilterArns"] = rule_arns
        try:
            events.start_replay(
                ReplayName=name,
                Description=f"ops replay {start.isoformat()} .. {end.isoformat()}",
                EventSourceArn=archive["ArchiveArn"],
                EventStartTime=start,
                EventEndTime=end,
                Destination=destination,
            )
        except ClientError as error:
            # Someone started the same replay between our check and now: that is the repeat case.
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
            report.existed = True
    else:
        report.existed = True
    progress = progress or Progress(f"replay {name}", 100)
    deadline = time.monotonic() + wait_seconds
    with progress:
        while True:
            current = events.describe_replay(ReplayName=name)
            report.state = str(current.get("State", "UNKNOWN"))
            report.details = current
            progress.update(_share(current, start, end), total=100, note=report.state)
            if report.state in FINAL_STATES:
                return report
            if time.monotonic() >= deadline:
                report.timed_out = True
                return report
            time.sleep(POLL_SECONDS)
