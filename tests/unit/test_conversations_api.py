"""The conversations API's reading routes and refusals through the real handler in a mocked account:
tenant binding, the listing and its cursor, a conversation's state and history, and every refusal
with its status and shape."""

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ai_comms.masking import mask_address
from ai_comms.models.delivery import StatusCallback
from ai_comms.models.message import Message
from ai_comms.store.delivery import DeliveryRecords
from ai_comms.store.messages import MessageRepository, inbound_position, outbound_position

from .conftest import CUSTOMER_NUMBER, TABLES
from .conversations_support import (
    OTHER_KEY_ID,
    TENANT,
    Agents,
    agents,
    api_event,
    handed_off,
    query,
)
from .lambda_context import FakeContext
from .reply_support import fakes, open_conversation, replies

__all__ = ["agents", "fakes", "replies"]


def conversation_path(conversation_id: str, tail: str = "") -> str:
    return f"/conversations/{conversation_id}{tail}"


def test_a_handed_off_conversation_is_listed_with_its_customer_masked(agents: Agents) -> None:
    conversation = handed_off(agents.cloud)
    active = open_conversation(agents.cloud)

    status, answer = agents.call("GET", "/conversations")

    assert status == 200, answer
    [listed] = answer["conversations"]
    assert listed == {
        "conversation_id": conversation.conversation_id,
        "channel": "whatsapp",
        "customer": mask_address("whatsapp:" + CUSTOMER_NUMBER),
        "status": "handed_off",
        "last_activity_at": conversation.created_at,
        "handoff_reason": "ai_action",
    }
    assert CUSTOMER_NUMBER not in json.dumps(answer)
    status, answer = agents.call("GET", "/conversations", query(status="active"))
    assert {c["conversation_id"] for c in answer["conversations"]} == {
        active.conversation_id,
        agents.replies.conversation.conversation_id,
    }


def test_the_list_pages_with_an_opaque_cursor_bound_to_its_tenant_and_status(agents: Agents) -> None:
    ids = []
    for hour in range(5):
        ids.append(
            handed_off(agents.cloud, last_activity_at=f"2026-11-0{hour + 1}T00:00:00.000Z").conversation_id
        )
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        status, answer = agents.call(
            "GET", "/conversations", query(limit="2", **({"cursor": cursor} if cursor else {}))
        )
        assert status == 200, answer
        seen += [c["conversation_id"] for c in answer["conversations"]]
        cursor = answer.get("next_cursor")
        if cursor is None:
            break
    assert seen == list(reversed(ids))

    status, answer = agents.call("GET", "/conversations", query(limit="2"))
    cursor = answer["next_cursor"]
    # The same cursor under another status (or forged for another tenant) is refused, not followed.
    status, refused = agents.call("GET", "/conversations", query(status="active", cursor=cursor))
    assert status == 400 and refused["errors"][0]["field"] == "query.cursor"
    forged = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged["tenant_status"] = "other#support#handed_off"
    other = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    assert agents.call("GET", "/conversations", query(cursor=other))[0] == 400
    for junk in ("%%%", "bm90IGpzb24", base64.urlsafe_b64encode(b"[1,2]").decode(), "e30"):
        assert agents.call("GET", "/conversations", query(cursor=junk))[0] == 400, junk


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "query.status"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "many"}, "query.limit"),
        ({"company_id": "ACME"}, "query.company_id"),
    ],
)
def test_invalid_query_parameters_are_400_naming_them(
    agents: Agents, params: dict[str, str], field: str
) -> None:
    status, answer = agents.call("GET", "/conversations", {**TENANT, **params})
    assert status == 400
    assert field in {e["field"] for e in answer["errors"]}


def test_the_tenant_is_required_and_bound_to_the_key(agents: Agents) -> None:
    conversation = handed_off(agents.cloud)
    status, answer = agents.call("GET", "/conversations", {})
    assert status == 400 and {"query.company_id", "query.project_id"} <= {
        e["field"] for e in answer["errors"]
    }

    forbidden = []
    for key_id, tenant in [
        (None, TENANT),
        (OTHER_KEY_ID, TENANT),
        ("k-unknown", TENANT),
        (None, {"company_id": "nobody", "project_id": "support"}),
        ("k3agentdesk", {"company_id": "nobody", "project_id": "support"}),
    ]:
        for method, path in [
            ("GET", "/conversations"),
            ("GET", conversation_path(conversation.conversation_id)),
            ("POST", conversation_path(conversation.conversation_id, "/handback")),
            ("POST", conversation_path(conversation.conversation_id, "/close")),
        ]:
            forbidden.append(agents.call(method, path, tenant, key_id=key_id))
        forbidden.append(agents.say(conversation.conversation_id, "hi", query=tenant, key_id=key_id))
    assert {status for status, _ in forbidden} == {403}
    # An unknown tenant and a forbidden one answer alike: a key learns nothing about other tenants.
    assert len({json.dumps(answer, sort_keys=True) for _, answer in forbidden}) == 1
    assert agents.stored(conversation).status == "handed_off" and agents.replies.sent() == []


def test_another_tenants_conversation_is_not_found(agents: Agents) -> None:
    mine = handed_off(agents.cloud)
    theirs = handed_off(agents.cloud, company_id="other")
    assert agents.call("GET", conversation_path(mine.conversation_id))[0] == 200
    for method, path in [
        ("GET", conversation_path(theirs.conversation_id)),
        ("GET", conversation_path("no-such-conversation")),
        ("POST", conversation_path(theirs.conversation_id, "/handback")),
        ("POST", conversation_path(theirs.conversation_id, "/close")),
    ]:
        status, answer = agents.call(method, path)
        assert (status, answer) == (404, {"message": "no such conversation"}), path
    assert agents.say(theirs.conversation_id, "hello")[0] == 404
    assert agents.stored(theirs).status == "handed_off" and agents.replies.sent() == []


def _message(conversation_id: str, seq: int, inbound: bool, body: str, part: int = 0) -> Message:
    return Message(
        conversation_id=conversation_id,
        direction="inbound" if inbound else "outbound",
        author="customer" if inbound else "ai",
        seq=seq,
        batch=0 if inbound else 1_796_000_000_000,
        part=part,
        sid="SM" + f"{seq}{part}{int(inbound)}".rjust(32, "0"),
        body=body,
        at=f"2026-12-01T10:0{seq}:0{part}.000Z",
    )


def test_a_conversation_reads_in_order_with_its_delivery_statuses(agents: Agents) -> None:
    conversation = handed_off(agents.cloud, inbound_seq=2, answered_seq=2)
    history = [
        _message(conversation.conversation_id, 2, False, "second answer, part 2", part=1),
        _message(conversation.conversation_id, 1, True, "first question"),
        _message(conversation.conversation_id, 2, True, "second question"),
        _message(conversation.conversation_id, 1, False, "first answer"),
        _message(conversation.conversation_id, 2, False, "second answer, part 1"),
    ]
    MessageRepository(agents.cloud.dynamodb, TABLES["messages"]).put_all(history)
    delivered = DeliveryRecords(agents.cloud.dynamodb, TABLES["conversations"], TABLES["messages"])
    answer_sid = history[3].sid
    position = outbound_position(1, 1_796_000_000_000, 0)
    for status, at in (("delivered", "2026-12-01T10:01:30.000Z"), ("sent", "2026-12-01T10:01:10.000Z")):
        callback = StatusCallback.model_validate(
            {"MessageSid": answer_sid, "AccountSid": "AC1", "MessageStatus": status, "From": "a", "To": "b"}
        )
        delivered.record(CUSTOMER_NUMBER, conversation.conversation_id, position, callback, at, 2**31, 0)

    status, answer = agents.call("GET", conversation_path(conversation.conversation_id))

    assert status == 200, answer
    state = answer["conversation"]
    assert (
        state["status"] == "handed_off" and state["handed_off"] is True and state["reply_window_open"] is True
    )
    assert state["customer"] == mask_address("whatsapp:" + CUSTOMER_NUMBER)
    assert [m["body"] for m in answer["messages"]] == [
        "first question",
        "first answer",
        "second question",
        "second answer, part 1",
        "second answer, part 2",
    ]
    first_answer = answer["messages"][1]
    assert [s["status"] for s in first_answer["statuses"]] == ["sent", "delivered"]
    assert first_answer["delivery"]["status"] == "delivered"
    assert (
        answer["messages"][0]["position"] == inbound_position(1) and answer["messages"][0]["delivery"] is None
    )
    assert "next_cursor" not in answer or answer["next_cursor"] is None

    # Paged: the cursor continues where the page ended, and belongs to this conversation only.
    status, page = agents.call("GET", conversation_path(conversation.conversation_id), query(limit="2"))
    assert [m["body"] for m in page["messages"]] == ["first question", "first answer"]
    status, rest = agents.call(
        "GET", conversation_path(conversation.conversation_id), query(cursor=page["next_cursor"])
    )
    assert [m["body"] for m in rest["messages"]] == [
        "second question",
        "second answer, part 1",
        "second answer, part 2",
    ]
    other = handed_off(agents.cloud)
    assert (
        agents.call("GET", conversation_path(other.conversation_id), query(cursor=page["next_cursor"]))[0]
        == 400
    )


def test_a_closed_window_shows_in_the_state(agents: Agents) -> None:
    conversation = handed_off(agents.cloud, wrote_hours_ago=30)
    status, answer = agents.call("GET", conversation_path(conversation.conversation_id))
    assert status == 200 and answer["conversation"]["reply_window_open"] is False


@pytest.mark.parametrize(
    ("raw", "headers", "expected"),
    [
        ("{not json", None, 400),
        ("[1, 2]", None, 400),
        ('{"text": ""}', None, 400),
        ('{"text": "   "}', None, 400),
        ('{"text": "hi", "extra": 1}', None, 400),
        ('{"text": "' + "x" * 4097 + '"}', None, 400),
        ('{"text": "hi", "message_id": "has space"}', None, 400),
        ('{"text": "hi"}', {"Content-Type": "text/plain"}, 400),
        ('{"text": "hi"}', {"Content-Type": "multipart/form-data"}, 400),
        ('{"text": "hi"}', {"Idempotency-Key": "not allowed!"}, 400),
        ('{"text": "' + "x" * 70_000 + '"}', None, 413),
    ],
)
def test_invalid_bodies_are_refused_and_nothing_is_sent(
    agents: Agents, raw: str, headers: dict[str, str] | None, expected: int
) -> None:
    conversation = handed_off(agents.cloud)
    status, answer = agents.call(
        "POST", conversation_path(conversation.conversation_id, "/messages"), raw=raw, headers=headers
    )
    assert status == expected, answer
    if expected == 400:
        assert answer["errors"] and all(set(e) == {"field", "message"} for e in answer["errors"])
    assert agents.replies.sent() == []


def test_a_missing_body_names_it(agents: Agents) -> None:
    conversation = handed_off(agents.cloud)
    status, answer = agents.call("POST", conversation_path(conversation.conversation_id, "/messages"))
    assert status == 400 and [e["field"] for e in answer["errors"]] == ["body"]


def test_a_body_flagged_base64_is_decoded_and_one_that_is_not_base64_is_400(agents: Agents) -> None:
    conversation = handed_off(agents.cloud)
    path = conversation_path(conversation.conversation_id, "/messages")
    encoded = base64.b64encode(json.dumps({"text": "from a binary API"}).encode()).decode()
    assert agents.call("POST", path, raw=encoded, base64_body=True)[0] == 202
    assert agents.call("POST", path, raw="not base64!", base64_body=True)[0] == 400
    assert agents.call("POST", path, raw=base64.b64encode(b"\xff\xfe").decode(), base64_body=True)[0] == 400
    assert [m["body"] for m in agents.replies.sent()] == ["from a binary API"]


def test_an_unknown_route_is_404(agents: Agents) -> None:
    answer = agents.handler.lambda_handler(api_event("DELETE", "/conversations"), FakeContext())
    assert answer["statusCode"] == 404


def test_dynamodb_unavailable_is_503(agents: Agents, monkeypatch: pytest.MonkeyPatch) -> None:
    conversation = handed_off(agents.cloud)

    def unavailable(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "Query")

    monkeypatch.setattr(agents.handler.service._conversations, "by_status", unavailable)
    monkeypatch.setattr(agents.handler.service._conversations, "find", unavailable)
    for method, path in [("GET", "/conversations"), ("GET", conversation_path(conversation.conversation_id))]:
        status, answer = agents.call(method, path)
        assert (status, answer.get("error")) == (503, "dependency_unavailable")
