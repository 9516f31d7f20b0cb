"""API keys bound to tenants, deny by default: every client route of the REST API asks this first.

API Gateway checks the x-api-key against the usage plans before a function runs and puts the key's
id into the request context (requestContext.identity.apiKeyId). Terraform passes the functions
which client each key id belongs to (API_CLIENTS: {"<key id>": "<client>"}, the names of its
api_keys map), and a project names the clients that may act for it (ProjectConfig.api_clients).
Anything else is refused with the same 403 as a tenant that does not exist, so a key never learns
which tenants there are by naming them in a request.
"""

import json
import os

from aws_lambda_powertools import Logger

from ai_comms.errors import Forbidden
from ai_comms.models.tenant import ProjectConfig

logger = Logger(child=True)

NOT_ALLOWED = "API key not allowed for this company and project"


class ApiAccess:
    def __init__(self, clients_by_key_id: dict[str, str]) -> None:
        self._clients = dict(clients_by_key_id)

    @classmethod
    def from_env(cls) -> "ApiAccess":
        raw = json.loads(os.environ.get("API_CLIENTS") or "{}")
        return cls({str(key_id): str(client) for key_id, client in raw.items()})

    def client_of(self, api_key_id: str | None) -> str | None:
        return self._clients.get(api_key_id or "")

    def check(self, project: ProjectConfig | None, api_key_id: str | None) -> str:
        """The client acting; Forbidden unless its key is known and the project names it."""
        client = self.client_of(api_key_id)
        if project is None or client is None or client not in project.api_clients:
            logger.warning(
                "API key refused",
                extra={
                    "client": client,
                    "known_key": client is not None,
                    "known_project": project is not None,
                },
            )
            raise Forbidden(NOT_ALLOWED)
        return client
