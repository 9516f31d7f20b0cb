"""The gateway listens where ``GATEWAY_LISTEN`` says, fixed for LocalStack 2026.3.0.

Its twisted runtime server (``localstack/runtime/server/twisted.py``) builds each IPv4 listener as
``endpoints.TCP4ServerEndpoint(reactor, port)`` (a ``# TODO: interface = host?`` beside it), so
``GATEWAY_LISTEN=127.0.0.1:4566`` still answers on every interface of the machine: an emulator
without authentication, reachable from the network. During ``register`` this hook hands that
module an ``endpoints`` whose ``TCP4ServerEndpoint`` binds the listener's own host; nothing else
changes.
"""

from __future__ import annotations

from typing import Any

from localstack.runtime import hooks
from twisted.internet import endpoints

from localstack_host import require_supported_version


class ListenOnHost:
    """``twisted.internet.endpoints`` with IPv4 server endpoints bound to their listener's host."""

    def __init__(self, hosts: dict[int, str]) -> None:
        self._hosts = hosts

    def __getattr__(self, name: str) -> Any:
        return getattr(endpoints, name)

    def TCP4ServerEndpoint(self, reactor: Any, port: int, *args: Any, **kwargs: Any) -> Any:
        if not args and "interface" not in kwargs and self._hosts.get(port):
            kwargs["interface"] = self._hosts[port]
        return endpoints.TCP4ServerEndpoint(reactor, port, *args, **kwargs)


def apply() -> None:
    # Imported once the version is known to be the one this patch was written for.
    from localstack.runtime.server import twisted as server  # noqa: PLC0415
    from localstack.utils.patch import patch  # noqa: PLC0415

    @patch(server.TwistedRuntimeServer.register)
    def _register_on_listen_hosts(fn: Any, self: Any, gateway: Any, listen: Any, *args: Any) -> Any:
        server.endpoints = ListenOnHost({entry.port: entry.host for entry in listen})
        try:
            return fn(self, gateway, listen, *args)
        finally:
            server.endpoints = endpoints


@hooks.on_infra_start()
def bind_gateway_to_listen_host() -> None:
    require_supported_version()
    apply()
