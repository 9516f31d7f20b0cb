"""LocalStack on the host, without Docker, for the local cloud: six plugins of this project.

* ``record-only`` Lambda runtime executor (``LAMBDA_RUNTIME_EXECUTOR=record-only``): LocalStack ships
  only a Docker executor, so without Docker no function reaches ``Active`` and ``terraform apply``
  times out. This one prepares nothing and runs nothing: functions, versions and layers are
  recorded, and the project's local runner executes them from those records. An invoke that
  reaches LocalStack anyway fails loudly instead of hanging.
* ``fix_start_replay`` (an ``on_infra_start`` hook): in 2026.3.0, ``StartReplay`` of an archive
  with events answers 500 (``replace() takes at least 2 positional arguments``) because the
  replayed entries carry the archived event's ``time`` as a string where ``PutEvents`` expects a
  datetime. The hook converts it.
* ``bind_gateway_to_listen_host`` (an ``on_infra_start`` hook): the twisted gateway binds its IPv4
  listeners to every interface whatever host ``GATEWAY_LISTEN`` names; the hook binds the named
  host (127.0.0.1 for the local cloud), so the emulator is not reachable from the network.
* ``keep_nested_method_settings`` (an ``on_infra_start`` hook): per-route method settings (throttles)
  of nested resources (``whatsapp/status/POST``) are dropped by the moto LocalStack serves API
  Gateway from, and the apply fails reading them back; see localstack_host.method_settings. It
  also serialises UpdateStage and removes one route's settings as AWS does (``terraform destroy``);
  see localstack_host.api_gateway.
* ``finish_connection_authorization`` (an ``on_infra_start`` hook): an EventBridge connection with
  OAuth client credentials never leaves ``AUTHORIZING`` and the apply times out waiting for it;
  see localstack_host.connections.
* ``keep_s3_storage_in_filesystem_root`` (an ``on_infra_start`` hook): S3 objects (Lambda's code
  among them) go under this LocalStack's own temporary folder, not a ``/tmp`` folder every
  LocalStack on the host shares.

The hooks patch LocalStack internals, so they are pinned to the one version they were written against
and refuse to load under any other.
"""

from __future__ import annotations

SUPPORTED_LOCALSTACK = "2026.3.0"


class UnsupportedLocalStack(RuntimeError):
    """The running LocalStack is not the version these plugins patch."""


def require_supported_version() -> None:
    # Imported here: localstack_host.method_settings is also used outside LocalStack's venv.
    from localstack.version import __version__  # noqa: PLC0415

    if __version__ != SUPPORTED_LOCALSTACK:
        raise UnsupportedLocalStack(
            f"localstack-host patches LocalStack {SUPPORTED_LOCALSTACK} internals; this is "
            f"{__version__}. Install the pins of tests/requirements-localstack.txt (make setup) "
            "or port the patches."
        )
