"""API Gateway stages as AWS keeps them, for LocalStack 2026.3.0 (the ``keep_nested_method_settings``
hook):

* method settings of nested resources under ``{resource path}/{method}``
  (localstack_host.method_settings, applied to the moto LocalStack serves API Gateway from);
* one ``UpdateStage`` at a time. The provider copies the stage, patches the copy and puts it back,
  so two concurrent calls on one stage keep only the later copy. The root module patches a stage
  once per route (an ``aws_api_gateway_method_settings`` each, applied in parallel), so one route's
  settings were lost and the apply failed reading them back ("reading API Gateway Method Settings
  ...: empty result"). AWS applies each call to the stage as it stands.
* removing one method's settings: the provider deletes an ``aws_api_gateway_method_settings`` with
  the patch operation ``remove /{resource path}/{method}``, which AWS accepts; 2026.3.0 accepts it
  only for ``*/*`` and answers 400 "Invalid method setting path" otherwise, so ``terraform destroy``
  failed. The hook removes the method's entry itself, as AWS does.
"""

from __future__ import annotations

import threading
from typing import Any

from localstack.runtime import hooks

from localstack_host import require_supported_version
from localstack_host.method_settings import patch_stage

_stage_updates = threading.Lock()
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY", "*"}


def method_removals(operations: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The method paths whose settings an UpdateStage removes whole ("whatsapp/status/POST"), and
    the other operations, for LocalStack to apply."""
    removed: list[str] = []
    rest: list[dict[str, Any]] = []
    for operation in operations:
        path = str(operation.get("path", "")).strip("/").replace("~1", "/").replace("~0", "~")
        segments = path.split("/")
        whole_method = len(segments) >= 2 and segments[-1] in _METHODS and path != "*/*"
        if operation.get("op") == "remove" and whole_method:
            removed.append(path)
        else:
            rest.append(operation)
    return removed, rest


def apply() -> None:
    # Imported once the version is known to be the one these patches were written for.
    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider  # noqa: PLC0415
    from localstack.utils.patch import patch  # noqa: PLC0415
    from moto.apigateway.models import Stage  # noqa: PLC0415

    patch_stage(Stage)

    from localstack.services.apigateway.helpers import get_moto_rest_api  # noqa: PLC0415

    @patch(ApigatewayNextGenProvider.update_stage)
    def _one_update_at_a_time(
        fn: Any,
        self: Any,
        context: Any,
        rest_api_id: str,
        stage_name: str,
        patch_operations: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        with _stage_updates:
            removed, rest = method_removals(list(patch_operations or []))
            if removed:
                stage = get_moto_rest_api(context, rest_api_id).stages.get(stage_name)
                for method_path in removed if stage is not None else []:
                    stage.method_settings.pop(method_path, None)
            return fn(self, context, rest_api_id, stage_name, rest, **kwargs)


@hooks.on_infra_start()
def keep_nested_method_settings() -> None:
    require_supported_version()
    apply()
