"""The cross-study report (notebook 07, `fastdiff report`): what is gathered from the committed results files, not
measured again. Every study notebook writes its verdicts into its results file (`fastdiff.results`); here they are
read back into one table (claim, the paper's number, ours, verdict, device, data, where it came from), and a
speed/quality map's points reduce to their Pareto front and the headline: the fastest setting whose quality stays
within a tolerance of the reference (1000-step fp32 DDPM).
"""
from __future__ import annotations

from pathlib import Path

from ..verdicts import VERDICTS


def gather_verdicts(root: str | Path = "results") -> list[dict]:
    """One row per verdict of every results file under ``root`` (the schema's files only; benchmarks' own files
    are skipped): study, key, claim, paper, ours, verdict, why, device, dtype, data, profile, file."""
    from ..results import iter_results
    root = Path(root)
    rows = []
    for path, data in iter_results(root):
        ctx = data.get("context", {})
        for v in data.get("verdicts", []):
            if v.get("verdict") not in VERDICTS:
                raise ValueError(f"{path}: verdict {v.get('verdict')!r} of claim {v.get('key')!r} is not one of "
                                 f"{VERDICTS}; regenerate the file by executing its notebook")
            rows.append({"study": data["study"], "key": v["key"], "claim": v["claim"], "paper": v["paper"],
                         "ours": v["ours"], "verdict": v["verdict"], "why": v.get("why", ""),
                         "device": ctx.get("device", ""), "dtype": ctx.get("dtype", ""),
                         "data": ctx.get("dataset", ""), "profile": ctx.get("profile", ""),
                         "file": str(path.relative_to(root))})
    return rows


def verdict_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """{study: {verdict: count}} over ``rows`` (`gather_verdicts`)."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        per = out.setdefault(r["study"], {v: 0 for v in VERDICTS})
        per[r["verdict"]] += 1
    return out


def pareto_front(points: list[dict], *, x: str, y: str) -> list[dict]:
    """The points no other point beats in both ``x`` and ``y`` (lower is better in both: time, FD), by ``x``."""
    usable = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    front = [p for p in usable
             if not any(q[x] <= p[x] and q[y] <= p[y] and (q[x] < p[x] or q[y] < p[y]) for q in usable)]
    return sorted(front, key=lambda p: p[x])


def headline(points: list[dict], reference: dict, *, x: str, y: str, tolerance: float = 0.10) -> dict | None:
    """The fastest point whose ``y`` is within ``tolerance`` of the reference's (y <= (1 + tolerance) y_ref), with
    its speed-up over the reference; None when no point qualifies."""
    if not 0 <= tolerance:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    limit = (1 + tolerance) * reference[y]
    ok = [p for p in points if p.get(x) is not None and p.get(y) is not None and p[y] <= limit]
    if not ok:
        return None
    best = min(ok, key=lambda p: p[x])
    return {**best, "speed-up": reference[x] / best[x], "limit": limit}


def write_claims(rows: list[dict], out: str | Path) -> list[Path]:
    """The gathered verdicts as ``claims.csv`` and ``claims.md`` in ``out``; returns the paths."""
    import pandas as pd
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=["study", "key", "claim", "paper", "ours", "verdict", "why", "device",
                                        "data", "profile", "file"])
    csv = out / "claims.csv"
    table.to_csv(csv, index=False)
    md = out / "claims.md"
    lines = ["| study | claim | paper | ours | verdict | device | data |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["study"], r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**", r["device"], r["data"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    md.write_text("\n".join(lines) + "\n")
    return [csv, md]
