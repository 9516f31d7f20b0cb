"""Subscribers end to end: a handoff reaches a system that subscribed through tfvars alone.

The e2e workspaces apply terraform/workspaces/local.tfvars, whose `team` subscriber is an sqs
target without an ARN: the module creates its queue (URL in the subscriber_queue_urls output).
A conversation the AI hands off must reach it as HandoffRequested, through the real reply
processor, EventBridge rule and queue policy. Every other target type is applied on its own, with
the event_routing module the root module uses, on a scratch bus of the same emulator: moto records
API destinations, connections, roles and Lambda permissions but invokes no API destination (and
cannot deliver to SNS or Lambda at all), LocalStack calls API destinations but neither retries nor
dead-letters them, so those tests read what was created.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ai_comms.models.event_types import EVENT_TYPES
from ai_comms.models.events import HandoffRequested
from local_cloud.terraform import Terraform

from .conftest import REPO, Stack
from .patterns import matching_rules, samples, subscriber_receives, with_every_reason

pytestmark = pytest.mark.e2e

# Debounce (4 s) + one AI call + the handoff's publish, with room for a slow machine.
HANDOFF_WAIT = 40.0
# As terraform/workspaces/local.tfvars declares it.
TEAM = {"detail_types": ["HandoffRequested", "ReplyReceived"], "routes": ["handoff"]}


def subscriber_events(stack: Stack, url: str, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything that arrived in a subscriber's queue so far (nothing else reads it)."""
    sqs = stack.client("sqs")
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return seen
        for message in messages:
            seen.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_conversation_the_ai_hands_off_reaches_the_subscriber_queue(stack: Stack) -> None:
    url = stack.outputs()["subscriber_queue_urls"]["team"]
    tenant = stack.tenant()
    conversation = stack.conversation(tenant)
    seen: list[dict[str, Any]] = []

    stack.openai.script({"text": "Let me find a colleague for you.", "action": "handoff"})
    form = stack.webhook_form(tenant, conversation.recipient_tel, "I want to talk to a person")
    assert stack.post_webhook(form, tenant)[0] == 200

    def handoffs() -> list[dict[str, Any]]:
        return [
            e
            for e in subscriber_events(stack, url, seen)
            if e["detail-type"] == "HandoffRequested"
            and e["detail"]["conversation_id"] == conversation.conversation_id
        ]

    [event] = stack.wait_for(handoffs, HANDOFF_WAIT)
    assert event["source"] == "ai-comms.reply-processor"
    # What the subscriber gets is the model's own shape, nothing more.
    detail = HandoffRequested.model_validate(event["detail"])
    assert (detail.route, detail.reason, detail.channel) == ("handoff", "ai_action", "whatsapp")
    assert (detail.company_id, detail.project_id) == (tenant.company_id, tenant.project_id)
    assert detail.handoff_id == f"{conversation.conversation_id}#{detail.upto_seq}"

    # The customer writes again while a person has the conversation: the team hears that too.
    form = stack.webhook_form(tenant, conversation.recipient_tel, "Hello? Anyone there?")
    assert stack.post_webhook(form, tenant)[0] == 200

    def followed_up() -> list[dict[str, Any]]:
        return [
            e
            for e in subscriber_events(stack, url, seen)
            if e["detail-type"] == "ReplyReceived" and e["detail"]["message_sid"] == form["MessageSid"]
        ]

    [reply] = stack.wait_for(followed_up, HANDOFF_WAIT)
    assert reply["detail"]["route"] == "handoff"
    # The engine's own routing is untouched: the handoff queue has its copy as before.
    stack.wait_for(lambda: stack.routed("handoff", form["MessageSid"]), HANDOFF_WAIT)
    mine = [e for e in seen if e["detail"].get("conversation_id") == conversation.conversation_id]
    assert len(mine) == 2, "one delivery of each event, no duplicate"


def test_the_subscriber_rule_matches_exactly_the_events_it_declares(stack: Stack) -> None:
    outputs = stack.outputs()
    rule = f"{outputs['name']}-team-subscriber"
    assert set(outputs["subscriber_rules"]) == {rule}
    assert rule not in outputs["rules"], "subscribers' rules are not the engine's routing"
    details = with_every_reason(samples(EVENT_TYPES, sorted(outputs["webhook_urls"])))

    account = stack.client("sts").get_caller_identity()["Account"]
    matched = matching_rules(
        stack.client("events"),
        stack.client("sqs"),
        stack.cloud.region,
        account,
        outputs["subscriber_rules"],
        details,
    )

    for detail, found in zip(details, matched, strict=True):
        assert (rule in found) == subscriber_receives(TEAM, detail), (type(detail).__name__, detail.route)


def test_the_created_queue_admits_only_its_rule_and_is_dead_lettered_and_alarmed(stack: Stack) -> None:
    outputs = stack.outputs()
    sqs, events, cloudwatch = stack.client("sqs"), stack.client("events"), stack.client("cloudwatch")
    rule_arn = outputs["subscriber_rule_arns"]["team"]
    url = outputs["subscriber_queue_urls"]["team"]
    assert outputs["queues"]["team-subscriber"] == url

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [rule_arn]}}
    dlq_arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    dlq_name = dlq_arn.rsplit(":", 1)[-1]
    assert dlq_name in outputs["dlqs"]

    # The rule's target retries like every target and dead-letters to the events DLQ, which admits it.
    [target] = events.list_targets_by_rule(
        Rule=rule_arn.rsplit("/", 1)[-1], EventBusName=outputs["event_bus_name"]
    )["Targets"]
    assert target["Arn"] == attributes["QueueArn"] == outputs["subscriber_target_arns"]["team"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600}
    events_dlq = outputs["queues"]["events-dlq"]
    assert target["DeadLetterConfig"]["Arn"] == stack.queue_arn("events-dlq")
    policy = sqs.get_queue_attributes(QueueUrl=events_dlq, AttributeNames=["Policy"])["Attributes"]["Policy"]
    assert rule_arn in json.loads(policy)["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"]

    [alarm] = cloudwatch.describe_alarms(AlarmNames=[f"{dlq_name}-not-empty"])["MetricAlarms"]
    assert alarm["AlarmActions"] == [outputs["alerts_topic_arn"]]


def test_an_old_handoff_alarms_to_the_alerts_topic(stack: Stack) -> None:
    outputs = stack.outputs()
    name = outputs["handoff_queue_age_alarm_name"]
    [alarm] = stack.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    handoff_queue = outputs["queues"]["handoff"].rsplit("/", 1)[-1]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": handoff_queue}]
    assert (alarm["Statistic"], alarm["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert alarm["Threshold"] == 900  # handoff_queue_age_alarm_seconds' default
    assert alarm["AlarmActions"] == alarm["OKActions"] == [outputs["alerts_topic_arn"]]


# Every other target type, applied with the root module's own event_routing module.


@dataclass
class Probe:
    name: str
    outputs: dict[str, Any]
    secrets: dict[str, str]
    queue_url: str
    queue_arn: str
    dlq_arn: str
    topic_arn: str
    function_arn: str


HELPDESK_URL = "https://127.0.0.1:9/hooks/ai-comms"

PROBE_MAIN = """
terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }}
  }}
}}

provider "aws" {{
  region                      = "{region}"
  skip_credentials_validation = true
  skip_metadata_api_check     = true

  endpoints {{
    events         = "{endpoint}"
    iam            = "{endpoint}"
    lambda         = "{endpoint}"
    secretsmanager = "{endpoint}"
    sqs            = "{endpoint}"
    sts            = "{endpoint}"
  }}
}}

module "routing" {{
  source = "{module}"

  name                   = "{name}"
  archive_retention_days = 1
  dead_letter_arn        = "{dlq_arn}"
  rules                  = jsondecode(file("${{path.module}}/rules.json"))
}}

output "routing" {{
  value = module.routing
}}
"""


def probe_rules(probe: dict[str, str]) -> dict[str, Any]:
    """One rule per target type; only HandoffRequested is ever published on the probe bus, and
    only the sqs and api-key rules take it (moto cannot deliver to SNS or Lambda)."""

    def pattern(detail_type: str) -> str:
        return json.dumps({"detail-type": [detail_type]})

    return {
        "helpdesk-subscriber": {
            "event_pattern": pattern("HandoffRequested"),
            "target_type": "api_destination",
            "api_destination": {
                # The one destination a published event reaches: an address of this machine nothing
                # listens on (LocalStack calls API destinations; no test reaches off the machine).
                "url": HELPDESK_URL,
                "connection": {
                    "auth": "api_key",
                    "api_key_name": "X-Api-Key",
                    "api_key_secret_id": probe["api_key_secret"],
                },
            },
            "max_retries": 20,
            "max_age_seconds": 7200,
        },
        "crm-subscriber": {
            "event_pattern": pattern("ProbeBasic"),
            "target_type": "api_destination",
            "api_destination": {
                "url": "https://crm.example.com/events",
                "http_method": "PUT",
                "rate_limit_per_second": 5,
                "connection": {
                    "auth": "basic",
                    "username": "ai-comms",
                    "password_secret_id": probe["password_secret"],
                },
            },
        },
        "tickets-subscriber": {
            "event_pattern": pattern("ProbeOauth"),
            "target_type": "api_destination",
            "api_destination": {
                "url": "https://tickets.example.com/api/handoffs",
                "connection": {
                    "auth": "oauth",
                    "authorization_endpoint": "https://auth.example.com/oauth2/token",
                    "client_id": "ai-comms",
                    "client_secret_secret_id": probe["client_secret_secret"],
                    "oauth_parameters": {"grant_type": "client_credentials"},
                },
            },
        },
        "team-subscriber": {
            "event_pattern": pattern("HandoffRequested"),
            "target_type": "sqs",
            "target_arn": probe["queue_arn"],
        },
        "notices-subscriber": {
            "event_pattern": pattern("ProbeSns"),
            "target_type": "sns",
            "target_arn": probe["topic_arn"],
        },
        "crm_fn-subscriber": {
            "event_pattern": pattern("ProbeLambda"),
            "target_type": "lambda",
            "target_arn": probe["function_arn"],
        },
    }


def lambda_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def probe(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    name = "subprobe" + uuid.uuid4().hex[:6]
    sqs, sns, iam, lam, secrets = (stack.client(s) for s in ("sqs", "sns", "iam", "lambda", "secretsmanager"))
    values = {"api_key": "hd-" + uuid.uuid4().hex, "password": "pw-" + uuid.uuid4().hex}
    values["client_secret"] = "cs-" + uuid.uuid4().hex
    secret_arns = {
        field: secrets.create_secret(Name=f"{name}/{field}", SecretString=json.dumps({field: value}))["ARN"]
        for field, value in values.items()
    }
    queue_url = sqs.create_queue(QueueName=f"{name}-team")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for url in (queue_url, dlq_url)
    }
    topic_arn = sns.create_topic(Name=f"{name}-notices")["TopicArn"]
    role = iam.create_role(
        RoleName=f"{name}-fn",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]
    function_arn = lam.create_function(
        FunctionName=f"{name}-crm",
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="handler.lambda_handler",
        Code={"ZipFile": lambda_zip()},
    )["FunctionArn"]

    folder = tmp_path_factory.mktemp("subscriber-probe")
    (folder / "main.tf").write_text(
        PROBE_MAIN.format(
            region=stack.cloud.region,
            endpoint=stack.cloud.endpoint_url,
            module=REPO / "terraform" / "modules" / "event_routing",
            name=name,
            dlq_arn=arn[dlq_url],
        )
    )
    rules = probe_rules(
        {
            "api_key_secret": secret_arns["api_key"],
            "password_secret": f"{name}/password",  # a name works as well as an ARN
            "client_secret_secret": secret_arns["client_secret"],
            "queue_arn": arn[queue_url],
            "topic_arn": topic_arn,
            "function_arn": function_arn,
        }
    )
    (folder / "rules.json").write_text(json.dumps(rules))
    terraform = Terraform(Path(folder))
    initialised = False
    try:
        terraform.run(["init", "-input=false"], capture=True)
        initialised = True
        terraform.run(["apply", "-auto-approve", "-input=false"], capture=True)
        outputs = json.loads(terraform.run(["output", "-json"], capture=True))["routing"]["value"]
        yield Probe(
            name=name,
            outputs=outputs,
            secrets=values,
            queue_url=queue_url,
            queue_arn=arn[queue_url],
            dlq_arn=arn[dlq_url],
            topic_arn=topic_arn,
            function_arn=function_arn,
        )
    finally:
        if initialised:
            terraform.run(["destroy", "-auto-approve", "-input=false"], capture=True)
        lam.delete_function(FunctionName=f"{name}-crm")
        iam.delete_role(RoleName=f"{name}-fn")
        sns.delete_topic(TopicArn=topic_arn)
        for url in (queue_url, dlq_url):
            sqs.delete_queue(QueueUrl=url)
        for secret_arn in secret_arns.values():
            secrets.delete_secret(SecretId=secret_arn, ForceDeleteWithoutRecovery=True)


def targets(stack: Stack, probe: Probe) -> dict[str, dict[str, Any]]:
    events = stack.client("events")
    return {
        key: events.list_targets_by_rule(Rule=f"{probe.name}-{key}", EventBusName=probe.name)["Targets"][0]
        for key in probe.outputs["rule_arns"]
    }


def test_api_destinations_are_created_with_their_connections_auth(stack: Stack, probe: Probe) -> None:
    events, secrets = stack.client("events"), stack.client("secretsmanager")
    connections = probe.outputs["connection_arns"]
    assert set(connections) == set(probe.outputs["api_destination_arns"])
    assert set(connections) == {"helpdesk-subscriber", "crm-subscriber", "tickets-subscriber"}

    def connection(key: str, credential: str) -> dict[str, Any]:
        described: dict[str, Any] = events.describe_connection(Name=f"{probe.name}-{key}")
        assert described["ConnectionArn"] == connections[key]
        # EventBridge keeps the credential in a secret of its own (DescribeConnection never shows
        # it): the value there is the one read from the secret the rule names.
        stored = secrets.get_secret_value(SecretId=described["SecretArn"])["SecretString"]
        assert probe.secrets[credential] in stored, key
        return described

    helpdesk = connection("helpdesk-subscriber", "api_key")
    assert helpdesk["AuthorizationType"] == "API_KEY"
    assert helpdesk["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"] == "X-Api-Key"

    crm = connection("crm-subscriber", "password")
    assert crm["AuthorizationType"] == "BASIC"
    assert crm["AuthParameters"]["BasicAuthParameters"]["Username"] == "ai-comms"

    tickets = connection("tickets-subscriber", "client_secret")
    assert tickets["AuthorizationType"] == "OAUTH_CLIENT_CREDENTIALS"
    oauth = tickets["AuthParameters"]["OAuthParameters"]
    assert oauth["AuthorizationEndpoint"] == "https://auth.example.com/oauth2/token"
    assert oauth["HttpMethod"] == "POST"
    assert oauth["ClientParameters"]["ClientID"] == "ai-comms"
    [body] = oauth["OAuthHttpParameters"]["BodyParameters"]
    assert (body["Key"], body["Value"], body.get("IsValueSecret", False)) == (
        "grant_type",
        "client_credentials",
        False,
    )

    destination = events.describe_api_destination(Name=f"{probe.name}-crm-subscriber")
    assert destination["ApiDestinationArn"] == probe.outputs["api_destination_arns"]["crm-subscriber"]
    assert destination["ConnectionArn"] == connections["crm-subscriber"]
    assert destination["InvocationEndpoint"] == "https://crm.example.com/events"
    assert destination["HttpMethod"] == "PUT"
    assert int(destination["InvocationRateLimitPerSecond"]) == 5


def test_each_target_points_at_its_resource_retries_and_dead_letters(stack: Stack, probe: Probe) -> None:
    found = targets(stack, probe)
    destinations = probe.outputs["api_destination_arns"]
    roles = probe.outputs["api_destination_role_arns"]
    expected = {
        "helpdesk-subscriber": destinations["helpdesk-subscriber"],
        "crm-subscriber": destinations["crm-subscriber"],
        "tickets-subscriber": destinations["tickets-subscriber"],
        "team-subscriber": probe.queue_arn,
        "notices-subscriber": probe.topic_arn,
        "crm_fn-subscriber": probe.function_arn,
    }
    assert {key: target["Arn"] for key, target in found.items()} == expected
    assert probe.outputs["target_arns"] == expected
    for key, target in found.items():
        assert target["DeadLetterConfig"] == {"Arn": probe.dlq_arn}, key
        assert target.get("RoleArn") == roles.get(key), key
    assert found["helpdesk-subscriber"]["RetryPolicy"] == {
        "MaximumRetryAttempts": 20,
        "MaximumEventAgeInSeconds": 7200,
    }
    assert found["team-subscriber"]["RetryPolicy"] == {
        "MaximumRetryAttempts": 10,
        "MaximumEventAgeInSeconds": 3600,
    }


def test_the_invocation_role_may_invoke_only_its_destination_for_only_its_rule(
    stack: Stack, probe: Probe
) -> None:
    iam = stack.client("iam")
    for key, role_arn in probe.outputs["api_destination_role_arns"].items():
        name = role_arn.rsplit("/", 1)[-1]
        trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        [statement] = trust["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": probe.outputs["rule_arns"][key]}
        [policy_name] = iam.list_role_policies(RoleName=name)["PolicyNames"]
        document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        assert document["Statement"] == [
            {
                "Sid": "InvokeOwnDestination",
                "Effect": "Allow",
                "Action": "events:InvokeApiDestination",
                "Resource": probe.outputs["api_destination_arns"][key],
            }
        ]


def test_a_lambda_target_admits_exactly_its_rule(stack: Stack, probe: Probe) -> None:
    policy = json.loads(stack.client("lambda").get_policy(FunctionName=probe.function_arn)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    source = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
    assert source == probe.outputs["rule_arns"]["crm_fn-subscriber"]


def test_a_published_handoff_reaches_the_queue_and_is_recorded_for_the_destination(
    stack: Stack, probe: Probe
) -> None:
    detail = samples((HandoffRequested,), ["whatsapp"])[0]
    answer = stack.client("events").put_events(
        Entries=[
            {
                "Source": detail.SOURCE,
                "DetailType": detail.DETAIL_TYPE,
                "Detail": detail.model_dump_json(warnings=False),
                "EventBusName": probe.name,
            }
        ]
    )
    # The API destination rule matched too: moto records it and calls nothing, LocalStack calls it
    # after answering (and only logs the refused connection), so no failure either way.
    assert answer["FailedEntryCount"] == 0, answer
    found = stack.wait_for(lambda: subscriber_events(stack, probe.queue_url, []), 10)
    assert [e["detail-type"] for e in found] == ["HandoffRequested"]
