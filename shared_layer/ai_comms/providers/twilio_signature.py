"""Twilio webhook signatures (HMAC-SHA1 with the auth token, or the newer signature settings)."""

from twilio.request_validator import RequestValidator, get_signature_algorithm


class FormParams(dict[str, list[str]]):
    """Form fields with every value of a repeated field, in the shape RequestValidator signs."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None

    def flat(self) -> dict[str, str]:
        return {k: v[0] for k, v in self.items() if v}


def is_valid_signature(
    auth_token: str, url: str, params: FormParams, signature: str, settings_header: str | None = None
) -> bool:
    if not signature or not auth_token:
        return False
    algorithm = get_signature_algorithm(settings_header)
    return bool(RequestValidator(auth_token).validate(url, params, signature, algorithm=algorithm))


def sign(auth_token: str, url: str, params: dict[str, str] | FormParams) -> str:
    """The X-Twilio-Signature Twilio would send: used by the local webhook sender and the tests."""
    return str(RequestValidator(auth_token).compute_signature(url, params))
