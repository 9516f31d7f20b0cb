"""GET /conversations and GET /conversations/{id}: a tenant's conversations by status, one
conversation's state and history.

The list reads the by-tenant-status index (eventually consistent: a change shows within about a
second), latest activity first, one Query per page. A conversation's state is read strongly
consistently; its history is one Query of its message items in order, paged for long ones.
"""

from ai_comms.clock import utc_now
from ai_comms.conversations_api import cursors, views
from ai_comms.conversations_api.access import Caller, TenantAccess
from ai_comms.errors import BadRequest
from ai_comms.models.conversations_api import ConversationDetail, ConversationPage, ListableStatus
from ai_comms.store.conversations import INDEX_KEY_FIELDS, ConversationRepository
from ai_comms.store.messages import MessageRepository, parse_position

_HISTORY_CURSOR_FIELDS = ("conversation_id", "position")


class Reading:
    def __init__(
        self, access: TenantAccess, conversations: ConversationRepository, messages: MessageRepository
    ) -> None:
        self._access = access
        self._conversations = conversations
        self._messages = messages

    def page(
        self, caller: Caller, status: ListableStatus, cursor: str | None, limit: int
    ) -> ConversationPage:
        self._access.project(caller)
        key = caller.tenant.status_key(status)
        after = cursors.decode(cursor, INDEX_KEY_FIELDS, {"tenant_status": key}) if cursor else None
        found = self._conversations.by_status(caller.tenant, status, limit, after)
        return ConversationPage(
            conversations=[views.summary(listed, status) for listed in found.conversations],
            next_cursor=cursors.encode(found.next_key) if found.next_key else None,
        )

    def detail(
        self, caller: Caller, conversation_id: str, cursor: str | None, limit: int
    ) -> ConversationDetail:
        _, conversation = self._access.conversation(caller, conversation_id)
        after = None
        if cursor:
            after = cursors.decode(cursor, _HISTORY_CURSOR_FIELDS, {"conversation_id": conversation_id})[
                "position"
            ]
            if parse_position(after) is None:
                raise BadRequest(
                    "invalid cursor", details=[{"field": "query.cursor", "message": "not a position"}]
                )
        page = self._messages.history(conversation_id, limit=limit, after_position=after)
        next_cursor = None
        if page.next_position is not None:
            next_cursor = cursors.encode({"conversation_id": conversation_id, "position": page.next_position})
        return ConversationDetail(
            conversation=views.state(conversation, utc_now()),
            messages=[views.message(m) for m in page.messages],
            next_cursor=next_cursor,
        )
