"""What every part of `make bench` shares: percentiles as the figures show them, progress on stderr."""

from __future__ import annotations

import sys


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 0.50), "p99": percentile(values, 0.99)}


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
