"""Percentiles and summaries (milliseconds for latencies)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    values = sorted(seconds)
    return {"n": len(values), "p50_ms": round(percentile(values, 50) * 1000, 3),
            "p90_ms": round(percentile(values, 90) * 1000, 3), "p99_ms": round(percentile(values, 99) * 1000, 3),
            "max_ms": round((values[-1] if values else math.nan) * 1000, 3)}


def summary_s(seconds: Sequence[float]) -> dict[str, float]:
    values = sorted(seconds)
    return {"n": len(values), "p50_s": round(percentile(values, 50), 4), "p99_s": round(percentile(values, 99), 4),
            "max_s": round(values[-1], 4) if values else math.nan}
