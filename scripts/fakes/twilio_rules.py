"""What the fake Twilio refuses and how it says so: Twilio's error codes, in both error formats.

Sources: twilio-oai ``spec/json/twilio_api_v2010.json`` (the Messages create operation and the
``api.v2010.account.message`` schema) and Twilio's error pages, https://www.twilio.com/docs/errors/<code>,
whose titles are the messages below.

Two error formats, as twilio 9.x reads them (``twilio.base.version.Version.exception``):

* legacy JSON ``{"code", "message", "more_info", "status"}``: the SDK raises
  ``twilio.base.exceptions.TwilioRestException`` (``.status``, ``.code``, ``.msg``); the 2010 API's
  format today;
* RFC 9457 problem details (``application/problem+json``) ``{"type", "title", "status", "code",
  "detail", "instance"}``: when ``type``, ``title``, ``status`` and ``code`` are all present the SDK
  raises ``twilio.base.exceptions.TwilioServiceException`` instead, which is **not** a subclass of
  TwilioRestException (both derive from TwilioException). Newer Twilio APIs answer this way (the SDK's
  webhooks v1 resources ask for ``Accept: application/problem+json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fakes.http_base import Reply

ERRORS_BASE = "https://www.twilio.com/docs/errors"
# Body, and each Content Template variable value: "up to 1,600 characters" (errors 21617 and 21658).
MAX_BODY_CHARS = 1600
MAX_VARIABLE_CHARS = 1600
# twilio_api_v2010.json, Messages create: ContentSid {"pattern": "^HX[0-9a-fA-F]{32}$"}.
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
# twilio_api_v2010.json: AccountSid {"pattern": "^AC[0-9a-fA-F]{32}$"}; MessagingServiceSid "^MG...".
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
# https://www.twilio.com/docs/errors/21656: "A variable value used in the body contains a newline, a
# tab, or more than four consecutive spaces."
_BAD_VARIABLE_TEXT = re.compile(r"[\n\t]| {5,}")

# code -> (HTTP status, message): each message is the title of https://www.twilio.com/docs/errors/<code>.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),  # 20003 Permission Denied; the API's message is "Authenticate"
    20400: (400, "Bad Request"),
    20403: (403, "Forbidden"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21602: (400, "Message body is required"),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message"),
    21604: (400, "A 'To' phone number is required"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit"),
    21655: (400, "The ContentSid is Invalid"),
    21656: (400, "The ContentVariables Parameter is invalid"),
    21658: (400, "Parameter exceeded character limit"),
    21910: (400, "Invalid 'From' and 'To' pair. 'From' and 'To' should be of the same channel"),
}

# Delivery failures (a Message's error_code after the 201, never an API answer): error page titles.
DELIVERY_ERRORS: dict[int, str] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30008: "Unknown error",
    63016: "Outside messaging window. For WhatsApp, use a Message Template instead",
    63024: "Invalid message recipient",
    # https://www.twilio.com/docs/whatsapp/api/error-code-mapping: 63032 is WhatsApp's 472, "User's
    # number is part of an experiment".
    63032: "User's number is part of an experiment",
}

FORMATS = ("legacy", "problem")
_STATUS_CODES = {400: 20400, 401: 20003, 403: 20403, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True)
class TwilioError:
    status: int
    code: int
    message: str
    detail: str | None = None

    @classmethod
    def of(cls, code: int, detail: str | None = None, status: int | None = None) -> TwilioError:
        default_status, message = ERRORS.get(code, (400, DELIVERY_ERRORS.get(code, "Bad Request")))
        return cls(status or default_status, code, message, detail)

    @classmethod
    def for_status(cls, status: int, message: str | None = None) -> TwilioError:
        code = _STATUS_CODES.get(status, 20000 + status)
        default = ERRORS.get(code, (status, "Error"))[1]
        return cls(status, code, message or default)

    def reply(self, form: str = "legacy", instance: str | None = None) -> Reply:
        if form == "problem":
            # RFC 9457 members; twilio.base.version.Version.exception needs type, title, status, code.
            body: dict[str, Any] = {
                "type": f"{ERRORS_BASE}/{self.code}",
                "title": self.message,
                "status": self.status,
                "code": self.code,
                "detail": self.detail or self.message,
            }
            if instance is not None:
                body["instance"] = instance
            return Reply(self.status, body, content_type="application/problem+json")
        message = self.message if self.detail is None else f"{self.message}: {self.detail}"
        return Reply(
            self.status,
            {
                "code": self.code,
                "message": message,
                "more_info": f"{ERRORS_BASE}/{self.code}",
                "status": self.status,
            },
        )


def channel(address: str) -> str:
    """The channel of an address: the prefix of ``whatsapp:+1...``; ``sms`` for a bare number or sender id."""
    prefix, sep, _ = address.partition(":")
    return prefix.lower() if sep else "sms"


def create_error(form: dict[str, list[str]]) -> TwilioError | None:
    """POST Messages.json: the first rule the form breaks, in the order Twilio documents the fields."""

    def first(name: str) -> str:
        values = form.get(name)
        return values[0] if values else ""

    to, from_, body = first("To"), first("From"), first("Body")
    service_sid, content_sid, variables = (
        first("MessagingServiceSid"),
        first("ContentSid"),
        first("ContentVariables"),
    )
    if not to:
        # twilio_api_v2010.json: the create operation's only "required" field is To.
        return TwilioError.of(21604)
    if not from_ and not service_sid:
        return TwilioError.of(21603)
    if not body and not content_sid and not form.get("MediaUrl"):
        # errors/21602: "The Body OR MediaURL parameter is required" (or a ContentSid template).
        return TwilioError.of(21602)
    if content_sid and not CONTENT_SID.match(content_sid):
        # twilio_api_v2010.json ContentSid pattern ^HX[0-9a-fA-F]{32}$; errors/21655.
        return TwilioError.of(21655, f"'{content_sid}' does not match ^HX[0-9a-fA-F]{{32}}$")
    if variables and (problem := content_variables_error(variables)):
        return problem
    if len(body) > MAX_BODY_CHARS:
        # twilio_api_v2010.json Body: "Can be up to 1,600 characters in length"; errors/21617.
        return TwilioError.of(21617)
    if from_ and channel(from_) != channel(to):
        # errors/21910: "From and To parameters in the API Request should be of the same channel."
        return TwilioError.of(21910)
    return None


def content_variables_error(raw: str) -> TwilioError | None:
    """ContentVariables: a JSON object of template variable -> non-empty string (errors/21656, 21658)."""
    try:
        variables = json.loads(raw)
    except ValueError:
        return TwilioError.of(21656, "ContentVariables is not a valid JSON string")
    if not isinstance(variables, dict):
        return TwilioError.of(21656, "ContentVariables must be a JSON object of key-value pairs")
    for key, value in variables.items():
        if not isinstance(value, str) or not value:
            # errors/21656: "One or more variables resolve to null or an empty string at send time."
            return TwilioError.of(21656, f"variable {key!r} is null, empty or not a string")
        if len(value) > MAX_VARIABLE_CHARS:
            # errors/21658: "A Content Template variable value exceeded 1,600 characters."
            return TwilioError.of(21658, f"variable {key!r} is {len(value)} characters long")
        if _BAD_VARIABLE_TEXT.search(value):
            # errors/21656: a newline, a tab or more than four consecutive spaces.
            return TwilioError.of(
                21656, f"variable {key!r} contains a newline, a tab or more than four consecutive spaces"
            )
    return None
