"""The benchmarks' write units: today's writes as metered, the same record writes on the old layout."""

import json
from types import SimpleNamespace
from typing import Any

import pytest

from local_cloud.call_tap import Call, CallTap, extra_calls
from local_cloud.http_proxy import Answer, Request
from local_cloud.item_size import item_size
from local_cloud.write_units import (
    ITEM_LIMIT_BYTES,
    ItemWrite,
    legacy_entry,
    legacy_record,
    legacy_units,
    total_units,
    touches,
)

SCHEMAS = {"conversations": ("recipient_tel", "conversation_id"), "messages": ("conversation_id", "position")}
KEY = {"recipient_tel": {"S": "+447700900123"}, "conversation_id": {"S": "c-1"}}


def record(**extra: Any) -> dict[str, Any]:
    return {**KEY, "status": {"S": "active"}, "inbound_seq": {"N": "1"}, **extra}


def message(seq: int, direction: str = "inbound", body: str = "hello") -> dict[str, Any]:
    return {
        "conversation_id": {"S": "c-1"},
        "position": {"S": f"{seq:010d}#{'in' if direction == 'inbound' else 'out#0000000000001#000'}"},
        "direction": {"S": direction},
        "sid": {"S": f"SM{seq:032d}"},
        "body": {"S": body},
        "at": {"S": "2026-12-01T10:00:00.000Z"},
        "route": {"S": "ai_reply"},
    }


def test_a_transaction_touches_each_item_with_its_key_and_a_put_finds_its_key_in_the_item() -> None:
    body = {
        "TransactItems": [
            {"Update": {"TableName": "conversations", "Key": KEY, "UpdateExpression": "SET a = :a"}},
            {"Put": {"TableName": "messages", "Item": message(1)}},
        ]
    }
    update, put = touches("dynamodb.TransactWriteItems", body, SCHEMAS)
    assert (update.table, update.key, update.action, update.transactional) == (
        "conversations",
        KEY,
        "Update",
        True,
    )
    assert put.key == {"conversation_id": {"S": "c-1"}, "position": {"S": "0000000001#in"}}
    [single] = touches("dynamodb.UpdateItem", {"TableName": "conversations", "Key": KEY}, SCHEMAS)
    assert not single.transactional and single.action == "Update"
    assert touches("dynamodb.GetItem", {"TableName": "conversations", "Key": KEY}, SCHEMAS) == []


def test_todays_writes_cost_their_own_items_twice_in_a_transaction() -> None:
    writes = [
        ItemWrite("conversations", KEY, "Update", True, record(), record(inbound_seq={"N": "2"})),
        ItemWrite("messages", {}, "Put", True, None, message(2)),
        ItemWrite("conversations", KEY, "Update", False, record(), record(lease_owner={"S": "me"})),
    ]
    assert [w.units for w in writes] == [2, 2, 1]
    assert total_units(writes) == 5


def test_the_old_layout_keeps_the_messages_as_the_list_entries_it_had() -> None:
    assert legacy_entry(message(3)) == {
        "M": {
            "direction": {"S": "inbound"},
            "sid": {"S": f"SM{3:032d}"},
            "body": {"S": "hello"},
            "at": {"S": "2026-12-01T10:00:00.000Z"},
        }
    }
    unsent = {k: v for k, v in message(3, "outbound").items() if k != "sid"}
    assert legacy_entry(unsent)["M"]["sid"] == {"S": "unknown"}
    old = legacy_record(record(), [message(1), message(1, "outbound"), message(2)])
    assert len(old["messages"]["L"]) == 3
    assert old["inbound_sids"] == {"SS": [f"SM{1:032d}", f"SM{2:032d}"]}
    assert "inbound_sids" not in legacy_record(record(), [message(1, "outbound")])


def test_the_old_layout_bills_every_record_write_at_the_whole_history() -> None:
    history = [
        message(seq, direction, "x" * 500) for seq in range(1, 21) for direction in ("inbound", "outbound")
    ]
    new = message(21, body="x" * 500)
    inbound = [ItemWrite("conversations", KEY, "Update", True, record(), record(inbound_seq={"N": "21"}))]
    price = legacy_units(inbound, history, [new])
    old_after = legacy_record(record(inbound_seq={"N": "21"}), [*history, new])
    # One standard write of the grown item: ~21 KB, so ~21 units, where today's update costs 2.
    assert price.units == -(-item_size(old_after) // 1024) and price.units > 20
    assert price.writes == 1 and price.item_bytes == item_size(old_after) and not price.over_item_limit
    reply_writes = [
        ItemWrite("conversations", KEY, "Update", False, record(), record(lease_owner={"S": "me"})),
        ItemWrite("conversations", KEY, "Update", True, record(lease_owner={"S": "me"}), record()),
    ]
    reply = legacy_units(reply_writes, [*history, new], [message(21, "outbound", "y" * 500)])
    assert reply.writes == 2 and reply.units >= 2 * price.units
    assert legacy_units([], history, [new]).units == 0


def test_an_old_item_past_400_kb_is_flagged() -> None:
    history = [message(seq, body="z" * 4000) for seq in range(1, 110)]
    price = legacy_units([ItemWrite("conversations", KEY, "Update", True, record(), record())], history, [])
    assert price.item_bytes > ITEM_LIMIT_BYTES and price.over_item_limit


def request(operation: str, body: dict[str, Any]) -> Request:
    target = "DynamoDB_20120810." + operation.split(".")[1]
    return Request("POST", "/", {"X-Amz-Target": target}, json.dumps(body).encode())


def test_the_tap_reads_each_touched_item_around_a_metered_write() -> None:
    store: dict[str, dict[str, Any]] = {"c-1": record()}
    reads: list[str] = []

    def read(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        reads.append(table)
        return store.get(key["conversation_id"]["S"])

    tap = CallTap("twilio_webhook", read, SCHEMAS)
    body = {"TableName": "conversations", "Key": KEY, "UpdateExpression": "SET lease_owner = :o"}

    def send() -> Answer:
        store["c-1"] = record(lease_owner={"S": "x" * 1500})
        return Answer(200, [], b"{}")

    tap("dynamodb.UpdateItem", request("dynamodb.UpdateItem", body), send)
    assert reads == []  # not metering: timed only
    tap.metering = True
    mark = tap.mark()
    tap("dynamodb.UpdateItem", request("dynamodb.UpdateItem", body), send)
    [call] = tap.since(mark)
    assert reads == ["conversations", "conversations"]
    [write] = call.writes
    assert write.before == record(lease_owner={"S": "x" * 1500}) and write.units == 2
    assert call.table == "conversations" and call.key == KEY and call.names("+447700900123")

    refused = Answer(400, [], b'{"__type": "ConditionalCheckFailedException"}')
    tap("dynamodb.UpdateItem", request("dynamodb.UpdateItem", body), lambda: refused)
    [failed] = tap.since(mark + 1)
    assert failed.status == 400 and failed.writes[0].after == failed.writes[0].before


def call(operation: str, table: str, tel: str, ms: float) -> Call:
    key = {"customer_address": {"S": "whatsapp:" + tel}}
    return Call("reply_processor", operation, 0.0, ms, 200, table, key)


def test_extra_calls_are_counted_per_send_and_their_time_taken_out_of_each_path() -> None:
    calls = [
        call("dynamodb.GetItem", "consent", "+1", 3.0),
        call("dynamodb.GetItem", "consent", "+1", 2.0),
        call("dynamodb.UpdateItem", "conversations", "+1", 5.0),
        call("dynamodb.GetItem", "consent", "+2", 4.0),
        call("dynamodb.GetItem", "conversations", "+2", 1.0),
    ]
    cost = extra_calls(calls, lambda c: c.table == "consent", {"+1": 100.0, "+2": 50.0}, 2)
    assert cost.calls_per_send == 2.5 and cost.extra_per_send == 1.5
    assert cost.extra_by_operation == {"dynamodb.GetItem": 1.5}
    assert cost.extra_by_function == {"reply_processor": 1.5}
    assert cost.extra_ms == [3.0, 2.0, 4.0]
    assert cost.path_ms_without == pytest.approx([95.0, 46.0])


def test_a_counter_hands_forwarded_calls_to_its_observer() -> None:
    from local_cloud.accounting import CallCounter

    seen: list[str] = []
    upstream = CallCounter("http://127.0.0.1:9").start()  # never reached: the observer answers
    try:
        upstream.observe(lambda operation, req, send: (seen.append(operation), Answer(200, [], b"{}"))[1])
        headers = SimpleNamespace(
            get=lambda name, default="": {"X-Amz-Target": "x.GetItem"}.get(name, default)
        )
        answer = upstream.serve(Request("POST", "/", headers, b"{}"))
        assert answer is not None and answer.status == 200 and seen == ["unknown.GetItem"]
        upstream.observe(None)
    finally:
        upstream.stop()
