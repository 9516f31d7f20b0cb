"""The CRITICAL post-send line the code prints matches the CloudWatch metric filter Terraform declares.

The alarm on unrecorded sends only works if the two agree, so the pattern is read from the Terraform
source and evaluated against the JSON line Powertools really prints.
"""

import io
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from ai_comms.critical import log_post_send_failure

from .metric_filter import FilterPatternError, matches, parse_pattern

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
MODULE = TERRAFORM / "modules" / "critical_log_alarm" / "main.tf"


def declared_pattern() -> str:
    """The `pattern` of the module's metric filter, with HCL string escapes undone."""
    source = MODULE.read_text()
    found = re.findall(r'^\s*pattern\s*=\s*"((?:[^"\\]|\\.)*)"\s*$', source, flags=re.MULTILINE)
    assert len(found) == 1, "expected exactly one pattern string in the module"
    text: str = found[0].replace('\\"', '"').replace("\\\\", "\\")
    assert "${" not in text and "%{" not in text, "the pattern must be a literal"
    return text


def printed_line(level: int = logging.CRITICAL, **ids: Any) -> dict[str, Any]:
    stream = io.StringIO()
    # A fresh service name: Powertools reuses the stdlib logger (and its handler) of a known name.
    logger = Logger(
        service=f"reply-processor-{uuid.uuid4().hex}", logger_handler=logging.StreamHandler(stream)
    )
    if level == logging.CRITICAL:
        log_post_send_failure(logger, RuntimeError("DynamoDB unavailable"), **ids)
    else:
        logger.error("message sent but its record was not updated", extra={"critical_event": "x"})
    [line] = stream.getvalue().splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_the_reply_processor_uses_the_shared_alarm_module() -> None:
    replies = (TERRAFORM / "replies.tf").read_text()
    assert 'source = "./modules/critical_log_alarm"' in replies
    assert "log_group_name    = module.reply_processor.log_group_name" in replies
    assert "alarm_topic_arn   = module.monitoring.alerts_topic_arn" in replies


def test_the_critical_line_matches_the_terraform_metric_filter() -> None:
    line = printed_line(conversation_id="c-1", upto_seq=3, message_sid="SM" + "0" * 32)
    assert line["level"] == "CRITICAL"
    assert matches(parse_pattern(declared_pattern()), line)


def test_other_lines_do_not_match() -> None:
    pattern = parse_pattern(declared_pattern())
    assert not matches(pattern, printed_line(level=logging.ERROR))
    assert not matches(pattern, {"level": "CRITICAL", "message": "something else"})
    assert not matches(pattern, {"level": "INFO", "critical_event": "post_send_update_failed"})


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ('{ $.a = "x" }', {"a": "x"}, True),
        ('{ $.a = "x" }', {"a": "y"}, False),
        ('{ $.a = "x" && $.b.c = "y" }', {"a": "x", "b": {"c": "y"}}, True),
        ('{ $.a = "x" && $.b.c = "y" }', {"a": "x", "b": {"c": "z"}}, False),
        ("{ $.n = 3 }", {"n": 3}, True),
        ('{ $.a = "x" }', {}, False),
    ],
)
def test_the_evaluator(pattern: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(parse_pattern(pattern), event) is expected


@pytest.mark.parametrize("pattern", ["$.a = 1", '{ $.a = "x" || $.b = "y" }', "{ }", '{ a = "x" }'])
def test_the_evaluator_refuses_what_it_does_not_understand(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        parse_pattern(pattern)
