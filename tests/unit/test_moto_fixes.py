"""The project's fixes of moto's server, each held to what AWS answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.apigateway.models import Stage

from local_cloud import moto_server


@pytest.fixture
def patched() -> Iterator[None]:
    original = Stage._patch_method_setting
    moto_server.patch_stage(Stage)
    try:
        yield
    finally:
        Stage._patch_method_setting = original  # type: ignore[method-assign]


def _stage_with_settings(paths: list[str]) -> dict[str, Any]:
    client = boto3.client("apigateway", region_name="eu-west-1")
    api = client.create_rest_api(name="a")["id"]
    root = client.get_resources(restApiId=api)["items"][0]["id"]
    client.put_method(restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    client.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    deployment = client.create_deployment(restApiId=api)["id"]
    client.create_stage(restApiId=api, stageName="s", deploymentId=deployment)
    client.update_stage(
        restApiId=api,
        stageName="s",
        patchOperations=[{"op": "replace", "path": path, "value": "7"} for path in paths],
    )
    settings: dict[str, Any] = client.get_stage(restApiId=api, stageName="s")["methodSettings"]
    return settings


@mock_aws
def test_nested_resource_settings_are_kept_under_the_method_path(patched: None) -> None:
    # The Terraform provider's patch for method_path "whatsapp/status/POST"; RFC 6901 escaping too.
    settings = _stage_with_settings(
        ["/whatsapp/status/POST/throttling/burstLimit", "/a~1b/GET/throttling/burstLimit"]
    )
    assert settings["whatsapp/status/POST"]["throttlingBurstLimit"] == 7
    assert settings["a/b/GET"]["throttlingBurstLimit"] == 7


@mock_aws
def test_top_level_and_wildcard_settings_are_unchanged(patched: None) -> None:
    settings = _stage_with_settings(["/*/*/throttling/burstLimit", "/initiate/POST/throttling/burstLimit"])
    assert settings["*/*"]["throttlingBurstLimit"] == 7
    assert settings["initiate/POST"]["throttlingBurstLimit"] == 7


@mock_aws
def test_unpatched_moto_still_loses_nested_settings() -> None:
    # Guards the fix's reason: once moto keeps them itself, the patch can go.
    settings = _stage_with_settings(["/whatsapp/status/POST/throttling/burstLimit"])
    assert "whatsapp/status/POST" not in settings
