"""Where the handlers' stdout/stderr go: the runner's log, prefixed, and optionally one file per function.

In Lambda those lines land in the function's CloudWatch log group; here they stay readable in the
terminal running ``make local`` and in .local/logs/<function>.log for later grepping.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import IO

LOG = logging.getLogger("local_cloud.lambda")


class FunctionLogs:
    """Thread-safe sink for one function's output lines."""

    def __init__(self, function_name: str, log_dir: Path | None) -> None:
        self.function_name = function_name
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._file = (log_dir / f"{function_name}.log").open("a", encoding="utf-8")

    def write(self, line: str) -> None:
        text = line.rstrip("\n")
        LOG.info("[%s] %s", self.function_name, text)
        with self._lock:
            if self._file is not None:
                self._file.write(text + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def forward_lines(stream: IO[bytes], sink: FunctionLogs) -> None:
    """Copy a child's output to the sink until EOF (runs on a daemon thread)."""
    for raw in iter(stream.readline, b""):
        sink.write(raw.decode("utf-8", errors="replace"))
    stream.close()
