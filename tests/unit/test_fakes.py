"""What both fakes share: the /fake/* control surface, fault parsing and the ``python -m`` entry points.

The fakes' vendor rules are tested in test_openai_fake.py and test_twilio_fake.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fakes.http_base import Fault
from fakes.openai_fake import OpenAIFake
from fakes.twilio_fake import TwilioFake

from .fakes_support import call, openai_fake, twilio_fake

__all__ = ["openai_fake", "twilio_fake"]

SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"status": 200}, "HTTP error status"),
        ({"delay_seconds": -1}, "non-negative"),
        ({"count": 0, "status": 500}, "positive integer"),
        ({"headers": {"a": 1}, "status": 500}, "map names to strings"),
        ({}, "a fault needs"),
        ({"body": {"x": 1}}, "needs a status"),
        ({"status": 500, "colour": "red"}, "unknown fault keys"),
        ({"error": 5}, "name of one of the fake's errors"),
    ],
)
def test_malformed_faults_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.parse(raw)


def test_each_fake_refuses_errors_it_does_not_know(openai_fake: OpenAIFake, twilio_fake: TwilioFake) -> None:
    with pytest.raises(ValueError, match="unknown error preset"):
        openai_fake.add_faults({"error": "melted"})
    with pytest.raises(ValueError, match="not a code"):
        openai_fake.add_faults({"code": 21610})
    with pytest.raises(ValueError, match="not an error name"):
        twilio_fake.add_faults({"error": "conversation_locked"})
    status, body = call(
        twilio_fake.url, "POST", "/fake/faults", {"faults": [{"code": 21611, "format": "xml"}]}
    )
    assert status == 400 and "format" in body["error"]
    assert openai_fake.faults.pending() == twilio_fake.faults.pending() == 0


def test_control_routes_answer_unknown_routes_and_malformed_bodies(openai_fake: OpenAIFake) -> None:
    assert call(openai_fake.url, "GET", "/fake/nothing")[0] == 404
    assert call(openai_fake.url, "POST", "/fake/faults", {"faults": "no"})[0] == 400
    assert call(openai_fake.url, "POST", "/fake/latency", {"seconds": "slow"})[0] == 400
    assert call(openai_fake.url, "GET", "/fake/health") == (200, {"ok": True, "fake": "openai-fake"})


@pytest.mark.parametrize("module", ["fakes.openai_fake", "fakes.twilio_fake"])
def test_module_entry_point_serves_until_terminated(module: str) -> None:
    # cwd makes the package importable without installing it, as `python -m` puts cwd on sys.path.
    with subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0"], cwd=SCRIPTS_DIR, stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
            assert url.startswith("http://127.0.0.1:")
            assert call(url, "GET", "/fake/health")[0] == 200
        finally:
            process.terminate()
        assert process.wait(timeout=5) == 0
