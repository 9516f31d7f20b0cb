"""EMULATOR=localstack-docker: what the local cloud relies on, checked against LocalStack itself.

A LocalStack in Docker cannot run here, but the two LocalStack behaviours the mode is built on live in
the same runtime the host emulator runs (2026.3.0): a REST API created with a ``_custom_id_`` tag
gets that id, and its stage answers at ``/_aws/execute-api/<id>/<stage>/<path>`` (a MOCK
integration, so nothing needs Lambda). The adoption and the workspace variables are checked here too.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_cloud.cloud import LocalCloud, runner_emulator_kind
from local_cloud.emulator import EmulatorBase
from local_cloud.endpoints import aws_client
from local_cloud.localstack import LocalStackEmulator
from local_cloud.localstack_docker import (
    CUSTOM_ID_TAG,
    LocalStackDockerEmulator,
    api_id_for,
    execute_api_url,
)
from local_cloud.processes import free_port
from local_cloud.terraform import Workspace


@pytest.fixture(scope="module")
def localstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorBase]:
    work = tmp_path_factory.mktemp("localstack")
    emulator = LocalStackEmulator(free_port(), work / "emulator", work / "logs")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_a_custom_id_tag_names_the_api_and_its_stage_answers_path_style(localstack: EmulatorBase) -> None:
    apigateway = aws_client("apigateway", localstack.url, "eu-west-1")
    api_id = api_id_for("e2eAb-12")
    assert api_id == "e2eab12"
    api = apigateway.create_rest_api(name="probe", tags={CUSTOM_ID_TAG: api_id})
    assert api["id"] == api_id
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    ping = apigateway.create_resource(restApiId=api_id, parentId=root, pathPart="ping")["id"]
    method = {"restApiId": api_id, "resourceId": ping, "httpMethod": "GET"}
    apigateway.put_method(**method, authorizationType="NONE")
    apigateway.put_integration(
        **method, type="MOCK", requestTemplates={"application/json": '{"statusCode": 200}'}
    )
    apigateway.put_method_response(**method, statusCode="200")
    apigateway.put_integration_response(
        **method, statusCode="200", responseTemplates={"application/json": '{"pong": true}'}
    )
    apigateway.create_deployment(restApiId=api_id, stageName="e2eab12")
    url = execute_api_url(localstack.url + "/", api_id, "e2eab12") + "/ping"
    assert url == f"{localstack.url}/_aws/execute-api/{api_id}/e2eab12/ping"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"pong": True}


def test_a_running_localstack_is_adopted_never_stopped(localstack: EmulatorBase) -> None:
    emulator = LocalStackDockerEmulator(localstack.url)
    emulator.start(timeout=5)
    assert emulator.adopted and emulator.executes_functions
    assert emulator.dynamodb_url == localstack.url
    emulator.stop()
    again = LocalStackDockerEmulator(localstack.url)
    again.start(timeout=5)  # still there
    assert again.adopted


def test_no_localstack_at_the_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALSTACK_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    emulator = LocalStackDockerEmulator()
    with pytest.raises(RuntimeError, match=r"no LocalStack answers at .*start it in Docker first"):
        emulator.start(timeout=1)


def test_workspaces_get_the_api_id_and_the_url_localstack_serves(tmp_path: Path) -> None:
    cloud = LocalCloud(work_dir=tmp_path, emulator="localstack-docker")
    emulator = LocalStackDockerEmulator("http://127.0.0.1:4566")
    variables = dict(cloud._local_vars(Workspace("e2e1a2b"), 8080, emulator))
    assert variables["api_tags"] == '{_custom_id_="e2e1a2b"}'
    assert variables["public_base_url"] == "http://127.0.0.1:4566/_aws/execute-api/e2e1a2b/e2e1a2b"


def test_make_local_and_bench_refuse_an_emulator_that_runs_the_functions() -> None:
    assert runner_emulator_kind("moto") == "moto"
    assert runner_emulator_kind("localstack") == "localstack"
    with pytest.raises(ValueError, match="serves the e2e suite only"):
        runner_emulator_kind("localstack-docker")
