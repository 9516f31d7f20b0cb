"""Run by test_localstack_host.py inside LocalStack's venv: prints one JSON object of findings."""

from __future__ import annotations

import json
import socket
import sys
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any


def listening_hosts() -> dict[str, list[str]]:
    """Where the twisted gateway binds 127.0.0.1:<port>, before and after the loopback hook."""
    from localstack.config import HostAndPort
    from localstack.runtime.server.twisted import TwistedRuntimeServer
    from localstack_host import loopback
    from rolo.gateway import Gateway
    from twisted.internet import reactor, tcp

    def register() -> list[str]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # listenTCP binds at once; the reactor never runs here.
        TwistedRuntimeServer().register(Gateway(), [HostAndPort("127.0.0.1", port)])
        readers = [r for r in reactor.getReaders() if isinstance(r, tcp.Port)]
        return [r.getHost().host for r in readers if r.getHost().port == port]

    before = register()
    loopback.apply()
    return {"before": before, "after": register()}


def stage_updates() -> dict[str, Any]:
    """A nested route's setting on LocalStack's moto, and whether UpdateStage waits its turn."""
    import contextlib
    import threading

    from localstack.services.apigateway.next_gen.provider import ApigatewayNextGenProvider
    from localstack_host import api_gateway
    from moto.apigateway.models import Stage

    def nested_keys() -> list[str]:
        stage = Stage(name="s", deployment_id="d")
        stage.apply_operations(
            [{"op": "replace", "path": "/whatsapp/status/POST/throttling/burstLimit", "value": "7"}]
        )
        return sorted(stage.method_settings)

    before = nested_keys()
    api_gateway.apply()
    outcome: dict[str, Any] = {"before": before, "after": nested_keys()}
    finished = threading.Event()

    def update() -> None:
        # The call itself fails on its dummy arguments; only when it runs counts.
        with contextlib.suppress(Exception):
            ApigatewayNextGenProvider.update_stage(None, None, "api", "s")
        finished.set()

    with api_gateway._stage_updates:
        caller = threading.Thread(target=update)
        caller.start()
        outcome["ran_while_another_update_held_the_stage"] = finished.wait(0.3)
    outcome["ran_after"] = finished.wait(5)
    removed, rest = api_gateway.method_removals(
        [
            {"op": "remove", "path": "/whatsapp/status/POST"},
            {"op": "remove", "path": "/conversations~1{conversation_id}/GET"},
            {"op": "remove", "path": "/*/*"},
            {"op": "replace", "path": "/whatsapp/POST/throttling/burstLimit", "value": "7"},
        ]
    )
    outcome["removed_by_the_hook"] = removed
    outcome["left_to_localstack"] = [operation["path"] for operation in rest]
    return outcome


def main() -> None:
    found: dict[str, Any] = {}
    import localstack_host
    from localstack.runtime.hooks import on_infra_start
    from localstack.services.events import utils as events_utils
    from localstack.services.events.archive import ArchiveService
    from localstack.services.events.replay import ReplayService
    from localstack.services.lambda_.invocation.runtime_executor import (
        EXECUTOR_PLUGIN_MANAGER,
        LambdaRuntimeException,
    )
    from localstack_host import replay

    found["executor_registered"] = EXECUTOR_PLUGIN_MANAGER.exists("record-only")
    executor = EXECUTOR_PLUGIN_MANAGER.load("record-only").load()
    found["executor"] = executor.__name__
    executor.prepare_version(None)
    try:
        executor("id", None).start({})
        found["start"] = "ran"
    except LambdaRuntimeException as refused:
        found["start"] = str(refused)
    found["hook_registered"] = on_infra_start.manager.exists("fix_start_replay")
    found["bind_hook_registered"] = on_infra_start.manager.exists("bind_gateway_to_listen_host")
    found["gateway_binds"] = listening_hosts()
    found["s3_hook_registered"] = on_infra_start.manager.exists("keep_s3_storage_in_filesystem_root")
    from localstack import config
    from localstack.services.s3 import provider
    from localstack_host import storage

    before = provider.DEFAULT_S3_TMP_DIR
    storage.apply()
    found["s3_storage"] = {"before": before, "after": provider.DEFAULT_S3_TMP_DIR, "tmp": config.dirs.tmp}

    found["stage_hook_registered"] = on_infra_start.manager.exists("keep_nested_method_settings")
    found["connection_hook_registered"] = on_infra_start.manager.exists("finish_connection_authorization")
    found["stage"] = stage_updates()

    archived = {"source": "s", "detail-type": "d", "detail": {}, "time": "2026-01-02T03:04:05Z"}
    fake_replay = SimpleNamespace(
        destination={"Arn": "arn:aws:events:eu-west-1:000000000000:event-bus/b"},
        replay=SimpleNamespace(event_last_replayed_time=None),
    )

    def attempt() -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        try:
            ArchiveService._normalize_datetime(None, archived["time"])
            outcome["filter"] = "ok"
        except TypeError as error:
            outcome["filter"] = f"TypeError: {error}"
        entries = ReplayService.re_format_events_from_archive(fake_replay, [archived], "r")
        try:
            outcome["time"] = events_utils.get_event_time(entries[0]).isoformat()
        except TypeError as error:
            outcome["time"] = f"TypeError: {error}"
        ReplayService._set_event_last_replayed_time(fake_replay, [archived])
        outcome["last_replayed"] = type(fake_replay.replay.event_last_replayed_time).__name__
        return outcome

    found["before"] = attempt()
    replay.apply()
    found["after"] = attempt()
    found["expected_time"] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()

    # The guards read LocalStack's own version when they run.
    import localstack.version

    localstack.version.__version__ = "2026.4.0"
    for name, call in (
        ("version_guard", localstack_host.require_supported_version),
        ("executor_guard", EXECUTOR_PLUGIN_MANAGER.get_container("record-only").plugin.load),
    ):
        try:
            call()
            found[name] = "loaded"
        except localstack_host.UnsupportedLocalStack as refused:
            found[name] = str(refused)
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
