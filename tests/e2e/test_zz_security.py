"""Security checks on what the real module created and what the session's functions logged.

Named to run last in the e2e session, so the log check sees every line the other tests produced.
  - IAM: every role of the workspaces, inline and attached policies: no wildcard action and no
    "*" resource unless AWS requires it (tests/e2e/audits.py lists those, each with its reason);
    and each function's grants are exactly terraform/least_privilege.yaml's;
  - resource policies (KMS keys, SNS topics, SQS queues, Lambda functions): no open principal
    without a condition, no wildcard action except the account root's on its own keys;
  - logs: no full phone number, no secret value of the workspaces' tenants, no message body
    stored in the conversations tables appears in any function's output.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_comms.store.dynamo import from_item

from .audits import (
    find_leaks,
    identity_policy_findings,
    policy_document,
    resource_policy_findings,
    strings_in,
)
from .conftest import MAIN, REPO, SIDE, Stack

pytestmark = pytest.mark.e2e

WORKSPACES = (MAIN, SIDE)
# Secret fields that identify an account rather than grant access to it.
NOT_SECRET_FIELDS = {"account_sid"}


def prefixes(stack: Stack) -> list[str]:
    return [f"{stack.outputs(ws)['name']}-" for ws in WORKSPACES]


def workspace_roles(stack: Stack) -> list[dict[str, Any]]:
    iam = stack.client("iam")
    roles = [r for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]]
    return [r for r in roles if any(r["RoleName"].startswith(p) for p in prefixes(stack))]


def test_iam_roles_grant_no_wildcards_aws_does_not_require(stack: Stack) -> None:
    iam = stack.client("iam")
    roles = workspace_roles(stack)
    functions = [name for ws in WORKSPACES for name in stack.outputs(ws)["functions"].values()]
    assert sorted(functions) == sorted(r["RoleName"] for r in roles), "one role per function, no other"
    findings: list[str] = []
    for role in roles:
        name = role["RoleName"]
        trust = policy_document(role["AssumeRolePolicyDocument"])
        findings += resource_policy_findings(f"{name} trust policy", trust)
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = policy_document(
                iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            )
            findings += identity_policy_findings(f"{name}/{policy_name}", document)
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
            findings += identity_policy_findings(
                f"{name}/{attached['PolicyName']}", policy_document(version["PolicyVersion"]["Document"])
            )
    assert findings == []


def test_resource_policies_admit_no_one_unconditionally(stack: Stack) -> None:
    account_root = f"arn:aws:iam::{stack.client('sts').get_caller_identity()['Account']}:root"
    kms, sns, sqs, lam = (stack.client(s) for s in ("kms", "sns", "sqs", "lambda"))
    findings: list[str] = []
    checked = 0
    for key in kms.list_keys()["Keys"]:
        if kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"].get("KeyManager") == "AWS":
            continue
        document = policy_document(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
        findings += resource_policy_findings(f"kms key {key['KeyId']}", document, account_root)
        checked += 1
    for topic in sns.list_topics()["Topics"]:
        policy = sns.get_topic_attributes(TopicArn=topic["TopicArn"])["Attributes"].get("Policy")
        if policy:
            findings += resource_policy_findings(topic["TopicArn"], policy_document(policy))
            checked += 1
    for prefix in prefixes(stack):
        for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get(
                "Attributes", {}
            )
            if "Policy" in attributes:
                findings += resource_policy_findings(url, policy_document(attributes["Policy"]))
                checked += 1
    for ws in WORKSPACES:
        for function in stack.outputs(ws)["functions"].values():
            try:
                policy = lam.get_policy(FunctionName=function)["Policy"]
            except lam.exceptions.ResourceNotFoundException:
                continue
            findings += resource_policy_findings(function, policy_document(policy))
            checked += 1
    assert checked > 0
    assert findings == []


def function_log_lines(stack: Stack) -> list[tuple[str, int, str]]:
    """Every line the functions wrote (the emulator's own log is not function output)."""
    log_dir = Path(stack.runner.log_dir or stack.cloud.work_dir / "logs")  # the runner writes them
    lines: list[tuple[str, int, str]] = []
    for path in sorted(log_dir.glob("*.log")):
        if path.name == "emulator.log":
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            lines += [(path.name, number, text) for number, text in enumerate(handle, start=1)]
    return lines


def tenant_secret_values(stack: Stack) -> set[str]:
    secrets = stack.client("secretsmanager")
    values: set[str] = set()
    for ws in WORKSPACES:
        prefix = str(stack.outputs(ws)["tenant_secret_prefix"])
        listed = [
            s
            for page in secrets.get_paginator("list_secrets").paginate()
            for s in page["SecretList"]
            if s["Name"].startswith(prefix)
        ]
        for secret in listed:
            payload = json.loads(secrets.get_secret_value(SecretId=secret["ARN"])["SecretString"])
            if not isinstance(payload, dict):
                values |= set(strings_in(payload))
                continue
            values |= {s for k, v in payload.items() if k not in NOT_SECRET_FIELDS for s in strings_in(v)}
    return values


def message_bodies(stack: Stack) -> set[str]:
    """Every message body stored: one item each in the messages table, and any old-layout
    conversation's own list (a migration's source)."""
    dynamodb = stack.client("dynamodb")
    bodies: set[str] = set()
    for ws in WORKSPACES:
        tables = stack.outputs(ws)["tables"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=tables["messages"]):
            bodies |= {str(from_item(item).get("body") or "") for item in page["Items"]}
        for page in dynamodb.get_paginator("scan").paginate(TableName=tables["conversations"]):
            for item in page["Items"]:
                bodies |= {str(m.get("body") or "") for m in from_item(item).get("messages", [])}
    return bodies


def test_function_logs_carry_no_phone_number_secret_or_message_body(stack: Stack) -> None:
    lines = function_log_lines(stack)
    secrets = tenant_secret_values(stack)
    bodies = message_bodies(stack)
    assert lines, "the functions wrote no log line: the check would prove nothing"
    assert secrets, "no tenant secret found on the emulator"
    assert len(bodies) > 100, "hardly any message body stored: the check would prove little"

    leaks = find_leaks(lines, secrets, bodies)

    assert leaks == [], "\n".join(str(leak) for leak in leaks[:50])


def test_every_dlq_and_every_function_alarms_to_the_alerts_topic(stack: Stack) -> None:
    cloudwatch = stack.client("cloudwatch")
    alarms = [
        a for page in cloudwatch.get_paginator("describe_alarms").paginate() for a in page["MetricAlarms"]
    ]
    for ws in WORKSPACES:
        outputs = stack.outputs(ws)
        topic = outputs["alerts_topic_arn"]
        notifying = [a for a in alarms if topic in a.get("AlarmActions", [])]
        watched_queues = {
            d["Value"] for a in notifying for d in a.get("Dimensions", []) if d["Name"] == "QueueName"
        }
        assert set(outputs["dlqs"]) <= watched_queues, set(outputs["dlqs"]) - watched_queues
        rate_alarms = {a["AlarmName"] for a in notifying if a.get("Metrics")}
        assert {f"{name}-error-rate" for name in outputs["functions"].values()} <= rate_alarms
        dashboard = json.loads(cloudwatch.get_dashboard(DashboardName=outputs["name"])["DashboardBody"])
        assert dashboard["widgets"]


LEAST_PRIVILEGE = REPO / "terraform" / "least_privilege.yaml"


def granted(stack: Stack, role: str) -> set[tuple[str, str]]:
    """Every (action, resource) the role's policies allow (X-Ray's unscoped writes aside: they
    follow lambda_tracing_mode and are checked by the wildcard test)."""
    iam = stack.client("iam")
    documents = [
        policy_document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    ]
    pairs: set[tuple[str, str]] = set()
    for document in documents:
        for statement in document.get("Statement", []):
            if statement.get("Effect", "Allow") != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            pairs |= {(a, r) for a in actions for r in resources if not a.startswith("xray:")}
    return pairs


class Resolver:
    """The table's resource names as the ARNs of one workspace."""

    def __init__(self, stack: Stack, workspace: str) -> None:
        self.stack = stack
        self.outputs = stack.outputs(workspace)
        identity = stack.client("sts").get_caller_identity()
        self.account = identity["Account"]
        self.partition = identity["Arn"].split(":")[1]
        self.region = stack.cloud.region

    def table(self, key: str) -> dict[str, Any]:
        described: dict[str, Any] = self.stack.client("dynamodb").describe_table(
            TableName=self.outputs["tables"][key]
        )["Table"]
        return described

    def queues(self, pattern: str) -> list[str]:
        prefix = self.outputs["name"] + "-"
        urls = {
            **self.outputs["queues"],
            **{name.removeprefix(prefix): url for name, url in self.outputs["dlqs"].items()},
        }
        sqs = self.stack.client("sqs")
        found = [
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for key, url in sorted(urls.items())
            if fnmatch.fnmatch(key, pattern)
        ]
        assert found, f"no queue matches {pattern}"
        return found

    def resolve(self, name: str, function: str) -> list[str]:
        kind, _, key = name.partition(":")
        if kind == "table":
            return [str(self.table(key)["TableArn"])]
        if kind == "index":
            table, _, index = key.partition("/")
            return [f"{self.table(table)['TableArn']}/index/{index or '*'}"]
        if kind == "stream":
            return [str(self.table(key)["LatestStreamArn"])]
        if kind == "queue":
            return self.queues(key)
        if kind == "bus":
            return [str(self.outputs["event_bus_arn"])]
        if kind == "topic" and key == "handoff_notices":
            return [str(self.outputs["handoff_notices_topic_arn"])]
        if kind == "secrets":
            prefix = self.outputs["tenant_secret_prefix"]
            return [
                f"arn:{self.partition}:secretsmanager:{self.region}:{self.account}:secret:{prefix}*/{key}-??????"
            ]
        if kind == "log_group":
            return [
                f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws/lambda/{function}:*"
            ]
        raise AssertionError(f"unknown resource name {name!r} in {LEAST_PRIVILEGE.name}")


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_every_role_grants_exactly_what_the_least_privilege_table_lists(stack: Stack, workspace: str) -> None:
    table = yaml.safe_load(LEAST_PRIVILEGE.read_text())
    functions = stack.outputs(workspace)["functions"]
    assert sorted(table) == sorted(functions), "the table lists every function, and only those"
    resolver = Resolver(stack, workspace)
    for short, function in functions.items():
        expected = {
            (action, arn)
            for row in table[short]
            for action in row["actions"]
            for name in row["resources"]
            for arn in resolver.resolve(name, function)
        }
        actual = granted(stack, function)
        unlisted, missing = sorted(actual - expected), sorted(expected - actual)
        assert actual == expected, f"{short}: granted, not listed {unlisted}; listed, not granted {missing}"


def test_the_webhook_never_writes_tenant_configuration_nor_reads_openai_keys(stack: Stack) -> None:
    resolver = Resolver(stack, MAIN)
    function = stack.outputs()["functions"]["twilio_webhook"]
    company_data = resolver.resolve("table:company_data", function)[0]
    grants = granted(stack, function)
    assert {action for action, resource in grants if resource == company_data} == {"dynamodb:GetItem"}
    assert not [r for _, r in grants if "/openai" in r]
    assert not [a for a, _ in grants if a.startswith(("sns:", "events:"))]
