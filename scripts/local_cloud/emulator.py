"""The AWS emulator (moto in server mode) as a child process on loopback.

moto keeps every service's state in the server process, so stopping it wipes the "cloud"; that is
why Terraform state for local workspaces is reset whenever a fresh emulator is started.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

LOG = logging.getLogger(__name__)
HOST = "127.0.0.1"
DEFAULT_PORT = 5000
ATOMIC_SERVER = Path(__file__).with_name("moto_atomic.py")
# moto's own control API: answers once every service is importable.
_PROBE_PATH = "/moto-api/data.json"


def moto_server_executable() -> str:
    """The moto_server installed beside this interpreter, so it shares the venv's moto version."""
    candidate = Path(sys.executable).parent / "moto_server"
    if not candidate.is_file():
        raise FileNotFoundError(f"{candidate} not found: install moto[server] into this venv")
    return str(candidate)


def is_listening(url: str, timeout: float = 0.5) -> bool:
    """True when a moto server answers at ``url`` (any HTTP answer from its control API counts)."""
    try:
        with urllib.request.urlopen(url + _PROBE_PATH, timeout=timeout):  # noqa: S310 - loopback URL
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class Emulator:
    """Start, await and stop one ``moto_server``; or adopt one already listening on the port."""

    def __init__(self, port: int = DEFAULT_PORT, log_file: Path | None = None, reuse: bool = False) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self._log_file = log_file
        self._reuse = reuse
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self.adopted = False

    def start(self, timeout: float = 30.0) -> None:
        """Return once the server answers; raise if it exits or stays silent past ``timeout``."""
        if is_listening(self.url):
            if not self._reuse:
                raise RuntimeError(f"something already listens on {self.url}; stop it or reuse it")
            self.adopted = True
            LOG.info("reusing the emulator at %s", self.url)
            return
        output: IO[bytes] | int = subprocess.DEVNULL
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = output = self._log_file.open("ab")
        # moto_server, with DynamoDB item writes made atomic (see moto_atomic) for concurrent workers.
        moto_server_executable()  # fails early and clearly when moto[server] is missing
        self._process = subprocess.Popen(
            [sys.executable, str(ATOMIC_SERVER), "-H", HOST, "-p", str(self.port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"moto_server exited early on port {self.port} (see its log)")
            if is_listening(self.url, timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"moto_server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server we started (never an adopted one), killing it if it lingers."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
