"""The spread of retraining in the verdicts (`fastdiff.measure.seed_spread.compare_within_spread`): a comparison of
FDs holds, fails, or is undecided when moving each FD by ± the largest gap between its model's seeds can carry it
across its threshold; the rules of study 2 (c0-cost, trained-holds, consistent-training, whose uniform-k model
borrows zero-consistent's gap) and study 3 (comparable) turn inconclusive there,
name the spread file, and without one say that no spread was applied; the notebooks' table of the file."""
import math

import pytest

from fastdiff.measure.intervals import Estimate
from fastdiff.measure.seed_spread import compare_within_spread, spread, spread_for_claims, spread_header, spread_table
from fastdiff.studies import adaptive_layer_skipping_claims as skipping_claims
from fastdiff.studies import continuous_unet as cunet
from fastdiff.verdicts import judge
from test_skipping_fd import fd, section

FD = "FD (LeNet-MNIST)"
DDIM50 = {"sampler": "DDIM", "options": {"eta": 1.0}, "steps": 50, "batch_size": 256}
DDPM50 = {"sampler": "DDPM", "options": {}, "steps": 50, "batch_size": 200, "c": None}


def fake_file(entries: dict[str, tuple[str, dict, dict]], *, metric: str = FD) -> dict:
    """A spread file as benchmarks/seed_spread.py writes it: {entry: (study, sampling, {seed: FD or None})}."""
    out = {}
    for name, (study, sampling, by_seed) in entries.items():
        seeds = {str(s): {"entry": name, "fd": None if v is None else {
            "value": v, "low": v - 1.0, "high": v + 1.0, "n": 1000, "method": "bias-corrected bootstrap 95%",
            "uncorrected": v + 0.75}, "note": "" if v is not None else "not in the zoo yet: skipped"}
            for s, v in by_seed.items()}
        out[name] = {"study": study, "sampling": sampling, "seeds": seeds,
                     "spread": spread({s: v for s, v in by_seed.items() if v is not None})}
    return {"benchmark": "seed_spread", "metric": metric, "n": 1000, "n_boot": 100,
            "environment": {"device": "a test CPU", "device_type": "cpu", "utc": "2026-01-02T03:04:05+00:00"},
            "entries": out}


def skipping_file(plain_gap: float = 0.2, zero_gap: float = 0.6) -> dict:
    return fake_file({
        "skipping/baseline-plain": ("02_adaptive_layer_skipping", {**DDIM50, "c": 0.0}, {0: 1.5, 1: 1.5 + plain_gap}),
        "skipping/zero-consistent-c2": ("02_adaptive_layer_skipping", {**DDIM50, "c": 2.0},
                                        {0: 5.0, 1: 5.0 + zero_gap, 2: 5.0 + zero_gap / 2})})


def cunet_file(unet_gap: float = 0.4, cunet_gap: float = 1.0) -> dict:
    return fake_file({"cunet/unet": ("03_continuous_unet", DDPM50, {0: 2.2, 1: 2.2 + unet_gap, 2: None}),
                      "cunet/cunet": ("03_continuous_unet", DDPM50, {0: 2.0, 1: 2.0 + cunet_gap, 2: None})})


def ratio(a, b):
    return a / b


# ------------------------------------------------------------------------------------------------- the helper

def test_spread_for_claims_keeps_the_gaps_settings_machine_and_date():
    s = spread_for_claims(cunet_file(), metric=FD)
    assert s["file"] == "results/cpu/seed_spread.json" and s["device"] == "a test CPU" and s["date"] == "2026-01-02"
    assert s["entries"]["cunet/unet"]["largest_gap"] == pytest.approx(0.4)
    assert s["entries"]["cunet/unet"]["n_seeds"] == 2                     # the missing seed is not counted
    assert s["entries"]["cunet/cunet"]["setting"] == {"sampler": "DDPM", "steps": 50, "n": 1000,
                                                      "estimator": "bias-corrected FD"}
    assert skipping_file()["entries"]["skipping/baseline-plain"]["sampling"]["c"] == 0.0
    one_seed = fake_file({"cunet/unet": ("03_continuous_unet", DDPM50, {0: 2.2, 1: None})})
    assert spread_for_claims(one_seed, metric=FD)["entries"] == {}        # one seed: no spread
    assert "not applied" in spread_for_claims(cunet_file(), metric="FID (Inception)")


def compare(a: float, b: float, file: dict, **settings):
    s = spread_for_claims(file, metric=FD)
    return compare_within_spread(ratio, [("cunet/cunet", a, settings), ("cunet/unet", b, settings)], s,
                                 label="the ratio")


def test_a_comparison_clearly_beyond_the_spread_is_decided():
    r = compare(4.0, 8.0, cunet_file(unet_gap=0.4, cunet_gap=1.0))
    assert r.value == 0.5 and r.low == pytest.approx(3.0 / 8.4) and r.high == pytest.approx(5.0 / 7.6)
    assert r.holds(1.2) is True and r.holds(0.2) is False
    assert r.holds(0.2, better="higher") is True and r.holds(1.2, better="higher") is False
    assert r.gaps == {"cunet/cunet": pytest.approx(1.0), "cunet/unet": pytest.approx(0.4)}
    assert "results/cpu/seed_spread.json (a test CPU, 2026-01-02)" in r.why and "cunet/cunet 1.00 (2 seeds)" in r.why
    assert "the ratio within it 0.357 to 0.658" in r.why


@pytest.mark.parametrize("a, b", [(5.5, 5.0), (6.5, 5.0)])
def test_a_comparison_within_the_spread_is_undecided_on_either_side_of_its_threshold(a, b):
    """1.1x and 1.3x against 1.2: each FD moved by its gap (1.0, 0.4) carries the ratio across."""
    r = compare(a, b, cunet_file())
    assert r.low < 1.2 < r.high and r.holds(1.2) is None
    assert compare(a, b, cunet_file(unet_gap=0.01, cunet_gap=0.01)).holds(1.2) is (a / b <= 1.2)


def test_a_comparison_whose_range_ends_at_the_threshold_is_decided_and_one_across_it_not():
    file = cunet_file(unet_gap=0.0, cunet_gap=1.0)
    assert compare(5.0, 5.0, file).high == pytest.approx(1.2) and compare(5.0, 5.0, file).holds(1.2 + 1e-9) is True
    assert compare(5.0, 5.0, file).holds(1.2 - 1e-9) is None


def test_the_range_of_a_difference_lies_at_the_corners_and_an_fd_never_goes_below_zero():
    s = spread_for_claims(cunet_file(unet_gap=0.4, cunet_gap=1.0), metric=FD)
    r = compare_within_spread(lambda a, b: a - b, [("cunet/cunet", 3.0, {}), ("cunet/unet", 2.0, {})], s, label="d")
    assert (r.low, r.value, r.high) == (pytest.approx(2.0 - 2.4), 1.0, pytest.approx(4.0 - 1.6))
    unbounded = compare(3.0, 0.3, cunet_file(unet_gap=0.4))           # 0.3 - 0.4 stops at 0: a ratio over 0
    assert unbounded.high == math.inf and unbounded.holds(100.0) is None
    assert compare(0.5, 3.0, cunet_file(cunet_gap=1.0)).low == 0.0


def test_without_a_spread_the_comparison_is_the_plain_one_and_says_so():
    for s, reason in ((None, "no spread file was given"),
                      (spread_for_claims(cunet_file(), metric="FID (Inception)"), "the spread file measured FD"),
                      (spread_for_claims(fake_file({"cunet/unet": ("03", DDPM50, {0: 2.2, 1: 2.6})}), metric=FD),
                       "no spread of cunet/cunet in results/cpu/seed_spread.json (fewer than two seeds measured)")):
        r = compare_within_spread(ratio, [("cunet/cunet", 5.5, {}), ("cunet/unet", 5.0, {})], s, label="the ratio")
        assert r.low == r.value == r.high == 1.1 and r.gaps == {}
        assert r.holds(1.2) is True and r.holds(1.0) is False
        assert r.why.startswith("no spread of retraining applied: ") and reason in r.why


def test_where_our_setting_differs_from_the_spread_s_it_says_so():
    ours = {"sampler": "DDPM", "steps": 20, "n": 200, "estimator": "plug-in FD", "eta": None}
    r = compare(5.5, 5.0, cunet_file(), **ours)
    assert "measured at another setting than ours (the nearest measured, used as is)" in r.why
    assert "cunet/unet at steps=50, n=1000, bias-corrected FD, ours at steps=20, n=200, plug-in FD" in r.why
    assert "another setting" not in compare(5.5, 5.0, cunet_file(), sampler="DDPM", steps=50, n=1000).why


# ------------------------------------------------------------------------------------------------- study 2

def skipping_measured(z0: float, b0: float, z2: float, b2: float, *, file: dict | None = None):
    """Study 2's measured numbers with these FDs (bias-corrected, n = 1000, intervals of zero width: only the spread
    moves them)."""
    fds = {"zero-c0": fd(z0), "zero-c2": fd(z2), "plain-c0": fd(b0), "plain-c2": fd(b2)}
    return skipping_claims.measured_for_claims(section(fds), [], spread=file)


def skipping_row(key: str, m: dict) -> dict:
    return next(r for r in judge(skipping_claims.CLAIMS, m) if r["key"] == key)


COMMITTED_02 = dict(z0=6.43, b0=4.12, z2=5.89, b2=31.21)     # results/cpu/02_adaptive_layer_skipping-quick.json


@pytest.mark.parametrize("z0, b0, plain, spread_verdict", [
    (6.43, 4.12, "reproduced", "reproduced"),       # 1.56x: 1.33x to 1.81x within the spread
    (7.8, 4.12, "reproduced", "inconclusive"),      # 1.89x: can cross 2
    (10.0, 4.12, "partly", "partly"),               # 2.43x: beyond 2, below 3
    (12.0, 4.12, "partly", "inconclusive"),         # 2.91x: can cross 3
    (16.0, 4.12, "contradicted", "contradicted")])
def test_c0_cost_turns_inconclusive_when_the_spread_can_carry_the_ratio_across(z0, b0, plain, spread_verdict):
    without = skipping_row("c0-cost", skipping_measured(z0, b0, 5.0, 30.0))
    assert without["verdict"] == plain and "no spread of retraining applied" in without["why"]
    r = skipping_row("c0-cost", skipping_measured(z0, b0, 5.0, 30.0, file=skipping_file()))
    assert r["verdict"] == spread_verdict and r["ours"] == without["ours"]
    for named in ("results/cpu/seed_spread.json", "a test CPU", "2026-01-02", "skipping/zero-consistent-c2 0.60",
                  "skipping/baseline-plain 0.20", "skipping/zero-consistent-c2 at c=2, ours at c=0",
                  "the ratio within it"):
        assert named in r["why"]


def test_trained_holds_with_and_without_the_spread():
    for file in (None, skipping_file()):
        assert skipping_row("trained-holds", skipping_measured(**COMMITTED_02, file=file))["verdict"] == "reproduced"
    close = dict(COMMITTED_02, z2=5.6, b2=6.0)             # lower at c=2 by 0.4, within the gaps 0.6 + 0.2
    assert skipping_row("trained-holds", skipping_measured(**close))["verdict"] == "reproduced"
    r = skipping_row("trained-holds", skipping_measured(**close, file=skipping_file()))
    assert r["verdict"] == "inconclusive" and "the spread of retraining can turn" in r["why"]
    assert "c=2: zero - plain within it" in r["why"] and "growth zero - plain within it" in r["why"]
    assert "skipping/baseline-plain at c=0, ours at c=0 and 2" in r["why"]
    flat_but_worse = dict(z0=4.0, b0=4.0, z2=20.0, b2=10.0)
    assert skipping_row("trained-holds", skipping_measured(**flat_but_worse))["verdict"] == "contradicted"
    assert skipping_row("trained-holds", skipping_measured(**flat_but_worse, file=skipping_file()))["verdict"] == \
        "contradicted"
    one_of_two = dict(z0=2.0, b0=4.0, z2=9.0, b2=10.0)      # lower at c=2 by 1.0 (beyond 0.8), grows faster
    assert skipping_row("trained-holds", skipping_measured(**one_of_two, file=skipping_file()))["verdict"] == "partly"


def test_the_skipping_spread_applies_only_to_its_metric():
    file = dict(skipping_file(), metric="FID (Inception)")
    r = skipping_row("c0-cost", skipping_measured(7.8, 4.12, 5.0, 30.0, file=file))
    assert r["verdict"] == "reproduced"
    assert "the spread file measured FID (Inception), these numbers are FD (LeNet-MNIST)" in r["why"]


def test_a_model_without_seed_replicas_borrows_the_gap_of_zero_consistent():
    """consistent-training compares zero-uniform, which has no replicas: zero-consistent-c2's gap stands in."""
    fds = {"zero-c2": fd(5.0), "zero-uniform-c2": fd(5.9)}           # 0.9 apart: within the gaps 0.6 + 0.6
    m = skipping_claims.measured_for_claims(section(fds), [], spread=skipping_file())
    r = skipping_row("consistent-training", m)
    assert r["verdict"] == "inconclusive"
    assert "skipping/zero-uniform: no seed replicas, the gap of skipping/zero-consistent-c2" in r["why"]
    far = skipping_claims.measured_for_claims(section({**fds, "zero-uniform-c2": fd(6.5)}), [], spread=skipping_file())
    assert skipping_row("consistent-training", far)["verdict"] == "reproduced"


# ------------------------------------------------------------------------------------------------- study 3

def cunet_row(fu: float, fc: float, *, file: dict | None = None, steps: int = 50) -> dict:
    fd_rows = [{"model": "real held-out digits", "steps": None, "n": 200, FD: 1.0},
               {"model": "U-Net", "steps": steps, "n": 200, FD: fu},
               {"model": "cU-Net", "steps": steps, "n": 200, FD: fc}]
    m = cunet.measured_for_claims(params_rows=[], fd_rows=fd_rows, timing_rows=[], device="a CPU", train_steps=10,
                                  spread=file)
    return next(r for r in judge(cunet.CLAIMS, m) if r["key"] == "comparable")


@pytest.mark.parametrize("fu, fc, plain, spread_verdict", [
    (5.81, 4.92, "reproduced", "reproduced"),       # committed: 0.85x, 0.62x to 1.11x within the spread
    (5.81, 6.8, "reproduced", "inconclusive"),      # 1.17x: can cross 1.2
    (3.0, 7.5, "contradicted", "inconclusive"),     # 2.5x: can cross 2
    (2.0, 9.0, "contradicted", "contradicted")])
def test_comparable_turns_inconclusive_when_the_spread_can_carry_the_ratio_across(fu, fc, plain, spread_verdict):
    without = cunet_row(fu, fc)
    assert without["verdict"] == plain and "no spread of retraining applied" in without["why"]
    r = cunet_row(fu, fc, file=cunet_file())
    assert r["verdict"] == spread_verdict
    for named in ("results/cpu/seed_spread.json", "a test CPU", "2026-01-02", "cunet/unet 0.40 (2 seeds)",
                  "cunet/cunet 1.00 (2 seeds)", "ours at n=200, plug-in FD", "the ratio cU-Net / U-Net within it"):
        assert named in r["why"]
    assert "steps=20" in cunet_row(fu, fc, file=cunet_file(), steps=20)["why"]


def test_comparable_with_intervals_widens_each_interval_by_the_seeds_gap():
    """Best FDs as Estimates (the committed sweep's): each moves from its interval's low end less its model's gap
    to its high end plus the gap; the setting named is the sweep's (bias-corrected, n=1000, its best steps)."""
    def m(cunet_fd):
        rows = [{"model": "U-Net", "steps": 30, "n": 1000, "key": "u30", FD: Estimate(5.8, 5.5, 6.1, 1000, "b")},
                {"model": "cU-Net", "steps": 50, "n": 1000, "key": "c50", FD: cunet_fd}]
        return cunet.measured_for_claims(params_rows=[], fd_rows=rows, timing_rows=[], device="a CPU",
                                         train_steps=10, spread=cunet_file(unet_gap=0.4, cunet_gap=1.0))
    r = next(r for r in judge(cunet.CLAIMS, m(Estimate(4.9, 4.6, 5.2, 1000, "b"))) if r["key"] == "comparable")
    assert r["verdict"] == "inconclusive"                     # 0.84 as measured, at worst (5.2 + 1) / (5.5 - 0.4)
    assert "the ratio cU-Net / U-Net within it 0.554 to 1.22" in r["why"]
    assert "cunet/unet at steps=50, ours at steps=30" in r["why"] and "plug-in" not in r["why"]
    r = next(r for r in judge(cunet.CLAIMS, m(Estimate(4.0, 3.8, 4.2, 1000, "b"))) if r["key"] == "comparable")
    assert r["verdict"] == "reproduced" and "each FD within its sampling interval widened by" in r["why"]


def test_the_changed_thresholds_state_the_spread_rule():
    claims = {c.key: c for c in skipping_claims.CLAIMS + cunet.CLAIMS}
    for key in ("c0-cost", "trained-holds", "comparable"):
        assert "inconclusive if moving each FD by ± the largest gap between its model's seeds" in claims[key].threshold


# ------------------------------------------------------------------------------------------------- the table

def test_the_spread_table_and_header_of_a_small_file():
    file = fake_file({"cunet/unet": ("03_continuous_unet", DDPM50, {0: 2.0, 1: 2.5, 2: None}),
                      "skipping/baseline-plain": ("02_adaptive_layer_skipping", {**DDIM50, "c": 0.0}, {0: 1.5})})
    header = spread_header(file)
    assert "a test CPU" in header and "2026-01-02T03:04:05+00:00" in header and "n = 1000" in header
    table = spread_table(file, study="03_continuous_unet")
    assert list(table.columns) == ["FD [low, high]", "plug-in FD", "n"]
    assert list(table.index) == [("cunet/unet", s) for s in ("0", "1", "2", "spread")]
    assert table.loc[("cunet/unet", "0"), "FD [low, high]"] == "2.00 [1.00, 3.00]"
    assert table.loc[("cunet/unet", "1"), "plug-in FD"] == "3.25" and table.loc[("cunet/unet", "1"), "n"] == 1000
    assert table.loc[("cunet/unet", "2"), "FD [low, high]"] == "not measured: not in the zoo yet: skipped"
    assert table.loc[("cunet/unet", "spread"), "FD [low, high]"] == \
        "mean 2.25, min 2.00, max 2.50, std 0.35; largest gap 0.50 (seed 0 to seed 1)"
    assert table.loc[("cunet/unet", "spread"), "n"] == "2 seeds"
    everything = spread_table(file)
    assert len(everything) == 6
    assert everything.loc[("skipping/baseline-plain", "spread"), "FD [low, high]"].startswith("mean 1.50, min 1.50, "
                                                                                             "max 1.50, std -")
