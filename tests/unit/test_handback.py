"""Handback and close, through the API and `ops conversation handback`: the AI answers the customer's
next message and never one a person handled; whether it reads what was said meanwhile is the
project's human_era_context; a closed conversation's next message opens a new one."""

import io
import json
from pathlib import Path
from typing import Any

import pytest

from ai_comms.clock import utc_now
from ai_comms.models.conversation import PendingReply
from ai_comms.store.conversations import ConversationRepository
from ops.__main__ import main as ops_main

from .conftest import CUSTOMER_NUMBER, TABLES
from .conversations_support import Agents, agents, allow_client, handed_off
from .reply_support import fakes, open_conversation, replies

__all__ = ["agents", "fakes", "replies"]


def hand_over_by_the_ai(agents: Agents) -> None:
    """The customer asks for a person; the AI hands the conversation over (seq 1 answered)."""
    agents.replies.openai.script({"text": "Let me get a colleague.", "action": "handoff"})
    agents.replies.customer_says("I want to talk to a person")
    assert agents.replies.deliver() == []
    stored = agents.replies.stored()
    assert stored.status == "handed_off" and stored.answered_seq == 1


def ai_inputs(agents: Agents) -> list[list[dict[str, Any]]]:
    return [call["body"].get("input", []) for call in agents.replies.ai_calls()]


def test_after_a_handback_the_ai_answers_the_next_message_and_never_the_handled_ones(agents: Agents) -> None:
    conversation_id = agents.replies.conversation.conversation_id
    hand_over_by_the_ai(agents)
    agents.replies.customer_says("hello? is anyone there", "my order is A-17")
    assert agents.replies.deliver() == []  # the person's messages: nothing for the AI
    assert agents.say(conversation_id, "Hi, Sam here. A-17 ships tomorrow.", message_id="sam-1")[0] == 202
    before = agents.replies.stored()
    assert (before.inbound_seq, before.answered_seq) == (3, 1)

    status, state = agents.call("POST", f"/conversations/{conversation_id}/handback")

    assert status == 200, state
    assert (state["status"], state["handed_off"], state["answered_seq"], state["inbound_seq"]) == (
        "active",
        False,
        3,
        3,
    )
    raw = agents.replies.raw_item()
    assert raw["tenant_status"]["S"] == "acme#support#active"
    assert (raw["human_era_from"]["N"], raw["human_era_upto"]["N"]) == ("1", "3")
    calls = len(agents.replies.ai_calls())
    agents.replies.customer_says("thanks, and can I change the address?")
    assert agents.replies.deliver() == []

    inputs = ai_inputs(agents)
    assert len(inputs) == calls + 1
    assert inputs[-1] == [{"role": "user", "content": "thanks, and can I change the address?"}]
    assert agents.replies.sent()[-1]["body"] == "Thanks! You said: thanks, and can I change the address?"
    after = agents.replies.stored()
    assert after.answered_seq == after.inbound_seq == 4


def test_with_human_era_context_the_next_turn_reads_what_the_person_and_customer_said(agents: Agents) -> None:
    allow_client(agents.cloud, human_era_context=True)
    conversation_id = agents.replies.conversation.conversation_id
    hand_over_by_the_ai(agents)
    agents.replies.customer_says("hello? is anyone there")
    assert agents.say(conversation_id, "Hi, Sam here. A-17 ships tomorrow.")[0] == 202
    agents.replies.customer_says("great, thanks Sam")
    assert agents.call("POST", f"/conversations/{conversation_id}/handback")[0] == 200

    agents.replies.customer_says("one more thing: can I pay by card?")
    assert agents.replies.deliver() == []

    assert ai_inputs(agents)[-1] == [
        {"role": "user", "content": "hello? is anyone there"},
        {"role": "assistant", "content": "Hi, Sam here. A-17 ships tomorrow."},
        {"role": "user", "content": "great, thanks Sam"},
        {"role": "user", "content": "one more thing: can I pay by card?"},
    ]
    # Read once: the turn after it carries only its own message.
    agents.replies.customer_says("and in instalments?")
    assert agents.replies.deliver() == []
    assert ai_inputs(agents)[-1] == [{"role": "user", "content": "and in instalments?"}]


def test_without_it_a_new_ai_conversation_opens_without_the_persons_time(agents: Agents) -> None:
    conversation_id = agents.replies.conversation.conversation_id
    hand_over_by_the_ai(agents)
    agents.replies.customer_says("still there?")
    assert agents.say(conversation_id, "Sam here, all sorted.")[0] == 202
    assert agents.call("POST", f"/conversations/{conversation_id}/handback")[0] == 200
    # The AI conversation outgrew the model: its replacement opens with the last turns, none of them
    # said while a person had the conversation.
    agents.replies.openai.add_faults({"error": "context_length_exceeded"})
    agents.replies.customer_says("new question")
    assert agents.replies.deliver() == []
    created = [r for r in agents.replies.openai.requests.snapshot() if r["path"] == "/v1/conversations"]
    carried = [item["content"] for item in created[-1]["body"].get("items", [])]
    assert "I want to talk to a person" in carried
    assert "still there?" not in carried and "Sam here, all sorted." not in carried


def test_handback_needs_a_conversation_a_person_has_and_no_reply_in_flight(agents: Agents) -> None:
    active = open_conversation(agents.cloud)
    status, answer = agents.call("POST", f"/conversations/{active.conversation_id}/handback")
    assert (status, answer["error"]) == (409, "not_handed_off")

    pending = PendingReply(upto_seq=1, text="notice", action="handoff", parts=["notice"])
    busy = handed_off(agents.cloud, inbound_seq=1, answered_seq=0, pending_reply=pending)
    status, answer = agents.call("POST", f"/conversations/{busy.conversation_id}/handback")
    assert (status, answer["error"]) == (409, "conversation_busy")

    now_ms = int(utc_now().timestamp() * 1000)
    leased = handed_off(agents.cloud, lease_owner="processor", lease_until=now_ms + 60_000)
    status, answer = agents.call("POST", f"/conversations/{leased.conversation_id}/handback")
    assert (status, answer["error"]) == (409, "conversation_busy")
    assert agents.stored(leased).handoff_to_human and agents.stored(busy).handoff_to_human

    expired = handed_off(agents.cloud, lease_owner="processor", lease_until=now_ms - 1)
    assert agents.call("POST", f"/conversations/{expired.conversation_id}/handback")[0] == 200


def test_a_second_handover_before_the_ai_spoke_keeps_the_first_ones_messages(agents: Agents) -> None:
    conversation = handed_off(agents.cloud, inbound_seq=4, answered_seq=2)
    repository = ConversationRepository(agents.cloud.dynamodb, TABLES["conversations"])
    back = repository.hand_back(conversation, "2026-12-01T10:00:00.000Z", 0)
    assert (back.human_era_from, back.human_era_upto, back.answered_seq) == (2, 4, 4)
    # A delivery failure hands it over again before the AI answered anything; two more messages.
    agents.cloud.dynamodb.update_item(
        TableName=TABLES["conversations"],
        Key=ConversationRepository.key(CUSTOMER_NUMBER, conversation.conversation_id),
        UpdateExpression="SET handoff_to_human = :t, #s = :h, inbound_seq = :six",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":t": {"BOOL": True}, ":h": {"S": "handed_off"}, ":six": {"N": "6"}},
    )
    again = repository.hand_back(agents.stored(conversation), "2026-12-01T11:00:00.000Z", 0)
    assert (again.human_era_from, again.human_era_upto, again.answered_seq) == (2, 6, 6)


def test_ops_handback_follows_the_same_rule(
    agents: Agents, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conversation = handed_off(agents.cloud, inbound_seq=5, answered_seq=2)
    outputs = tmp_path / "outputs.json"
    tables = {
        "conversations": TABLES["conversations"],
        "messages": TABLES["messages"],
        "consent": TABLES["consent"],
    }
    outputs.write_text(json.dumps({"workspace": "unit", "tables": tables}))
    command = [
        "--outputs",
        str(outputs),
        "conversation",
        "handback",
        CUSTOMER_NUMBER,
        conversation.conversation_id,
    ]

    assert ops_main(command, out=io.StringIO()) == 0, capsys.readouterr().err

    stored = agents.stored(conversation)
    assert (stored.status, stored.handoff_to_human, stored.answered_seq) == ("active", False, 5)
    assert (stored.human_era_from, stored.human_era_upto) == (2, 5)
    assert agents.raw(conversation)["tenant_status"]["S"] == "acme#support#active"
    assert ops_main(command, out=io.StringIO()) == 1
    assert "not handed off" in capsys.readouterr().err


def test_closing_ends_the_conversation_and_the_next_message_opens_a_new_one(agents: Agents) -> None:
    conversation = agents.replies.conversation
    status, state = agents.call("POST", f"/conversations/{conversation.conversation_id}/close")
    assert (status, state["status"], state["handed_off"]) == (200, "closed", False)
    assert agents.call("POST", f"/conversations/{conversation.conversation_id}/close") == (200, state)

    agents.replies.customer_says("a new question")
    assert agents.replies.deliver() == []
    assert agents.replies.history() == []  # nothing joined the closed conversation
    newest, _ = ConversationRepository(agents.cloud.dynamodb, TABLES["conversations"]).open_for(
        CUSTOMER_NUMBER, conversation.company_address
    )
    assert newest is not None and newest.conversation_id != conversation.conversation_id
    assert newest.inbound_seq == 1 and newest.opened_by == "customer"


def test_an_ended_or_starting_conversation_cannot_be_closed(agents: Agents) -> None:
    for status_value, expected in (("failed", "conversation_ended"), ("undelivered", "conversation_ended")):
        ended = handed_off(agents.cloud, status=status_value, handoff_to_human=False)
        status, answer = agents.call("POST", f"/conversations/{ended.conversation_id}/close")
        assert (status, answer["error"]) == (409, expected)
    starting = handed_off(agents.cloud, status="sending", handoff_to_human=False)
    status, answer = agents.call("POST", f"/conversations/{starting.conversation_id}/close")
    assert (status, answer["error"]) == (409, "conversation_busy")
    assert agents.stored(starting).status == "sending"


def test_a_message_recorded_while_the_handback_runs_is_the_ais(agents: Agents) -> None:
    """The webhook's write is conditional on the record it read: once the handback changed it, the
    message is recorded again on the handed-back record, with the AI's route."""
    conversation_id = agents.replies.conversation.conversation_id
    hand_over_by_the_ai(agents)
    stale = agents.replies.stored()
    assert agents.call("POST", f"/conversations/{conversation_id}/handback")[0] == 200
    repository = ConversationRepository(agents.cloud.dynamodb, TABLES["conversations"])
    real = repository.open_for
    reads: list[int] = []

    def stale_first(tel: str, address: str) -> Any:
        reads.append(1)
        return (stale, stale) if len(reads) == 1 else real(tel, address)

    service = agents.replies.webhook.service
    service._conversations.open_for = stale_first
    agents.replies.customer_says("are you back?")
    assert len(reads) == 2
    assert agents.replies.deliver() == []
    assert agents.replies.sent()[-1]["body"] == "Thanks! You said: are you back?"
    assert agents.replies.stored().answered_seq == 2
