"""The outbox relay: stream records of recorded messages become ReplyReceived events, at least once."""

from typing import Any
from unittest import mock

from ai_comms.inbound.outbox import OutboxRelay
from ai_comms.models.message import Message
from ai_comms.providers.events import EventPublisher
from ai_comms.store.messages import MessageRepository

from .conftest import BUS, Cloud
from .lambda_context import FakeContext


def _inbound(seq: int, conversation_id: str = "c-relay") -> Message:
    return Message(
        conversation_id=conversation_id,
        direction="inbound",
        author="customer",
        seq=seq,
        sid=f"SM{seq:032d}",
        body=f"message {seq}",
        at="2026-12-01T00:00:00.000Z",
        route="ai_reply",
        channel="whatsapp",
        company_id="acme",
        project_id="support",
        recipient_tel="+447700900123",
        customer_address="whatsapp:+447700900123",
        company_address="whatsapp:+14155550100",
    )


def _record(message: Message, sequence: int, event_name: str = "INSERT") -> dict[str, Any]:
    return {
        "eventID": f"e{sequence}",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "NewImage": MessageRepository.item(message),
            "SequenceNumber": str(sequence),
            "StreamViewType": "NEW_IMAGE",
        },
    }


class Bus:
    """put_events that refuses the entries named, and records every accepted detail."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.refuse = refuse or set()
        self.calls: list[list[dict[str, str]]] = []
        self.accepted: list[str] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(Entries)
        results: list[dict[str, str]] = []
        for entry in Entries:
            if any(sid in entry["Detail"] for sid in self.refuse):
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.accepted.append(entry["Detail"])
                results.append({"EventId": f"id-{len(self.accepted)}"})
        failed = sum("ErrorCode" in r for r in results)
        return {"FailedEntryCount": failed, "Entries": results}


def test_records_are_published_ten_per_call_in_stream_order() -> None:
    bus = Bus()
    relay = OutboxRelay(EventPublisher(bus, BUS))
    result = relay.relay([_record(_inbound(seq), seq) for seq in range(1, 24)])
    assert (result.published, result.skipped, result.failed_from) == (23, 0, None)
    assert [len(call) for call in bus.calls] == [10, 10, 3]
    assert all(e["DetailType"] == "ReplyReceived" and e["EventBusName"] == BUS for c in bus.calls for e in c)
    assert [f"message {seq}" in d for seq, d in zip(range(1, 24), bus.accepted, strict=True)]


def test_a_refused_entry_is_retried_in_place_first() -> None:
    records = [_record(_inbound(seq), seq) for seq in range(1, 6)]
    bus = Bus(refuse={f"SM{3:032d}"})
    relay = OutboxRelay(EventPublisher(bus, BUS))
    real = bus.put_events

    def heals(Entries: list[dict[str, str]]) -> dict[str, Any]:
        answer = real(Entries)
        bus.refuse.clear()  # a passing throttle
        return answer

    with mock.patch.object(bus, "put_events", side_effect=heals):
        result = relay.relay(records)
    assert (result.published, result.failed_from) == (5, None)
    assert [len(call) for call in bus.calls] == [5, 1]  # only the refused entry went again
    assert len(set(bus.accepted)) == 5


def test_an_entry_still_refused_stops_the_batch_there_and_the_retry_resumes_from_it() -> None:
    records = [_record(_inbound(seq), 100 + seq) for seq in range(1, 16)]
    bus = Bus(refuse={f"SM{12:032d}"})
    relay = OutboxRelay(EventPublisher(bus, BUS))

    first = relay.relay(records)
    assert first.failed_from == "112"
    # Three tries of the refused entry; no call for anything after its chunk.
    assert [len(call) for call in bus.calls] == [10, 5, 1, 1]

    bus.refuse.clear()
    resumed = relay.relay(records[11:])  # what Lambda delivers again from the reported record
    assert resumed.failed_from is None
    published = set(bus.accepted)
    # Every message published; those after the refused one in its call possibly twice (at least once).
    assert len(published) == 15 and len(bus.accepted) == 18


def test_a_failing_put_events_call_fails_from_the_first_record_of_that_call() -> None:
    from botocore.exceptions import EndpointConnectionError

    bus = Bus()
    relay = OutboxRelay(EventPublisher(bus, BUS))
    records = [_record(_inbound(seq), seq) for seq in range(1, 13)]
    calls = {"n": 0}
    real = bus.put_events

    def flaky(Entries: list[dict[str, str]]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise EndpointConnectionError(endpoint_url="https://events")
        return real(Entries)

    with mock.patch.object(bus, "put_events", side_effect=flaky):
        result = relay.relay(records)
    assert result.failed_from == "11" and result.published == 10


def test_what_is_not_a_recorded_customer_message_is_skipped_never_retried() -> None:
    bus = Bus()
    relay = OutboxRelay(EventPublisher(bus, BUS))
    outbound = _inbound(3).model_copy(update={"direction": "outbound", "route": None})
    broken = _record(_inbound(4), 4)
    broken["dynamodb"]["NewImage"].pop("body")
    result = relay.relay(
        [_record(_inbound(1), 1), _record(_inbound(2), 2, "MODIFY"), _record(outbound, 3), broken]
    )
    assert (result.published, result.skipped, result.failed_from) == (1, 3, None)


def test_the_handler_reports_the_record_to_retry_from(cloud: Cloud) -> None:
    assert cloud.outbox is not None
    handler = cloud.outbox.load()
    records = [_record(_inbound(seq), seq) for seq in range(1, 4)]
    failing = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}
    with mock.patch.object(handler.relay._publisher._events, "put_events", return_value=failing):
        answer = handler.lambda_handler({"Records": records}, FakeContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert handler.lambda_handler({"Records": records}, FakeContext()) == {"batchItemFailures": []}
    assert len(cloud.drain("ai_reply")) == 3
