"""Shared pieces of the fuzz suites: a catch-all event counter, hypothesis settings, strict E.164."""

import json
import os
import re
from typing import Any

from hypothesis import HealthCheck, settings

from .conftest import BUS, Cloud

# Bounded so the unit suite stays quick; FUZZ_EXAMPLES raises it for a longer local hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

# The fixtures are function-scoped on purpose (one mocked account per test); every example checks
# its own effects, so sharing the account across the examples of one test is what we want.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=os.environ.get("FUZZ_RANDOM") is None,
)

# What a phone number must look like after validation: ASCII digits only, nothing after them.
STRICT_E164 = re.compile(r"\A\+[1-9][0-9]{6,14}\Z")


def catch_all(cloud: Cloud) -> str:
    """A queue receiving every event any engine component publishes on the bus, whatever its route."""
    url = cloud.sqs.create_queue(QueueName="q-everything")["QueueUrl"]
    arn = cloud.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    cloud.events.put_rule(
        Name="r-everything",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": [{"prefix": "ai-comms."}]}),
    )
    cloud.events.put_targets(Rule="r-everything", EventBusName=BUS, Targets=[{"Id": "all", "Arn": arn}])
    cloud.queues["everything"] = url
    return url


def drain_all(cloud: Cloud) -> dict[str, list[dict[str, Any]]]:
    return {name: cloud.drain(name) for name in cloud.queues}


def published(cloud: Cloud) -> list[dict[str, Any]]:
    """Every event published since the last call (read from the catch-all queue; the others drained too)."""
    return drain_all(cloud).get("everything", [])
