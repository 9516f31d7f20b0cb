"""Inside one local Lambda worker: the stand-in for the python3.12 runtime's bootstrap.

Started by the runner as ``python -I -S bootstrap.py CODE LAYER_PYTHON RUNTIME RESULT_FD`` with the
function's environment only, so the handler sees the import path a Lambda sandbox gives it
(task root, then /opt/python, then the runtime's boto3) and none of the developer's virtualenv.
Stdlib only: nothing else is importable before sys.path is set.

Protocol: one JSON request per stdin line ``{"event", "request_id", "deadline_ms", "function_arn"}``;
one JSON line per message on RESULT_FD: first ``{"init": {...}}`` after importing the handler, then
``{"result": ...}`` or ``{"error": {...}}`` per request. stdout and stderr are left to the handler's
logs, which the runner forwards.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO


class LambdaContext:
    """The attributes of the runtime's context object that handlers and Powertools read."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        # The real runtime passes the environment string through; Powertools accepts either.
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def error_payload(error_type: str, exc: BaseException) -> dict[str, Any]:
    return {
        "type": error_type,
        "message": str(exc),
        "trace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


def load_handler(spec: str) -> tuple[Any, dict[str, Any] | None]:
    """Import ``module.function`` like the runtime, mapping failures to its error types."""
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the runtime reports any import failure the same way
        wrapped = ImportError(f"Unable to import module '{module_name}': {exc}")
        wrapped.__traceback__ = exc.__traceback__
        return None, error_payload("Runtime.ImportModuleError", wrapped)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        missing = AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
        return None, error_payload("Runtime.HandlerNotFound", missing)
    return handler, None


def send(channel: TextIO, message: dict[str, Any]) -> None:
    try:
        line = json.dumps(message)
    except (TypeError, ValueError) as exc:
        line = json.dumps({"error": error_payload("Runtime.MarshalError", exc)})
    channel.write(line + "\n")
    channel.flush()


def serve(handler: Any, init_error: dict[str, Any] | None, results: TextIO) -> None:
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        if init_error is not None:
            # Lambda answers every invoke of a sandbox whose init failed with the init error.
            send(results, {"error": init_error, "duration_ms": 0.0})
            continue
        context = LambdaContext(request["request_id"], request["deadline_ms"], request["function_arn"])
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            outcome: dict[str, Any] = {"error": error_payload(type(exc).__name__, exc)}
        else:
            outcome = {"result": result}
        sys.stdout.flush()
        sys.stderr.flush()
        outcome["duration_ms"] = (time.perf_counter() - started) * 1000
        send(results, outcome)


def main() -> None:
    code_dir, layer_dir, runtime_dir, result_fd = sys.argv[1:5]
    stdlib = [entry for entry in sys.path if entry and not entry.endswith("local_cloud")]
    sys.path[:] = [code_dir, layer_dir, runtime_dir, *stdlib]
    os.chdir(code_dir)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    results = os.fdopen(int(result_fd), "w", encoding="utf-8")
    started = time.perf_counter()
    handler, init_error = load_handler(os.environ.get("_HANDLER", "handler.lambda_handler"))
    init_ms = (time.perf_counter() - started) * 1000
    send(results, {"init": {"duration_ms": init_ms, "error": init_error}})
    serve(handler, init_error, results)


if __name__ == "__main__":
    main()
