"""Reading a speed/quality map: the Pareto front (the points no other beats in both time and quality) and the
headline (the fastest point whose quality stays within a tolerance of a reference's). Lower is better on both axes
(seconds, FD)."""
from __future__ import annotations

__all__ = ["pareto_front", "headline"]


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
