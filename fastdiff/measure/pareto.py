"""Reading a speed/quality map: the Pareto front (the points no other beats in both time and quality) and the
headline (the fastest point whose quality stays within a tolerance of a reference's). Lower is better on both axes
(seconds, FD). `headline` reads plain numbers; `headline_with_intervals` reads each point's paired ratio to the
reference with its interval (`fastdiff.measure.intervals.Estimate`) and names a faster point whose interval straddles
the tolerance inconclusive rather than choosing or dropping it silently."""
from __future__ import annotations

from ..verdicts import holds

__all__ = ["pareto_front", "headline", "headline_with_intervals", "fastest_within_interval"]


def pareto_front(points: list[dict], *, x: str, y: str) -> list[dict]:
    """The points no other point beats in both ``x`` and ``y`` (lower is better in both: time, FD), by ``x``."""
    usable = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    front = [p for p in usable
             if not any(q[x] <= p[x] and q[y] <= p[y] and (q[x] < p[x] or q[y] < p[y]) for q in usable)]
    return sorted(front, key=lambda p: p[x])


def headline(points: list[dict], reference: dict, *, x: str, y: str, tolerance: float = 0.10) -> dict | None:
    """The fastest point faster than the reference whose ``y`` is within ``tolerance`` of the reference's
    (y <= (1 + tolerance) y_ref), with its speed-up over the reference; None when no point qualifies."""
    if not 0 <= tolerance:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    limit = (1 + tolerance) * reference[y]
    ok = [p for p in points if p.get(x) is not None and p.get(y) is not None and p[y] <= limit and p[x] < reference[x]]
    if not ok:
        return None
    best = min(ok, key=lambda p: p[x])
    return {**best, "speed-up": reference[x] / best[x], "limit": limit}


def headline_with_intervals(points: list[dict], reference: dict, *, x: str, ratio: str,
                            tolerance: float = 0.10) -> dict:
    """The headline when each point carries ``ratio``: an Estimate of its paired quality ratio to the reference
    (FD(point) / FD(reference) over the same x_T). The headline is the fastest point faster than the reference whose
    whole ratio interval is at most 1 + ``tolerance`` (`fastdiff.verdicts.holds`), with its speed-up; faster points
    whose interval straddles 1 + tolerance are listed as inconclusive (noise decides them, not the data), fastest
    first; points without ``ratio`` or ``x`` are not judged. Returns {"headline": the point (with "speed-up" and
    "ratio limit") or None, "inconclusive": [points], "limit": 1 + tolerance}."""
    if not 0 <= tolerance:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    limit = 1 + tolerance
    faster = sorted((p for p in points if p.get(x) is not None and p.get(ratio) is not None and p[x] < reference[x]),
                    key=lambda p: p[x])
    judged = [(p, holds(p[ratio], limit)) for p in faster]
    best = next((p for p, ok in judged if ok), None)
    inconclusive = [p for p, ok in judged if ok is None and (best is None or p[x] < best[x])]
    return {"headline": None if best is None else {**best, "speed-up": reference[x] / best[x], "ratio limit": limit},
            "inconclusive": inconclusive, "limit": limit}


def fastest_within_interval(points: list[dict], reference: dict, *, x: str, y: str, interval: str,
                            budget_key: str | None = None, budgets=()) -> dict:
    """The headline read against the reference's own noise: the fastest point faster than the reference whose
    ``y`` (lower is better) is at or below the upper end of the reference's 95% interval (``interval``, an
    `Estimate`), with its speed-up; and for each budget b of ``budgets``, among the points with ``budget_key`` <= b
    (network evaluations per image), the fastest such point and the best one (lowest ``y``), whichever it is.
    A point whose own interval is wide still qualifies on its value: read its paired comparison beside it.
    Returns {"limit", "headline" (or None), "budgets": {b: {"headline", "best"}}}."""
    limit = reference[interval].high
    usable = [p for p in points if p is not reference and p.get(x) is not None and p.get(y) is not None]
    within = sorted((p for p in usable if p[y] <= limit), key=lambda p: p[x])
    faster = [p for p in within if p[x] < reference[x]]
    best = faster[0] if faster else None
    out = {"limit": limit, "headline": best and {**best, "speed-up": reference[x] / best[x]}, "budgets": {}}
    for b in budgets:
        inside = [p for p in usable if p.get(budget_key) is not None and p[budget_key] <= b]
        fast = [p for p in within if p in inside]
        out["budgets"][b] = {"headline": fast[0] if fast else None,
                             "best": min(inside, key=lambda p: p[y]) if inside else None}
    return out
