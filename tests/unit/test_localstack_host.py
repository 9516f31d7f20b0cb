"""The project's LocalStack plugins (scripts/localstack_host), loaded inside LocalStack's own venv.

LocalStack runs under Python 3.13 from .venv-localstack (`make setup`), so the checks run there, in
localstack_host_check.py, through LocalStack's own plugin managers: the record-only executor is
registered and refuses to run a function, the replay hook is registered and turns each of the three
failing steps of StartReplay 2026.3.0 into a working one, the loopback hook binds the gateway to
GATEWAY_LISTEN's host instead of every interface, the storage hook keeps S3 objects under
LocalStack's own folder, and they refuse any other LocalStack.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local_cloud.localstack import localstack_python
from local_cloud.tools import ToolMissing

CHECK = Path(__file__).with_name("localstack_host_check.py")


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    try:
        python = localstack_python()
    except ToolMissing as missing:
        pytest.fail(str(missing))
    # A cache of its own: plux caches the plugin index there.
    cache = tmp_path_factory.mktemp("cache")
    answer = subprocess.run(
        [str(python), str(CHECK)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(cache), "HOME": str(cache)},
    )
    assert answer.returncode == 0, answer.stderr
    return dict(json.loads(answer.stdout))


def test_record_only_executor_is_registered_and_never_runs_a_function(found: dict[str, Any]) -> None:
    assert found["executor_registered"] and found["executor"] == "RecordOnlyExecutor"
    assert "never executed here" in found["start"]


def test_start_replay_steps_fail_without_the_hook_and_work_with_it(found: dict[str, Any]) -> None:
    assert found["hook_registered"]
    before, after = found["before"], found["after"]
    assert before["filter"].startswith("TypeError") and before["time"].startswith("TypeError")
    assert before["last_replayed"] == "str"
    assert after == {"filter": "ok", "time": found["expected_time"], "last_replayed": "datetime"}


def test_the_gateway_listens_on_its_listen_host_only_with_the_hook(found: dict[str, Any]) -> None:
    assert found["bind_hook_registered"]
    assert found["gateway_binds"] == {"before": ["0.0.0.0"], "after": ["127.0.0.1"]}


def test_s3_objects_stay_under_the_filesystem_root_with_the_hook(found: dict[str, Any]) -> None:
    assert found["s3_hook_registered"]
    assert found["stage_hook_registered"]
    assert found["connection_hook_registered"]
    # A nested route's throttle: lost by LocalStack's moto, kept under its method path once patched.
    assert found["stage"]["before"] == [] and found["stage"]["after"] == ["whatsapp/status/POST"]
    # UpdateStage waits while another holds the stage, then runs.
    assert found["stage"]["ran_while_another_update_held_the_stage"] is False
    assert found["stage"]["ran_after"] is True
    # A destroy removes each route's settings whole; LocalStack itself only takes */* that way.
    removed = ["whatsapp/status/POST", "conversations/{conversation_id}/GET"]
    assert found["stage"]["removed_by_the_hook"] == removed
    assert found["stage"]["left_to_localstack"] == ["/*/*", "/whatsapp/POST/throttling/burstLimit"]
    storage = found["s3_storage"]
    assert storage["before"] == "/tmp/localstack-s3-storage"
    assert storage["after"] == storage["tmp"] + "/s3-storage"


def test_plugins_refuse_any_other_localstack_version(found: dict[str, Any]) -> None:
    for guard in ("version_guard", "executor_guard"):
        assert "patches LocalStack 2026.3.0 internals; this is 2026.4.0" in found[guard]
