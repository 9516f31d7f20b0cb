"""One warm "execution environment" per function: a long-lived child process running bootstrap.py.

Like a Lambda sandbox it is created on the first invoke (the cold start, measured), reused while it
lives, serves one invocation at a time, and is thrown away when an invocation overruns the
function's timeout or the process dies; the next invoke starts a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_cloud.logs import FunctionLogs, forward_lines

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
# Lambda allows 10 s for init before retrying it inside the invoke; a laptop compiling a fresh
# layer's bytecode can be slower, and a slow start is not what the local cloud should fail on.
DEFAULT_INIT_TIMEOUT = 60.0
_EOF = None


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to start the process: paths from the unpacked artifacts, env from the emulator."""

    function_name: str
    function_arn: str
    timeout_seconds: float
    code_dir: Path
    layer_python_dir: Path
    runtime_dir: Path
    environment: dict[str, str]


@dataclass(frozen=True)
class Invocation:
    """One invoke's outcome and timings (``init_ms``/``startup_ms`` only on a cold start).

    ``init_ms`` is the handler module's import time measured inside the worker (Lambda's Init
    Duration minus the interpreter start); ``startup_ms`` is spawn to ready as seen by the runner.
    """

    function_name: str
    request_id: str
    cold_start: bool
    init_ms: float | None
    startup_ms: float | None
    duration_ms: float
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class Worker:
    """Owns at most one live child process for a function; ``invoke`` is serialised by a lock."""

    def __init__(
        self, spec: WorkerSpec, logs: FunctionLogs, init_timeout: float = DEFAULT_INIT_TIMEOUT
    ) -> None:
        self.spec = spec
        self._logs = logs
        self._init_timeout = init_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._results: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def invoke(self, event: Any) -> Invocation:
        """Run the handler on ``event``; errors come back in ``Invocation.error``, never raised."""
        with self._lock:
            request_id = str(uuid.uuid4())
            cold = self._process is None or self._process.poll() is not None
            init_ms = startup_ms = None
            if cold:
                init_ms, startup_ms, init_failure = self._start()
                if init_failure is not None:
                    return Invocation(
                        self.spec.function_name,
                        request_id,
                        True,
                        init_ms,
                        startup_ms,
                        0.0,
                        error=init_failure,
                    )
            return self._call(event, request_id, cold, init_ms, startup_ms)

    def _start(self) -> tuple[float | None, float, dict[str, Any] | None]:
        started = time.perf_counter()
        read_fd, write_fd = os.pipe()
        spec = self.spec
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(BOOTSTRAP),
                    str(spec.code_dir),
                    str(spec.layer_python_dir),
                    str(spec.runtime_dir),
                    str(write_fd),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=spec.environment,
                cwd=spec.code_dir,
                pass_fds=(write_fd,),
                # Off the terminal's process group: Ctrl-C stops the runner, which then ends the
                # workers in order, instead of every handler dying mid-invoke with a traceback.
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._process = process
        self._results = queue.Queue()
        reader = os.fdopen(read_fd, "rb")
        threading.Thread(target=self._read_results, args=(reader, self._results), daemon=True).start()
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            threading.Thread(target=forward_lines, args=(stream, self._logs), daemon=True).start()
        message = self._next_message(self._init_timeout)
        startup_ms = (time.perf_counter() - started) * 1000
        if message is None or "init" not in message:
            self._kill()
            failure = {
                "type": "Runtime.ExitError",
                "message": "worker exited or hung during init",
                "trace": [],
            }
            return None, startup_ms, failure
        init = message["init"]
        init_ms = float(init["duration_ms"])
        # An init error stays on the sandbox: bootstrap answers each invoke with it, as Lambda does.
        return init_ms, startup_ms, None

    @staticmethod
    def _read_results(reader: Any, sink: queue.Queue[dict[str, Any] | None]) -> None:
        with reader:
            for raw in iter(reader.readline, b""):
                sink.put(json.loads(raw))
        sink.put(_EOF)

    def _next_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def _call(
        self, event: Any, request_id: str, cold: bool, init_ms: float | None, startup_ms: float | None
    ) -> Invocation:
        process = self._process
        assert process is not None and process.stdin is not None
        timeout = self.spec.timeout_seconds
        started = time.perf_counter()
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": int(time.time() * 1000 + timeout * 1000),
            "function_arn": self.spec.function_arn,
        }
        try:
            process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
            process.stdin.flush()
        except OSError:
            self._kill()
            message = None
        else:
            message = self._next_message(timeout)
        elapsed_ms = (time.perf_counter() - started) * 1000
        name = self.spec.function_name
        if message is None:
            exited = process.poll() is not None
            self._kill()
            error = (
                {"type": "Runtime.ExitError", "message": "worker process exited", "trace": []}
                if exited
                else {
                    "type": "Sandbox.Timedout",
                    "message": f"Task timed out after {timeout:.2f} seconds",
                    "trace": [],
                }
            )
            self._logs.write(f"{request_id} {error['type']}: {error['message']}")
            return Invocation(name, request_id, cold, init_ms, startup_ms, elapsed_ms, error=error)
        if "error" in message:
            error = message["error"]
            self._logs.write(f"{request_id} {error['type']}: {error['message']}")
            return Invocation(name, request_id, cold, init_ms, startup_ms, elapsed_ms, error=error)
        return Invocation(
            name, request_id, cold, init_ms, startup_ms, elapsed_ms, result=message.get("result")
        )

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdin is not None:
            # A killed child leaves a broken pipe behind.
            with contextlib.suppress(OSError):
                process.stdin.close()

    def stop(self) -> None:
        """End the process: close stdin so bootstrap exits cleanly, kill it if it does not.

        An invocation still running gets one second to finish before its process is killed, so
        shutdown stays bounded whatever the function's timeout.
        """
        if not self._lock.acquire(timeout=1.0):
            process = self._process
            if process is not None and process.poll() is None:
                process.kill()
            return
        try:
            process = self._process
            if process is None:
                return
            if process.stdin is not None and process.poll() is None:
                try:
                    process.stdin.close()
                    process.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()
        finally:
            self._lock.release()
