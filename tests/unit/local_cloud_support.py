"""What the unit tests of the local cloud's parts share: waits, and the tools `make setup` installs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from local_cloud.tools import ToolMissing, dynamodb_local_dir, java_executable


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """The first truthy value of ``condition()``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def require_dynamodb_local() -> None:
    """Fail (never skip) with the hint to run `make setup` when Java or DynamoDB Local is missing."""
    try:
        java_executable()
        dynamodb_local_dir()
    except ToolMissing as missing:
        pytest.fail(str(missing))
