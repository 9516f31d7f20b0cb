"""checkov over the Terraform: every skip says why, and nothing fails.

checkov lives in its own venv (.venv-checkov, made by `make setup`: its pins clash with the
runtime's); the CHECKOV environment variable or PATH may name another install. A missing checkov
fails the test: a security check that silently skips proves nothing.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
SKIP = re.compile(r"#\s*checkov:skip=([^:\s]+)(?::(.*))?$")
MIN_REASON_WORDS = 4


def checkov_binary() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(REPO / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("checkov")
    if found is None:
        pytest.fail("checkov is not installed: run `make setup` (it creates .venv-checkov) or set CHECKOV")
    return found


def skips() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP.search(line.strip())
            if match:
                found.append(
                    (str(path.relative_to(REPO)), number, match.group(1), (match.group(2) or "").strip())
                )
    return found


def test_every_skip_names_a_check_and_says_why() -> None:
    found = skips()
    assert found, "no skip found: the pattern no longer matches the files"
    unexplained = [
        f"{path}:{number}: {check}"
        for path, number, check, reason in found
        if len(reason.split()) < MIN_REASON_WORDS
    ]
    assert unexplained == []
    malformed = [f"{p}:{n}: {c}" for p, n, c, _ in found if not re.fullmatch(r"CKV2?_AWS_\d+", c)]
    assert malformed == []


def test_the_skip_parser_catches_a_bare_skip() -> None:
    assert SKIP.search("#checkov:skip=CKV_AWS_1").group(2) is None  # type: ignore[union-attr]
    assert SKIP.search("#checkov:skip=CKV_AWS_1:").group(2) == ""  # type: ignore[union-attr]
    assert SKIP.search("#checkov:skip=CKV_AWS_1:Because it is fine here").group(2)  # type: ignore[union-attr]


def test_checkov_reports_no_failed_check() -> None:
    answer = subprocess.run(
        [
            checkov_binary(),
            "--quiet",
            "--compact",
            "-d",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    reports = json.loads(answer.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert terraform, answer.stdout[-2000:] + answer.stderr[-2000:]
    summary = terraform[0]["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})"
        for c in terraform[0].get("results", {}).get("failed_checks", [])
    ]
    assert (summary["failed"], summary["parsing_errors"], failed) == (0, 0, [])
    assert summary["passed"] > 0
    skipped = {c["check_id"] for c in terraform[0]["results"].get("skipped_checks", [])}
    assert skipped <= {check for _, _, check, _ in skips()}
