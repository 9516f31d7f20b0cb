"""A tiny per-container cache with expiry: tenant config changes reach warm containers within max_age."""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, max_age_seconds: float, max_entries: int = 1024) -> None:
        self._max_age = max_age_seconds
        self._max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._max_age:
            return hit[1]
        value = load()
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
