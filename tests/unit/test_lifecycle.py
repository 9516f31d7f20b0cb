"""The lifecycle table: complete, without dead ends, and what the store's writes are held to."""

from typing import get_args

import pytest

from ai_comms.models.conversation import OPEN_STATUSES, ConversationStatus
from ai_comms.models.lifecycle import BY_NAME, NEW, TRANSITIONS, guard
from ai_comms.store.outbound_records import OutboundRecords
from ai_comms.store.reply_records import LeaseLost, LeaseRef, ReplyRecords

from .conftest import TABLES, Cloud
from .reply_support import open_conversation

STATUSES = set(get_args(ConversationStatus))


def test_every_status_is_in_the_table_and_every_transition_names_real_statuses() -> None:
    named = {t.target for t in TRANSITIONS} | {s for t in TRANSITIONS for s in t.sources if s != NEW}
    assert named == STATUSES
    assert len(BY_NAME) == len(TRANSITIONS)


def test_no_status_is_a_dead_end() -> None:
    # closed is the end of a conversation, not of the customer: their next message opens a new one.
    leaving = {s for t in TRANSITIONS for s in t.sources}
    assert STATUSES - leaving == {"closed"}
    assert "closed" not in OPEN_STATUSES


def test_a_guard_holds_a_write_to_exactly_its_transitions_sources() -> None:
    condition, values, target = guard("handback")
    assert target == "active"
    assert condition == "#status IN (:handback_from_0, :handback_from_1)"
    assert {v["S"] for v in values.values()} == {"handed_off", "ignored"}


def test_a_transition_not_in_the_table_cannot_be_asked_for() -> None:
    with pytest.raises(KeyError):
        guard("reopen_anything")
    with pytest.raises(ValueError, match="creates a conversation"):
        guard("requested")


def test_the_store_refuses_a_write_along_no_transition(cloud: Cloud) -> None:
    # A conversation a person has never becomes window_closed: only an active one does.
    conversation = open_conversation(cloud, status="handed_off", handoff_to_human=True)
    records = ReplyRecords(cloud.dynamodb, TABLES["conversations"], TABLES["messages"])
    lease = LeaseRef(conversation.recipient_tel, conversation.conversation_id, "owner")
    records.acquire(lease, 0, 10**13)
    with pytest.raises(LeaseLost):
        records.close_window(lease, 1, "2026-12-01T00:00:00.000Z")
    records.close_window(lease, 1, "2026-12-01T00:00:00.000Z", change_status=False)
    stored = records.get(conversation.recipient_tel, conversation.conversation_id)
    assert stored is not None and stored.status == "handed_off" and stored.answered_seq == 1


def test_a_template_send_is_claimed_only_from_initiating(cloud: Cloud) -> None:
    conversation = open_conversation(cloud, status="active")
    records = OutboundRecords(cloud.dynamodb, TABLES["conversations"], TABLES["messages"])
    claimed = records.claim(conversation.recipient_tel, conversation.conversation_id, "c1", 10**13, "now")
    assert claimed is False
