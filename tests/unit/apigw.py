"""API Gateway REST (v1) proxy events as the webhook receives them."""

import base64
import uuid
from typing import Any
from urllib.parse import urlencode

from ai_comms.providers.twilio_signature import sign

from .conftest import ACCOUNT_SID, AUTH_TOKEN, COMPANY_NUMBER, CUSTOMER_NUMBER

HOST = "abc123.execute-api.eu-west-1.amazonaws.com"
STAGE = "test"


def twilio_form(**overrides: str) -> dict[str, str]:
    form = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:" + CUSTOMER_NUMBER,
        "To": "whatsapp:" + COMPANY_NUMBER,
        "Body": "Hello, is my order on its way?",
        "NumMedia": "0",
        "ProfileName": "Ada",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def webhook_event(
    form: dict[str, str] | None = None,
    channel: str = "whatsapp",
    *,
    body: str | None = None,
    signature: str | None = None,
    base64_body: bool = False,
    token: str = AUTH_TOKEN,
) -> dict[str, Any]:
    form = twilio_form() if form is None else form
    url = f"https://{HOST}/{STAGE}/{channel}"
    raw = urlencode(form) if body is None else body
    if signature is None:
        signature = sign(token, url, form)
    return {
        "resource": f"/{channel}",
        "path": f"/{channel}",
        "httpMethod": "POST",
        "headers": {
            "Host": HOST,
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "X-Forwarded-Proto": "https",
        },
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "stage": STAGE,
            "path": f"/{STAGE}/{channel}",
            "domainName": HOST,
            "httpMethod": "POST",
            "resourcePath": f"/{channel}",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.9"},
        },
        "body": base64.b64encode(raw.encode()).decode() if base64_body else raw,
        "isBase64Encoded": base64_body,
    }


def status_form(
    message_sid: str, status: str, error_code: int | None = None, **overrides: str
) -> dict[str, str]:
    """A StatusCallback request's form, as Twilio posts it for a WhatsApp message the company sent."""
    form = {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:" + COMPANY_NUMBER,
        "To": "whatsapp:" + CUSTOMER_NUMBER,
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    form.update(overrides)
    return form


def status_event(
    form: dict[str, str],
    query: dict[str, str],
    channel: str = "whatsapp",
    *,
    token: str = AUTH_TOKEN,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST /{channel}/status?<query> as API Gateway hands it to the status function, signed over the
    full URL (query included) as Twilio signs it."""
    url = f"https://{HOST}/{STAGE}/{channel}/status?{urlencode(query)}"
    event = webhook_event(form, channel, signature=signature or sign(token, url, form))
    event.update(
        resource=f"/{channel}/status",
        path=f"/{channel}/status",
        queryStringParameters=dict(query),
        multiValueQueryStringParameters={k: [v] for k, v in query.items()},
    )
    event["requestContext"].update(path=f"/{STAGE}/{channel}/status", resourcePath=f"/{channel}/status")
    event["headers"].update(headers or {})
    return event
