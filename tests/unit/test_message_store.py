"""The messages table's key layout: a conversation reads in order, the burst after answered_seq alone."""

import random

from ai_comms.models.message import Message
from ai_comms.store.messages import POSITION_BYTES, MessageRepository, inbound_position, position_of

from .conftest import TABLES, Cloud

CONVERSATION = "c-layout"


def _message(direction: str, seq: int, batch: int = 0, part: int = 0, body: str = "") -> Message:
    return Message(
        conversation_id=CONVERSATION,
        direction=direction,  # type: ignore[arg-type]
        author="customer" if direction == "inbound" else "ai",
        seq=seq,
        batch=batch,
        part=part,
        sid=f"SM{seq}{batch}{part}",
        body=body or f"{direction} {seq}/{batch}/{part}",
        at="2026-12-01T00:00:00.000Z",
    )


def _conversation_in_order() -> list[Message]:
    """A template, then five customer messages, each answered; the second answered by two parts
    and, later, by an agent's message too."""
    order = [_message("outbound", 0, batch=1_700_000_000_000)]
    for seq in range(1, 6):
        order.append(_message("inbound", seq))
        order.append(_message("outbound", seq, batch=1_800_000_000_000 + seq))
        if seq == 2:
            order.append(_message("outbound", seq, batch=1_800_000_000_000 + seq, part=1))
            order.append(_message("outbound", seq, batch=1_900_000_000_000))
    return order


def test_positions_sort_as_the_conversation_reads() -> None:
    ordered = _conversation_in_order()
    positions = [position_of(m) for m in ordered]
    assert positions == sorted(positions)
    assert position_of(_message("inbound", 12)) == "0000000012#in" == inbound_position(12)
    assert position_of(_message("outbound", 12, batch=1_796_000_000_000, part=3)) == (
        "0000000012#out#1796000000000#003"
    )
    # Far below DynamoDB's 1,024-byte limit for a sort key, whatever the numbers.
    assert len(position_of(_message("outbound", 9_999_999_999, batch=9_999_999_999_999, part=999))) == (
        POSITION_BYTES
    )


def test_history_reads_in_order_whatever_the_write_order(cloud: Cloud) -> None:
    ordered = _conversation_in_order()
    shuffled = list(ordered)
    random.Random(7).shuffle(shuffled)
    repository = MessageRepository(cloud.dynamodb, TABLES["messages"])
    repository.put_all(shuffled)

    assert [m.body for m in repository.all_of(CONVERSATION)] == [m.body for m in ordered]
    newest = repository.history(CONVERSATION, limit=3, newest_first=True)
    assert [m.body for m in newest.messages] == [m.body for m in reversed(ordered[-3:])]
    first = repository.history(CONVERSATION, limit=4)
    rest = repository.history(CONVERSATION, after_position=first.next_position)
    assert [m.body for m in first.messages + rest.messages] == [m.body for m in ordered]
    assert rest.next_position is None


def test_the_burst_after_answered_seq_is_one_range_of_customer_messages_only(cloud: Cloud) -> None:
    repository = MessageRepository(cloud.dynamodb, TABLES["messages"])
    repository.put_all(_conversation_in_order())

    burst = repository.inbound_between(CONVERSATION, after_seq=1, upto_seq=4)

    # Seq 2..4 in order; the replies and the agent message between them are not part of it.
    assert [(m.direction, m.seq) for m in burst] == [("inbound", 2), ("inbound", 3), ("inbound", 4)]
    assert repository.inbound_between(CONVERSATION, after_seq=5, upto_seq=5) == []
    assert [m.seq for m in repository.inbound_between(CONVERSATION, after_seq=4, upto_seq=9)] == [5]


def test_the_burst_read_does_not_grow_with_the_history(cloud: Cloud) -> None:
    """The range read touches only the messages after answered_seq, however many came before."""
    repository = MessageRepository(cloud.dynamodb, TABLES["messages"])
    long_history = [_message("inbound", seq) for seq in range(1, 301)]
    long_history += [_message("outbound", seq, batch=1_800_000_000_000) for seq in range(1, 300)]
    repository.put_all(long_history)
    scanned: list[int] = []

    def count(parsed: dict[str, int], **_: object) -> None:
        scanned.append(parsed["ScannedCount"])

    cloud.dynamodb.meta.events.register("after-call.dynamodb.Query", count)
    try:
        burst = repository.inbound_between(CONVERSATION, after_seq=299, upto_seq=300)
    finally:
        cloud.dynamodb.meta.events.unregister("after-call.dynamodb.Query", count)
    assert [m.seq for m in burst] == [300]
    # One Query that read one item, not the 599 before it.
    assert scanned == [1]
