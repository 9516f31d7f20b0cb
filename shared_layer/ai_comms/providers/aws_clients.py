"""boto3 clients: one session and one client per service per container, with bounded timeouts and
the SDK's standard retries.

Clients are created on first use, not at import: a handler path that never needs a service never
pays for its client (loading a service model and the endpoint rules costs tens of milliseconds),
and one shared session loads the SDK's data once for every client. boto3 honours AWS_ENDPOINT_URL
(and AWS_ENDPOINT_URL_<SERVICE>), which is how the local cloud points every client at its emulator.
"""

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)
_lock = threading.Lock()
# The session is stored under "" beside the clients, so one lock guards both.
_made: dict[str, Any] = {}


def client(service: str) -> Any:
    """The container's client for `service`, created once (thread-safe: the heartbeat is a thread)."""
    found = _made.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _made:
            session = _made.setdefault("", boto3.session.Session())
            _made[service] = session.client(service, config=_CONFIG)
        return _made[service]


def clear() -> None:
    """Forget every client and the session (tests that switch the mocked account)."""
    with _lock:
        _made.clear()


class LazyClient:
    """Stands for ``client(service)`` and creates it on the first call made through it."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service), name)


def lazy(service: str) -> Any:
    return LazyClient(service)
