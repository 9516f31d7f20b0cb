"""LocalStack's runtime on the host, without Docker: the second emulator (``EMULATOR=localstack``).

``localstack-core`` 2026.3.0 (the last runtime on PyPI) from its own virtualenv (.venv-localstack,
Python 3.13, the exact closure of tests/requirements-localstack.txt), started as ``python -m
localstack.runtime.main`` on a free loopback port with a fresh filesystem under the work dir.
What it takes to run there, each measured:

* Lambda: LocalStack's only executor runs functions in Docker, so without it no function becomes
  Active and the apply times out. The project's ``record-only`` executor (scripts/localstack_host,
  installed into the LocalStack venv) records functions without running them; the local runner
  executes them, as on moto, and disables LocalStack's own event source mappings while it plays
  them (LocalStack honours it: a disabled SQS mapping's worker stops receiving).
* DynamoDB: LocalStack would download Java and DynamoDB Local. The npm package's DynamoDB Local
  (local_cloud.tools) is placed where LocalStack looks for it,
  ``<FILESYSTEM_ROOT>/var/lib/localstack/lib/dynamodb-local/2/``, beside the no-op agent jar
  LocalStack passes as ``-javaagent``, and ``lib/java/21`` points at the machine's Java (LocalStack
  only checks that ``bin/java`` exists; DynamoDB Local needs 17+). LocalStack serves DynamoDB on
  its own port (its provider adds tags, PITR, SSE descriptions and real ARNs).
* DynamoDB Streams: LocalStack's default streams provider forwards table changes to Kinesis, whose
  emulator (kinesis-mock) is one more download: CreateTable with a stream then hangs about a minute
  and fails. ``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=v2`` serves streams from DynamoDB Local itself.
* EventBridge: ``StartReplay`` of a non-empty archive answers 500 in 2026.3.0; the plugin's
  ``fix_start_replay`` hook patches it (scripts/localstack_host/localstack_host/replay.py).
* The gateway: 2026.3.0's twisted server binds IPv4 listeners to every interface whatever host
  ``GATEWAY_LISTEN`` names; the plugin's ``bind_gateway_to_listen_host`` hook binds 127.0.0.1.
* Files: S3 objects (Lambda's copies of the code) would go to a ``/tmp`` folder every LocalStack on
  the host shares (the ``keep_s3_storage_in_filesystem_root`` hook moves them under the work dir),
  and DynamoDB Local's JVM unpacks a native library into ``java.io.tmpdir`` (set to the work dir).

Other settings: no DNS server, no certificate download, no telemetry or analytics events, path
style SQS queue URLs, DynamoDB in memory, and a cache dir of its own (LocalStack caches its plugin
index there; a stale one would hide the project's plugins).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.request
from pathlib import Path

from local_cloud.emulator import EmulatorBase
from local_cloud.processes import HOST, ChildServer, answers
from local_cloud.tools import REPO_ROOT, SETUP_HINT, ToolMissing, dynamodb_local_dir, java_home

LOG = logging.getLogger(__name__)
LOCALSTACK_VENV = REPO_ROOT / ".venv-localstack"
LOCALSTACK_VERSION = "2026.3.0"
EXECUTOR = "record-only"
_HEALTH = "/_localstack/health"
# Ready in about 2 s when idle; a loaded 2-core machine can take much longer.
START_TIMEOUT = 90.0


def localstack_python() -> Path:
    python = Path(os.environ.get("AI_COMMS_LOCALSTACK_PYTHON") or LOCALSTACK_VENV / "bin" / "python")
    if not python.is_file():
        raise ToolMissing(f"{python} missing (LocalStack's virtualenv): {SETUP_HINT}")
    return python


def health(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url + _HEALTH, timeout=1) as response:  # noqa: S310 - loopback URL
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def prepare_filesystem(root: Path) -> None:
    """A fresh FILESYSTEM_ROOT with DynamoDB Local and Java where LocalStack's installers look."""
    if root.exists():
        shutil.rmtree(root)
    libs = root / "var" / "lib" / "localstack" / "lib"
    (libs / "dynamodb-local").mkdir(parents=True)
    (libs / "java").mkdir(parents=True)
    (libs / "dynamodb-local" / "2").symlink_to(dynamodb_local_dir(), target_is_directory=True)
    (libs / "java" / "21").symlink_to(java_home(), target_is_directory=True)


class LocalStackEmulator(EmulatorBase):
    """Start LocalStack on ``port`` with its filesystem in ``work_dir``; or adopt one (``reuse``)."""

    name = "localstack"

    def __init__(self, port: int, work_dir: Path, log_dir: Path | None = None, reuse: bool = False) -> None:
        super().__init__(port, reuse)
        self.work_dir = work_dir
        self._server = ChildServer("LocalStack", log_dir / "localstack.log" if log_dir else None)

    def environment(self) -> dict[str, str]:
        """Only what LocalStack needs: nothing of the caller's AWS settings or home directory."""
        root = self.work_dir / "root"
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.work_dir / "home"),
            "LANG": "C.UTF-8",
            "GATEWAY_LISTEN": f"{HOST}:{self.port}",
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(root),
            "TMPDIR": str(self.work_dir / "tmp"),
            "XDG_CACHE_HOME": str(self.work_dir / "cache"),
            "DNS_ADDRESS": "0",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DISABLE_EVENTS": "1",
            "LOCALSTACK_TELEMETRY": "0",
            "SQS_ENDPOINT_STRATEGY": "off",
            "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR,
            "PROVIDER_OVERRIDE_DYNAMODBSTREAMS": "v2",
            "DYNAMODB_IN_MEMORY": "1",
            # Its DynamoDB Local JVM unpacks a native library into java.io.tmpdir: keep it here.
            "JAVA_TOOL_OPTIONS": f"-Djava.io.tmpdir={self.work_dir / 'tmp'}",
        }

    def start(self, timeout: float = START_TIMEOUT) -> None:
        if answers(self.url):
            if not self._reuse:
                raise RuntimeError(f"something already listens on {self.url}; stop it or reuse it")
            if (health(self.url) or {}).get("version") != LOCALSTACK_VERSION:
                raise RuntimeError(f"{self.url} is not LocalStack {LOCALSTACK_VERSION}; cannot reuse it")
            self.adopted = True
            LOG.info("reusing LocalStack at %s", self.url)
            return
        python = localstack_python()
        prepare_filesystem(self.work_dir / "root")
        for name in ("home", "tmp", "cache"):
            shutil.rmtree(self.work_dir / name, ignore_errors=True)
            (self.work_dir / name).mkdir(parents=True)
        self._server.start(
            [str(python), "-m", "localstack.runtime.main"],
            lambda: (health(self.url) or {}).get("version") == LOCALSTACK_VERSION,
            timeout,
            env=self.environment(),
            cwd=self.work_dir,
        )

    def stop(self) -> None:
        """Stop LocalStack and everything it started (DynamoDB Local); never an adopted one."""
        self._server.stop(timeout=15.0)
