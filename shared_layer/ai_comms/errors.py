"""Request errors that handlers turn into HTTP answers; each carries its status code."""


class RequestError(Exception):
    status_code = 400

    def __init__(self, message: str, details: object | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        # A stable machine-readable reason ("recipient_opted_out"), answered as "error".
        self.code = code


class BadRequest(RequestError):
    status_code = 400


class Forbidden(RequestError):
    status_code = 403


class NotFound(RequestError):
    status_code = 404


class Conflict(RequestError):
    status_code = 409


class PayloadTooLarge(RequestError):
    status_code = 413


class RetryLater(RequestError):
    """A dependency failed or the same message is being processed; the sender should retry."""

    status_code = 503
