"""API Gateway method settings of nested resources, kept under the key AWS uses.

A stage's method settings are patched with the path ``/{resource path}/{method}/{group}/{name}``
(UpdateStage's patch operations; the setting is always the last two segments, e.g.
``throttling/rateLimit``), and AWS answers them under ``{resource path}/{method}``. The Terraform
provider sends the resource path's slashes as they are (``method_path = "whatsapp/status/POST"``
becomes ``/whatsapp/status/POST/throttling/rateLimit``; RFC 6901's ``~1`` is accepted too).
moto 5.2.5, and the moto LocalStack 2026.3.0 serves API Gateway from, split the path after its
second segment instead: a nested resource's settings land under ``whatsapp/status`` with the
setting ``POST/throttling/rateLimit``, which is dropped, so the provider reads back nothing and
the apply fails ("reading API Gateway Method Settings ...: empty result"). Here the setting is
taken from the end of the path, as AWS does.

Imports only moto: the project's own moto server (local_cloud.moto_server) applies it too.
"""

from __future__ import annotations

from typing import Any


def patch_stage(stage: Any) -> None:
    """Patch moto's ``Stage`` class (``moto.apigateway.models.Stage``)."""
    original = stage._patch_method_setting

    def _patch_method_setting(self: Any, resource_path_and_method: str, key: str, value: str) -> None:
        method_path, group, name = f"{resource_path_and_method}/{key}".rsplit("/", 2)
        # RFC 6901: "~1" is "/", "~0" is "~", unescaped in that order.
        method_path = method_path.replace("~1", "/").replace("~0", "~")
        original(self, method_path, f"{group}/{name}", value)

    stage._patch_method_setting = _patch_method_setting
