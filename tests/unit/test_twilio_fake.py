"""The fake Twilio, driven by the real SDK: accounts, Twilio's validation errors in both error formats,
scripted refusals and outcomes, and the message lifecycle with signed status callbacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from fakes.twilio_fake import TwilioFake, wait_for_status

from .fakes_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    COMPANY,
    CONTENT_SID,
    CUSTOMER,
    CallbackServer,
    call,
    callbacks,
    twilio_client,
    twilio_fake,
    wait_until,
)

__all__ = ["callbacks", "twilio_fake"]

SMS_FROM, SMS_TO = "+14155550100", "+447700900123"


def refused(fake: TwilioFake, **params: Any) -> tuple[int, int | None]:
    with pytest.raises(TwilioRestException) as error:
        twilio_client(fake).messages.create(**params)
    return error.value.status, error.value.code


def template(**extra: Any) -> dict[str, Any]:
    return {"to": CUSTOMER, "from_": COMPANY, "content_sid": CONTENT_SID, **extra}


# Sending and fetching -----------------------------------------------------------------------------


def test_sdk_sends_text_and_template_messages(twilio_fake: TwilioFake) -> None:
    twilio_fake.customer_wrote(CUSTOMER, COMPANY)
    client = twilio_client(twilio_fake)
    text = client.messages.create(
        to=CUSTOMER, from_=COMPANY, body="Hello from the fake", status_callback="https://example.test/status"
    )
    sent_template = client.messages.create(
        **template(content_variables=json.dumps({"1": "Ada", "2": "Tuesday"}))
    )
    fetched = client.messages(text.sid).fetch()

    assert text.sid is not None and text.sid.startswith("SM") and len(text.sid) == 34
    assert text.status == "queued"
    assert text.account_sid == ACCOUNT_SID
    assert text.date_created is not None
    assert fetched.body == "Hello from the fake"
    status, messages = call(twilio_fake.url, "GET", "/fake/messages")
    assert status == 200
    assert [(m["sid"], m["body"], m["content_sid"]) for m in messages] == [
        (text.sid, "Hello from the fake", None),
        (sent_template.sid, "", CONTENT_SID),
    ]
    assert messages[0]["status_callback"] == "https://example.test/status"
    assert messages[1]["content_variables"] == {"1": "Ada", "2": "Tuesday"}


def test_api_domain_base_url_also_points_the_sdk_at_the_fake(twilio_fake: TwilioFake) -> None:
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=TwilioHttpClient(timeout=3))
    client.api.base_url = twilio_fake.url
    message = client.messages.create(to=SMS_TO, from_=SMS_FROM, body="sms")
    assert message.num_segments == "1"
    assert [m["sid"] for m in twilio_fake.messages()] == [message.sid]


def test_a_message_of_another_account_is_not_found(twilio_fake: TwilioFake) -> None:
    other = "AC" + "2" * 32
    twilio_fake.add_account(other, "other-token")
    sid = twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x").sid
    with pytest.raises(TwilioRestException) as error:
        twilio_client(twilio_fake, other, "other-token").messages(sid).fetch()
    assert (error.value.status, error.value.code) == (404, 20404)


def test_twilio_fault_raises_rest_exception(twilio_fake: TwilioFake) -> None:
    status, _ = call(twilio_fake.url, "POST", "/fake/faults", {"faults": [{"status": 500, "count": 1}]})
    assert status == 200
    client = twilio_client(twilio_fake)
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    assert (error.value.status, error.value.code) == (500, 20500)
    client.messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    assert len(twilio_fake.messages()) == 1


def test_twilio_requests_are_logged_and_reset(twilio_fake: TwilioFake) -> None:
    twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    _, calls = call(twilio_fake.url, "GET", "/fake/requests")
    assert calls[0]["body"]["Body"] == "x"
    assert "authorization" not in calls[0]["headers"]
    assert call(twilio_fake.url, "POST", "/fake/reset")[0] == 200
    assert twilio_fake.messages() == [] and twilio_fake.callbacks() == []
    # Registered accounts are the fake's configuration, not API state: they survive a reset.
    twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="after reset")


# Accounts (errors/20003) ----------------------------------------------------------------------------


def test_only_registered_accounts_with_their_token_are_let_in(twilio_fake: TwilioFake) -> None:
    unknown = "AC" + "9" * 32
    with pytest.raises(TwilioRestException) as not_registered:
        twilio_client(twilio_fake, unknown, AUTH_TOKEN).messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    with pytest.raises(TwilioRestException) as wrong_token:
        twilio_client(twilio_fake, ACCOUNT_SID, "not-the-token").messages.create(
            to=SMS_TO, from_=SMS_FROM, body="x"
        )
    with pytest.raises(TwilioRestException) as no_token:
        twilio_client(twilio_fake, ACCOUNT_SID, "").messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    for error in (not_registered, wrong_token, no_token):
        assert (error.value.status, error.value.code) == (401, 20003)
    assert twilio_fake.messages() == []


def test_the_path_account_must_be_the_authenticated_one(twilio_fake: TwilioFake) -> None:
    other = "AC" + "3" * 32
    twilio_fake.add_account(other, "other-token")
    other_account = twilio_client(twilio_fake).api.v2010.accounts(other)
    with pytest.raises(TwilioRestException) as error:
        other_account.messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    assert (error.value.status, error.value.code) == (401, 20003)


def test_accounts_can_be_registered_over_http(twilio_fake: TwilioFake) -> None:
    sid = "AC" + "a" * 32
    assert call(twilio_fake.url, "POST", "/fake/accounts", {"account_sid": sid, "auth_token": "t"})[0] == 200
    assert (
        call(twilio_fake.url, "POST", "/fake/accounts", {"account_sid": "ACnope", "auth_token": "t"})[0]
        == 400
    )
    message = twilio_client(twilio_fake, sid, "t").messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    assert message.account_sid == sid


# Validation, as twilio_api_v2010.json and the error pages define it -------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"to": "", "from_": SMS_FROM, "body": "x"}, 21604),
        ({"to": SMS_TO, "body": "x"}, 21603),
        ({"to": SMS_TO, "from_": SMS_FROM}, 21602),
        ({"to": SMS_TO, "from_": SMS_FROM, "body": "x" * 1601}, 21617),
        ({"to": CUSTOMER, "from_": COMPANY, "content_sid": "HX1"}, 21655),
        ({"to": CUSTOMER, "from_": COMPANY, "content_sid": "HX" + "g" * 32}, 21655),
        (template(content_variables="{"), 21656),
        (template(content_variables='["Ada"]'), 21656),
        (template(content_variables=json.dumps({"1": ""})), 21656),
        (template(content_variables=json.dumps({"1": None})), 21656),
        (template(content_variables=json.dumps({"1": 3})), 21656),
        (template(content_variables=json.dumps({"1": "two\nlines"})), 21656),
        (template(content_variables=json.dumps({"1": "a\ttab"})), 21656),
        (template(content_variables=json.dumps({"1": "five     spaces"})), 21656),
        (template(content_variables=json.dumps({"1": "v" * 1601})), 21658),
        ({"to": SMS_TO, "from_": COMPANY, "body": "x"}, 21910),
        ({"to": CUSTOMER, "from_": SMS_FROM, "body": "x"}, 21910),
    ],
)
def test_invalid_messages_get_twilios_error_codes(
    twilio_fake: TwilioFake, params: dict[str, Any], code: int
) -> None:
    assert refused(twilio_fake, **params) == (400, code)
    assert twilio_fake.messages() == []


def test_values_just_inside_the_limits_are_accepted(twilio_fake: TwilioFake) -> None:
    client = twilio_client(twilio_fake)
    client.messages.create(to=SMS_TO, from_=SMS_FROM, body="x" * 1600)
    client.messages.create(**template(content_variables=json.dumps({"1": "four    spaces", "2": "v" * 1600})))
    client.messages.create(to=SMS_TO, from_=SMS_FROM, media_url=["https://example.test/a.png"])
    assert len(twilio_fake.messages()) == 3


def test_error_messages_are_the_error_pages_titles(twilio_fake: TwilioFake) -> None:
    with pytest.raises(TwilioRestException) as error:
        twilio_client(twilio_fake).messages.create(**template(content_variables=json.dumps({"1": "a\nb"})))
    assert "The ContentVariables Parameter is invalid" in error.value.msg
    status, body = (error.value.status, error.value.details)
    assert status == 400 and body is None


# Scripted refusals ---------------------------------------------------------------------------------


def test_a_recipient_who_opted_out_is_refused_until_reset(twilio_fake: TwilioFake) -> None:
    twilio_fake.refuse(21610, to=SMS_TO)
    assert refused(twilio_fake, to=SMS_TO, from_=SMS_FROM, body="x") == (400, 21610)
    assert refused(twilio_fake, to=SMS_TO, from_=SMS_FROM, body="again") == (400, 21610)
    twilio_client(twilio_fake).messages.create(to="+447700900999", from_=SMS_FROM, body="someone else")
    twilio_fake.reset()
    twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x")


def test_a_full_sender_queue_heals(twilio_fake: TwilioFake) -> None:
    status, _ = call(twilio_fake.url, "POST", "/fake/refusals", {"code": 21611, "from": SMS_FROM, "count": 2})
    assert status == 200
    assert refused(twilio_fake, to=SMS_TO, from_=SMS_FROM, body="1") == (400, 21611)
    assert refused(twilio_fake, to="+447700900111", from_=SMS_FROM, body="2") == (400, 21611)
    twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="3")


def test_too_many_requests_is_a_429(twilio_fake: TwilioFake) -> None:
    twilio_fake.refuse(20429, count=1)
    assert refused(twilio_fake, to=SMS_TO, from_=SMS_FROM, body="x") == (429, 20429)


def test_problem_details_raise_the_sdks_service_exception(twilio_fake: TwilioFake) -> None:
    twilio_fake.refuse(21610, to=SMS_TO, format="problem", count=1)
    with pytest.raises(TwilioServiceException) as error:
        twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    problem = error.value
    assert (problem.status, problem.code, problem.title) == (
        400,
        21610,
        "Attempt to send to unsubscribed recipient",
    )
    assert problem.type == "https://www.twilio.com/docs/errors/21610"
    assert problem.instance == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    # Not a TwilioRestException: code that catches only that one misses it.
    assert not isinstance(problem, TwilioRestException) and isinstance(problem, TwilioException)
    [entry] = twilio_fake.requests.snapshot()
    assert entry["status"] == 400


def test_problem_details_come_as_application_problem_json(twilio_fake: TwilioFake) -> None:
    faults = {"faults": [{"status": 429, "code": 20429, "format": "problem"}]}
    assert call(twilio_fake.url, "POST", "/fake/faults", faults)[0] == 200
    response = TwilioHttpClient(timeout=3).request(
        "POST",
        f"{twilio_fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": SMS_TO, "From": SMS_FROM, "Body": "x"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert response.status_code == 429
    assert response.headers["Content-Type"] == "application/problem+json"
    body = json.loads(response.text)
    assert {k: body[k] for k in ("type", "title", "status", "code")} == {
        "type": "https://www.twilio.com/docs/errors/20429",
        "title": "Too Many Requests",
        "status": 429,
        "code": 20429,
    }


def test_refusal_routes_check_their_input(twilio_fake: TwilioFake) -> None:
    assert call(twilio_fake.url, "POST", "/fake/refusals", {"code": "21610"})[0] == 400
    assert call(twilio_fake.url, "POST", "/fake/refusals", {"code": 21610, "format": "xml"})[0] == 400
    assert call(twilio_fake.url, "POST", "/fake/outcomes", {"status": "failed"})[0] == 400
    assert call(twilio_fake.url, "POST", "/fake/outcomes", {"status": "lost"})[0] == 400


# Lifecycle and status callbacks ---------------------------------------------------------------------


def verify(received: Any, url: str) -> bool:
    return bool(
        RequestValidator(AUTH_TOKEN).validate(url, received.form, received.headers["X-Twilio-Signature"])
    )


def test_a_whatsapp_message_reports_sent_delivered_read_with_signed_callbacks(
    twilio_fake: TwilioFake, callbacks: CallbackServer
) -> None:
    url = callbacks.url("/status?tenant=acme")
    twilio_fake.customer_wrote(CUSTOMER, COMPANY)
    client = twilio_client(twilio_fake)
    message = client.messages.create(to=CUSTOMER, from_=COMPANY, body="hello", status_callback=url)
    assert message.status == "queued"  # no callback for the initial status

    wait_until(lambda: len(callbacks.received) == 3)
    assert callbacks.statuses() == ["sent", "delivered", "read"]
    assert all(verify(r, url) for r in callbacks.received)
    wait_until(lambda: twilio_fake.lifecycle.pending() == 0)  # nothing after "read"
    sent, delivered, read = (r.form for r in callbacks.received)
    assert sent["MessageSid"] == sent["SmsSid"] == message.sid
    assert {k: sent[k] for k in ("AccountSid", "From", "To", "ApiVersion", "ChannelPrefix", "SmsStatus")} == {
        "AccountSid": ACCOUNT_SID,
        "From": COMPANY,
        "To": CUSTOMER,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        "SmsStatus": "sent",
    }
    assert sent["ChannelToAddress"] == "+44770090XXXX" and sent["StructuredMessage"] == "false"
    assert sent["ChannelInstallSid"].startswith("XE")
    assert (delivered["EventType"], read["EventType"]) == ("DELIVERED", "READ")
    assert "ErrorCode" not in read
    assert callbacks.received[0].path == "/status?tenant=acme"
    assert callbacks.received[0].headers["I-Twilio-Idempotency-Token"]

    fetched = client.messages(message.sid).fetch()
    assert fetched.status == "read" and fetched.date_sent is not None and fetched.error_code is None
    assert twilio_fake.messages()[0]["status"] == "read"
    assert [c["ok"] for c in twilio_fake.callbacks()] == [True, True, True]


def test_status_steps_still_to_come_are_pending(callbacks: CallbackServer) -> None:
    with TwilioFake(port=0, accounts={ACCOUNT_SID: AUTH_TOKEN}, status_interval_seconds=30) as fake:
        client = twilio_client(fake)
        client.messages.create(to=CUSTOMER, from_=COMPANY, body="hello", status_callback=callbacks.url())
        assert fake.lifecycle.pending() == 1  # "sent" is due in 30 s; the later steps follow it
        fake.lifecycle.clear()
        assert fake.lifecycle.pending() == 0


def test_an_sms_ends_delivered(twilio_fake: TwilioFake, callbacks: CallbackServer) -> None:
    url = callbacks.url()
    twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x", status_callback=url)
    wait_until(lambda: len(callbacks.received) == 2)
    assert callbacks.statuses() == ["sent", "delivered"]
    assert (
        "RawDlrDoneDate" in callbacks.received[1].form and "ChannelPrefix" not in callbacks.received[1].form
    )
    assert all(verify(r, url) for r in callbacks.received)


def test_free_form_whatsapp_outside_the_24_hour_window_is_undelivered_63016(
    twilio_fake: TwilioFake, callbacks: CallbackServer
) -> None:
    url = callbacks.url()
    client = twilio_client(twilio_fake)
    never_wrote = client.messages.create(to=CUSTOMER, from_=COMPANY, body="hello?", status_callback=url)
    assert never_wrote.status == "queued"  # accepted: the failure comes after the 201

    undelivered = wait_for_status(twilio_fake, never_wrote.sid, "undelivered")
    assert undelivered["error_code"] == 63016
    wait_until(lambda: len(callbacks.received) == 2)
    assert callbacks.statuses() == ["sent", "undelivered"]
    assert callbacks.received[1].form["ErrorCode"] == "63016"
    assert callbacks.received[1].form["EventType"] == "UNDELIVERED"
    fetched = client.messages(never_wrote.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 63016)
    assert fetched.error_message and "Message Template" in fetched.error_message


def test_the_window_is_24_hours_from_the_customers_last_message(twilio_fake: TwilioFake) -> None:
    long_ago = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    inbound = {"from": CUSTOMER, "to": COMPANY, "at": long_ago}
    assert call(twilio_fake.url, "POST", "/fake/inbound", inbound)[0] == 200
    client = twilio_client(twilio_fake)
    late = client.messages.create(to=CUSTOMER, from_=COMPANY, body="late reply")
    assert wait_for_status(twilio_fake, late.sid, "undelivered")["error_code"] == 63016

    twilio_fake.customer_wrote(CUSTOMER, COMPANY, datetime.now(UTC) - timedelta(hours=23))
    in_time = client.messages.create(to=CUSTOMER, from_=COMPANY, body="reply in time")
    wait_for_status(twilio_fake, in_time.sid, "read")


def test_a_template_may_be_sent_outside_the_window(twilio_fake: TwilioFake) -> None:
    message = twilio_client(twilio_fake).messages.create(
        **template(content_variables=json.dumps({"1": "Ada"}))
    )
    assert wait_for_status(twilio_fake, message.sid, "read")["error_code"] is None


@pytest.mark.parametrize(
    ("outcome", "statuses"),
    [
        ({"status": "failed", "error_code": 63024}, ["failed"]),
        ({"status": "undelivered", "error_code": 63032}, ["sent", "undelivered"]),
        ({"status": "delivered"}, ["sent", "delivered"]),
        ({"status": "sent"}, ["sent"]),
    ],
)
def test_final_outcomes_can_be_scripted_per_recipient(
    twilio_fake: TwilioFake, callbacks: CallbackServer, outcome: dict[str, Any], statuses: list[str]
) -> None:
    assert call(twilio_fake.url, "POST", "/fake/outcomes", {**outcome, "to": CUSTOMER, "count": 1})[0] == 200
    url = callbacks.url()
    first = twilio_client(twilio_fake).messages.create(**template(status_callback=url))
    wait_until(lambda: len(callbacks.received) == len(statuses))
    final = wait_for_status(twilio_fake, first.sid, statuses[-1])
    assert callbacks.statuses() == statuses
    assert final["error_code"] == outcome.get("error_code")
    if "error_code" in outcome:
        assert callbacks.received[-1].form["ErrorCode"] == str(outcome["error_code"])
    # count 1: the next message to the same recipient lives the default lifecycle.
    second = twilio_client(twilio_fake).messages.create(**template())
    wait_for_status(twilio_fake, second.sid, "read")


def test_a_failing_callback_is_logged_once_and_never_retried(twilio_fake: TwilioFake) -> None:
    rejecting = CallbackServer(status=500).start()
    try:
        url = rejecting.url()
        twilio_fake.set_outcome("sent", to=SMS_TO)
        message = twilio_client(twilio_fake).messages.create(
            to=SMS_TO, from_=SMS_FROM, body="x", status_callback=url
        )
        wait_until(twilio_fake.callbacks)
        wait_for_status(twilio_fake, message.sid, "sent")
    finally:
        rejecting.stop()
    unreachable = twilio_client(twilio_fake).messages.create(
        to="+447700900111", from_=SMS_FROM, body="y", status_callback=url
    )
    wait_until(lambda: len(twilio_fake.callbacks()) == 3)
    wait_for_status(twilio_fake, unreachable.sid, "delivered")
    logged = twilio_fake.callbacks()
    assert len(rejecting.received) == 1
    assert (logged[0]["http_status"], logged[0]["ok"]) == (500, False)
    assert [entry["ok"] for entry in logged[1:]] == [False, False]
    assert all("error" in entry for entry in logged[1:])
    assert [entry["status"] for entry in logged] == ["sent", "sent", "delivered"]


def test_the_schedule_is_configurable(twilio_fake: TwilioFake) -> None:
    status, config = call(twilio_fake.url, "POST", "/fake/config", {"status_interval_seconds": 0.2})
    assert status == 200 and config["status_interval_seconds"] == 0.2
    message = twilio_client(twilio_fake).messages.create(to=SMS_TO, from_=SMS_FROM, body="x")
    assert twilio_fake.message(str(message.sid))["status"] == "queued"  # type: ignore[index]
    wait_for_status(twilio_fake, str(message.sid), "delivered", timeout=3)
