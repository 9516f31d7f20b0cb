"""Tenant secrets by reference, cached per container by Powertools parameters (never logged)."""

from typing import Any

from aws_lambda_powertools.utilities import parameters


class SecretUnavailable(Exception):
    pass


def get_secret_json(reference: str, max_age: int, force_fetch: bool = False) -> dict[str, Any]:
    """The secret's JSON, cached per container for `max_age` seconds; `force_fetch` reads it as
    stored now (after a credential was refused: it may have been rotated) and refreshes the cache."""
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
