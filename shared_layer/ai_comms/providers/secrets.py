"""Tenant secrets by reference, cached per container by Powertools parameters (never logged)."""

import time
from typing import Any

from aws_lambda_powertools.utilities import parameters

# A forced read of one secret at most this often per container: a flood of badly signed requests
# must not become a flood of Secrets Manager calls (a rotation is still seen within seconds).
FORCED_READ_INTERVAL_SECONDS = 5.0
_forced_at: dict[str, float] = {}


class SecretUnavailable(Exception):
    pass


def get_secret_json(reference: str, max_age: int, force_fetch: bool = False) -> dict[str, Any]:
    """The secret's JSON, cached per container for `max_age` seconds; `force_fetch` reads it as
    stored now (after a credential was refused: it may have been rotated) and refreshes the cache,
    at most once per FORCED_READ_INTERVAL_SECONDS per secret."""
    if force_fetch:
        now = time.monotonic()
        if now - _forced_at.get(reference, -FORCED_READ_INTERVAL_SECONDS) < FORCED_READ_INTERVAL_SECONDS:
            force_fetch = False
        else:
            _forced_at[reference] = now
    try:
        value = parameters.get_secret(reference, transform="json", max_age=max_age, force_fetch=force_fetch)
    except parameters.exceptions.GetParameterError as error:
        # The provider's message can quote the secret's name only; it never holds the value.
        raise SecretUnavailable(f"secret {reference!r} could not be read") from error
    except parameters.exceptions.TransformParameterError as error:
        raise SecretUnavailable(f"secret {reference!r} is not JSON") from error
    if not isinstance(value, dict):
        raise SecretUnavailable(f"secret {reference!r} is not a JSON object")
    return value


def forget_forced_reads() -> None:
    """As in a new container: the next forced read of any secret goes to Secrets Manager."""
    _forced_at.clear()
