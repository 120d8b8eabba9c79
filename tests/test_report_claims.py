"""Notebook 07's own claims (DeepCache, DPM-Solver++, Heun on Karras sigmas): the papers' numbers reproduce, a
partly keeps the quality bound, and an interval across a bound is inconclusive."""
import pytest

from fastdiff import papers
from fastdiff.measure.intervals import Estimate
from fastdiff.studies import report_claims
from fastdiff.verdicts import judge


def verdict(key, m):
    return next(r for r in judge(report_claims.CLAIMS, m) if r["key"] == key)["verdict"]


def test_deepcaches_own_numbers_reproduce_and_a_faster_run_that_ruins_quality_is_never_partly():
    speedup, fid, ddim = (papers.value("07_report", v, m) for v, m in (("DeepCache N=5, DDIM 100", "speed-up"),
                                                                        ("DeepCache N=5, DDIM 100", "FID"),
                                                                        ("DDIM 100", "FID")))
    paper = {"deepcache speed-up": speedup, "deepcache FD": fid, "ddim100 FD": ddim, "deepcache FD ratio": fid / ddim}
    assert verdict("deepcache", paper) == "reproduced"
    assert verdict("deepcache", {**paper, "deepcache speed-up": 1.3}) == "partly"
    assert verdict("deepcache", {**paper, "deepcache speed-up": 1.3, "deepcache FD ratio": 3.0}) == "contradicted"
    assert verdict("deepcache", {**paper, "deepcache FD ratio": Estimate(1.4, 1.2, 1.7, 1000, "b")}) == "inconclusive"


@pytest.mark.parametrize("fd, verdict_expected", [(3.5, "reproduced"), (4.0, "partly"), (5.0, "contradicted"),
                                                  (Estimate(3.7, 3.4, 4.0, 1000, "b"), "inconclusive")])
def test_a_solver_within_10_percent_of_ddpm_1000_reproduces(fd, verdict_expected):
    m = {"reference FD": 3.41, "dpm20 FD": fd, "dpm20 speed-up": 50.0}
    assert verdict("dpm-solver", m) == verdict_expected


def test_the_map_claims_read_the_paired_ratios_when_the_map_carries_them():
    """Paired over the same x_T, a ratio is far tighter than two FD intervals allow: the rules read it, and a map
    read back from JSON gives the ratios back as Estimates."""
    from fastdiff.studies import speed_quality_map as sqm
    ref = Estimate(1.4, 0.1, 2.3, 1000, "b")
    fd = Estimate(1.3, 0.3, 2.0, 1000, "b")
    m = {"reference FD": ref, "dpm20 FD": fd, "dpm20 speed-up": 50.0}
    assert verdict("dpm-solver", m) == "inconclusive"                       # two wide intervals: undecided
    assert verdict("dpm-solver", {**m, "dpm20 FD ratio": Estimate(0.95, 0.9, 1.05, 1000, "p")}) == "reproduced"
    assert verdict("dpm-solver", {**m, "dpm20 FD ratio": Estimate(1.6, 1.4, 1.8, 1000, "p")}) == "contradicted"
    rows = [{"label": "DDPM 1000", sqm.METRIC: 1.4, sqm.TIME: 1.0, "speed-up": 1.0, sqm.FD_INTERVAL: ref},
            {"label": "DDIM 100", sqm.METRIC: 2.6, sqm.TIME: 0.1, "speed-up": 10.0,
             sqm.FD_INTERVAL: Estimate(2.6, 1.1, 3.9, 1000, "b")},
            {"label": "DeepCache N=5, DDIM 100", sqm.METRIC: 3.6, sqm.TIME: 0.04, "speed-up": 25.0,
             sqm.FD_INTERVAL: Estimate(3.6, 2.1, 5.0, 1000, "b"),
             sqm.PAIRED: {"DDIM 100": {"value": 1.34, "low": 1.25, "high": 1.41, "n": 1000, "method": "p"}}}]
    part = sqm.estimates_in({"rows": rows, "reference": "DDPM 1000", "headline": None})
    measured = report_claims.measured_for_claims(part)
    assert measured["deepcache FD ratio"].high == 1.41 and verdict("deepcache", measured) == "reproduced"


@pytest.mark.parametrize("key, label", [("encoder-propagation", "encprop"), ("first-block-cache", "fbcache"),
                                        ("block-caching", "blockcache")])
def test_the_added_step_caches_are_judged_on_speed_and_the_paired_fd_ratio(key, label):
    variant = {"encprop": "encoder propagation, DDIM 50", "fbcache": "First Block Cache, FLUX.1-dev",
               "blockcache": "Block Caching, fewest"}[label]
    anchor = papers.value("07_report", variant, "speed-up")
    m = {f"{label} speed-up": anchor, f"{label} FD": 3.2, "DDIM 50 FD": 3.1, f"{label} FD ratio": 1.03}
    assert verdict(key, m) == "reproduced"
    gain = anchor - 1                               # the paper's saving: 80% of it reproduces, 40% is partly
    for share, expected in ((0.85, "reproduced"), (0.75, "partly"), (0.45, "partly"), (0.35, "contradicted")):
        assert verdict(key, {**m, f"{label} speed-up": 1 + share * gain}) == expected, share
    assert verdict(key, {**m, f"{label} FD ratio": 2.0}) == "contradicted"       # fast, but quality lost
    assert verdict(key, {**m, f"{label} FD ratio": Estimate(1.4, 1.2, 1.7, 1000, "p")}) == "inconclusive"


def test_unipc_is_judged_on_its_paired_ratio_to_dpm_solver_at_the_same_steps():
    ratio = lambda v, lo, hi: {"unipc10 FD ratio": Estimate(v, lo, hi, 1000, "p")}  # noqa: E731
    assert verdict("unipc", ratio(0.8, 0.7, 0.9)) == "reproduced"
    assert verdict("unipc", ratio(1.2, 1.1, 1.3)) == "contradicted"
    assert verdict("unipc", ratio(0.95, 0.8, 1.1)) == "inconclusive"
    from fastdiff.studies import speed_quality_map as sqm
    rows = [{"label": "DDPM 1000", sqm.METRIC: 1.4, sqm.TIME: 1.0},
            {"label": "UniPC 10", sqm.METRIC: 1.0, sqm.TIME: 0.01,
             sqm.PAIRED: {"DPM-Solver++(2M) 10": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 1000, "method": "p"}}}]
    part = sqm.estimates_in({"rows": rows, "reference": "DDPM 1000", "headline": None})
    assert verdict("unipc", report_claims.measured_for_claims(part)) == "reproduced"


def test_int8_is_judged_on_the_simulated_w8a8_quality_with_the_real_int8_speed_beside():
    """The claim: 8-bit PTQ does NOT keep quality. A static-PTQ FD ratio wholly above 1.1 reproduces it, wholly at or
    below 1.1 contradicts it; across 1.1 inconclusive; torchao's real (linear-only) int8 time is shown, not judged."""
    m = {"int8 speed-up": 0.85, "int8 FD ratio": 1.03, "int8-static FD ratio": Estimate(1.4, 1.2, 1.6, 1000, "p"),
         "int8-dynamic FD ratio": Estimate(1.0, 0.9, 1.08, 1000, "p")}
    row = next(r for r in judge(report_claims.CLAIMS, m) if r["key"] == "int8")
    assert row["verdict"] == "reproduced" and "0.85x" in row["ours"] and "dynamic" in row["ours"]
    assert verdict("int8", {"int8-static FD ratio": Estimate(1.0, 0.95, 1.05, 1000, "p")}) == "contradicted"
    assert verdict("int8", {"int8-static FD ratio": Estimate(1.1, 1.0, 1.2, 1000, "p")}) == "inconclusive"
    assert verdict("int8", {"int8 speed-up": 0.85, "int8 FD ratio": 1.03}) == "not testable here"


def test_consistency_distillation_reads_the_paired_ratio_of_the_one_step_students():
    """The CM paper's own numbers (CD 3.55 against PD 8.34 at one step) reproduce; a ratio wholly above 1
    contradicts; one across 1 is inconclusive."""
    cd, pd = (papers.value("07_report", v, "FID") for v in ("CD (LPIPS), 1 step", "PD, 1 step"))
    assert verdict("consistency-distillation", {"cd1 FD ratio": cd / pd, "cd1 FD": cd, "pd1 FD": pd}) == "reproduced"
    assert verdict("consistency-distillation", {"cd1 FD ratio": Estimate(1.3, 1.2, 1.4, 1000, "p")}) == "contradicted"
    assert verdict("consistency-distillation", {"cd1 FD ratio": Estimate(0.95, 0.8, 1.1, 1000, "p")}) == \
        "inconclusive"
    assert verdict("consistency-distillation", {}) == "not testable here"


def test_the_added_claims_read_their_points_from_a_map_read_back_from_json():
    """The labels the claims read are the map's own (a typo would turn a verdict into "not testable"): the
    scale-shift and training-free Block Caching, both CD ratios beside, and the quality-only int8 rows."""
    from fastdiff.studies import speed_quality_map as sqm

    def e(v):
        return {"value": v, "low": v - 0.1, "high": v + 0.1, "n": 1000, "method": "p"}

    def row(label, time, **paired):
        return {"label": label, sqm.METRIC: 3.0, sqm.TIME: time, "speed-up": 1.0, sqm.PAIRED: paired}
    labels = {p.label for p in sqm.POINTS["quick"]}
    rows = [row("DDPM 1000", 10.0), row("DDIM 50", 1.0), row("PD student, 1 step", 0.1),
            row("Block Caching 0.2 + scale-shift, DDIM 50", 0.5, **{"DDIM 50": e(7.3)}),
            row("Block Caching 0.2, DDIM 50", 0.5, **{"DDIM 50": e(9.1)}),
            row("CD student, 1 step", 0.1, **{"PD student, 1 step": e(2.3)}),
            row("CD student, 2 steps", 0.2, **{"PD student, 2 steps": e(2.1)}),
            row("CD student, mu 0.95, 1 step", 0.1, **{"PD student, 1 step": e(1.3)})]
    untimed = [{"label": p.label, sqm.METRIC: 2.0, sqm.PAIRED: {"DDIM 50": e(0.7 + i)}}
               for i, p in enumerate(sqm.QUALITY_ONLY["quick"])]
    assert {r["label"] for r in rows} <= labels and not {r["label"] for r in untimed} & labels
    raw = {"rows": rows, "quality only": untimed, "reference": "DDPM 1000", "headline": None}
    m = report_claims.measured_for_claims(sqm.estimates_in(raw))
    assert m["blockcache FD ratio"].value == 7.3 and m["blockcache-free FD ratio"].value == 9.1
    assert m["int8-dynamic FD ratio"].value == 0.7 and m["int8-static FD ratio"].value == 1.7
    assert m["cd2 FD ratio"].value == 2.1 and m["cd-mu95 FD ratio"].value == 1.3
    assert verdict("int8", m) == "reproduced" and verdict("block-caching", m) == "contradicted"
    rows_only = report_claims.measured_for_claims(sqm.estimates_in({**raw, "quality only": []}))
    assert verdict("int8", rows_only) == "not testable here"          # no paired ratio: nothing is judged
