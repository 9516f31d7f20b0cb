"""The AWS emulators of the local cloud, each a set of child processes on loopback.

Two (``EmulatorBase``), chosen with ``EMULATOR`` (``moto``, the default, or ``localstack``; see
local_cloud.cloud.make_emulator), with one interface:
``start`` (bounded readiness), ``stop``, ``url`` (every AWS endpoint but DynamoDB),
``dynamodb_url`` (DynamoDB and DynamoDB Streams), ``account_id`` (read from STS, never assumed),
logs under the local cloud's work dir. Under both, DynamoDB is Amazon's DynamoDB Local:

* ``MotoEmulator``: moto in server mode (local_cloud.moto_stream_mappings) for every service but
  DynamoDB, plus DynamoDB Local behind local_cloud.dynamodb_front, which answers what DynamoDB
  Local lacks (PITR, tags) and speaks the emulator's region and account in ARNs;
* ``LocalStackEmulator`` (local_cloud.localstack): LocalStack's runtime on the host, which runs the
  same DynamoDB Local itself and serves DynamoDB on its own port.

Every emulator keeps its state in its processes, so stopping it wipes the "cloud"; that is why
Terraform state for local workspaces is reset whenever a fresh emulator is started.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from local_cloud.dynamodb_front import DynamoDBFront
from local_cloud.dynamodb_local import DynamoDBLocal
from local_cloud.endpoints import Endpoints, aws_client
from local_cloud.processes import HOST, ChildServer, Managed, answers

LOG = logging.getLogger(__name__)
DEFAULT_PORT = 5000
MOTO_SERVER = Path(__file__).with_name("moto_server.py")
# moto's own control API: answers once every service is importable.
_PROBE_PATH = "/moto-api/data.json"


def account_of(url: str, region: str = "us-east-1") -> str:
    """The emulator's account, as STS GetCallerIdentity reports it."""
    return str(aws_client("sts", url, region).get_caller_identity()["Account"])


def moto_server_executable() -> str:
    """The moto_server installed beside this interpreter, so it shares the venv's moto version."""
    candidate = Path(sys.executable).parent / "moto_server"
    if not candidate.is_file():
        raise FileNotFoundError(f"{candidate} not found: install moto[server] into this venv")
    return str(candidate)


def is_listening(url: str, timeout: float = 0.5) -> bool:
    """True when a moto server answers at ``url`` (any HTTP answer from its control API counts)."""
    return answers(url + _PROBE_PATH, timeout)


class EmulatorBase(Managed):
    """What LocalCloud, the runner and the tests need of an emulator, and what every one shares."""

    name = ""
    executes_functions = False
    """True when the emulator runs the functions itself (no local runner; see localstack_docker)."""

    def __init__(self, port: int, reuse: bool = False) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self._reuse = reuse
        self._account_id: str | None = None
        self.adopted = False
        """True when ``start`` found the emulator running and took it over (``reuse``)."""

    @property
    def dynamodb_url(self) -> str:
        """DynamoDB and DynamoDB Streams; ``url`` unless the emulator serves them elsewhere."""
        return self.url

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.url, self.dynamodb_url)

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = account_of(self.url)
        return self._account_id

    def start(self, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class MotoEmulator(EmulatorBase):
    """moto_server + DynamoDB Local + the DynamoDB front; or adopt a running set (``reuse``).

    ``dynamodb_port`` fixes the front's port (0: a free one); adopting needs it, since the adopted
    moto's tables live behind the front already listening there.
    """

    name = "moto"

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        log_dir: Path | None = None,
        reuse: bool = False,
        dynamodb_port: int = 0,
    ) -> None:
        super().__init__(port, reuse)
        self._log_dir = log_dir
        self._dynamodb_port = dynamodb_port
        self._moto = ChildServer("moto_server", log_dir / "emulator.log" if log_dir else None)
        self._dynamodb: DynamoDBLocal | None = None
        self._front: DynamoDBFront | None = None

    @property
    def dynamodb_url(self) -> str:
        if self._front is not None:
            return self._front.url
        assert self.adopted, "start() first"
        return f"http://{HOST}:{self._dynamodb_port}"

    def start(self, timeout: float = 30.0) -> None:
        """Return once moto and DynamoDB answer; raise if either exits or stays silent past ``timeout``."""
        if is_listening(self.url):
            self._adopt()
            return
        moto_server_executable()  # fails early and clearly when moto[server] is missing
        try:
            self._moto.start(
                [sys.executable, str(MOTO_SERVER), "-H", HOST, "-p", str(self.port)],
                lambda: is_listening(self.url),
                timeout,
            )
            dynamodb_log = self._log_dir / "dynamodb-local.log" if self._log_dir else None
            self._dynamodb = DynamoDBLocal(log_file=dynamodb_log).start()
            self._front = DynamoDBFront(self._dynamodb.url, self.account_id, self._dynamodb_port).start()
        except BaseException:
            self.stop()
            raise

    def _adopt(self) -> None:
        if not self._reuse:
            raise RuntimeError(f"something already listens on {self.url}; stop it or reuse it")
        dynamodb = f"http://{HOST}:{self._dynamodb_port}"
        if not self._dynamodb_port or not answers(dynamodb):
            raise RuntimeError(
                f"adopting the moto server at {self.url} needs its DynamoDB endpoint, which does not "
                f"answer at {dynamodb}"
            )
        self.adopted = True
        LOG.info("reusing the emulator at %s (DynamoDB at %s)", self.url, dynamodb)

    def stop(self) -> None:
        """Stop what we started (never an adopted emulator), each step bounded."""
        if self._front is not None:
            self._front.stop()
            self._front = None
        if self._dynamodb is not None:
            self._dynamodb.stop()
            self._dynamodb = None
        self._moto.stop()
