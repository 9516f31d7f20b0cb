"""Generated POST /initiate-conversation requests against the handler in a mocked account.

Properties: never a 5xx; a refused request publishes nothing and claims nothing; an invalid body is a
400 whose errors name fields; a 202 means the tenant, channel and key were right and the request
was published exactly once (or had been before, under the same request_id).
"""

import base64
import json
from typing import Any

import hypothesis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ai_comms.models.outbound import InitiateRequest

from .conftest import TABLES, Cloud
from .fuzz_support import FUZZ, STRICT_E164, catch_all, published
from .outbound_support import (
    CLIENT_KEY_ID,
    OTHER_KEY_ID,
    Outbound,
    call_initiate,
    initiate,
    initiate_event,
    outbound,
    outbound_project,
    put_project,
    request_body,
)

__all__ = ["initiate", "outbound"]

ANSWERS = {202, 400, 403, 404, 409, 413}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither (Python accepts both)
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\r\n\x00%&=+\u202e\ufeff🙂"), max_size=10),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


MISSING = "<missing>"
valid_requests = st.fixed_dictionaries(
    {
        "company_id": st.just("acme"),
        "project_id": st.just("support"),
        "channel_method": st.just("whatsapp"),
        "request_id": st.from_regex(r"\A[A-Za-z0-9._:-]{1,128}\Z"),
        "recipient": st.fixed_dictionaries(
            {
                "tel": st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"),
                "first_name": st.text(min_size=1, max_size=100),
            },
            optional={"last_name": st.text(max_size=100), "language": st.sampled_from(["en", "pt-BR"])},
        ),
        "project_data": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    }
)
# Wrong values aimed at each field, on top of any JSON value (wrong types and shapes).
wrong_values = {
    "company_id": st.sampled_from(["ACME", "acme ", "other", "a" * 64, "", "acme\n"]),
    "project_id": st.sampled_from(["support\x00", "x", "../support"]),
    "channel_method": st.sampled_from(["sms", "WHATSAPP", "whatsapp\n", "telegram"]),
    "request_id": st.text(min_size=120, max_size=140),
    "recipient": st.fixed_dictionaries(
        {"tel": st.one_of(st.from_regex(r"\A\+[0-9]{1,16}\Z"), json_values), "first_name": json_values},
        optional={"email": json_values, "language": json_values, "extra": json_values},
    ),
    "project_data": st.dictionaries(st.text(max_size=5), st.text(min_size=3000, max_size=3000), max_size=4),
    "unexpected": json_values,
}
corruptions = st.dictionaries(
    st.sampled_from(sorted(wrong_values)),
    st.one_of(st.just(MISSING), json_values, st.nothing()),
    max_size=2,
).flatmap(
    lambda chosen: st.fixed_dictionaries(
        {name: st.one_of(st.just(value), wrong_values[name]) for name, value in chosen.items()}
    )
)


def corrupt(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = {**body, **changes}
    return {k: v for k, v in out.items() if v != MISSING}


requests = st.builds(corrupt, valid_requests, corruptions)
raw_bodies = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=200),
    json_values.map(json.dumps),  # JSON that is not an object
    st.integers(16_300, 40_000).map(lambda n: json.dumps({**request_body(), "pad": "x" * n})),
)


@pytest.fixture
def fuzz_outbound(cloud: Cloud, outbound: Outbound, initiate: Any) -> Cloud:
    # The project names one client, so any other key, or none, is one more way to be refused.
    put_project(cloud, outbound_project())
    catch_all(cloud)
    return cloud


def claims(cloud: Cloud) -> int:
    return len(cloud.dynamodb.scan(TableName=TABLES["idempotency"]).get("Items", []))


@FUZZ
@given(raw=raw_bodies, is_base64=st.booleans())
@example(raw="not base64!", is_base64=True)
@example(raw=base64.b64encode(b"\xff\xfe{}").decode(), is_base64=True)
def test_malformed_bodies_are_refused_without_effects(
    fuzz_outbound: Cloud, initiate: Any, raw: str | None, is_base64: bool
) -> None:
    event = initiate_event(None, raw="")
    event["body"], event["isBase64Encoded"] = raw, is_base64
    before = claims(fuzz_outbound)

    status, answer = call_initiate(initiate, event)

    assert status in {400, 413}, answer
    assert published(fuzz_outbound) == [] and claims(fuzz_outbound) == before


@FUZZ
@given(
    body=requests,
    key=st.one_of(st.just(CLIENT_KEY_ID), st.none(), st.text(max_size=30), st.just(OTHER_KEY_ID)),
    as_base64=st.booleans(),
)
@example(body=request_body(request_id="fuzz-valid"), key=CLIENT_KEY_ID, as_base64=False)
def test_generated_requests_publish_only_when_valid_and_authorised(
    fuzz_outbound: Cloud, initiate: Any, body: dict[str, Any], key: str | None, as_base64: bool
) -> None:
    text = json.dumps(body)
    event = initiate_event(
        body, api_key_id=key, raw=base64.b64encode(text.encode()).decode() if as_base64 else text
    )
    event["isBase64Encoded"] = as_base64
    before = claims(fuzz_outbound)

    status, answer = call_initiate(initiate, event)

    events = published(fuzz_outbound)
    hypothesis.event(f"status {status}")
    assert status in ANSWERS, answer
    try:
        request = InitiateRequest.model_validate(body)
    except ValueError:
        request = None
    if request is None:
        assert status == 400
        assert answer["errors"] and all(set(e) == {"field", "message"} for e in answer["errors"])
    if status != 202:
        assert events == [] and claims(fuzz_outbound) == before
        return
    assert request is not None and key == CLIENT_KEY_ID
    assert (request.company_id, request.project_id, request.channel_method) == ("acme", "support", "whatsapp")
    assert len(events) <= 1  # 0 when this request_id and payload were accepted before
    for published_event in events:
        detail = published_event["detail"]
        assert detail["conversation_id"] == answer["conversation_id"]
        assert detail["recipient"]["tel"] == request.recipient.tel
        assert detail["project_data"] == request.project_data


@pytest.mark.parametrize(
    "tel", ["+4477009001\u0662\u0663", "+447700900123\n"], ids=["arabic-indic", "newline"]
)
def test_only_ascii_e164_recipients_are_accepted(fuzz_outbound: Cloud, initiate: Any, tel: str) -> None:
    body = request_body(request_id="tel-" + str(len(tel)), recipient={"tel": tel, "first_name": "Ada"})
    status, _ = call_initiate(initiate, initiate_event(body))
    events = published(fuzz_outbound)
    assert status == 400 or all(STRICT_E164.match(e["detail"]["recipient"]["tel"]) for e in events)
