"""Reading Twilio's webhook request: the URL Twilio signed and the url-encoded form it posted.

Size limits come from the worst case of a valid message, not from typical ones: a WhatsApp text may
hold 4,096 characters; in UTF-8 a character takes up to 4 bytes and url-encoding writes each byte
of a non-ASCII character as three ("%F0"), so the Body alone can take 4,096 x 4 x 3 = 49,152
bytes on the wire. The default limit (max_webhook_body_bytes, 65,536) leaves 16 KiB for the other
fields (ProfileName, media, location, button and referral fields).
"""

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from ai_comms.errors import BadRequest, PayloadTooLarge
from ai_comms.providers.twilio_signature import FormParams

MAX_FORM_FIELDS = 200
WEBHOOK_MAX_BODY_BYTES = 65536


def public_url(
    public_base_url: str,
    path: str,
    headers: Mapping[str, str],
    domain: str | None,
    stage_path: str | None,
    query: Mapping[str, list[str]] | None,
) -> str:
    """The URL Twilio signed (``path`` is the route's, e.g. "whatsapp" or "whatsapp/status"): the
    configured public base wins; else scheme, host and the stage path."""
    if public_base_url:
        url = f"{public_base_url}/{path}"
    else:
        scheme = headers.get("x-forwarded-proto") or "https"
        host = headers.get("host") or domain or ""
        url = f"{scheme}://{host}{stage_path or '/' + path}"
    if query:
        url += "?" + urlencode([(k, v) for k, values in query.items() for v in values])
    return url


def decode_form(body: str | None, is_base64: bool, max_bytes: int) -> FormParams:
    if body is None or body == "":
        raise BadRequest("empty body")
    if len(body) > max_bytes * 4 // 3 + 4:
        raise PayloadTooLarge("body too large")
    if is_base64:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest("body is flagged base64 but is not") from error
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > max_bytes:
        raise PayloadTooLarge("body too large")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("body is not a url-encoded form") from error
    params = FormParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params
