"""A verdict on every claim: each study states the paper's claims, what we measure and the threshold that counts
as reproduced *before* the run (`Claim`), and code fills the verdict after it (`judge`).

Verdicts: ``reproduced``, ``partly``, ``contradicted`` (said plainly), ``inconclusive`` (the interval of a number
the verdict turns on straddles its threshold: noise, not a finding), ``not testable here`` (with why) and ``by
construction`` (the row holds by construction or by definition, e.g. an equivalence the code guarantees: shown, never
counted as a reproduction). A claim's ``rule(measured) -> (verdict, ours, why)`` reads the run's numbers from a dict
and nothing else; a missing number gives "not testable here" with the reason, never a guess. Numbers may carry
intervals (`fastdiff.measure.intervals.Estimate`): `compare`, `holds` and `grade_interval` judge them. Verdict rows
go into the results file (`fastdiff.results.Results.verdicts`), so the cross-study report can gather them.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

VERDICTS = ("reproduced", "partly", "contradicted", "inconclusive", "not testable here", "by construction")


@dataclass(frozen=True)
class Claim:
    key: str                 # short id, e.g. "table2-time"
    claim: str               # the paper's claim in a line
    paper: str               # the paper's number(s) and where they are
    measure: str             # what we measure here
    threshold: str           # what counts as reproduced (and as partly), written before the run
    rule: Callable[[dict], tuple[str, str, str]]   # measured -> (verdict, ours, why)


class NotMeasured(KeyError):
    """A number a rule needs was not measured in this run."""


def need(measured: dict, *keys: str):
    """The measured values a rule needs, or `NotMeasured` naming the first missing one (None, NaN, or an estimate
    with a NaN value or bound)."""
    values = []
    for key in keys:
        value = measured.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)) or _nan_interval(value):
            raise NotMeasured(key)
        values.append(value)
    return values if len(values) > 1 else values[0]


def judge(claims: list[Claim], measured: dict, *, not_testable: dict[str, str] | None = None) -> list[dict]:
    """One verdict row per claim. ``not_testable`` maps claim keys to why they cannot be tested here (missing
    weights, no players ...); a rule that raises `NotMeasured` is not testable for that reason too."""
    rows = []
    for c in claims:
        why_not = (not_testable or {}).get(c.key)
        if why_not:
            verdict, ours, why = "not testable here", "-", why_not
        else:
            try:
                verdict, ours, why = c.rule(measured)
            except NotMeasured as e:
                verdict, ours, why = "not testable here", "-", f"{e.args[0]} was not measured in this run"
        if verdict not in VERDICTS:
            raise ValueError(f"claim {c.key!r}: verdict {verdict!r} is not one of {VERDICTS}")
        rows.append({"key": c.key, "claim": c.claim, "paper": c.paper, "ours": ours, "threshold": c.threshold,
                     "verdict": verdict, "why": why})
    return rows


def claims_table(claims: list[Claim]):
    """The claims as a table, before the run: claim, the paper's number, what we measure, the threshold."""
    import pandas as pd
    return pd.DataFrame([{"claim": c.claim, "paper": c.paper, "we measure": c.measure, "reproduced if": c.threshold}
                         for c in claims], index=[c.key for c in claims])


def verdict_table(rows: list[dict]):
    """The verdicts as a table (a contradiction stands out in bold red when shown in a notebook)."""
    import pandas as pd
    table = pd.DataFrame(rows).set_index("key")[["claim", "paper", "ours", "verdict", "why"]]
    colours = {"reproduced": "color: #1b7f3b", "partly": "color: #9a6700", "contradicted": "color: #b00020; "
               "font-weight: bold", "inconclusive": "color: #5a4fcf", "not testable here": "color: #666666",
               "by construction": "color: #666666; font-style: italic"}
    return table.style.map(lambda v: colours.get(v, ""), subset=["verdict"]).set_properties(
        **{"text-align": "left"})


def summary(rows: list[dict]) -> str:
    """One line: how many claims got each verdict, contradictions named."""
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    text = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    contradicted = [r["key"] for r in rows if r["verdict"] == "contradicted"]
    return text + (f". Contradicted: {', '.join(contradicted)}." if contradicted else ".")


def grade(reproduced: bool, partly: bool = False) -> str:
    """The verdict of a rule whose thresholds are met (reproduced), half met (partly) or not (contradicted)."""
    return "reproduced" if reproduced else "partly" if partly else "contradicted"


def within(ours: float, paper: float, rel: float) -> bool:
    """|ours / paper - 1| <= rel."""
    return abs(ours / paper - 1) <= rel


# ---- verdicts from numbers with intervals (`fastdiff.measure.intervals.Estimate`) ------------------------------

BETTER = ("lower", "higher")


def _nan_interval(value) -> bool:
    """An estimate (anything with value, low, high) of which a part is NaN: not measured."""
    parts = [getattr(value, k, None) for k in ("value", "low", "high")]
    return None not in parts and any(isinstance(p, float) and math.isnan(p) for p in parts)


def _bounds(estimate) -> tuple[float, float]:
    """An estimate's interval; a plain number (a paper's value, a count) is an interval of zero width."""
    if hasattr(estimate, "low") and hasattr(estimate, "high"):
        low, high = float(estimate.low), float(estimate.high)
    elif isinstance(estimate, numbers.Real) and not isinstance(estimate, bool):
        low = high = float(estimate)
    else:
        raise TypeError(f"expected an Estimate (value, low, high) or a number, got {type(estimate).__name__}")
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"cannot judge an interval with NaN bounds ({estimate}); its rule should raise NotMeasured "
                         f"(need() does so for an estimate with a NaN part)")
    if low > high:
        raise ValueError(f"interval bounds out of order: [{low}, {high}]")
    return low, high


def holds(estimate, threshold: float, *, better: str = "lower") -> bool | None:
    """Whether ``estimate`` is on the good side of ``threshold`` (``better="lower"``: at most the threshold;
    ``"higher"``: at least): True if its whole interval is, False if its whole interval is on the bad side, None
    (undecided) if the interval straddles the threshold. Combine conditions with `all_of` / `any_of` and turn them
    into a verdict with `grade_interval`."""
    if better not in BETTER:
        raise ValueError(f"better must be one of {BETTER}, got {better!r}")
    low, high = _bounds(estimate)
    if better == "higher":
        low, high, threshold = -high, -low, -threshold
    return True if high <= threshold else False if low > threshold else None


def compare(estimate, threshold: float, *, better: str = "lower") -> str:
    """"reproduced" when the estimate's whole interval is on the good side of ``threshold``, "contradicted" when it
    is wholly on the bad side, "inconclusive" when it straddles the threshold (`holds`)."""
    return {True: "reproduced", False: "contradicted", None: "inconclusive"}[holds(estimate, threshold,
                                                                                     better=better)]


def all_of(*conditions: bool | None) -> bool | None:
    """Three-valued AND (Kleene): False if any condition fails, else None if any is undecided, else True."""
    if any(c is False for c in conditions):
        return False
    return None if any(c is None for c in conditions) else True


def any_of(*conditions: bool | None) -> bool | None:
    """Three-valued OR (Kleene): True if any condition holds, else None if any is undecided, else False."""
    if any(c is True for c in conditions):
        return True
    return None if any(c is None for c in conditions) else False


def grade_interval(reproduced: bool | None, partly: bool | None = False) -> str:
    """`grade` for conditions that may be undecided (None, from `holds`): reproduced if the reproduced condition
    holds and inconclusive if it is undecided; if it fails, partly, inconclusive or contradicted as the (weaker)
    partly condition holds, is undecided or fails. With no None among them this is `grade`."""
    if reproduced is None:
        return "inconclusive"
    if reproduced:
        return "reproduced"
    return "partly" if partly else "inconclusive" if partly is None else "contradicted"


def shown(x, decimals: int | None = None) -> str:
    """A number a rule read, in words: an `Estimate` with its interval ("1.47 [1.31, 1.62]"), a plain number
    (a paper's, a count) with ``decimals`` (default 2)."""
    if hasattr(x, "format"):
        return x.format(decimals)
    return f"{x:.{2 if decimals is None else decimals}f}"


def verdict_lines(rows: list[dict]) -> list[str]:
    """One line per claim, as every study notebook closes: the verdict in capitals, the claim, our number."""
    return [f"{r['verdict'].upper():>17}  {r['claim']} — ours: {r['ours']}" for r in rows]
