"""boto3 clients, one per service per container, with bounded timeouts and the SDK's standard retries.

boto3 honours AWS_ENDPOINT_URL, which is how the local cloud points every client at the emulator.
"""

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)
