"""A function's execution environments: a pool of warm child processes, each running bootstrap.py.

Like Lambda, a function scales out: each ``Sandbox`` is one execution environment (one long-lived
process, created on its first invoke: the cold start, measured; reused while it lives; one
invocation at a time; thrown away when an invocation overruns the function's timeout or the process
dies, the next invoke starting a fresh one). A ``Worker`` owns up to ``concurrency`` sandboxes (the
function's reserved concurrency, else the runner's default): an invoke takes the most recently used
idle sandbox, starts a new one while under the limit, and otherwise waits for one to free up. A
caller that gives up waiting gets ``Throttled``: Lambda's TooManyRequestsException.
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
# Execution environments per function when the emulator records no reserved concurrency: enough to
# show scaling out, few enough for a 2-core machine (each one is a Python process with the layer).
DEFAULT_CONCURRENCY = 4
_EOF = None


class Throttled(RuntimeError):
    """No execution environment became free in time (Lambda: 429 TooManyRequestsException)."""


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


class Sandbox:
    """One execution environment: at most one live child process; ``invoke`` is serialised by a lock.

    ``stop`` ends it for good (a pool discards stopped sandboxes), also when it races a start.
    """

    def __init__(
        self, spec: WorkerSpec, logs: FunctionLogs, init_timeout: float = DEFAULT_INIT_TIMEOUT
    ) -> None:
        self.spec = spec
        self._logs = logs
        self._init_timeout = init_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._results: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._closed = False

    @property
    def warm(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    def invoke(self, event: Any) -> Invocation:
        """Run the handler on ``event``; errors come back in ``Invocation.error``, never raised."""
        with self._lock:
            request_id = str(uuid.uuid4())
            if self._closed:
                error = {"type": "Runtime.ExitError", "message": "execution environment stopped", "trace": []}
                return Invocation(self.spec.function_name, request_id, False, None, None, 0.0, error=error)
            cold = not self.warm
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
        if self._closed:
            # ``stop`` ran while Popen did: it could not see this process, so end it here.
            self._kill()
            stopped = {"type": "Runtime.ExitError", "message": "stopped during init", "trace": []}
            return None, (time.perf_counter() - started) * 1000, stopped
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
        self._closed = True  # before reading the process: a concurrent start checks it after Popen
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


class Worker:
    """The execution environments of one function: up to ``concurrency`` sandboxes, started on demand.

    ``invoke`` waits for a free sandbox at most ``wait`` seconds (None: until one frees up, which
    every invocation's timeout bounds) and raises ``Throttled`` past that; a concurrency of 0 (a
    function reserved to zero) throttles every invoke at once. ``stop`` ends every process and the
    next invoke cold-starts again (benchmarks use that); ``close`` also refuses later invokes.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        logs: FunctionLogs,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 0:
            raise ValueError(f"concurrency must be >= 0, not {concurrency}")
        self.spec = spec
        self.concurrency = concurrency
        self._logs = logs
        self._init_timeout = init_timeout
        self._ready = threading.Condition()
        self._sandboxes: set[Sandbox] = set()
        # Most recently used last: Lambda routes to a warm environment before it starts another.
        self._idle: list[Sandbox] = []
        self._closed = False
        self.started = 0
        """Sandboxes created so far (each cold-starts a process on its first invoke)."""
        self.peak = 0
        """The most invocations this function ran at the same time."""
        self.throttled = 0
        """Invokes refused because no sandbox freed up within their wait."""

    @property
    def busy(self) -> int:
        with self._ready:
            return len(self._sandboxes) - len(self._idle)

    def invoke(self, event: Any, wait: float | None = None) -> Invocation:
        """Run the handler in a free sandbox; handler errors come back in ``Invocation.error``."""
        sandbox = self._acquire(wait)
        try:
            return sandbox.invoke(event)
        finally:
            self._release(sandbox)

    def _acquire(self, wait: float | None) -> Sandbox:
        deadline = None if wait is None else time.monotonic() + wait
        with self._ready:
            while True:
                if self._closed:
                    raise Throttled(f"{self.spec.function_name} is shut down")
                if self._idle:
                    sandbox = self._idle.pop()
                    break
                if len(self._sandboxes) < self.concurrency:
                    sandbox = Sandbox(self.spec, self._logs, self._init_timeout)
                    self._sandboxes.add(sandbox)
                    self.started += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if self.concurrency == 0 or (remaining is not None and remaining <= 0):
                    self.throttled += 1
                    raise Throttled(
                        f"{self.spec.function_name}: all {self.concurrency} execution environments busy"
                    )
                self._ready.wait(remaining)
            self.peak = max(self.peak, len(self._sandboxes) - len(self._idle))
            return sandbox

    def _release(self, sandbox: Sandbox) -> None:
        with self._ready:
            if sandbox in self._sandboxes:
                self._idle.append(sandbox)
                self._ready.notify()
                return
        sandbox.stop()  # stopped by ``stop`` while it ran: make sure its process is gone

    def stop(self) -> None:
        """End every sandbox's process, in parallel so shutdown stays bounded (about 3 s at most)."""
        with self._ready:
            sandboxes = list(self._sandboxes)
            self._sandboxes.clear()
            self._idle.clear()
            self._ready.notify_all()
        threads = [threading.Thread(target=sandbox.stop, daemon=True) for sandbox in sandboxes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=15)

    def close(self) -> None:
        """Stop, and refuse every later invoke (``Throttled``): the runner is shutting down."""
        with self._ready:
            self._closed = True
        self.stop()
