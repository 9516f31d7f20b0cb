"""Publishes event models to the bus; a rejected entry is an error, never silently dropped."""

from typing import Any

from ai_comms.models.events import EventDetail


class PublishFailed(Exception):
    pass


class EventPublisher:
    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, detail: EventDetail) -> str:
        answer = self._events.put_events(
            Entries=[
                {
                    "Source": detail.SOURCE,
                    "DetailType": detail.DETAIL_TYPE,
                    "Detail": detail.model_dump_json(),
                    "EventBusName": self._bus,
                }
            ]
        )
        entry: dict[str, str] = answer["Entries"][0]
        if answer.get("FailedEntryCount", 0) or "EventId" not in entry:
            raise PublishFailed(f"{detail.DETAIL_TYPE} rejected: {entry.get('ErrorCode', 'unknown')}")
        return str(entry["EventId"])
