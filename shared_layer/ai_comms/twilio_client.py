"""Sending through Twilio's Messages API with the official SDK; the API base URL is configurable.

Twilio has no idempotency key for sending, so callers record each accepted sid before sending the
next part and never retry a send whose outcome is unknown into a duplicate.
"""

import json
from dataclasses import dataclass
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> "TwilioCredentials":
        return cls(account_sid=str(secret["account_sid"]), auth_token=str(secret["auth_token"]))


class SendFailed(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _classify(error: TwilioRestException) -> SendFailed:
    # 4xx other than throttling are about the request or the account: retrying will not help.
    permanent = 400 <= error.status < 500 and error.status != 429
    return SendFailed(f"Twilio refused the message ({error.status}/{error.code})", permanent=permanent)


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

    def send_text(self, credentials: TwilioCredentials, from_: str, to: str, body: str) -> str:
        try:
            message = self._client(credentials).messages.create(from_=from_, to=to, body=body)
        except TwilioRestException as error:
            raise _classify(error) from error
        except OSError as error:  # connection reset/timeout: the outcome is unknown
            raise SendFailed(f"Twilio unreachable ({type(error).__name__})", permanent=False) from error
        return str(message.sid)

    def send_template(
        self, credentials: TwilioCredentials, from_: str, to: str, content_sid: str, variables: dict[str, str]
    ) -> str:
        try:
            message = self._client(credentials).messages.create(
                from_=from_, to=to, content_sid=content_sid, content_variables=json.dumps(variables)
            )
        except TwilioRestException as error:
            raise _classify(error) from error
        except OSError as error:
            raise SendFailed(f"Twilio unreachable ({type(error).__name__})", permanent=False) from error
        return str(message.sid)
