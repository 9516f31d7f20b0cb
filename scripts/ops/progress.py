"""Progress of long work on stderr: a bar when a person watches, periodic lines when a log does.

stdout stays reserved for results so `ops ... | grep` and scripts see only data. A bar's carriage
returns would make a CI log unreadable, so without a TTY the same progress becomes a plain line
every few seconds.
"""

import sys
import time
from typing import TextIO

_BAR_WIDTH = 30


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None = None,
        interval_seconds: float = 5.0,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval_seconds if not self._tty else 0.1
        self._done = 0
        self._last_write = float("-inf")
        self._closed = False
        self._note = ""

    @property
    def done(self) -> int:
        return self._done

    def advance(self, count: int = 1) -> None:
        self.update(self._done + count)

    def update(self, done: int, total: int | None = None, note: str = "") -> None:
        self._done = done
        if total is not None:
            self._total = total
        self._note = note
        now = time.monotonic()
        if now - self._last_write >= self._interval:
            self._last_write = now
            self._write(final=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _text(self) -> str:
        note = f" {self._note}" if self._note else ""
        if self._total:
            share = min(self._done / self._total, 1.0)
            if self._tty:
                filled = int(share * _BAR_WIDTH)
                bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
                return f"{self._label} [{bar}] {self._done}/{self._total} {share:4.0%}{note}"
            return f"{self._label}: {self._done}/{self._total} ({share:.0%}){note}"
        return f"{self._label}: {self._done}{note}"

    def _write(self, final: bool) -> None:
        if self._tty:
            self._stream.write("\r\033[K" + self._text() + ("\n" if final else ""))
        else:
            self._stream.write(self._text() + "\n")
        self._stream.flush()
