"""`ops migrate`: moves conversations whose history is one list on the record to message items.

Idempotent and resumable. A conversation is migrated in two steps: its message items are written
(a message's key is its position, so writing it again changes nothing), then the list is removed
from the record with a condition that it is still the list that was read. A run interrupted between
the two steps leaves a record that the next run migrates again, to the same items. The scan's
position is saved in a state file after every page, so a run resumes where the last one stopped;
records already migrated no longer match the scan's filter either way.
"""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ai_comms.clock import parse_iso
from ai_comms.store.legacy_history import LegacyHistory, LegacyMismatch, messages_of
from ai_comms.store.messages import MessageRepository
from ops.progress import Progress
from ops.target import Target


@dataclass
class MigrationReport:
    scanned: int = 0
    conversations: int = 0
    messages: int = 0
    changed_meanwhile: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.changed_meanwhile and not self.mismatched


def default_state_file(target: Target) -> Path:
    return Path(f"ops-migrate-{target.name}.json")


def _load_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    key = state.get("next_key")
    return key if isinstance(key, dict) else None


def _save_state(path: Path, next_key: dict[str, Any] | None, report: MigrationReport) -> None:
    path.write_text(
        json.dumps({"next_key": next_key, "conversations": report.conversations, "messages": report.messages})
        + "\n",
        encoding="utf-8",
    )


def migrate(
    target: Target,
    *,
    dry_run: bool,
    state_file: Path,
    restart: bool,
    ttl_days: int,
    progress_stream: TextIO | None = None,
) -> MigrationReport:
    dynamodb = target.client("dynamodb")
    legacy = LegacyHistory(dynamodb, target.conversations_table)
    messages = MessageRepository(dynamodb, target.messages_table)
    start = None if (restart or dry_run) else _load_state(state_file)
    report = MigrationReport()
    with Progress("migrate", total=legacy.count() or None, stream=progress_stream) as progress:
        for page in legacy.pages(start):
            report.scanned += page.scanned
            for record in page.records:
                conversation_id = record.conversation.conversation_id
                try:
                    # Each message keeps the expiry it would have had in the new layout.
                    items = messages_of(record, None)
                except LegacyMismatch:
                    report.mismatched.append(conversation_id)
                    continue
                items = [
                    m.model_copy(
                        update={"expires_at": int((parse_iso(m.at) + timedelta(days=ttl_days)).timestamp())}
                    )
                    for m in items
                ]
                if not dry_run:
                    messages.put_all(items)
                    if not legacy.retire(record, items[-1].at if items else None):
                        report.changed_meanwhile.append(conversation_id)
                        continue
                report.conversations += 1
                report.messages += len(items)
            progress.update(
                report.scanned, note=f"{report.conversations} conversations, {report.messages} messages"
            )
            if not dry_run:
                _save_state(state_file, page.next_key, report)
    if not dry_run and report.complete:
        state_file.unlink(missing_ok=True)
    return report
