"""The security suite's checks catch what they look for: planted leaks and planted wildcards.

The e2e security tests pass when they find nothing; these prove that "nothing" is meaningful.
"""

import json

from hypothesis import assume, given
from hypothesis import strategies as st

from ai_comms.masking import mask_address, mask_body

from ..e2e.audits import find_leaks, identity_policy_findings, policy_document, resource_policy_findings
from .fuzz_support import FUZZ

phones = st.from_regex(r"\A\+[1-9][0-9]{7,14}\Z")
secrets = st.text(alphabet="abcdef0123456789", min_size=16, max_size=40)
bodies = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=13, max_size=200)
prefixes = st.sampled_from(["", "whatsapp:", '"from": "', "tel=", "x"])
log_noise = st.text(alphabet="abc {}:,\"'", max_size=40)


def line(text: str) -> list[tuple[str, int, str]]:
    return [("fn.log", 1, text)]


@FUZZ
@given(tel=phones, prefix=prefixes, before=log_noise, after=log_noise)
def test_a_planted_phone_number_is_found_and_its_masked_form_is_not(
    tel: str, prefix: str, before: str, after: str
) -> None:
    planted = find_leaks(line(before + prefix + tel + after), [], [])
    assert [leak.kind for leak in planted] == ["phone number"]
    assert tel not in str(planted[0])  # the report does not repeat the leak
    masked = json.dumps({"level": "INFO", "from": mask_address("whatsapp:" + tel), "note": before + after})
    assert find_leaks(line(masked), [], []) == []


@FUZZ
@given(secret=secrets, body=bodies, before=log_noise)
def test_planted_secrets_and_bodies_are_found(secret: str, body: str, before: str) -> None:
    assume(body not in before and secret not in before)
    lines = [
        ("a.log", 1, before + secret),
        ("b.log", 7, json.dumps({"text": before}) + body),
        ("c.log", 2, before),
    ]
    leaks = find_leaks(lines, [secret], [body])
    assert {(leak.source, leak.line_number, leak.kind) for leak in leaks} >= {
        ("a.log", 1, "secret value"),
        ("b.log", 7, "message body"),
    }
    assert secret not in "\n".join(map(str, leaks)) and body not in "\n".join(map(str, leaks))
    assert find_leaks([("c.log", 1, mask_body(body) + " " + before)], [secret], [body]) == []


def test_short_bodies_and_timestamps_are_not_leaks() -> None:
    text = '{"timestamp":"2026-01-01 10:00:00,123+0000","reason":"Hi","id":"+1234567"}'
    assert find_leaks(line(text), ["short"], ["Hi", "yes please"]) == []


def document(*statements: dict[str, object]) -> dict[str, object]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_wildcard_actions_and_resources_are_reported() -> None:
    planted = [
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:sqs:eu-west-1:1:q"},
        {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:aws:dynamodb:eu-west-1:1:table/t"},
        {"Effect": "Allow", "Action": ["s3:Get*"], "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"},
        {"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "arn:aws:sqs:eu-west-1:1:q"},
    ]
    for statement in planted:
        assert identity_policy_findings("role", document(statement)), statement


def test_documented_requirements_and_denies_pass() -> None:
    fine = document(
        {"Effect": "Allow", "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:eu-west-1:1:log-group:g:*"],
        },
        {"Effect": "Deny", "Action": "*", "Resource": "*"},
    )
    assert identity_policy_findings("role", fine) == []


def test_open_principals_need_a_condition_and_kms_star_is_for_the_root_only() -> None:
    root = "arn:aws:iam::123456789012:root"
    key_policy = document(
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}},
        },
    )
    assert resource_policy_findings("key", key_policy, root) == []
    open_queue = document({"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "q"})
    assert resource_policy_findings("queue", open_queue) != []
    open_topic = document(
        {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "sns:Publish", "Resource": "t"}
    )
    assert resource_policy_findings("topic", open_topic) != []
    conditioned = {
        **open_queue,
        "Statement": [{**open_queue["Statement"][0], "Condition": {"ArnEquals": {}}}],
    }  # type: ignore[index]
    assert resource_policy_findings("queue", conditioned) == []
    other_admin = document(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/x"}, "Action": "kms:*"}
    )
    assert resource_policy_findings("key", other_admin, root) != []


def test_policy_documents_are_read_in_every_shape_iam_answers() -> None:
    raw = document({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "q"})
    text = json.dumps(raw)
    from urllib.parse import quote

    assert policy_document(raw) == policy_document(text) == policy_document(quote(text)) == raw
