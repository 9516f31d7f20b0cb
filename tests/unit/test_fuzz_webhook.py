"""Generated webhook requests against the handler in a mocked account.

Properties: no request ever gets a 5xx; nothing is published, claimed or stored unless the request is
signed with the tenant's token over exactly the fields it carries and those fields are valid; a
signed, valid request with any unicode Body is accepted and the Body reaches the event unchanged.
"""

import base64
import itertools
import json
import re
from typing import Any
from urllib.parse import urlencode

import hypothesis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ai_comms.providers.twilio_signature import FormParams, sign
from ai_comms.store.conversations import ConversationRepository
from ai_comms.store.dynamo import from_item

from .apigw import HOST, STAGE, twilio_form, webhook_event
from .conftest import ACCOUNT_SID, AUTH_TOKEN, COMPANY_NUMBER, CUSTOMER_NUMBER, TABLES, Cloud, history
from .fuzz_support import FUZZ, STRICT_E164, catch_all, published
from .lambda_context import FakeContext
from .test_webhook import open_conversation

REFUSED = {400, 403, 404, 413}
FIELDS = ["MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "ProfileName"]
_tels = itertools.count(1_000_000)

# Text that stresses parsers: every plane, controls, CR/LF, NUL, percent-escapes and form syntax.
nasty_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["\r", "\n", "\x00", "%00", "%0D%0A", "&", "=", "+", "%", ";", "a"])).map(
        "".join
    ),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
)
# Channel names API Gateway could forward: its resources are literal path parts, and the handler's
# route matches word characters plus RFC 3986's safe ones (an unmatched path is pinned below).
ROUTABLE = re.compile(r"\A[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+\Z")
channels = st.one_of(
    st.sampled_from(["whatsapp", "sms", "WhatsApp", "telegram", "whatsapp%00", "whatsapp ", "..", "*"]),
    st.text(min_size=1, max_size=20).filter(ROUTABLE.match),
)
header_names = st.one_of(
    st.sampled_from(
        [
            "X-Twilio-Signature",
            "x-twilio-signature",
            "X-TWILIO-SIGNATURE",
            "X-Twilio-Webhooks-Signature-Settings",
            "Content-Type",
            "Host",
            "X-Forwarded-Proto",
        ]
    ),
    st.text(min_size=1, max_size=20),
)
headers = st.one_of(st.none(), st.dictionaries(header_names, nasty_text, max_size=6))
form_pairs = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), nasty_text), max_size=12
)
bodies = st.one_of(
    st.none(),
    st.just(""),
    nasty_text,
    st.text(alphabet=st.characters(categories=["Cs", "Ll"]), max_size=20),  # lone surrogates
    form_pairs.map(urlencode),
    form_pairs.map(lambda pairs: json.dumps(dict(pairs))),  # JSON instead of a form
    st.integers(16_300, 70_000).map(lambda n: "Body=" + "x" * n),  # around and beyond the limit
    st.binary(max_size=200).map(lambda raw: base64.b64encode(raw).decode()),
)


def invoke(webhook: Any, event: dict[str, Any]) -> int:
    answer = webhook.lambda_handler(event, FakeContext())
    return int(answer["statusCode"])


def stored_messages(cloud: Cloud) -> list[dict[str, Any]]:
    return [from_item(item) for item in cloud.dynamodb.scan(TableName=TABLES["messages"]).get("Items", [])]


def claims(cloud: Cloud) -> int:
    return len(cloud.dynamodb.scan(TableName=TABLES["idempotency"]).get("Items", []))


def effects(cloud: Cloud) -> tuple[int, int]:
    return len(stored_messages(cloud)), claims(cloud)


def assert_nothing_happened(cloud: Cloud, before: tuple[int, int]) -> None:
    """No event on the bus, no message appended to any conversation, no MessageSid claimed."""
    assert published(cloud) == []
    assert effects(cloud) == before


def on_channel(event: dict[str, Any], channel: str) -> dict[str, Any]:
    event["path"] = event["resource"] = f"/{channel}"
    event["requestContext"]["path"] = f"/{STAGE}/{channel}"
    event["requestContext"]["resourcePath"] = f"/{channel}"
    return event


def signed_event(pairs: list[tuple[str, str]], token: str = AUTH_TOKEN) -> dict[str, Any]:
    """A request whose signature covers exactly these fields, repeated ones included."""
    params = FormParams()
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    signature = sign(token, f"https://{HOST}/{STAGE}/whatsapp", params)
    return webhook_event(dict(pairs), body=urlencode(pairs), signature=signature)


def fresh_customer(cloud: Cloud) -> str:
    tel = f"+44770{next(_tels)}"
    open_conversation_for(cloud, tel)
    return tel


def open_conversation_for(cloud: Cloud, tel: str) -> None:
    from ai_comms.clock import iso, utc_now
    from ai_comms.models.conversation import Conversation

    now = iso(utc_now())
    ConversationRepository(cloud.dynamodb, TABLES["conversations"]).put_new(
        Conversation(
            recipient_tel=tel,
            conversation_id="c-" + tel,
            channel="whatsapp",
            company_id="acme",
            project_id="support",
            company_address="whatsapp:" + COMPANY_NUMBER,
            customer_address="whatsapp:" + tel,
            created_at=now,
            updated_at=now,
        )
    )


@pytest.fixture
def fuzz_cloud(cloud: Cloud, webhook: Any) -> Cloud:
    catch_all(cloud)
    open_conversation(cloud)
    return cloud


@FUZZ
@given(
    body=bodies,
    head=headers,
    is_base64=st.booleans(),
    channel=channels,
    signature=st.one_of(st.none(), nasty_text),
)
@example(body=None, head=None, is_base64=False, channel="whatsapp", signature=None)
@example(body="not base64!", head={}, is_base64=True, channel="whatsapp", signature="")
@example(
    body='{"To": "whatsapp:+14155550100"}',
    head={"Content-Type": "application/json"},
    is_base64=False,
    channel="whatsapp",
    signature=None,
)
def test_unsigned_requests_never_5xx_and_change_nothing(
    fuzz_cloud: Cloud,
    webhook: Any,
    body: str | None,
    head: dict[str, str] | None,
    is_base64: bool,
    channel: str,
    signature: str | None,
) -> None:
    event = on_channel(webhook_event(), channel)
    event["body"] = body
    event["isBase64Encoded"] = is_base64
    event["headers"] = head
    if head is not None and signature is not None:
        head["X-Twilio-Signature"] = signature

    before = effects(fuzz_cloud)
    assert invoke(webhook, event) in REFUSED
    assert_nothing_happened(fuzz_cloud, before)


tampers = st.one_of(
    # Another value for a field the signature covered (CR/LF, NUL, percent-escapes...).
    st.tuples(st.just("replace"), st.sampled_from(FIELDS), nasty_text),
    # An extra pair, before or after the signed ones: a second To/From, a new field.
    st.tuples(
        st.sampled_from(["append", "prepend"]),
        st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=8)),
        nasty_text,
    ),
    st.tuples(st.just("drop"), st.sampled_from(FIELDS), st.just("")),
    st.tuples(
        st.just("raw-suffix"),
        st.just(""),
        st.sampled_from(["&To=whatsapp%3A%2B14155550199", "%00", "\r\nX: y", "&&", "&Body=", "&=x"]),
    ),
    st.tuples(st.just("json"), st.just(""), st.just("")),
    st.tuples(
        st.just("host"),
        st.just(""),
        st.sampled_from(
            ["evil.example.com", HOST.upper() + ".", "abc124.execute-api.eu-west-1.amazonaws.com"]
        ),
    ),
    st.tuples(st.just("base64-flag"), st.just(""), st.just("")),
)


@FUZZ
@given(tamper=tampers)
def test_tampering_with_a_signed_request_is_refused(
    fuzz_cloud: Cloud, webhook: Any, tamper: tuple[str, str, str]
) -> None:
    kind, name, value = tamper
    pairs = list(twilio_form().items())
    event = signed_event(pairs)
    if kind == "replace":
        changed = [(k, value if k == name else v) for k, v in pairs]
        if changed == pairs:
            return
        event["body"] = urlencode(changed)
    elif kind in ("append", "prepend"):
        extra = [(name, value)]
        event["body"] = urlencode(pairs + extra if kind == "append" else extra + pairs)
    elif kind == "drop":
        event["body"] = urlencode([(k, v) for k, v in pairs if k != name])
    elif kind == "raw-suffix":
        event["body"] += value
    elif kind == "json":
        event["body"] = json.dumps(dict(pairs))
    elif kind == "host":
        event["headers"]["Host"] = value
    elif kind == "base64-flag":
        event["isBase64Encoded"] = True

    before = effects(fuzz_cloud)
    assert invoke(webhook, event) in REFUSED
    assert_nothing_happened(fuzz_cloud, before)


MISSING = "<missing>"
# Wrong values aimed at each field; any field may also be missing or any nasty text.
wrong_values = {
    "MessageSid": st.sampled_from(["SM123", "sm" + "a" * 32, "SM" + "g" * 32, "MM" + "0" * 32 + "\n"]),
    "AccountSid": st.sampled_from(["AC" + "2" * 32, ACCOUNT_SID.lower(), ACCOUNT_SID + " "]),
    "From": st.one_of(
        st.sampled_from([CUSTOMER_NUMBER, "sms:" + CUSTOMER_NUMBER, "whatsapp:" + CUSTOMER_NUMBER + "x"]),
        nasty_text.map(lambda t: "whatsapp:+44" + t),
    ),
    "To": st.sampled_from([COMPANY_NUMBER, "whatsapp:+14155550199", "WHATSAPP:" + COMPANY_NUMBER]),
    "Body": st.text(min_size=4090, max_size=4100),
    "NumMedia": st.sampled_from(["1", "10", "11", "-1", "1e3", "\uff10", " 1"]),
    "ProfileName": st.text(min_size=250, max_size=260),
}
corruptions = st.dictionaries(st.sampled_from(FIELDS), st.none(), min_size=1, max_size=2).flatmap(
    lambda chosen: st.fixed_dictionaries(
        {name: st.one_of(st.just(MISSING), nasty_text, wrong_values[name]) for name in chosen}
    )
)
valid_forms = st.fixed_dictionaries(
    {
        "MessageSid": st.from_regex(r"\ASM[0-9a-f]{32}\Z"),
        "From": st.one_of(st.just(CUSTOMER_NUMBER), st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z")).map(
            lambda tel: "whatsapp:" + tel
        ),
        "Body": nasty_text,
    }
).map(lambda fields: twilio_form(**fields))


@FUZZ
@given(
    form_fields=valid_forms,
    changes=st.one_of(st.just({}), corruptions),
    duplicates=st.lists(st.tuples(st.sampled_from(FIELDS), nasty_text), max_size=2),
)
def test_signed_requests_publish_only_when_every_field_is_valid(
    fuzz_cloud: Cloud,
    webhook: Any,
    form_fields: dict[str, str],
    changes: dict[str, str],
    duplicates: list[tuple[str, str]],
) -> None:
    pairs = [(k, v) for k, v in {**form_fields, **changes}.items() if v != MISSING] + duplicates
    form = FormParams()
    for k, v in pairs:
        form.setdefault(k, []).append(v)
    before = len(stored_messages(fuzz_cloud))

    status = invoke(webhook, signed_event(pairs))

    events = published(fuzz_cloud)
    hypothesis.event(f"status {status}")
    assert status in {200} | REFUSED
    if status != 200:
        assert events == []
        assert len(stored_messages(fuzz_cloud)) == before
        return
    first = {k: form.first(k) for k in FIELDS}
    # Accepted: it names this tenant's account and number, and the event carries what was signed.
    assert first["AccountSid"] == ACCOUNT_SID
    assert first["To"] == "whatsapp:" + COMPANY_NUMBER
    assert first["MessageSid"] and first["From"] and first["From"].startswith("whatsapp:+")
    assert len(events) <= 1  # 0 when the generated MessageSid repeated an earlier one
    for event in events:
        detail = event["detail"]
        assert detail["message_sid"] == first["MessageSid"]
        assert detail["customer_address"] == first["From"]
        assert detail["recipient_tel"] == first["From"].removeprefix("whatsapp:")
        assert detail["body"] == (first["Body"] or "")
        assert detail["num_media"] == int(first["NumMedia"] or 0)


@FUZZ
@given(
    body=st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=400),
    casing=st.sampled_from([str.lower, str.upper, str.title, lambda s: s]),
    base64_body=st.booleans(),
)
@example(body="", casing=str.lower, base64_body=False)
@example(body="a\r\nb\x00c%00 &To=whatsapp:+14155550199 = + 🙂 \u202e", casing=str.upper, base64_body=True)
def test_signed_unicode_body_is_accepted_and_round_trips(
    fuzz_cloud: Cloud, webhook: Any, body: str, casing: Any, base64_body: bool
) -> None:
    tel = fresh_customer(fuzz_cloud)
    form = twilio_form(From="whatsapp:" + tel, Body=body)
    event = webhook_event(form, base64_body=base64_body)
    event["headers"] = {casing(k): v for k, v in event["headers"].items()}

    assert invoke(webhook, event) == 200

    [published_event] = published(fuzz_cloud)
    assert published_event["detail"]["body"] == body
    assert published_event["detail"]["route"] == "ai_reply"
    stored = ConversationRepository(fuzz_cloud.dynamodb, TABLES["conversations"]).get(tel, "c-" + tel)
    assert stored is not None and [m.body for m in history(fuzz_cloud, stored.conversation_id)] == [body]


@pytest.mark.parametrize(
    "tel", ["+4477009001\u0662\u0663", "+447700900123\n"], ids=["arabic-indic", "newline"]
)
def test_only_ascii_e164_senders_are_accepted(fuzz_cloud: Cloud, webhook: Any, tel: str) -> None:
    status = invoke(webhook, signed_event(list(twilio_form(From="whatsapp:" + tel).items())))
    events = published(fuzz_cloud)
    assert status == 400 or all(STRICT_E164.match(e["detail"]["recipient_tel"]) for e in events)


def test_a_path_no_route_matches_is_not_a_5xx(fuzz_cloud: Cloud, webhook: Any) -> None:
    assert invoke(webhook, on_channel(webhook_event(), "\ufefd")) in REFUSED
