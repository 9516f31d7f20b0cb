"""What the runner's event source mapping pollers share (local_cloud.sqs_poller, .dynamodb_stream_poller).

A ``MappingPoller`` is a few daemon threads feeding one source to one function until ``stop``: each
thread calls ``poll_once`` in a loop, and an exception there is logged and retried a second later
(the source or the emulator may be briefly unavailable) rather than ending the thread. ``invoke``
hands a batch to the function and counts it; ``join`` waits for the threads with one deadline.
``passes`` counts completed polls and ``backlog`` says what the source still holds for the function,
which is how the runner tells that nothing is left to deliver (``Runner.settled``).
Which records are worth invoking for is the mapping's ``FilterCriteria`` (local_cloud.event_filter).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from local_cloud.discovery import MappingRecord

LOG = logging.getLogger(__name__)
Invoke = Callable[[str, Any], Any]
RETRY_AFTER_ERROR_SECONDS = 1.0


class MappingPoller:
    """Run ``poll_once`` on ``threads`` threads; subclasses say how to poll and when a thread waits."""

    def __init__(self, mapping: MappingRecord, invoke: Invoke, name: str, threads: int = 1) -> None:
        self.mapping = mapping
        self._invoke = invoke
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{index}", daemon=True)
            for index in range(max(threads, 1))
        ]
        self._count_lock = threading.Lock()
        self.batches = 0
        self.passes = 0
        """Completed ``poll_once`` calls, on every thread."""

    @property
    def concurrency(self) -> int:
        return len(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait for every thread, ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0))

    @property
    def is_lead(self) -> bool:
        """The first thread, which always polls (helpers may wait for a backlog)."""
        return threading.current_thread() is self._threads[0]

    def poll_once(self) -> int:
        """Poll the source once and process what came; return how many records were received."""
        raise NotImplementedError

    def wait_for_turn(self) -> bool:
        """Block until this thread should poll again; False when the poller is stopping."""
        return not self._stopping.is_set()

    def polled(self, received: int) -> None:
        """Called after each successful ``poll_once``."""

    def backlog(self) -> int:
        """Records the source holds for the function: waiting, delayed or in flight (0: none)."""
        raise NotImplementedError

    def invoke(self, event: Any) -> Any:
        invocation = self._invoke(self.mapping.function_arn, event)
        with self._count_lock:
            self.batches += 1
        return invocation

    def _run(self) -> None:
        while self.wait_for_turn():
            try:
                received = self.poll_once()
            except Exception:
                if self._stopping.is_set():
                    return
                LOG.exception("poller for %s failed; retrying", self.mapping.source_arn)
                self._stopping.wait(RETRY_AFTER_ERROR_SECONDS)
                continue
            with self._count_lock:
                self.passes += 1
            self.polled(received)
