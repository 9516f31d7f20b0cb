"""EventBridge connections with OAuth client credentials leave ``AUTHORIZING``, for LocalStack
2026.3.0 (the ``finish_connection_authorization`` hook).

A new connection starts ``AUTHORIZING`` when its type is ``OAUTH_CLIENT_CREDENTIALS``;
``ConnectionService.create_connection_secret`` then stores the credentials and sets ``AUTHORIZED``,
but it runs before the service holds its ``connection``, so ``set_state`` does nothing and the
connection stays ``AUTHORIZING``. The Terraform provider waits for ``AUTHORIZED`` or
``DEAUTHORIZED`` and times out after two minutes. Here a connection whose secret was stored ends
``AUTHORIZED``, the state LocalStack sets for every other type (it never fetches a token, so
nothing else would change it).
"""

from __future__ import annotations

from typing import Any

from localstack.runtime import hooks

from localstack_host import require_supported_version


def apply() -> None:
    # Imported once the version is known to be the one this patch was written for.
    from localstack.aws.api.events import ConnectionState  # noqa: PLC0415
    from localstack.services.events.connection import ConnectionService  # noqa: PLC0415
    from localstack.utils.patch import patch  # noqa: PLC0415

    @patch(ConnectionService.__init__)
    def _authorized_once_stored(fn: Any, self: Any, *args: Any, **kwargs: Any) -> None:
        fn(self, *args, **kwargs)
        if self.connection.secret_arn and self.connection.state == ConnectionState.AUTHORIZING:
            self.connection.state = ConnectionState.AUTHORIZED


@hooks.on_infra_start()
def finish_connection_authorization() -> None:
    require_supported_version()
    apply()
