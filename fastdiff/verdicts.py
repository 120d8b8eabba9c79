"""A verdict on every claim: each study states the paper's claims, what we measure and the threshold that counts
as reproduced *before* the run (`Claim`), and code fills the verdict after it (`judge`).

Verdicts: ``reproduced``, ``partly``, ``contradicted`` (said plainly), ``not testable here`` (with why). A
claim's ``rule(measured) -> (verdict, ours, why)`` reads the run's numbers from a dict and nothing else; a
missing number gives "not testable here" with the reason, never a guess. Verdict rows go into the results file
(`fastdiff.results.Results.verdicts`), so the cross-study report can gather them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

VERDICTS = ("reproduced", "partly", "contradicted", "not testable here")


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
    """The measured values a rule needs, or `NotMeasured` naming the first missing one."""
    values = []
    for key in keys:
        value = measured.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
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
               "font-weight: bold", "not testable here": "color: #666666"}
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
