"""Which tenant a request acts for: named in its query (company_id, project_id), allowed only when
the project lists the client whose API key API Gateway admitted (ai_comms.api_access: deny by
default, an unknown tenant answered like a forbidden one). A conversation is then found only within
that tenant: another tenant's conversation is "not found", exactly like one that does not exist.
"""

from dataclasses import dataclass

from ai_comms.api_access import ApiAccess
from ai_comms.errors import NotFound
from ai_comms.models.conversation import Conversation
from ai_comms.models.tenant import ProjectConfig
from ai_comms.store.conversations import ConversationRepository, TenantRef
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

NO_SUCH_CONVERSATION = "no such conversation"


@dataclass(frozen=True)
class Caller:
    """What a request says about who it is for, and the key it came with."""

    company_id: str
    project_id: str
    api_key_id: str | None

    @property
    def tenant(self) -> TenantRef:
        return TenantRef(self.company_id, self.project_id)


class TenantAccess:
    def __init__(
        self,
        tenants: TenantRepository,
        conversations: ConversationRepository,
        access: ApiAccess,
        cache_seconds: float,
    ) -> None:
        self._tenants = tenants
        self._conversations = conversations
        self._access = access
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(cache_seconds)

    def project(self, caller: Caller) -> ProjectConfig:
        key = (caller.company_id, caller.project_id)
        project = self._projects.get_or_load(key, lambda: self._tenants.get_project(*key))
        self._access.check(project, caller.api_key_id)
        assert project is not None
        return project

    def conversation(self, caller: Caller, conversation_id: str) -> tuple[ProjectConfig, Conversation]:
        project = self.project(caller)
        # Newest first: two records share an id only when a request id was reused long after.
        found = sorted(
            (
                c
                for c in self._conversations.find(conversation_id)
                if (c.company_id, c.project_id) == (caller.company_id, caller.project_id)
            ),
            key=lambda c: c.created_at,
            reverse=True,
        )
        if not found:
            raise NotFound(NO_SUCH_CONVERSATION)
        return project, found[0]
