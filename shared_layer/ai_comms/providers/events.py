"""Publishes event models to the bus; a rejected entry is an error, never silently dropped."""

from typing import Any

from ai_comms.models.events import EventDetail


class PublishFailed(Exception):
    pass


class EventPublisher:
    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    @property
    def bus_name(self) -> str:
        return self._bus

    def entry(self, detail: EventDetail) -> dict[str, str]:
        return {
            "Source": detail.SOURCE,
            "DetailType": detail.DETAIL_TYPE,
            "Detail": detail.model_dump_json(),
            "EventBusName": self._bus,
        }

    def refused(self, entries: list[dict[str, str]]) -> list[int]:
        """One PutEvents call (at most 10 entries): the indexes of the entries the bus refused (it
        accepts the others of the call)."""
        answer = self._events.put_events(Entries=entries)
        if not answer.get("FailedEntryCount", 0):
            return []
        results = answer.get("Entries", [])
        return [i for i in range(len(entries)) if i >= len(results) or "EventId" not in results[i]]

    def publish(self, detail: EventDetail) -> str:
        answer = self._events.put_events(Entries=[self.entry(detail)])
        entry: dict[str, str] = answer["Entries"][0]
        if answer.get("FailedEntryCount", 0) or "EventId" not in entry:
            raise PublishFailed(f"{detail.DETAIL_TYPE} rejected: {entry.get('ErrorCode', 'unknown')}")
        return str(entry["EventId"])
