"""How a failed Twilio send is classified: certainly not sent (retry is safe) or outcome unknown."""

import socket
import threading
from collections.abc import Iterator
from unittest import mock

import pytest
from requests.exceptions import ChunkedEncodingError, ConnectTimeout, ReadTimeout

from ai_comms.providers.twilio_client import SendFailed, SendOutcomeUnknown, TwilioCredentials, TwilioSender
from fakes.twilio_fake import TwilioFake

CREDENTIALS = TwilioCredentials("AC" + "0" * 32, "token")


def send(sender: TwilioSender) -> str:
    return sender.send_text(CREDENTIALS, "whatsapp:+15550001", "whatsapp:+15550002", "hello")


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(port=0, accounts={CREDENTIALS.account_sid: CREDENTIALS.auth_token}) as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hangs_up_after_the_request() -> Iterator[str]:
    """A server that reads the request and closes the connection without answering."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_connection_refused_is_a_transient_failure_nothing_was_sent() -> None:
    with pytest.raises(SendFailed) as failed:
        send(TwilioSender(f"http://127.0.0.1:{free_port()}", timeout_seconds=2))
    assert failed.value.permanent is False


def test_a_connect_timeout_is_a_transient_failure() -> None:
    sender = TwilioSender("http://twilio.invalid", timeout_seconds=2)
    client = sender._client(CREDENTIALS)
    with (
        mock.patch.object(client.http_client, "request", side_effect=ConnectTimeout("connect timed out")),
        pytest.raises(SendFailed),
    ):
        send(sender)


def test_a_read_timeout_is_outcome_unknown(fake: TwilioFake) -> None:
    fake.add_faults({"delay_seconds": 1.0, "count": 1})
    with pytest.raises(SendOutcomeUnknown):
        send(TwilioSender(fake.url, timeout_seconds=0.3))


def test_a_connection_dropped_after_the_request_is_outcome_unknown(hangs_up_after_the_request: str) -> None:
    with pytest.raises(SendOutcomeUnknown):
        send(TwilioSender(hangs_up_after_the_request, timeout_seconds=2))


@pytest.mark.parametrize("error", [ReadTimeout("read"), ChunkedEncodingError("cut"), ValueError("bad body")])
def test_other_transport_or_sdk_failures_are_outcome_unknown(error: Exception) -> None:
    sender = TwilioSender("http://twilio.invalid", timeout_seconds=2)
    client = sender._client(CREDENTIALS)
    with (
        mock.patch.object(client.http_client, "request", side_effect=error),
        pytest.raises(SendOutcomeUnknown),
    ):
        send(sender)


def test_twilio_errors_keep_their_classification(fake: TwilioFake) -> None:
    fake.add_faults({"status": 400, "count": 1}, {"status": 503, "count": 1})
    sender = TwilioSender(fake.url, timeout_seconds=2)
    with pytest.raises(SendFailed) as refused:
        send(sender)
    assert refused.value.permanent is True
    with pytest.raises(SendFailed) as unavailable:
        send(sender)
    assert unavailable.value.permanent is False


@pytest.mark.parametrize("form", ["legacy", "problem"])
@pytest.mark.parametrize(
    ("code", "permanent", "unsubscribed"),
    [
        (21611, False, False),  # the sender's queue is full: it drains
        (20429, False, False),  # too many requests
        (21610, True, True),  # the recipient blocked the sender
        (21656, True, False),  # the request itself is wrong
    ],
)
def test_errors_are_classified_by_code_in_both_of_twilios_formats(
    fake: TwilioFake, form: str, code: int, permanent: bool, unsubscribed: bool
) -> None:
    # The RFC 9457 format raises TwilioServiceException, not TwilioRestException: both map alike.
    fake.refuse(code, count=1, format=form)
    with pytest.raises(SendFailed) as refused:
        send(TwilioSender(fake.url, timeout_seconds=2))
    assert refused.value.code == code
    assert refused.value.permanent is permanent and refused.value.recipient_unsubscribed is unsubscribed
