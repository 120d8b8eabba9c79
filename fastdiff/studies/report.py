"""The cross-study report (notebook 07, `fastdiff report`): what is gathered from the committed results files, not
measured again. Every study notebook writes its verdicts into its results file (`fastdiff.results`); here they are
read back into one table (claim, the paper's number, ours, verdict, device, data, where it came from); the maps
measured by `fastdiff.studies.speed_quality_map` (its Pareto front and headline: the fastest setting whose quality
stays within a tolerance of the reference, 1000-step fp32 DDPM) and `fastdiff.studies.sr_map` are read back, checked
and drawn. The top of notebook 07's modules: no study module imports it.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .. import plotting
from ..files import atomic_write, atomic_write_text
from ..measure import fd_sweep
from ..measure.pareto import headline, pareto_front  # noqa: F401  (notebook 07 calls report.headline, .pareto_front)
from ..results import ResultsFileError, iter_results, read_benchmark
from ..verdicts import VERDICTS, verdict_lines
from .common import PROJECT_TARGETS
from .report_claims import beside_base
from .speed_quality_map_points import CACHING_MODELS
from .speed_quality_map import (FD_INTERVAL, FD_STUDY, FLOPS, METRIC as MAP_METRIC, RATIO, TIME as MAP_TIME,
                                TOLERANCE, judge_map)
from .speed_quality_map_fd import pair_table
from .sr_map import SR_METRICS, interval_key


def gather_verdicts(root: str | Path = "results", *, on_error: str = "raise") -> list[dict]:
    """One row per verdict of every results file under ``root`` (the schema's files only; benchmarks' own files
    are passed over): study, key, claim, paper, ours, verdict, why, device, dtype, data, profile, file. Every file is
    checked (`fastdiff.results.iter_results`): a damaged one, or a second copy of a study, is an error unless
    ``on_error="warn"``."""
    root = Path(root)
    rows = []
    for path, data in iter_results(root, on_error=on_error):
        ctx = data["context"]
        for v in data["verdicts"]:
            rows.append({"study": data["study"], "key": v["key"], "claim": v["claim"], "paper": v["paper"],
                         "ours": v["ours"], "verdict": v["verdict"], "why": v["why"],
                         "device": ctx.get("device", ""), "dtype": ctx.get("dtype", ""),
                         "data": ctx.get("dataset", ""), "profile": ctx.get("profile", ""),
                         "file": str(path.relative_to(root))})
    return rows


# (study, key) of the verdict rows that judge this project's own targets, not a paper's claims
TARGETS = PROJECT_TARGETS


def is_target(row: dict) -> bool:
    """Whether a gathered verdict row judges one of this project's own `TARGETS` rather than a paper's claim."""
    return (row["study"], row.get("key")) in TARGETS


def verdict_counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """{study: {verdict: count}} over the papers' claims in ``rows`` (`gather_verdicts`): this project's own targets
    (`is_target`) are not counted, and "by construction" is a count of its own, never a reproduction."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if not is_target(r):
            per = out.setdefault(r["study"], {v: 0 for v in VERDICTS})
            per[r["verdict"]] += 1
    return out


def write_claims(rows: list[dict], out: str | Path) -> list[Path]:
    """The gathered verdicts as ``claims.csv`` and ``claims.md`` in ``out``; returns the paths."""
    import pandas as pd
    out = Path(out)
    table = pd.DataFrame(rows, columns=["study", "key", "claim", "paper", "ours", "verdict", "why", "device",
                                        "data", "profile", "file"])
    csv = atomic_write_text(out / "claims.csv", table.to_csv(index=False))
    md = out / "claims.md"
    lines = ["| study | claim | paper | ours | verdict | device | data |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["study"], r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**", r["device"], r["data"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    atomic_write_text(md, "\n".join(lines) + "\n")
    return [csv, md]


def map_title(part: dict, what: str) -> str:
    """A map's label: what it shows, where and on what it was measured."""
    return (f"{what}\n{part.get('data', '')} · {part.get('device', '')} · batch {part.get('batch')} · n = "
            f"{part.get('n')} · measured {part.get('utc', '?')[:10]}")


def draw_digits_map(part: dict, *, ax=None):
    """The digits map of a `benchmarks/report_map.py` result (``part = result["digits"]``), each FD with its 95%
    interval where the map carries one. The headline ringed is the paired 10% rule's, else (none) the fastest point
    within the reference's interval (`within_interval_lines`), named as such in the legend."""
    best, which = part.get("headline"), "headline"
    if best is None and (part.get("within interval") or {}).get("headline"):
        best, which = part["within interval"]["headline"], "fastest within DDPM 1000's interval"
    ax = plotting.plot_speed_quality_map(
        part["rows"], x=MAP_TIME, y=MAP_METRIC, front=part["front"], reference=part["reference"],
        highlight=best["label"] if best else None, highlight_label=which, floor=part.get("floor"), logy=True, ax=ax,
        interval=FD_INTERVAL,
        spread="IQR (ms)", flagged=[r["point"] for r in beside_base(part["rows"]) if r.get("FLOPs not time")]
        if any(r.get(FLOPS) for r in part["rows"]) else [],       # maps measured before FLOPs were counted: none
        flagged_label="FLOP saving that did not become a time saving",
        floor_label=f"held-out real digits ({part.get('floor n', part.get('n'))}) against the training digits",
        title=map_title(part, "time per image against FD (LeNet-MNIST" + (
            ", bias-corrected)\nbars: 95% bootstrap interval of FD, interquartile range of the timing rounds"
            if any(r.get(FD_INTERVAL) for r in part["rows"]) else ")") + "; lower is better in both"))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))     # beside the map: it covers no point
    ax.figure.set_size_inches(13, 6.5)
    ax.figure.tight_layout()
    return ax


def draw_sr_maps(sr: dict, metrics=SR_METRICS):
    """One row of panels per SR map (``sr = result["sr"]``: {panel: `fastdiff.studies.sr_map.measure_panel`}), one
    column per metric, time per image against it (higher is better); bicubic upsampling, which takes no time to
    speak of, as a dashed line."""
    fig, axes = plt.subplots(len(sr), len(metrics), figsize=(5 * len(metrics), 4.2 * len(sr)), squeeze=False)
    for row, (name, panel) in zip(axes, sr.items()):
        points = [{**r, "label": f"{r['steps']} steps", "family": r["model"],
                   **{interval_key(m): fd_sweep.estimate_from(r[interval_key(m)]) for m in metrics
                      if isinstance(r.get(interval_key(m)), dict)}} for r in panel["rows"] if r.get("steps")]
        bicubic = next((r for r in panel["rows"] if not r.get("steps")), None)
        for ax, metric in zip(row, metrics):
            plotting.plot_speed_quality_map(points, x=MAP_TIME, y=metric, ax=ax, interval=interval_key(metric),
                                            spread="IQR (ms)", title=f"{name}: {metric} (bars: 95% interval, IQR)")
            if bicubic and bicubic.get(metric) is not None:
                ax.axhline(bicubic[metric], ls="--", color="grey", label=bicubic["model"])
            ax.legend(fontsize=6)
    fig.suptitle("\n".join(f"{name}: {p.get('data', '')} · {p.get('device', '')} · n = {p.get('n')} · batch "
                           f"{p.get('batch')} · measured {p.get('utc', '?')[:10]}" for name, p in sr.items()),
                 fontsize=9)
    fig.tight_layout()
    return fig


def write_maps(result: dict, out: str | Path) -> list[Path]:
    """The maps of a `benchmarks/report_map.py` result as ``map.png``, ``map.csv`` (the digits map) and
    ``sr_map.png`` in ``out``; returns the paths. Nothing is measured."""
    import pandas as pd
    out = Path(out)
    paths = []
    if "digits" in result:
        paths.append(_save_figure(draw_digits_map(result["digits"]).figure, out / "map.png", dpi=120))
        paths.append(atomic_write_text(out / "map.csv", pd.DataFrame(result["digits"]["rows"]).to_csv(index=False)))
    if "sr" in result:
        paths.append(_save_figure(draw_sr_maps(result["sr"]), out / "sr_map.png", dpi=110))
    return paths


def _save_figure(fig, path: Path, *, dpi: int) -> Path:
    """``fig`` as the PNG ``path`` (atomically: never half a file), then closed."""
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def read_map(device_type: str = "cpu", *, root: str | Path = "results") -> dict:
    """The maps of ``<root>/<device_type>/report_map.json`` (`benchmarks/report_map.py`), checked for what the
    report draws from them; a damaged file is a `fastdiff.results.ResultsFileError` naming it and the field."""
    result = read_benchmark("report_map", device_type, root=root)
    problems = _digits_problems(result["digits"]) if "digits" in result else []
    problems += _sr_problems(result["sr"]) if "sr" in result else []
    if problems:
        raise ResultsFileError(f"{Path(root) / device_type / 'report_map.json'}: {'; '.join(problems[:5])}; rerun "
                               f"`python benchmarks/report_map.py` on this {device_type} device")
    return result


def _rows_problems(rows, where: str, needed: tuple[str, ...]) -> list[str]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return [f"{where}.rows is not a list of objects"]
    return [f"{where}.rows[{i}]: missing field {k!r}" for i, r in enumerate(rows) for k in needed if k not in r]


def _digits_problems(part) -> list[str]:
    if not isinstance(part, dict):
        return ["digits is not an object"]
    problems = _rows_problems(part.get("rows"), "digits", ("label", "family"))
    if problems:
        return problems
    numbers = (MAP_TIME, MAP_METRIC)
    ref = next((r for r in part["rows"] if r["label"] == part.get("reference")), None)
    if ref is None:
        problems.append(f"digits.reference {part.get('reference')!r} is not the label of one of its rows")
    elif not all(isinstance(ref.get(k), (int, float)) for k in numbers):
        problems.append(f"digits: the reference row {ref['label']!r} lacks {MAP_TIME!r} or {MAP_METRIC!r}")
    if not isinstance(part.get("front"), list):
        problems.append("digits.front is missing or not a list")
    best, needed = part.get("headline"), {"label", "speed-up", "limit", *numbers}
    if best is not None and not (isinstance(best, dict) and needed <= set(best)):
        problems.append(f"digits.headline is neither null nor an object with {', '.join(sorted(needed))}")
    return problems


def _sr_problems(sr) -> list[str]:
    if not isinstance(sr, dict) or not all(isinstance(p, dict) for p in sr.values()):
        return ["sr is not an object of panels"]
    return [p for name, panel in sr.items() for p in _rows_problems(panel.get("rows"), f"sr.{name}", ("model",))]


def _shown(r: dict, key: str, fallback: str) -> str:
    """A row's number with its interval when it has one (an `Estimate`, or its fields as read from JSON)."""
    e = r.get(key)
    if isinstance(e, dict):
        e = fd_sweep.estimate_from(e)
    return e.format(2 if key == FD_INTERVAL else 3) if e is not None else f"{r[fallback]:.2f}"


def headline_line(part: dict) -> str:
    """The headline of a digits map in one line, from its numbers: with intervals (FD and its paired ratio to the
    reference) when the map carries them, and the faster points whose ratio interval straddles the limit named as
    inconclusive."""
    within = f"{100 * part.get('tolerance', TOLERANCE):.0f}%"
    ref = next(r for r in part["rows"] if r["label"] == part["reference"])
    best = part.get("headline")
    undecided = part.get("inconclusive") or []
    tail = (f"; faster but inconclusive (their FD ratio interval straddles {1 + part.get('tolerance', TOLERANCE):.2f}"
            f"): {', '.join(undecided)}") if undecided else ""
    if best is None:
        return (f"no setting faster than {ref['label']} reaches FD within {within} of its "
                f"{_shown(ref, FD_INTERVAL, MAP_METRIC)}; the reference stays the fastest setting at that quality"
                + tail)
    ratio = f", FD / {ref['label']} {_shown(best, RATIO, MAP_METRIC)}" if RATIO in best else \
        f" (no interval at n = {part.get('n')}: whether it stays within the limit is not tested against noise)"
    return (f"fastest setting within {within} of {ref['label']}'s FD ({_shown(ref, FD_INTERVAL, MAP_METRIC)}, limit "
            f"{best['limit']:.2f}): "
            f"{best['label']}, FD {_shown(best, FD_INTERVAL, MAP_METRIC)}{ratio}, {best[MAP_TIME]:.3f} ms per image "
            f"against {ref[MAP_TIME]:.2f}: {best['speed-up']:.3g}x faster ({part.get('device', '')}, batch "
            f"{part.get('batch')}, n = {part.get('n')})" + tail)


def _point(r: dict | None, ref: dict | None = None) -> str:
    if r is None:
        return "none"
    ratio = f", FD / reference {_shown(r, RATIO, MAP_METRIC)}" if r.get(RATIO) is not None else ""
    faster = f", {ref[MAP_TIME] / r[MAP_TIME]:.3g}x faster than {ref['label']}" if ref is not None else ""
    return (f"{r['label']} ({r['NFE']} evaluations), FD {_shown(r, FD_INTERVAL, MAP_METRIC)}{ratio}, "
            f"{r[MAP_TIME]:.3f} ms per image{faster}")


def within_interval_lines(part: dict) -> list[str]:
    """Issue 30's headline, from the numbers: the fastest point whose FD lies at or below the upper end of the
    reference's 95% interval, overall and within each budget of network evaluations (with the best FD there,
    whether or not it qualifies); empty for a map without intervals."""
    got = part.get("within interval")
    if not got:
        return []
    ref = next(r for r in part["rows"] if r["label"] == part["reference"])
    lines = [f"fastest setting whose FD is within {ref['label']}'s interval ({_shown(ref, FD_INTERVAL, MAP_METRIC)}: "
             f"FD <= {got['limit']:.2f}): {_point(got['headline'], ref)}"]
    for b, inside in sorted(got["budgets"].items()):
        lines.append(f"  within {b} network evaluations: fastest within the interval: {_point(inside['headline'], ref)}"
                     f"; best FD: {_point(inside['best'])}")
    return lines


CACHES = "step caching"
STEPS = "fewer steps"
DISTILLED = "distillation"
BEST = "best at this time"


def approach(r: dict) -> str | None:
    """Which answer to "faster sampling" a point is: a step cache on the plain U-Net's sampler (`CACHES`), the
    plain U-Net with a sampler and step count alone (`STEPS`), a distilled student (`DISTILLED`), or None."""
    from .report_claims import is_solver_point
    if r.get("family") == DISTILLED:
        return DISTILLED
    if is_solver_point(r):
        return STEPS
    plain = r["model"] == "U-Net" or r["model"] in CACHING_MODELS            # (a learned cache: its own U-Net's)
    if plain and r["rung"] == "fp32" and r["c"] is None and (r.get("cache") or r["cache interval"]):
        return CACHES
    return None


def equal_time_table(part: dict):
    """Caching vs fewer steps vs distillation at equal time: for each caching point, its time as the budget, and in
    each approach the point of lowest FD that runs within that time (fewer steps and distillation: any sampler or
    step count; a student with what its distillation chain cost to train), each FD with its 95% interval. `BEST`
    names the approach of lowest FD when its interval lies wholly below every other's there, else "inconclusive"
    with the approaches whose intervals overlap it (an unpaired reading of settings sampled from the same x_T: it can
    only err towards inconclusive)."""
    import pandas as pd
    rows = [r for r in part["rows"] if r["label"] != part["reference"]]
    by = {k: [r for r in rows if approach(r) == k] for k in (CACHES, STEPS, DISTILLED)}

    def best(kind, t):
        fit = [r for r in by[kind] if r[MAP_TIME] <= t * 1.0001]
        return min(fit, key=lambda r: r[MAP_METRIC]) if fit else None

    def interval(r):
        e = r.get(FD_INTERVAL)
        return fd_sweep.estimate_from(e) if isinstance(e, dict) else e

    out = []
    for c in sorted(by[CACHES], key=lambda r: r[MAP_TIME]):
        t, row = c[MAP_TIME], {"time budget (ms per image)": round(c[MAP_TIME], 3)}
        got = {CACHES: best(CACHES, t), STEPS: best(STEPS, t), DISTILLED: best(DISTILLED, t)}
        for kind, r in got.items():
            paid = f" (trained {r['training (min)']:.0f} min)" if r is not None and r.get("training (min)") else ""
            row[kind] = "-" if r is None else f"{r['label']}: FD {_shown(r, FD_INTERVAL, MAP_METRIC)}{paid}"
        there = {kind: interval(r) for kind, r in got.items() if r is not None and interval(r) is not None}
        lead = min(there, key=lambda k: there[k].value) if len(there) > 1 else None
        rivals = [k for k in there if k != lead and not there[lead].high < there[k].low] if lead else []
        row[BEST] = "-" if lead is None else lead if not rivals else f"inconclusive ({', '.join([lead, *rivals])})"
        out.append(row)
    if not by[DISTILLED]:
        note = "no distilled model on this map yet"
        for row in out:
            row[DISTILLED] = note
    return pd.DataFrame(out).set_index("time budget (ms per image)")


def reach_for_lines(part: dict) -> list[str]:
    """What to reach for, generated from the measured front: the front's points from fastest to best, each with
    its family and FD, the families that never reach the front, and the methods whose FLOP saving did not become a
    time saving (`report_claims.beside_base`)."""
    rows = part["rows"]
    front = pareto_front(rows, x=MAP_TIME, y=MAP_METRIC)
    lines = ["on this map (" + part.get("device", "") + "), from fastest to best, the points nothing beats in both "
             "time and FD:"]
    lines += [f"  {r['family']}: {r['label']}, {r[MAP_TIME]:.3f} ms per image, FD {_shown(r, FD_INTERVAL, MAP_METRIC)}"
              for r in front]
    on_front = {r["family"] for r in front}
    off = sorted({r["family"] for r in rows} - on_front)
    if off:
        lines.append("never on the front here (something else is both faster and better): " + ", ".join(off))
    gaps = [r for r in beside_base(rows) if r.get("FLOPs not time")]
    if gaps:
        lines.append("FLOPs saved that did not become time (time saving under half the FLOP saving): " + ", ".join(
            f"{r['point']} ({100 * r['FLOP saving']:.0f}% fewer FLOPs, {100 * r['time saving']:.0f}% less time)"
            for r in gaps))
    return lines


# ------------------------------------------------------------------------------------------ notebook 07's cells

def map_lines(part: dict) -> list[str]:
    """How a digits map was measured, in lines: device, batch, rounds, FD's sample count and the real-data floor,
    then where every model's weights came from."""
    fd = part.get("fd") or {}
    where = f" · FD measured on {fd['device']}, {fd['utc'][:10]}" if "device" in fd else ""
    return [f"{part['device']} · batch {part['batch']} · {part['rounds']} interleaved rounds · FD of {part['n']} "
            f"samples against the training digits · held-out real digits {part['floor']:.2f}{where}"] + \
        ([f"  FD: {fd['how']}"] if "how" in fd else []) + \
        [f"  {label}: {provenance}" for label, provenance in part["weights"].items()]


MAP_COLUMNS = ["family", "model", "sampler", "steps", "NFE", "full U-Net calls", "cache", "rung", FLOPS, MAP_TIME,
               "IQR (ms)", "speed-up", MAP_METRIC]


def map_table(rows: list[dict]):
    """A digits map's points as a DataFrame by label, with the `MAP_COLUMNS`, and when the map carries them the FD
    with its 95% interval and the paired ratio to the reference, as text ("3.41 [3.30, 3.52]")."""
    import pandas as pd
    table = pd.DataFrame(rows).set_index("label").reindex(columns=MAP_COLUMNS)     # older files: no FLOPs, cache
    for key in (FD_INTERVAL, RATIO):
        if any(r.get(key) is not None for r in rows):
            table[key] = [_shown(r, key, MAP_METRIC) if r.get(key) is not None else "-" for r in rows]
    return table


def summary(part: dict, *, solver_rows: list[dict], front: list[dict], claim_rows: list[dict],
            verdicts: list[dict]) -> None:
    """What we found, printed: the map's headline, the best a solver alone does (``solver_rows``: the map's points
    that only change the sampler), the Pareto front, each method beside its own baseline, the verdicts of every
    study (``claim_rows``: `gather_verdicts`' rows; this project's own targets named apart) and this notebook's."""
    rows = part["rows"]
    lines = [headline_line(part), *within_interval_lines(part)]
    solver_best = judge_map([rows[0]] + [r for r in solver_rows if r is not rows[0]], rows[0],
                            tolerance=part.get("tolerance", TOLERANCE))["headline"]
    if solver_best:
        lines.append(f"with a solver alone (no method, fp32): {solver_best['label']}, FD "
                     f"{solver_best[MAP_METRIC]:.2f}, {solver_best['speed-up']:.3g}x faster than {rows[0]['label']}")
    lines.append("Pareto front: " + " < ".join(r["label"] for r in front))
    lines += [f"  {r['point']}: {r['speed-up']:.2f}x {r['against']}, FD {r['FD']:.2f} vs {r['FD of the baseline']:.2f}"
              for r in beside_base(rows)]
    total = {v: sum(c[v] for c in verdict_counts(claim_rows).values()) for v in VERDICTS}
    lines.append("the studies' claims: " + ", ".join(f"{n} {v}" for v, n in total.items()))
    targets = [f"{r['key']} ({r['study']}) {r['verdict']}" for r in claim_rows if is_target(r)]
    if targets:
        lines.append("this project's own targets, not counted among the claims: " + ", ".join(targets))
    print("\n".join(lines + verdict_lines(verdicts)))


# ---- fastdiff against diffusers on the same weights (benchmarks/vs_diffusers.py)

def vs_diffusers(results_dir, device_type: str = "cpu"):
    """(a line: the machine, date, each side's best and the ratio against the target; the timed rows as a DataFrame)
    of the committed `benchmarks/vs_diffusers.py` result."""
    import pandas as pd
    data = read_benchmark("vs_diffusers", device_type, root=results_dir)
    d, f, env = data["diffusers best"], data["fastdiff best"], data["environment"]
    line = (f"{env['device']}, {env['utc'][:10]}, batch {data['batch']}, {data['rounds']} interleaved rounds; equal "
            f"quality: FD <= {data['reference']['limit']:.2f} (the upper end of {data['reference']['label']}'s "
            f"interval {data['reference']['FD [95%]']}). fastdiff's best: {f['label']} ({f['ms per image']:.2f} ms, FD "
            f"{f['FD [95%]']}" + ("" if data.get("fastdiff within limit", True) else ", above the limit") + "); ")
    if d is None:
        line += f"diffusers: no setting at equal quality ({data.get('why', 'none within the limit')})"
    else:
        lo, hi = data["speed-up"]["ratio range (IQRs)"]
        line += (f"diffusers' best: {d['label']} ({d['ms per image']:.2f} ms per image, FD {d['FD [95%]']}); fastdiff "
                 f"is {data['speed-up']['ratio']:.2f}x as fast [{lo:.2f}, {hi:.2f} over the IQRs]: the target "
                 f"({data['target']}) is " + ("met" if data["target met"] else "not met"))
    cols = ["library", "FD [95%]", "ms per image", "IQR (ms)", "time / fastdiff best"]
    return line, pd.DataFrame(data["rows"]).set_index("label").reindex(columns=cols)


# ---- the map's FD measurement itself (its noise, read on pairs that share x_T)

def read_map_fd(results_dir) -> dict:
    """The committed digits_fd.json (`benchmarks/digits_fd.py`), whose "07_report" section holds the map's FDs."""
    return read_benchmark("digits_fd", root=results_dir)


def map_fd_header(data: dict) -> str:
    """Where and when the map's FDs were measured, and the command that measures them again."""
    return fd_sweep.header(data, FD_STUDY)


def noise_pairs(data: dict):
    """The map's paired comparisons that tell convergence from noise (`speed_quality_map_fd.SCATTER`)."""
    return pair_table(data["studies"][FD_STUDY])
