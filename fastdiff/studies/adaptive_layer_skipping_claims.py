"""Study 2's claims and verdicts (notebook 02), the numbers they read, the notebook's tables of the FD measurement,
its results file and its printed summary. The study itself is `fastdiff.studies.adaptive_layer_skipping`, its FD
settings `adaptive_layer_skipping_fd`.

Every FD a rule reads is an `Estimate` of the FD measurement (n = 1000 per setting on the quick profile, bias-corrected,
95% bootstrap interval), read two ways:
- *within one model* (c = 2 against c = 0 of the same weights) the paired ratio of the two FDs, which share x_T;
- *across two trained models* both FDs, each moved from its interval's low end less the largest gap between its
  model's seeds to its high end plus that gap (`fastdiff.measure.seed_spread.compare_within_spread`): the noise of
  the samples and of training together. A model without seed replicas borrows the gap of zero-consistent-c2, the
  same U-Net, data and budget (`_standing_in`), and the verdict says so.
A comparison that these ranges can carry across its threshold is ``inconclusive``.
"""
from __future__ import annotations

import dataclasses

from .. import papers
from ..measure import fd_sweep
from ..measure.seed_spread import compare_within_spread, spread_for_claims
from ..methods.layer_skipping import SKIP_TYPES
from ..nn import count_parameters
from ..results import Results
from ..verdicts import Claim, all_of, any_of, grade_interval, holds, need, verdict_lines
from .adaptive_layer_skipping import (PAPER_TABLE1_FID, PAPER_TABLE2_SPEEDUP, PAPER_TABLE3_FID, PLAIN, STUDY,
                                      VARIANTS, ZOO_MODELS, SkippingProfile)
from .adaptive_layer_skipping_fd import SHORT, equal_time_key, key
from .common import weights_label

FD = "FD (LeNet-MNIST)"
PAPER_SOURCE = "layer-skipping paper (Giladi et al.), Tables 1-3: CIFAR-10, FID on 50k samples"
STAND_IN = "skipping/zero-consistent-c2"     # the recipe whose spread of retraining stands in for those without one


# ------------------------------------------------------------------------------------------ the numbers the rules read

def measured_for_claims(fd: dict, speed: list[dict], *, spread: dict | None = None) -> dict:
    """The numbers the claims read: from ``fd`` (study 2's section of the FD measurement) each setting's FD
    ("fd:<key>"), the paired ratios and differences ("ratio:<a>|<b>", "difference:<a>|<b>"), as `Estimate`s, and
    each setting's zoo entry and sampling ("cells", for the spread); the time saved and FLOPs saved from the live
    timing table (``speed``); ``spread``: the seed_spread benchmark's file."""
    m = {f"fd:{k}": e for k, e in fd_sweep.estimates(fd).items()}
    for (a, b), p in fd_sweep.pairs(fd).items():
        m[f"ratio:{a}|{b}"], m[f"difference:{a}|{b}"] = p["ratio"], p["difference"]
    m["cells"] = {k: {"entry": ZOO_MODELS[r["sampling"]["variant"]], "setting": {
        "sampler": r["sampling"]["sampler"], "steps": r["sampling"]["steps"], "c": r["sampling"]["c"],
        "eta": r["sampling"]["options"]["eta"], "n": r["n"], "estimator": "bias-corrected FD"}}
        for k, r in fd["settings"].items()}
    m["equal time"] = next(({**r["sampling"]["equal_time"], "steps": r["sampling"]["steps"]}
                            for r in fd["settings"].values() if "equal_time" in r["sampling"]), None)
    m["spread"] = None if spread is None else spread_for_claims(spread, metric=FD)
    for r in speed:
        m[f"time saved:{r['skip type']}:c{r['c']:g}"] = r["time saved %"]
        m[f"FLOPs saved:{r['skip type']}:c{r['c']:g}"] = r["FLOPs saved %"]
    return m


def _compared(m: dict, *keys: str) -> list[tuple[str, object, dict]]:
    """(zoo entry, FD Estimate, setting) of each setting a claim compares, for `compare_within_spread`."""
    cells = m.get("cells", {})
    return [(cells.get(k, {}).get("entry", k), need(m, f"fd:{k}"), cells.get(k, {}).get("setting", {})) for k in keys]


def _standing_in(spread: dict | None, compared: list) -> tuple[dict | None, str]:
    """(``spread`` with `STAND_IN`'s gap for every compared entry that has none of its own, what was borrowed)."""
    entries = (spread or {}).get("entries")
    missing = sorted({e for e, _, _ in compared} - set(entries or {}))
    if not entries or STAND_IN not in entries or not missing:
        return spread, ""
    return {**spread, "entries": {**entries, **{e: entries[STAND_IN] for e in missing}}}, \
        f"{', '.join(missing)}: no seed replicas, the gap of {STAND_IN} (the same U-Net, data and budget) stands in; "


def _paired(m: dict, a: str, b: str, kind: str = "difference") -> str:
    """The paired FD(a) - FD(b) (or ratio) of the measurement, shown beside a verdict across two models: the
    sampling noise alone, narrower than the verdict's range (which adds the spread of retraining)."""
    e = m.get(f"{kind}:{a}|{b}")
    sign = " - " if kind == "difference" else " / "
    return "" if e is None else f"paired FD({a}){sign}FD({b}) = {e.format(2)}, sampling noise only; "


def _gaps(m: dict, pairs: dict[str, tuple[str, str]], *, stand_in: bool = False):
    """({label: FD(a) - FD(b) of two trained models within their intervals and the spread of retraining}, what was
    borrowed for them) for ``pairs`` {label: (a, b)}."""
    compared = {label: _compared(m, a, b) for label, (a, b) in pairs.items()}
    spread, borrowed = _standing_in(m.get("spread"), [c for cs in compared.values() for c in cs]) if stand_in \
        else (m.get("spread"), "")
    return {label: compare_within_spread(lambda x, y: x - y, c, spread, label=label)
            for label, c in compared.items()}, borrowed


# ------------------------------------------------------------------------------------------ the claims

def _claims():
    def paper(variant, metric="FID"):
        return papers.value(STUDY, variant, metric)

    def time_saved(m):
        ours, paper_saved = need(m, "time saved:zero:c2"), paper("zero, c=2", "time saved")
        r = need(m, f"ratio:{key('zero', 2)}|{key('zero', 0)}")
        kept = holds(r, 1.5)      # the paper's zero skipping: FID 4.58 -> 5.59 (1.22x)
        verdict = grade_interval(all_of(abs(ours - paper_saved) <= 10, kept), all_of(ours > 0, kept))
        why = {True: "the skipped levels carry that share of the time here" if ours > 0 else "no time saved",
               False: "FD at c=2 is more than 1.5x its c=0 value",
               None: "the interval of the FD ratio straddles 1.5"}[kept]
        return verdict, f"{ours:.1f}% less time (FLOPs predict {need(m, 'FLOPs saved:zero:c2'):.1f}%); FD(c=2) / " \
            f"FD(c=0) = {r.format(2)} (paired, n={r.n})", why

    def plain_falls_apart(m):
        r = need(m, f"ratio:{key(PLAIN, 2)}|{key(PLAIN, 0)}")
        verdict = grade_interval(holds(r, 3, better="higher"), holds(r, 1.5, better="higher"))
        return verdict, f"FD(c=2) / FD(c=0) = {r.format(2)} (paired, n={r.n})", {
            "reproduced": "skipping levels the network was not trained without ruins it",
            "partly": "skipping levels the network was not trained without hurts less here",
            "contradicted": "the plainly trained network keeps its quality when levels are skipped",
            "inconclusive": "the interval of the ratio straddles 3 (or 1.5)"}[verdict]

    def trained_holds(m):
        fds = _compared(m, key(PLAIN, 0), key(PLAIN, 2), key("zero", 0), key("zero", 2))
        b0, b2, z0, z2 = (fd for _, fd, _ in fds)
        lower = compare_within_spread(lambda b2, z2: z2 - b2, fds[1::2], m.get("spread"), label="c=2: zero - plain")
        flatter = compare_within_spread(lambda b0, b2, z0, z2: z2 / z0 - b2 / b0, fds, m.get("spread"),
                                        label="growth zero - plain")
        better, flat = lower.holds(0), flatter.holds(0)
        verdict = grade_interval(all_of(better, flat), any_of(better, flat))
        return verdict, f"at c=2: zero {z2.format(1)} vs plain {b2.format(1)}; growth {z2.value / z0.value:.2f}x " \
            f"vs {b2.value / b0.value:.2f}x", \
            {"reproduced": "k(t)-consistent training holds quality", "partly": "only one of the two holds",
             "contradicted": "the trained model degrades more than the plainly trained one",
             "inconclusive": "the intervals and the spread of retraining can turn a comparison the verdict turns on"
             }[verdict] + f"; {_paired(m, key('zero', 2), key(PLAIN, 2))}{flatter.source}; {flatter.span}; " \
            f"{lower.span}"

    def c0_cost(m):
        fds = _compared(m, key("zero", 0), key(PLAIN, 0))
        r = compare_within_spread(lambda z0, b0: z0 / b0, fds, m.get("spread"), label="the ratio")
        return grade_interval(r.holds(2), r.holds(3)), f"FD {fds[0][1].format(2)} vs {fds[1][1].format(2)} " \
            f"({r.value:.2f}x)", f"the full network of the skipping-trained model; " \
            f"{_paired(m, key('zero', 0), key(PLAIN, 0), 'ratio')}{r.source}; {r.span}"

    def interpolate_best(m):
        # interpolate's rank among the three skip types at c=5: each other type is surely better (its FD range wholly
        # below interpolate's), surely worse (wholly above) or undecided (the ranges overlap); the rank lies between
        # 1 + the surely better and 1 + those not surely worse. Reproduced: rank 1 for sure; partly: rank <= 2 for
        # sure; contradicted: rank 3 for sure; inconclusive when the rank range straddles the verdict's bound.
        gaps, borrowed = _gaps(m, {s: (key("interpolate", 5), key(s, 5)) for s in ("zero", "duplicate")},
                               stand_in=True)
        side = [g.holds(0) for g in gaps.values()]          # True: interpolate surely lower
        best, worst = 1 + side.count(False), 3 - side.count(True)
        first = True if worst == 1 else False if best > 1 else None
        top2 = True if worst <= 2 else False if best > 2 else None
        fds = {s: need(m, f"fd:{key(s, 5)}") for s in ("zero", "duplicate", "interpolate")}
        rank = str(best) if best == worst else f"{best} to {worst}"
        return grade_interval(first, top2), ", ".join(f"{s} {e.format(1)}" for s, e in fds.items()), \
            f"interpolate ranks {rank} of 3 at c=5; {borrowed}" + "".join(
                _paired(m, key("interpolate", 5), key(s, 5)) for s in gaps) + "; ".join(
                f"interpolate - {s} within it {g.low:.3g} to {g.high:.3g}" for s, g in gaps.items())

    def equal_time(m):
        # DDIM at equal time: the plain baseline with fewer steps against zero skipping at c=2, at eta 1 and eta 0
        gaps, _ = _gaps(m, {f"eta {eta:g}: DDIM - skipping": (equal_time_key(eta), key("zero", 2, eta=eta))
                            for eta in (1.0, 0.0)})
        gaps = dict(zip((1.0, 0.0), gaps.values()))
        wins = [g.holds(0) for g in gaps.values()]
        verdict = grade_interval(all_of(*wins), any_of(*wins))
        t = m.get("equal time") or {}
        live = m.get("time saved:zero:c2")
        fds = {eta: need(m, f"fd:{equal_time_key(eta)}", f"fd:{key('zero', 2, eta=eta)}") for eta in gaps}
        ours = "; ".join(f"eta {eta:g}: DDIM {t.get('steps', '?')} steps {d.format(2)} vs skipping {z.format(2)}"
                         for eta, (d, z) in fds.items())
        timing = f"the baseline's {t.get('steps')} steps fit in the time of {t.get('of')} ({t.get('time_fraction')} " \
            f"of c=0's: {t.get('source')}" + ("" if live is None else f"; {1 - live / 100:.3f} in this run") + \
            f"; the FLOPs predict {t.get('flops_fraction')})"
        return verdict, ours, {"reproduced": "at equal time DDIM with fewer steps beats skipping, as the paper "
                               "concludes", "partly": "DDIM wins at one eta only", "contradicted": "at equal time "
                               "skipping beats DDIM with fewer steps here", "inconclusive": "the intervals and the "
                               "spread of retraining can turn the comparison"}[verdict] + f"; {timing}; " + \
            "".join(_paired(m, equal_time_key(eta), key("zero", 2, eta=eta)) for eta in gaps) + \
            "; ".join(dict.fromkeys(g.source for g in gaps.values())) + "; " + "; ".join(g.span for g in gaps.values())

    def consistent(m):
        cs = [c for c in (1, 2, 3, 5) if f"fd:{key('zero', c)}" in m and f"fd:{key('zero, uniform k', c)}" in m]
        gaps, borrowed = _gaps(m, {c: (key("zero", c), key("zero, uniform k", c)) for c in sorted({2, *cs})},
                               stand_in=True)
        at2 = gaps[2].holds(0)
        elsewhere = any_of(*(g.holds(0) for c, g in gaps.items() if c != 2))
        verdict = grade_interval(at2, elsewhere)
        ours = ", ".join(f"c={c}: {need(m, 'fd:' + key('zero', c)).value:.2f} vs "
                         f"{need(m, 'fd:' + key('zero, uniform k', c)).value:.2f}" for c in gaps)
        return verdict, f"FD consistent vs uniform k, {ours}", {
            "reproduced": "the consistent schedule beats uniform k at the c it is trained for",
            "partly": "the consistent schedule wins only at another c", "contradicted": "drawing k uniformly per "
            "batch trains the better model here", "inconclusive": "the intervals and the spread of retraining can "
            "turn the comparison"}[verdict] + "; " + _paired(m, key("zero", 2), key("zero, uniform k", 2)) + \
            borrowed + "; ".join(
                f"c={c}: consistent - uniform within it {g.low:.3g} to {g.high:.3g}" for c, g in gaps.items())

    saved = paper("zero, c=2", "time saved")
    plain0, plain2, zero0, zero2 = (paper(f"{v}, c={c}") for v in ("DDPM", "zero") for c in (0, 2))
    c5 = {v: paper(f"{v}, c=5") for v in ("interpolate", "zero", "duplicate")}
    spread_rule = "inconclusive if moving each FD by ± the largest gap between its model's seeds (the spread of " \
        "retraining, if given) beyond its 95% interval can "
    return [
        Claim("time", "skipping the deepest levels by k(t) at c = 2 cuts sampling time by about half",
              f"zero skipping: {saved:.1f}% less time at c=2 (Table 2)",
              "sampling-loop time at c=2 against c=0, zero skipping (live), and the paired ratio FD(c=2) / FD(c=0)",
              f"within 10 points of {saved:.1f}% with FD(c=2) <= 1.5x FD(c=0) (partly: any saving, with the same "
              "FD bound); "
              "inconclusive when the ratio's 95% interval straddles 1.5", time_saved),
        Claim("plain-falls-apart", "a normally trained network falls apart when levels are skipped at inference",
              f"FID {plain0:.2f} -> {plain2:.2f} at c=2 ({plain2 / plain0:.0f}x; Table 1, row DDPM)",
              "paired ratio FD(c=2) / FD(c=0) of the plainly trained model",
              "ratio >= 3 (partly: >= 1.5); inconclusive when its 95% interval straddles 3 (or 1.5)",
              plain_falls_apart),
        Claim("trained-holds", "k(t)-consistent training holds quality as c grows, unlike skipping a plainly "
              "trained model", f"zero: {zero0:.2f} -> {zero2:.2f} at c=2 against DDPM {plain0:.2f} -> {plain2:.2f} "
              "(Table 1)",
              "FD at c=2 and its growth from c=0, zero (consistent) against the plain baseline",
              "lower FD at c=2 and slower growth (partly: one of the two); " + spread_rule + "turn one",
              trained_holds),
        Claim("c0-cost", "training with skipping costs little quality when nothing is skipped",
              f"zero {zero0:.2f} vs DDPM {plain0:.2f} at c=0 ({zero0 / plain0:.2f}x; Table 1)",
              "FD at c=0, zero (consistent) against the baseline",
              "at most 2x the baseline (partly: 3x); " + spread_rule + "carry the ratio across 2 (or 3)", c0_cost),
        Claim("interpolate-best", "interpolate degrades least at large c",
              "c=5: " + " < ".join(f"{v} {fid:.2f}" for v, fid in c5.items()) + " (Table 1)",
              "FD at c=5 of the three skip types",
              "interpolate lowest (partly: second); its rank is decided only where its FD range (95% interval, "
              "widened by the spread of retraining) does not overlap the other's; inconclusive when the undecided "
              "ranks straddle the verdict's rank", interpolate_best),
        Claim("ddim-equal-time", "at equal sampling time, DDIM with fewer steps beats layer skipping (the paper's own "
              "conclusion)", "DDIM at half the steps (same time) is better: "
              f"eta 1 {paper('DDIM 50, eta 1'):.2f} (50 steps) vs ours {paper('zero c=2, DDIM 100, eta 1'):.2f} "
              f"(100), eta 0 {paper('DDIM 50, eta 0'):.2f} vs {paper('zero c=2, DDIM 100, eta 0'):.2f} "
              "(Table 3; Sec. 4.3 and 5)",
              "FD of the plain baseline at c=0 with the DDIM steps that take the time of zero skipping at c=2 "
              "(50 steps), against zero skipping, at eta 1 and eta 0",
              "DDIM lower at both etas (partly: at one); " + spread_rule + "turn one", equal_time),
        Claim("consistent-training", "k(t)-consistent batches train a better skipping model than k drawn uniformly",
              "Sec. 3 calls the consistent scheme its \"improved training scheme\" and trains every model of Tables "
              "1-3 with it; no FID of the uniform scheme is given", "FD of zero skipping trained with consistent "
              "batches and with uniform k, at every c >= 1",
              "consistent lower at c=2, the c it is trained for (partly: lower at another c); " + spread_rule +
              "turn it (uniform k has no seed replicas: zero-consistent's gap stands in)", consistent),
    ]


CLAIMS = _claims()


# ------------------------------------------------------------------------------------------ the notebook's tables

def _cell(fd: dict, k: str) -> str:
    r = fd["settings"].get(k)
    return "-" if r is None else fd_sweep.estimate_from(r["fd"]).format(2)


def quality_table(fd: dict, variants, cs):
    """The Table 1 analogue from the FD measurement: FD [95% interval] (bias-corrected) by variant and c."""
    import pandas as pd
    return pd.DataFrame({f"c = {c:g}": {v: _cell(fd, key(v, c)) for v in variants} for c in cs})


def kid_table(fd: dict, variants, cs):
    """KID (mean ± standard deviation over subsets, on the LeNet features) by variant and c."""
    import pandas as pd
    kid = lambda r: "-" if r is None else f"{r['kid']['mean']:.2f} ± {r['kid']['std']:.2f}"  # noqa: E731
    return pd.DataFrame({f"c = {c:g}": {v: kid(fd["settings"].get(key(v, c))) for v in variants} for c in cs})


def table3(fd: dict, profile: SkippingProfile):
    """The Table 3 analogue: FD [95% interval] of zero skipping at c=2 and the baseline at c=0, by eta and steps."""
    import pandas as pd
    rows = {(label, f"{eta:g}"): {s: _cell(fd, key(v, c, s, eta, profile=profile)) for s in profile.table3_steps}
            for v, c, label in (("zero", 2, "zero, c=2"), (PLAIN, 0, "baseline, c=0")) for eta in profile.table3_etas}
    return pd.DataFrame(rows).T.rename_axis(["model", "eta"]).rename(columns=lambda s: f"{s} steps")


def pairs_table(fd: dict):
    """The paired gaps the verdicts read: FD(a) / FD(b) and FD(a) - FD(b) with their 95% intervals, n."""
    import pandas as pd
    return pd.DataFrame([{"a": a, "b": b, "FD(a) / FD(b)": p["ratio"].format(2),
                          "FD(a) - FD(b)": p["difference"].format(2), "n": p["n"]}
                         for (a, b), p in fd_sweep.pairs(fd).items()]).set_index(["a", "b"])


def quality_rows(fd: dict, variants, cs) -> list[dict]:
    """{"variant", "c", FD, "FD low", "FD high"} of every measured (variant, c), for `plot_quality`."""
    return [{"variant": v, "c": c, **fd_sweep.estimate_from(fd["settings"][key(v, c)]["fd"]).row(FD)}
            for v in variants for c in cs if key(v, c) in fd["settings"]]


def plot_quality(rows: list[dict], *, floor=None, title: str = ""):
    """FD against c, one line per variant, its 95% interval as a band, the real held-out digits dashed."""
    from .. import plotting
    ax = plotting.plot_metric_vs_c(rows, FD, title=title)
    for line in ax.get_lines():
        pts = [r for r in rows if r["variant"] == line.get_label()]
        ax.fill_between([r["c"] for r in pts], [r[f"{FD} low"] for r in pts], [r[f"{FD} high"] for r in pts],
                        color=line.get_color(), alpha=0.2, lw=0)
    if floor is not None:
        ax.axhline(floor.value, ls="--", c="grey", label="real held-out digits (floor)")
        ax.legend(fontsize=8)
    return ax


def table2_beside_paper(speed: list[dict]):
    """The Table 2 analogue (`speed_table`'s rows) as a DataFrame: time saved (measured), FLOPs saved (predicted)
    and the paper's time saved, by skip type (rows) and c (columns)."""
    import pandas as pd
    s = pd.DataFrame(speed)
    return pd.concat({"time saved % (measured)": s.pivot(index="skip type", columns="c", values="time saved %"),
                      "FLOPs saved % (predicted)": s.pivot(index="skip type", columns="c", values="FLOPs saved %"),
                      "paper: time saved %": pd.DataFrame(PAPER_TABLE2_SPEEDUP).T}, axis=1)


# ------------------------------------------------------------------------------------------ results file and summary

def collect_results(run, *, dataset: str, weights: str, profile: SkippingProfile, fd: dict, demo: list[dict],
                    speed: list[dict]):
    """The notebook's numbers as `fastdiff.results` rows: every setting of the FD measurement with its interval,
    KID and machine, the live demonstration's FDs, and
    the live timing table."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    committed = {"measured on": fd["device"], "measured": fd["utc"], "source": "results/<cpu|cuda>/digits_fd.json"}
    for k, e in fd_sweep.estimates(fd).items():
        r = fd["floor"] if k == "floor" else fd["settings"][k]
        s = r.get("sampling")
        if s is None:
            res.add("real data", "held-out images", FD, e, uncorrected=e.uncorrected, kid=r["kid"]["mean"],
                    kid_std=r["kid"]["std"], **committed, dtype=fd_sweep.sampled_dtype(fd))
            continue
        res.add("layer skipping", s["variant"], FD, e, steps=s["steps"], c=s["c"], eta=s["options"]["eta"], key=k,
                uncorrected=e.uncorrected, kid=r["kid"]["mean"], kid_std=r["kid"]["std"], **committed,
                dtype=fd_sweep.sampled_dtype(fd, k),
                **({"equal_time": s["equal_time"]} if "equal_time" in s else {}))
    for r in demo:
        res.add("layer skipping", f"{r['variant']} (live demonstration)", FD, r["live"], steps=profile.quality_steps,
                c=r["c"], eta=profile.quality_eta, key=r["key"], uncorrected=r["live"].uncorrected)
    for r in speed:
        paper = PAPER_TABLE2_SPEEDUP.get(r["skip type"], {}).get(r["c"])
        common = dict(n=r["repeats"], steps=profile.speed_steps, c=r["c"], batch=profile.speed_batch)
        res.add("layer skipping", r["skip type"], "time per sampling call", r["median_ms"], **common)
        res.add("layer skipping", r["skip type"], "time saved", r["time saved %"], **common, paper_value=paper,
                paper_source=PAPER_SOURCE if paper is not None else "")
        res.add("layer skipping", r["skip type"], "FLOPs saved", r["FLOPs saved %"], **common)
    return res


def results_with_details(run, profile: SkippingProfile, *, n_train: int, levels: int, models: dict, provenance: dict,
                         train_info: dict, fd: dict, demo: list[dict], speed: list[dict], measured: dict,
                         verdicts: list[dict]):
    """The results file of notebook 02: its rows (`collect_results`, with the verdicts) and its details."""
    dataset = f"{profile.dataset}, {n_train} training images, {profile.image_size}x{profile.image_size}"
    res = collect_results(run, dataset=dataset, weights=weights_label(provenance), profile=profile, fd=fd,
                          demo=demo, speed=speed)
    res.verdicts = verdicts
    plain = lambda v: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v  # noqa: E731
    details = {"model": {"preset": profile.model, "overrides": profile.model_overrides, "levels": levels,
                         "parameters": {name: count_parameters(m) for name, m in models.items()}},
               "weights": provenance, "train": train_info, "train_c": profile.train_c,
               "variants": {n: dataclasses.asdict(v) for n, v in VARIANTS.items()},
               "fd_measurement": fd,
               "demo": [{**r, "live": plain(r["live"]), "committed": plain(r["committed"])} for r in demo],
               "speed": {"batch": profile.speed_batch, "steps": profile.speed_steps, "rows": speed},
               "measured_for_claims": {k: plain(v) for k, v in measured.items()},
               "paper": {"table1_fid": PAPER_TABLE1_FID, "table2_speedup": PAPER_TABLE2_SPEEDUP,
                         "table3_fid": {who: {str(eta): cells for eta, cells in t.items()}
                                        for who, t in PAPER_TABLE3_FID.items()}}}
    return res, details


def summary(*, fd: dict, speed: list[dict], verdicts: list[dict], variants, cs) -> None:
    """What we found, printed: each variant's FD with its interval at every c, the time each skip type saves at the
    largest c against what its FLOPs predict, the verdicts."""
    import pandas as pd
    s = pd.DataFrame(speed)
    lines = [f"{name:>28}: FD " + ", ".join(f"{_cell(fd, key(name, c))} at c={c:g}" for c in cs)
             for name in variants if name in SHORT]
    for skip in SKIP_TYPES:
        r = s[(s["skip type"] == skip) & (s.c == max(cs))].iloc[0]
        lines.append(f"{skip:>11}, c={r['c']:g}: {r['time saved %']:.1f}% less sampling time (FLOPs predict "
                     f"{r['FLOPs saved %']:.1f}%)")
    print("\n".join(lines + verdict_lines(verdicts)))
