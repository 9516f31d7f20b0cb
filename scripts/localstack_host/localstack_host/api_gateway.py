"""API Gateway stages as AWS keeps them, for LocalStack 2026.3.0 (the ``keep_nested_method_settings``
hook):

* method settings of nested resources under ``{resource path}/{method}``
  (localstack_host.method_settings, applied to the moto LocalStack serves API Gateway from);
* one ``UpdateStage`` at a time. The provider copies the stage, patches the copy and puts it back,
  so two concurrent calls on one stage keep only the later copy. The root module patches a stage
  once per route (an ``aws_api_gateway_method_settings`` each, applied in parallel), so one route's
  settings were lost and the apply failed reading them back ("reading API Gateway Method Settings
  ...: empty result"). AWS applies each call to the stage as it stands.
"""

from __future__ import annotations

import threading
from typing import Any

from localstack.runtime import hooks

from localstack_host import require_supported_version
from localstack_host.method_settings import patch_stage

_stage_updates = threading.Lock()


def apply() -> None:
    # Imported once the version is known to be the one these patches were written for.
    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider  # noqa: PLC0415
    from localstack.utils.patch import patch  # noqa: PLC0415
    from moto.apigateway.models import Stage  # noqa: PLC0415

    patch_stage(Stage)

    @patch(ApigatewayNextGenProvider.update_stage)
    def _one_update_at_a_time(fn: Any, self: Any, *args: Any, **kwargs: Any) -> Any:
        with _stage_updates:
            return fn(self, *args, **kwargs)


@hooks.on_infra_start()
def keep_nested_method_settings() -> None:
    require_supported_version()
    apply()
