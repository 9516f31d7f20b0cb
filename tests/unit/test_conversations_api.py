"""The conversations API's routes through the real handler in a mocked account: tenant binding, the
listing and its cursor, a conversation's state and history, and the refusals with their statuses."""

from typing import Any

from .conversations_support import (
    OTHER_KEY_ID,
    TENANT,
    Agents,
    agents,
    handed_off,
    query,
)
from .reply_support import fakes, replies

__all__ = ["agents", "fakes", "replies"]


def test_smoke(agents: Agents) -> None:
    conversation = handed_off(agents.cloud)
    status, answer = agents.call("GET", "/conversations")
    assert status == 200, answer
    assert [c["conversation_id"] for c in answer["conversations"]] == [conversation.conversation_id]
    status, answer = agents.call("GET", f"/conversations/{conversation.conversation_id}")
    assert status == 200, answer
    status, answer = agents.say(conversation.conversation_id, "Hello from a person", message_id="m-1")
    assert status == 202, answer
    print(agents.replies.sent())
