"""Reading the digits speed/quality map (notebook 07) against its FD measurement: the names of a map row's fields,
joining a row with its FD, interval and paired ratios from ``benchmarks/digits_fd.py --study 07`` (refused for a
measurement of another machine: one machine per verdict, `check_same_machine`; or of other weights), a map read back
from JSON with its intervals as `Estimate`s, and the judgement: the Pareto front and the headlines (`judge_map`).
`speed_quality_map` measures the map and re-exports these names."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import zoo
from ..devices import device_name, machine
from ..measure import fd_sweep
from ..measure.intervals import Estimate
from ..measure.lenet import FD_LABEL
from ..measure.pareto import fastest_within_interval, headline, headline_with_intervals, pareto_front
from ..results import load_json
from .sr_map import TIME

METRIC = FD_LABEL
TOLERANCE = 0.10                        # the headline: FD within 10% of the reference's
BUDGETS = (10, 20)                      # network evaluations per image: the fastest within the reference's interval
FD_STUDY = "07_report"                  # the map's section of results/<device>/digits_fd.json (speed_quality_map_fd)
FD_INTERVAL = "FD [95%]"                # a row's FD from that measurement: bias-corrected, with its 95% interval
RATIO = "FD / reference"                # its paired ratio FD(point) / FD(reference) over the same x_T, 95% interval
FLOPS = "GFLOPs per image"             # of the sampling call, on the point's fp32 graph (`flops_per_image`)
PAIRED = "paired FD ratios"             # {label of b: FD(point) / FD(b) paired over the same x_T} for the section's pairs


def check_same_machine(fd: dict, device_label: str) -> None:
    """Refuse to join the FD measurement ``fd`` (a `digits_fd.json` section) with times of another machine: one
    machine per verdict."""
    if machine(fd["device"]) != machine(device_label):
        raise ValueError(f"the FD measurement of the map ({FD_STUDY}) was made on {fd['device']}, these times on "
                         f"{device_label}: one machine per verdict. Measure the FDs here (`python "
                         f"benchmarks/digits_fd.py --study 07`) or time the map on {machine(fd['device'])}")


def read_fd(path, *, device) -> dict:
    """The map's FD measurement (the `FD_STUDY` section of the digits_fd.json ``path``) for times measured on
    ``device``: refused when it was measured on another CPU model or GPU (`check_same_machine`) or sampled other
    weights than the zoo's now."""
    path = Path(path)
    measure = "`python benchmarks/digits_fd.py --study 07` on this machine"
    data = load_json(path, f"measure it again: {measure}")
    section = data.get("studies", {}).get(FD_STUDY) if isinstance(data, dict) else None
    if section is None:
        raise ValueError(f"{path} has no {FD_STUDY} section: run {measure}")
    check_same_machine(section, device_name(torch.device(device)))
    index = zoo.entries()
    stale = sorted({r["entry"] for r in section["settings"].values()
                    if r.get("entry") in index and r.get("sha256") not in (None, index[r["entry"]].sha256)})
    if stale:
        raise ValueError(f"{path}: the {FD_STUDY} measurement sampled other weights than the zoo's {', '.join(stale)} "
                         f"now: run {measure}")
    return section


def rows_with_fd(rows: list[dict], fd: dict, *, reference: str) -> list[dict]:
    """The map's ``rows`` with the FD measurement ``fd`` (`speed_quality_map_fd`'s section of digits_fd.json) of
    each point, matched by label: `METRIC` its bias-corrected FD, `FD_INTERVAL` that with its 95% interval (an
    `Estimate`), `RATIO` its paired ratio to ``reference``'s FD over the same x_T, `PAIRED` its other paired ratios
    (to its own baseline, to another step count: {label: Estimate}), and "n" its sample count. A row
    the measurement lacks is left as it is."""
    fds, ratios = fd_sweep.estimates(fd), fd_sweep.pairs(fd)
    key_of = {r["label"]: k for k, r in fd["settings"].items()}
    if reference not in key_of:
        raise ValueError(f"the FD measurement has no setting labelled {reference!r} (the map's reference); its "
                         f"settings: {sorted(key_of)}")
    ref = key_of[reference]
    out = []
    for r in rows:
        k = key_of.get(r["label"])
        if k is None:
            out.append(dict(r))
            continue
        extra = {METRIC: fds[k].value, FD_INTERVAL: fds[k], "n": fds[k].n}
        if (k, ref) in ratios:
            extra[RATIO] = ratios[(k, ref)]["ratio"]
        label_of = {key: lab for lab, key in key_of.items()}
        extra[PAIRED] = {label_of[b]: p["ratio"] for (a, b), p in ratios.items() if a == k and b != ref}
        out.append({**r, **extra})
    return out


def estimates_in(part: dict) -> dict:
    """A digits map read from JSON with its intervals as `Estimate`s again (rows and headline)."""
    def row(r):
        return r and {**r, **{k: fd_sweep.estimate_from(r[k]) for k in (FD_INTERVAL, RATIO)
                              if isinstance(r.get(k), dict)},
                      **({PAIRED: {b: fd_sweep.estimate_from(e) for b, e in r[PAIRED].items()}} if r.get(PAIRED) else {})}
    out = {**part, "rows": [row(r) for r in part["rows"]], "headline": row(part.get("headline")),
           "quality only": [row(r) for r in part.get("quality only", [])]}
    if within := part.get("within interval"):
        out["within interval"] = {**within, "headline": row(within["headline"]), "budgets": {
            int(b): {k: row(v) for k, v in got.items()} for b, got in within["budgets"].items()}}
    return out


def judge_map(rows: list[dict], reference: dict, *, tolerance: float = TOLERANCE) -> dict:
    """The map's front and headline: with intervals (`headline_with_intervals` on `RATIO`: a faster point whose
    ratio interval straddles 1 + tolerance is named inconclusive) when the rows carry them, else on the plain FDs
    (`headline`). {"front": labels, "headline": row or None, "inconclusive": labels, "limit": the FD limit}; with
    intervals also "within interval": issue 30's reading, the fastest point whose FD lies at or below the upper end
    of the reference's 95% interval, overall and within each of `BUDGETS` network evaluations
    (`fastest_within_interval`; the rule was written before the points it judges were measured)."""
    front = [r["label"] for r in pareto_front(rows, x=TIME, y=METRIC)]
    others = [r for r in rows if r is not reference]
    limit = (1 + tolerance) * reference[METRIC]
    if any(isinstance(r.get(RATIO), Estimate) for r in others):
        got = headline_with_intervals(others, reference, x=TIME, ratio=RATIO, tolerance=tolerance)
        best = got["headline"] and {**got["headline"], "limit": limit}
        within = fastest_within_interval(rows, reference, x=TIME, y=METRIC, interval=FD_INTERVAL, budget_key="NFE",
                                         budgets=BUDGETS)
        return {"front": front, "headline": best, "inconclusive": [r["label"] for r in got["inconclusive"]],
                "limit": limit, "within interval": within}
    return {"front": front, "headline": headline(others, reference, x=TIME, y=METRIC, tolerance=tolerance),
            "inconclusive": [], "limit": limit}
