"""``StartReplay`` of a non-empty archive, fixed for LocalStack 2026.3.0.

An archive keeps each event formatted, its ``time`` a string (``"2026-01-01T00:00:00Z"``), and in
2026.3.0 three steps of ``StartReplay`` treat that string as a datetime:

* ``ArchiveService._filter_events_start_end_time`` calls ``_normalize_datetime(event["time"])``,
  i.e. ``str.replace(second=0, microsecond=0)``: TypeError, the request answers 500 after the
  replay was already stored (the SDK's retry then gets ResourceAlreadyExistsException);
* ``ReplayService.re_format_events_from_archive`` passes the string on as the PutEvents ``Time``,
  where ``events.utils.get_event_time`` calls ``Time.replace(tzinfo=UTC)`` (and only catches
  ValueError);
* ``ReplayService._set_event_last_replayed_time`` stores the string where ``DescribeReplay``
  serialises a timestamp.

Each gets the datetime the string stands for; nothing else changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localstack.runtime import hooks

from localstack_host import require_supported_version

EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # events.utils.event_time_to_time_string


def event_time(value: Any) -> Any:
    """An archived event's ``time`` string as an aware datetime; anything else unchanged."""
    if isinstance(value, str):
        return datetime.strptime(value, EVENT_TIME_FORMAT).replace(tzinfo=UTC)
    return value


def apply() -> None:
    # Imported once the version is known to be the one these patches were written for.
    from localstack.services.events.archive import ArchiveService  # noqa: PLC0415
    from localstack.services.events.replay import ReplayService  # noqa: PLC0415
    from localstack.utils.patch import patch  # noqa: PLC0415

    @patch(ArchiveService._normalize_datetime)
    def _normalize_event_time(fn: Any, self: Any, value: Any) -> Any:
        return fn(self, event_time(value))

    @patch(ReplayService.re_format_events_from_archive)
    def _entries_with_datetime_time(fn: Any, self: Any, events: Any, replay_name: str) -> Any:
        entries = fn(self, events, replay_name)
        for entry in entries:
            if "Time" in entry:
                entry["Time"] = event_time(entry["Time"])
        return entries

    @patch(ReplayService._set_event_last_replayed_time)
    def _last_replayed_as_datetime(fn: Any, self: Any, events: Any) -> None:
        fn(self, events)
        self.replay.event_last_replayed_time = event_time(self.replay.event_last_replayed_time)


@hooks.on_infra_start()
def fix_start_replay() -> None:
    require_supported_version()
    apply()
