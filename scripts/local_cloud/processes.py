"""Child servers of the local cloud (moto, DynamoDB Local, LocalStack): started, awaited, stopped.

Each runs in its own session (process group), with its output in a log file, so that ``stop`` ends
it together with whatever it started itself (LocalStack starts DynamoDB Local as its own child),
and Ctrl-C in the terminal reaches the local cloud, which then stops them in order. Every wait is
bounded: readiness by ``timeout``, shutdown by SIGTERM, then SIGKILL of the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now, on loopback."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when an HTTP server answers at ``url`` (an error status counts as an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - loopback URL
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class Stops:
    """``with x:`` ends in ``x.stop()``, whatever happened inside."""

    def stop(self) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Managed(Stops):
    """``with X(...) as x:`` for the local cloud's servers: ``start`` on entry, ``stop`` on exit."""

    def start(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self


class ChildServer:
    """One server process of ours: ``start`` returns once ``ready()`` holds, ``stop`` ends its group."""

    def __init__(self, name: str, log_file: Path | None = None) -> None:
        self.name = name
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(
        self,
        command: Sequence[str],
        ready: Callable[[], bool],
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Spawn ``command``; stop it and raise if it exits or ``ready`` stays false past ``timeout``."""
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = output = self.log_file.open("ab")
        self._process = subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        where = f" (see {self.log_file})" if self.log_file is not None else ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise RuntimeError(f"{self.name} exited early with status {code}{where}")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} was not ready within {timeout:.0f} s{where}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL to what is left after ``timeout``; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                self._signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(process, signal.SIGKILL)
                    process.wait(timeout=timeout)
            # Children it started and left behind (a JVM) go with the group.
            self._signal_group(process, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        # The group id is the child's pid (start_new_session): only processes we started are in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
