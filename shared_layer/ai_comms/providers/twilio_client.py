"""Sending through Twilio's Messages API with the official SDK; the API base URL is configurable.

Twilio has no idempotency key for sending, so callers record each accepted sid before sending the
next part and never retry a send whose outcome is unknown into a duplicate.

Every failure of a send is one of:
- ``SendFailed``: Twilio answered with an error, or no connection was ever made (connect timeout,
  refused, DNS): the message certainly did not go out, so a retry is safe (when not permanent);
- ``SendOutcomeUnknown``: the request may have reached Twilio (read timeout, connection dropped
  after the request was written, an answer the SDK could not read): Twilio may have accepted it, so
  callers treat it as sent with an unknown sid and never send it again.
"""

import json
from dataclasses import dataclass
from typing import Any

from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from twilio.base import values
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> "TwilioCredentials":
        return cls(account_sid=str(secret["account_sid"]), auth_token=str(secret["auth_token"]))


class SendFailed(Exception):
    """Twilio certainly did not send the message. ``code`` is Twilio's error code when it gave one."""

    def __init__(
        self, message: str, permanent: bool, credentials: bool = False, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        # Twilio refused the tenant's credentials: read them again (rotated?), and alarm if it lasts.
        self.credentials = credentials
        self.code = code

    @property
    def recipient_unsubscribed(self) -> bool:
        return self.code == RECIPIENT_UNSUBSCRIBED


class SendOutcomeUnknown(Exception):
    """The request may have reached Twilio: treat the message as sent (sid unknown), never resend it."""


# Twilio error 20003 "Permission Denied" / HTTP 401: the account sid or auth token is wrong
# (https://www.twilio.com/docs/errors/20003).
CREDENTIALS_REFUSED = 20003
# https://www.twilio.com/docs/errors/21610 "Attempt to send to unsubscribed recipient": the customer
# blocked the sender (or replied STOP to Twilio itself); nothing reaches them until they write again.
RECIPIENT_UNSUBSCRIBED = 21610
# Refusals that heal by waiting: 20429 "Too Many Requests" (https://www.twilio.com/docs/errors/20429)
# and 21611 "This 'From' number has exceeded the maximum number of queued messages"
# (https://www.twilio.com/docs/errors/21611: the sender's queue drains at its rate limit).
TRANSIENT_CODES = frozenset({20429, 21611})


def _classify(status: int, code: int | None) -> SendFailed:
    """One rule for both of Twilio's error formats: the legacy body (TwilioRestException) and the
    RFC 9457 problem details (TwilioServiceException) carry the same HTTP status and error code."""
    if status == 401 or code == CREDENTIALS_REFUSED:
        return SendFailed(f"Twilio refused the tenant's credentials ({status}/{code})", False, True, code)
    if status == 429 or code in TRANSIENT_CODES or status >= 500:
        return SendFailed(f"Twilio asks to retry later ({status}/{code})", permanent=False, code=code)
    # Other 4xx are about the request, the recipient or the account: retrying will not help.
    return SendFailed(f"Twilio refused the message ({status}/{code})", permanent=status >= 400, code=code)


def _never_connected(error: BaseException) -> bool:
    """True only when no connection was made, so Twilio cannot have seen the request."""
    if isinstance(error, ConnectTimeout):
        return True
    if not isinstance(error, RequestsConnectionError):
        return False  # ReadTimeout, ChunkedEncodingError, a bug, ...: the request may have gone out
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError (refused, unreachable; NameResolutionError for DNS) is a ConnectTimeoutError.
    # A ProtocolError ("Connection aborted", reset) comes after the request was written: unknown.
    return isinstance(reason, ConnectTimeoutError) or "Failed to establish" in str(error)


def _unsent_or_unknown(error: Exception) -> Exception:
    if _never_connected(error):
        return SendFailed(f"Twilio unreachable ({type(error).__name__})", permanent=False)
    return SendOutcomeUnknown(f"Twilio send outcome unknown ({type(error).__name__}: {error})"[:500])


class TwilioSender:
    def __init__(self, api_base_url: str | None, timeout_seconds: float) -> None:
        self._base_url = api_base_url or None
        self._timeout = timeout_seconds
        self._clients: dict[str, Client] = {}

    def _client(self, credentials: TwilioCredentials) -> Client:
        key = f"{credentials.account_sid}:{hash(credentials.auth_token)}"
        if key not in self._clients:
            client = Client(
                credentials.account_sid,
                credentials.auth_token,
                http_client=TwilioHttpClient(timeout=self._timeout),
            )
            if self._base_url:
                client.api.base_url = self._base_url
            self._clients[key] = client
        return self._clients[key]

    def send_text(
        self,
        credentials: TwilioCredentials,
        from_: str,
        to: str,
        body: str,
        status_callback: str | None = None,
    ) -> str:
        try:
            message = self._client(credentials).messages.create(
                from_=from_, to=to, body=body, status_callback=status_callback or values.unset
            )
        except (TwilioRestException, TwilioServiceException) as error:
            raise _classify(error.status, error.code) from error
        except Exception as error:  # transport or SDK failure: sent unless provably never connected
            raise _unsent_or_unknown(error) from error
        return str(message.sid)

    def send_template(
        self,
        credentials: TwilioCredentials,
        from_: str,
        to: str,
        content_sid: str,
        variables: dict[str, str],
        status_callback: str | None = None,
    ) -> str:
        try:
            message = self._client(credentials).messages.create(
                from_=from_,
                to=to,
                content_sid=content_sid,
                content_variables=json.dumps(variables),
                status_callback=status_callback or values.unset,
            )
        except (TwilioRestException, TwilioServiceException) as error:
            raise _classify(error.status, error.code) from error
        except Exception as error:
            raise _unsent_or_unknown(error) from error
        return str(message.sid)
