"""Percentiles, medians and ratios of what a benchmark measured."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def summarize(values: Sequence[float]) -> dict[str, float | None]:
    """n, p50, p99, max and mean; a percentile is the nearest rank (no interpolation)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)

    return {
        "n": len(ordered),
        "p50": pct(50),
        "p99": pct(99),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values measured (None where a round measured nothing)."""
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)
