"""Which Terraform rules match which emitted events, decided by the emulator's own matcher.

EventBridge's TestEventPattern is the direct question, and LocalStack answers it; where the emulator
does not implement it (moto answers without a Result), each rule's pattern is put on a scratch bus
with a queue of its own and every sample event is published there: delivery is the answer, so the
test still exercises the emulator's matcher rather than one of ours.
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from typing import Any

from pydantic import BaseModel

from ai_comms.models.events import EventDetail, HandoffReason, HandoffRequested, ReplyReceived


def _dummy(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _dummy(options[0]) if options else None
    if origin in (dict, typing.Dict) or annotation is dict:  # noqa: UP006
        return {}
    if origin in (list, typing.List) or annotation is list:  # noqa: UP006
        return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: _dummy(field.annotation) for name, field in annotation.model_fields.items()}
    return {str: "x", int: 1, float: 1.0, bool: False}.get(annotation, "x")


def samples(event_types: tuple[type[EventDetail], ...], channels: list[str]) -> list[EventDetail]:
    """An instance of every event type, for every channel and every route it may carry."""
    found: list[EventDetail] = []
    for event_type in event_types:
        routes = typing.get_args(event_type.model_fields["route"].annotation) or ("x",)
        for channel in channels:
            for route in routes:
                values = {
                    name: _dummy(field.annotation)
                    for name, field in event_type.model_fields.items()
                    if field.is_required()
                }
                values.update(channel=channel, route=route)
                # Built without validation: only the envelope fields and channel/route decide routing.
                found.append(event_type.model_construct(**values))
    return found


def with_consent_changes(details: list[EventDetail]) -> list[EventDetail]:
    """The samples, each ReplyReceived also once per consent change a keyword makes."""
    found: list[EventDetail] = []
    for detail in details:
        found.append(detail)
        if isinstance(detail, ReplyReceived):
            found += [detail.model_copy(update={"consent_change": c}) for c in ("opt_out", "opt_in")]
    return found


def with_every_reason(details: list[EventDetail]) -> list[EventDetail]:
    """The samples, each HandoffRequested once per handoff reason (subscribers filter on it)."""
    found: list[EventDetail] = []
    for detail in details:
        if isinstance(detail, HandoffRequested):
            found += [detail.model_copy(update={"reason": r}) for r in typing.get_args(HandoffReason)]
        else:
            found.append(detail)
    return found


def subscriber_receives(subscriber: dict[str, Any], detail: EventDetail) -> bool:
    """What an entry of var.subscribers declares it receives: its detail types, and its routes,
    channels and handoff reasons where given (an event without a reason passes the reasons)."""
    reason = getattr(detail, "reason", None)
    return (
        detail.DETAIL_TYPE in subscriber["detail_types"]
        and (subscriber.get("routes") is None or detail.route in subscriber["routes"])
        and (subscriber.get("channels") is None or detail.channel in subscriber["channels"])
        and (subscriber.get("reasons") is None or reason is None or reason in subscriber["reasons"])
    )


def envelope(detail: EventDetail, region: str, account: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "account": account,
        "source": detail.SOURCE,
        "time": "2026-01-01T00:00:00Z",
        "region": region,
        "resources": [],
        "detail-type": detail.DETAIL_TYPE,
        "detail": json.loads(detail.model_dump_json(warnings=False)),
    }


def matching_rules(
    events: Any, sqs: Any, region: str, account: str, rules: dict[str, str], details: list[EventDetail]
) -> list[set[str]]:
    """For each detail, the names of the rules whose pattern matches it (``account``: from STS)."""
    first = events.test_event_pattern(
        EventPattern=next(iter(rules.values())), Event=json.dumps(envelope(details[0], region, account))
    )
    if "Result" in first:
        return [
            {
                name
                for name, pattern in rules.items()
                if events.test_event_pattern(
                    EventPattern=pattern, Event=json.dumps(envelope(d, region, account))
                )["Result"]
            }
            for d in details
        ]
    return _by_delivery(events, sqs, rules, details)


def _by_delivery(events: Any, sqs: Any, rules: dict[str, str], details: list[EventDetail]) -> list[set[str]]:
    bus = "probe-" + uuid.uuid4().hex[:8]
    events.create_event_bus(Name=bus)
    queues: dict[str, str] = {}
    try:
        for index, (name, pattern) in enumerate(rules.items()):
            url = sqs.create_queue(QueueName=f"{bus}-{index}")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(Name=f"{bus}-{index}", EventBusName=bus, EventPattern=pattern)
            events.put_targets(Rule=f"{bus}-{index}", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
            queues[name] = url
        results: list[set[str]] = []
        for detail in details:
            answer = events.put_events(
                Entries=[
                    {
                        "Source": detail.SOURCE,
                        "DetailType": detail.DETAIL_TYPE,
                        "Detail": detail.model_dump_json(warnings=False),
                        "EventBusName": bus,
                    }
                ]
            )
            assert answer.get("FailedEntryCount", 0) == 0, answer
            matched: set[str] = set()
            for name, url in queues.items():
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                for message in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                if messages:
                    matched.add(name)
            results.append(matched)
        return results
    finally:
        for index in range(len(queues)):
            events.remove_targets(Rule=f"{bus}-{index}", EventBusName=bus, Ids=["q"])
            events.delete_rule(Name=f"{bus}-{index}", EventBusName=bus)
        for url in queues.values():
            sqs.delete_queue(QueueUrl=url)
        events.delete_event_bus(Name=bus)
