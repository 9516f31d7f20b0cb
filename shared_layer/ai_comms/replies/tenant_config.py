"""The tenant settings a reply needs, cached per container like every function's tenant reads."""

from ai_comms.models.conversation import Conversation
from ai_comms.models.tenant import ChannelSettings, ProjectConfig
from ai_comms.replies.record import PermanentFailure
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache


class TenantConfigs:
    def __init__(self, tenants: TenantRepository, max_age_seconds: float) -> None:
        self._tenants = tenants
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(max_age_seconds)

    def of(self, conversation: Conversation) -> tuple[ProjectConfig, ChannelSettings]:
        """The conversation's project and channel settings; PermanentFailure when either is gone."""
        key = (conversation.company_id, conversation.project_id)
        project = self._projects.get_or_load(key, lambda: self._tenants.get_project(*key))
        if project is None:
            raise PermanentFailure("project not found")
        channel = project.channel(conversation.channel)
        if channel is None:
            raise PermanentFailure(f"project has no {conversation.channel} settings")
        return project, channel
