"""Subscribers (var.subscribers): the rules Terraform builds match exactly the events they declare.

Terraform itself evaluates the root module for a sample subscribers map (`terraform console`: no
provider calls, no credentials, a few seconds), so the patterns checked are the ones the rules get;
moto's EventBridge matcher (the one that routes events in the local cloud) decides which of the
events the code emits each pattern matches. The validation's lists of detail types, routes and
reasons are held to the pydantic models, and each validation is shown to refuse what it names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from ai_comms.models.event_types import EVENT_TYPES
from ai_comms.models.events import HandoffReason, HandoffRequested

from ..e2e.patterns import envelope, samples, subscriber_receives, with_every_reason

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
REGION = "eu-west-1"
CHANNELS = {
    "whatsapp": {"debounce_seconds": 1, "address_prefix": "whatsapp:"},
    "sms": {"debounce_seconds": 1, "address_prefix": ""},
}
ACCOUNT = "111122223333"
ACCOUNT_ARN = "arn:aws:{service}:eu-west-1:" + ACCOUNT + ":{resource}"

SAMPLE: dict[str, Any] = {
    "helpdesk": {
        "detail_types": ["HandoffRequested"],
        "routes": ["handoff"],
        "channels": None,
        "reasons": ["ai_action", "ai_unanswerable"],
        "target": {
            "type": "api_destination",
            "url": "https://helpdesk.example.com/hooks/ai-comms",
            "http_method": "POST",
            "connection": {
                "auth": "api_key",
                "api_key_name": "X-Api-Key",
                "api_key_secret_id": "helpdesk/ai-comms",
            },
        },
        "max_retries": 20,
        "max_age_seconds": 7200,
    },
    "team_queue": {
        "detail_types": ["HandoffRequested", "ReplyReceived"],
        "routes": ["handoff"],
        "target": {"type": "sqs"},
    },
    "sms_trouble": {
        "detail_types": ["DeliveryFailed", "ReplyWindowClosed"],
        "channels": ["sms"],
        "target": {
            "type": "sns",
            "arn": ACCOUNT_ARN.format(service="sns", resource="sms-trouble"),
            "manage_policy": True,
        },
    },
    "everything": {
        "detail_types": [t.DETAIL_TYPE for t in EVENT_TYPES],
        "target": {
            "type": "lambda",
            "arn": ACCOUNT_ARN.format(service="lambda", resource="function:crm-sync"),
        },
    },
    "fifo": {
        "detail_types": ["ConversationRequested"],
        "routes": ["outbound"],
        "channels": ["whatsapp"],
        "target": {
            "type": "sqs",
            "arn": ACCOUNT_ARN.format(service="sqs", resource="outbound-audit.fifo"),
            "message_group_id": "outbound",
        },
    },
    "crm": {
        "detail_types": ["HandoffRequested"],
        "target": {
            "type": "api_destination",
            "url": "https://crm.example.com/events",
            "http_method": "PUT",
            "rate_limit_per_second": 5,
            "connection": {"auth": "basic", "username": "ai-comms", "password_secret_id": "crm/password"},
        },
    },
    "tickets": {
        "detail_types": ["HandoffRequested"],
        "reasons": ["reply_undelivered"],
        "target": {
            "type": "api_destination",
            "url": "https://tickets.example.com/api/handoffs",
            "connection": {
                "auth": "oauth",
                "authorization_endpoint": "https://auth.example.com/oauth2/token",
                "client_id": "ai-comms",
                "client_secret_secret_id": "tickets/oauth-client",
                "oauth_parameters": {"grant_type": "client_credentials", "scope": "handoffs:write"},
            },
        },
    },
}


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def diagnostics(done: subprocess.CompletedProcess[str]) -> str:
    """Terraform's errors on one line, without colours (the console answers 0 even after them)."""
    return " ".join(ANSI.sub("", done.stderr).split())


def terraform_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_WORKSPACE" and not k.startswith("TF_VAR_")}
    rc = REPO / ".local" / "terraform.rc"
    if rc.is_file():
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def terraform() -> Iterator[str]:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail("terraform is not on PATH")
    # Installs the local modules the configuration names (the providers come from the lock file).
    subprocess.run(
        [binary, "init", "-input=false", "-lockfile=readonly", "-no-color"],
        cwd=TERRAFORM,
        env=terraform_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield binary


def data_source(kind: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "mode": "data",
        "type": kind,
        "name": "current",
        "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
        "instances": [{"schema_version": 0, "attributes": attributes}],
    }


# The account, partition and region as the root module's data sources would read them, so the
# console knows every rule ARN (the console reads a state and never calls AWS).
STATE = {
    "version": 4,
    "terraform_version": "1.6.0",
    "serial": 1,
    "lineage": "00000000-0000-0000-0000-000000000000",
    "outputs": {},
    "resources": [
        data_source(
            "aws_caller_identity",
            {"account_id": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/t", "id": ACCOUNT, "user_id": "t"},
        ),
        data_source(
            "aws_partition",
            {
                "dns_suffix": "amazonaws.com",
                "id": "aws",
                "partition": "aws",
                "reverse_dns_prefix": "com.amazonaws",
            },
        ),
        data_source("aws_region", {"description": "Europe (Ireland)", "id": REGION, "name": REGION}),
    ],
}
# The console runs in the default workspace.
NAME = "ai-comms-default"


def rule_arn(key: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{NAME}/{NAME}-{key}-subscriber"


def console(
    terraform: str, tmp_path: Path, subscribers: dict[str, Any] | str, expression: str
) -> subprocess.CompletedProcess[str]:
    """Evaluate one expression in the root module with these subscribers (a map, or tfvars text;
    piped, the console answers the last line only)."""
    if isinstance(subscribers, str):
        tfvars = tmp_path / "sample.tfvars"
        tfvars.write_text(subscribers)
    else:
        tfvars = tmp_path / "sample.tfvars.json"
        tfvars.write_text(json.dumps({"channels": CHANNELS, "subscribers": subscribers}))
    state = tmp_path / "sample.tfstate"
    state.write_text(json.dumps(STATE))
    return subprocess.run(
        [terraform, "console", f"-state={state}", f"-var-file={tfvars}"],
        cwd=TERRAFORM,
        env=terraform_env(),
        input=expression + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def evaluate(
    terraform: str, tmp_path: Path, subscribers: dict[str, Any] | str, expressions: dict[str, str]
) -> dict[str, Any]:
    """The values of the named expressions, through one jsonencode."""
    fields = ", ".join(f"{name} = {expression}" for name, expression in expressions.items())
    done = console(terraform, tmp_path, subscribers, f"jsonencode({{ {fields} }})")
    assert done.returncode == 0 and "Error" not in diagnostics(done), diagnostics(done)
    line = [line for line in done.stdout.splitlines() if line.strip()][-1]
    value: dict[str, Any] = json.loads(json.loads(line))
    return value


@pytest.fixture(scope="module")
def evaluated(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return evaluate(
        terraform,
        tmp_path_factory.mktemp("subscribers"),
        SAMPLE,
        {
            "patterns": "{ for key, rule in local.subscriber_event_rules : key => rule.event_pattern }",
            # target_arn is unknown until the created queue exists; everything else is known now.
            "rules": "{ for key, rule in local.subscriber_event_rules : key => "
            '{ for field, value in rule : field => value if field != "target_arn" } }',
            "rule_keys": "local.rule_keys",
            "created_queues": "keys(local.created_subscriber_queues)",
            "unknown_channels": "local.subscriber_unknown_channels",
            "rule_arns": "local.rule_arns",
            "statements": "local.subscriber_policy_statements",
            "managed": "local.managed_subscriber_policies",
        },
    )


def test_each_subscriber_rule_matches_exactly_the_events_it_declares(evaluated: dict[str, Any]) -> None:
    patterns: dict[str, str] = evaluated["patterns"]
    assert set(patterns) == {f"{key}-subscriber" for key in SAMPLE}
    details = with_every_reason(samples(EVENT_TYPES, sorted(CHANNELS)))
    for key, subscriber in SAMPLE.items():
        pattern = EventPattern.load(patterns[f"{key}-subscriber"])
        for detail in details:
            matched = pattern.matches_event(envelope(detail, REGION, ACCOUNT))
            label = (
                key,
                type(detail).__name__,
                detail.channel,
                detail.route,
                getattr(detail, "reason", None),
            )
            assert matched == subscriber_receives(subscriber, detail), label
        assert any(subscriber_receives(subscriber, d) for d in details), f"{key} would receive nothing"


def test_only_the_fields_filtered_on_appear_in_a_pattern(evaluated: dict[str, Any]) -> None:
    patterns = {key: json.loads(p) for key, p in evaluated["patterns"].items()}
    assert patterns["everything-subscriber"] == {"detail-type": [t.DETAIL_TYPE for t in EVENT_TYPES]}
    assert patterns["helpdesk-subscriber"] == {
        "detail-type": ["HandoffRequested"],
        "detail": {"route": ["handoff"], "reason": ["ai_action", "ai_unanswerable", {"exists": False}]},
    }


def test_targets_reach_the_event_routing_module_as_declared(evaluated: dict[str, Any]) -> None:
    rules = evaluated["rules"]
    assert {key: rule["target_type"] for key, rule in rules.items()} == {
        f"{key}-subscriber": s["target"]["type"] for key, s in SAMPLE.items()
    }
    helpdesk = rules["helpdesk-subscriber"]
    assert helpdesk["api_destination"]["url"] == "https://helpdesk.example.com/hooks/ai-comms"
    assert helpdesk["api_destination"]["connection"]["api_key_secret_id"] == "helpdesk/ai-comms"
    assert (helpdesk["max_retries"], helpdesk["max_age_seconds"]) == (20, 7200)
    assert rules["crm-subscriber"]["api_destination"]["http_method"] == "PUT"
    assert rules["crm-subscriber"]["api_destination"]["rate_limit_per_second"] == 5
    assert rules["tickets-subscriber"]["api_destination"]["connection"]["oauth_parameters"] == {
        "grant_type": "client_credentials",
        "scope": "handoffs:write",
    }
    assert rules["fifo-subscriber"]["message_group_id"] == "outbound"
    assert rules["team_queue-subscriber"]["api_destination"] is None
    # Unset retries fall back to the module's policy (event_target_max_retries / _max_age_seconds).
    assert rules["team_queue-subscriber"]["max_retries"] is None


def test_subscriber_rules_are_dead_lettered_and_only_queueless_sqs_subscribers_get_a_queue(
    evaluated: dict[str, Any],
) -> None:
    # local.rule_keys is what the events DLQ's policy admits and what the rule_arns check compares.
    assert {f"{key}-subscriber" for key in SAMPLE} <= set(evaluated["rule_keys"])
    assert evaluated["created_queues"] == ["team_queue"]
    assert evaluated["unknown_channels"] == []


def test_existing_queues_and_topics_admit_only_events_on_behalf_of_their_rule(
    evaluated: dict[str, Any],
) -> None:
    # Queues the module creates and functions have their policies; API destinations need none.
    def statement(key: str, action: str) -> dict[str, Any]:
        return {
            "Sid": "EventBridgeRule" + re.sub("[^a-z0-9]", "", key),
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": action,
            "Resource": SAMPLE[key]["target"]["arn"],
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn(key)}},
        }

    assert evaluated["statements"] == {
        "sms_trouble": statement("sms_trouble", "sns:Publish"),
        "fifo": statement("fifo", "sqs:SendMessage"),
    }
    # The very ARNs of the rules (the rule_arns check holds local.rule_arns to the real ones).
    assert {key: evaluated["rule_arns"][f"{key}-subscriber"] for key in SAMPLE} == {
        key: rule_arn(key) for key in SAMPLE
    }
    # Only where the subscriber asked is the whole policy Terraform's.
    [(key, managed)] = evaluated["managed"].items()
    assert (key, managed["type"], managed["arn"]) == (
        "sms_trouble",
        "sns",
        SAMPLE["sms_trouble"]["target"]["arn"],
    )
    assert json.loads(managed["document"]) == {
        "Version": "2012-10-17",
        "Statement": [statement("sms_trouble", "sns:Publish")],
    }


def test_a_channel_the_engine_lacks_is_refused(terraform: str, tmp_path: Path) -> None:
    sample = {
        "t": {"detail_types": ["ReplyReceived"], "channels": ["sms", "telegram"], "target": {"type": "sqs"}}
    }
    done = console(terraform, tmp_path, sample, "jsonencode(local.subscriber_unknown_channels)")
    errors = diagnostics(done)
    # The subscriber_rule_arns output's precondition: a plan stops there.
    assert "precondition failed" in errors
    assert "subscribers name channels the channels variable does not define: telegram." in errors


def sqs(**extra: Any) -> dict[str, Any]:
    return {"detail_types": ["HandoffRequested"], "target": {"type": "sqs"}, **extra}


def api(connection: dict[str, Any], **target: Any) -> dict[str, Any]:
    return {
        "detail_types": ["HandoffRequested"],
        "target": {
            "type": "api_destination",
            "url": "https://x.example.com/h",
            "connection": connection,
            **target,
        },
    }


INVALID = {
    "unknown detail type": ({"a": sqs(detail_types=["HandoffRequest"])}, "detail_types lists one or more of"),
    "route the type never carries": (
        {"a": sqs(detail_types=["DeliveryFailed"], routes=["handoff"])},
        "routes (null for all) lists routes the chosen detail types carry",
    ),
    "reasons without HandoffRequested": (
        {"a": sqs(detail_types=["ReplyReceived"], reasons=["ai_action"])},
        "reasons (null for all) filters HandoffRequested",
    ),
    "bad subscriber name": ({"Help Desk": sqs()}, "Subscriber names are 1-24"),
    "lambda without a function arn": (
        {"a": {"detail_types": ["HandoffRequested"], "target": {"type": "lambda", "arn": "crm-sync"}}},
        'target.type is "sqs"',
    ),
    "plain http endpoint": (
        {
            "a": api(
                {"auth": "api_key", "api_key_name": "X-Api-Key", "api_key_secret_id": "s"}, url="http://x/h"
            )
        },
        "An api_destination target needs an https:// url",
    ),
    "api key without its secret": (
        {"a": api({"auth": "api_key", "api_key_name": "X-Api-Key"})},
        'connection.auth is "api_key"',
    ),
    "fifo queue without a group": (
        {
            "a": {
                "detail_types": ["HandoffRequested"],
                "target": {"type": "sqs", "arn": "arn:aws:sqs:r:1:q.fifo"},
            }
        },
        "message_group_id is required for a FIFO queue",
    ),
    "retries beyond EventBridge's limit": ({"a": sqs(max_retries=200)}, "max_retries is 0 to 185"),
    "unknown target type": (
        {
            "a": {
                "detail_types": ["HandoffRequested"],
                "target": {"type": "kinesis", "arn": "arn:aws:kinesis:r:1:s"},
            }
        },
        'target.type is "sqs"',
    ),
    "manage_policy of a queue the module creates": (
        {"a": {"detail_types": ["HandoffRequested"], "target": {"type": "sqs", "manage_policy": True}}},
        "manage_policy is for an existing queue or topic",
    ),
    "manage_policy of a function": (
        {
            "a": {
                "detail_types": ["HandoffRequested"],
                "target": {
                    "type": "lambda",
                    "arn": "arn:aws:lambda:eu-west-1:123456789012:function:f",
                    "manage_policy": True,
                },
            }
        },
        "manage_policy is for an existing queue or topic",
    ),
}


@pytest.mark.parametrize(("subscribers", "message"), INVALID.values(), ids=INVALID.keys())
def test_the_variable_refuses(
    terraform: str, tmp_path: Path, subscribers: dict[str, Any], message: str
) -> None:
    errors = diagnostics(console(terraform, tmp_path, subscribers, "1"))
    assert "Invalid value for variable" in errors
    assert message in errors, errors[-2000:]
    assert errors.count("Invalid value for variable") == 1, "one mistake, one refusal"


# The validation holds literal lists (a variable's validation can name nothing else); they must
# be the models' own.


def subscribers_block() -> str:
    source = (TERRAFORM / "variables.tf").read_text()
    start = source.index('variable "subscribers" {')
    return source[start : source.index('\nvariable "', start + 1)]


def literal_list(text: str) -> list[str]:
    return re.findall(r'"([^"]+)"', text)


def test_the_validated_detail_types_are_the_events_the_engine_publishes() -> None:
    [listed] = re.findall(r"contains\(\[([^\]]*)\], detail_type\)", subscribers_block())
    assert literal_list(listed) == [t.DETAIL_TYPE for t in EVENT_TYPES]


def test_the_validated_routes_are_the_routes_each_event_carries() -> None:
    block = subscribers_block()
    declared = {
        name: literal_list(routes)
        for name, routes in re.findall(r"^\s+(\w+)\s+= \[([^\]]*)\]$", block, re.MULTILINE)
        if name in {t.DETAIL_TYPE for t in EVENT_TYPES}
    }
    emitted = {t.DETAIL_TYPE: list(typing.get_args(t.model_fields["route"].annotation)) for t in EVENT_TYPES}
    assert declared == emitted
    [every] = re.findall(r"contains\(\[([^\]]*)\], route\)", block)
    assert sorted(literal_list(every)) == sorted({r for routes in emitted.values() for r in routes})


def test_the_validated_reasons_are_the_handoff_reasons() -> None:
    [listed] = re.findall(r"contains\(\[([^\]]*)\], reason\)", subscribers_block())
    assert literal_list(listed) == list(typing.get_args(HandoffReason))


# The README's subscriber examples are what Terraform and the models accept.

README = (REPO / "README.md").read_text()


def readme_section() -> str:
    start = README.index("## Subscribers: handoffs reach people without code")
    return README[start : README.index("\n## ", start + 1)]


def readme_blocks(language: str) -> list[str]:
    return [
        textwrap.dedent(block) for block in re.findall(rf"```{language}\n(.*?)```", readme_section(), re.S)
    ]


def test_the_readme_event_is_a_handoff_requested_as_the_engine_publishes_it() -> None:
    [event] = [json.loads(b) for b in readme_blocks("json") if '"detail-type": "HandoffRequested"' in b]
    assert (event["source"], event["detail-type"]) == (HandoffRequested.SOURCE, HandoffRequested.DETAIL_TYPE)
    detail = HandoffRequested.model_validate(event["detail"])
    # Every field the model carries is shown, in the order the publisher writes them.
    assert list(event["detail"]) == list(json.loads(detail.model_dump_json()))
    assert detail.handoff_id == f"{detail.conversation_id}#{detail.upto_seq}"


def readme_tfvars(key: str) -> str:
    [block] = [b for b in readme_blocks("hcl") if b.startswith("subscribers = {") and f"\n  {key} = {{" in b]
    return block


@pytest.mark.parametrize("key", ["helpdesk", "team_queue"])
def test_the_readme_tfvars_examples_are_accepted(terraform: str, tmp_path: Path, key: str) -> None:
    found = evaluate(
        terraform,
        tmp_path,
        readme_tfvars(key),
        {"patterns": "{ for k, rule in local.subscriber_event_rules : k => rule.event_pattern }"},
    )
    assert list(found["patterns"]) == [f"{key}-subscriber"]
    assert json.loads(found["patterns"][f"{key}-subscriber"])["detail"] == {"route": ["handoff"]}


def test_the_readme_queue_policy_is_the_statement_terraform_gives(terraform: str, tmp_path: Path) -> None:
    [shown] = [json.loads(b) for b in readme_blocks("json") if '"Principal"' in b]
    found = evaluate(
        terraform,
        tmp_path,
        readme_tfvars("helpdesk_inbox"),
        {
            "statements": "local.subscriber_policy_statements",
            "managed": "keys(local.managed_subscriber_policies)",
        },
    )
    assert found["managed"] == [], "the README's example leaves the queue's policy to its owner"
    # The README's account is the console's; its workspace is prod.
    expected = json.loads(json.dumps(found["statements"]["helpdesk_inbox"]).replace(NAME, "ai-comms-prod"))
    assert shown == {"Version": "2012-10-17", "Statement": [expected]}
    rule = expected["Condition"]["ArnEquals"]["aws:SourceArn"]
    # The ARN format the README spells out, for that rule.
    [spelled] = re.findall(r"`(arn:aws:events:<region>:[^`]+)`", readme_section())
    assert rule == (
        spelled.replace("<region>", REGION)
        .replace("<account>", ACCOUNT)
        .replace("<name_prefix>-<workspace>", "ai-comms-prod")
        .replace("<key>", "helpdesk_inbox")
    )


def test_the_readme_event_table_is_the_events_the_engine_publishes() -> None:
    rows = re.findall(
        r"^\| `(\w+)` \| `([\w.-]+)` \| ((?:`\w+`(?:, )?)+) \| (.*) \|$", readme_section(), re.M
    )
    assert [(name, source) for name, source, _, _ in rows] == [(t.DETAIL_TYPE, t.SOURCE) for t in EVENT_TYPES]
    for (name, _, routes, _), event in zip(rows, EVENT_TYPES, strict=True):
        assert re.findall(r"`(\w+)`", routes) == list(
            typing.get_args(event.model_fields["route"].annotation)
        ), name
    [handoff] = [when for name, _, _, when in rows if name == HandoffRequested.DETAIL_TYPE]
    assert [r for r in typing.get_args(HandoffReason) if f"`{r}`" not in handoff] == []


def test_the_readme_target_table_is_the_target_types_there_are() -> None:
    shown = re.findall(r"^\| `(\w+)` \| .* \|$", readme_section().split("| `target.type` |")[1], re.M)
    module = (TERRAFORM / "modules" / "event_routing" / "variables.tf").read_text()
    [listed] = re.findall(r"contains\(\[([^\]]*)\], rule\.target_type\)", module)
    assert shown == literal_list(listed)
    assert sorted({s["target"]["type"] for s in SAMPLE.values()}) == sorted(shown), "SAMPLE covers each"


def test_the_readme_runbook_names_the_handoff_age_alarm_and_its_default() -> None:
    monitoring = (TERRAFORM / "modules" / "monitoring" / "main.tf").read_text()
    [alarm_name] = re.findall(r'alarm_name\s+= "\$\{each\.value\.queue_name\}(-[a-z-]+)"', monitoring)
    main = (TERRAFORM / "main.tf").read_text()
    assert re.search(r'name = "\$\{local\.name\}-handoff"', main)
    assert f"### Runbook: the `<name>-handoff{alarm_name}` alarm" in README
    variables = (TERRAFORM / "variables.tf").read_text()
    block = variables[variables.index('variable "handoff_queue_age_alarm_seconds"') :]
    [default] = re.findall(r"^  default\s+= (\d+)$", block, re.M)[:1]
    runbook = README[README.index(f"`<name>-handoff{alarm_name}`") :]
    assert f"({int(default) // 60} minutes by default)" in runbook.split("\n### ")[0]


def output_blocks(path: Path) -> dict[str, str]:
    text = path.read_text()
    return {name: body for name, body in re.findall(r'^output "([^"]+)" \{\n(.*?)^\}', text, re.M | re.S)}


def test_no_plain_output_carries_a_connection_credential() -> None:
    routing = TERRAFORM / "modules" / "event_routing"
    assert "sensitive(jsondecode(secret.secret_string)" in (routing / "main.tf").read_text()
    blocks = {**output_blocks(TERRAFORM / "outputs.tf"), **output_blocks(routing / "outputs.tf")}
    assert "subscriber_target_policies" in blocks and "connection_arns" in blocks
    credential = re.compile(r"connection_secret|secret_string|secretsmanager_secret_version|auth_parameters")
    leaking = [n for n, body in blocks.items() if credential.search(body) and "sensitive = true" not in body]
    assert leaking == []
    # Nor does the root pass a credential on: the subscribers' rules carry secret names only.
    subscribers = (TERRAFORM / "subscribers.tf").read_text()
    assert not credential.search(subscribers)


def test_the_readme_filter_example_is_the_pattern_terraform_builds(terraform: str, tmp_path: Path) -> None:
    [shown] = [json.loads(b) for b in readme_blocks("json") if b.startswith('{"detail-type"')]
    filtered = {
        "helpdesk": {
            **SAMPLE["helpdesk"],
            "channels": ["whatsapp"],
            "reasons": ["ai_unanswerable", "reply_undelivered"],
        }
    }
    found = evaluate(
        terraform, tmp_path, filtered, {"pattern": 'local.subscriber_event_rules["helpdesk-subscriber"]'}
    )
    assert json.loads(found["pattern"]["event_pattern"]) == shown
