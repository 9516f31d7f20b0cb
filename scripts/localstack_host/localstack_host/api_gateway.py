"""The ``keep_nested_method_settings`` hook: localstack_host.method_settings on LocalStack's moto."""

from __future__ import annotations

from localstack.runtime import hooks

from localstack_host import require_supported_version
from localstack_host.method_settings import patch_stage


@hooks.on_infra_start()
def keep_nested_method_settings() -> None:
    require_supported_version()
    # Imported once the version is known to be the one this patch was written for.
    from moto.apigateway.models import Stage  # noqa: PLC0415

    patch_stage(Stage)
