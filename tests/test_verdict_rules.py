"""The claims' rules can fail: a row that holds by construction says "by construction" (never "reproduced"), a
"partly" keeps the quality condition of its "reproduced", a paper's "failed to learn" is contradicted when ours
learned, and this project's own target stays out of the papers' claim totals. Fed the papers' own numbers, the rules
that can take them say "reproduced"."""
import pytest

from fastdiff.studies import (adaptive_layer_skipping_claims, continuous_unet, diffusion_basics, performance_claims,
                              report, vgg_sr_evaluation)
from fastdiff.measure.intervals import Estimate
from fastdiff.verdicts import judge
from test_skipping_fd import fd, section


def verdicts(study, measured: dict) -> dict[str, str]:
    return {r["key"]: r["verdict"] for r in judge(study.CLAIMS, measured)}


def row(study, key: str, measured: dict) -> dict:
    return next(r for r in judge(study.CLAIMS, measured) if r["key"] == key)


# ------------------------------------------------------------------------------------------------- 00

def test_time_per_step_holds_by_construction_and_still_shows_the_measured_speed_up():
    for speedup in (19.9, 5.0):
        r = row(diffusion_basics, "time-per-step", {"speedup_ddim50": speedup, "ddpm_steps": 1000})
        assert r["verdict"] == "by construction" and f"{speedup:.1f}x faster" in r["ours"]
        assert "one network call per step" in r["why"]
    assert "by construction" in next(c for c in diffusion_basics.CLAIMS if c.key == "time-per-step").threshold


def est(value, low, high, n=1000):
    return Estimate(value, low, high, n, "bootstrap 95%")


@pytest.mark.parametrize("ratio, verdict", [(est(2.9, 2.5, 3.3), "reproduced"), (est(3.9, 3.5, 4.3), "inconclusive"),
                                            (est(6.0, 5.0, 7.0), "partly"), (est(11.0, 9.0, 13.0), "contradicted")])
def test_graceful_has_a_bound_and_can_be_contradicted(ratio, verdict):
    assert row(diffusion_basics, "graceful", {"ratio:ddim10|ddim50": ratio})["verdict"] == verdict


@pytest.mark.parametrize("ratio, verdict", [(est(1.2, 1.1, 1.4), "reproduced"), (est(1.45, 1.3, 1.7), "inconclusive"),
                                            (est(1.8, 1.6, 1.9), "partly"), (est(2.5, 2.2, 2.9), "contradicted")])
def test_ddim50_quality_reads_the_paired_ratio_to_the_1000_step_chain(ratio, verdict):
    assert row(diffusion_basics, "ddim50-quality", {"ratio:ddim50|ddpm1000": ratio})["verdict"] == verdict


@pytest.mark.parametrize("diff, verdict", [(est(-2.0, -3.0, -1.0), "reproduced"), (est(-0.5, -1.2, 0.3), "inconclusive"),
                                           (est(2.0, 1.0, 3.0), "contradicted")])
def test_eta_reads_the_paired_difference_at_each_step_count(diff, verdict):
    for key, steps in (("eta", 20), ("eta-10", 10)):
        r = row(diffusion_basics, key, {f"difference:ddim{steps}|ddim{steps}-eta1": diff})
        assert r["verdict"] == verdict and f"at {steps} steps" in r["ours"]


def test_the_diffusion_basics_rules_on_the_ddim_papers_table_1_reproduce_its_claims():
    """DDIM's Table 1 (CIFAR-10): FID 4.67 (DDIM 50) vs 3.17 (DDPM 1000); 13.36 at 10 steps vs 4.67 at 50 (eta 0);
    6.84 (eta 0) vs 18.36 (eta 1) at 20 steps, 13.36 vs 41.07 at 10."""
    from fastdiff.papers import value

    def fid(variant):
        return value("00_diffusion_basics", variant, "FID")
    got = verdicts(diffusion_basics, {"ratio:ddim50|ddpm1000": fid("DDIM 50, eta 0") / fid("DDPM 1000"),
                                      "ratio:ddim10|ddim50": fid("DDIM 10, eta 0") / fid("DDIM 50, eta 0"),
                                      "difference:ddim20|ddim20-eta1": fid("DDIM 20, eta 0") - fid("DDIM 20, eta 1"),
                                      "difference:ddim10|ddim10-eta1": fid("DDIM 10, eta 0") - fid("DDIM 10, eta 1")})
    assert got == {"ddim50-quality": "reproduced", "time-per-step": "not testable here", "graceful": "reproduced",
                   "eta": "reproduced", "eta-10": "reproduced"}


# ------------------------------------------------------------------------------------------------- 01

def test_vgg_sr_params_and_vgg_cost_hold_by_construction_whatever_the_numbers():
    for ratio in (6.9, 2.0):
        m = {"params ratio, paper widths": ratio, "original (M)": 9.0 * ratio, "small (M)": 9.0}
        assert row(vgg_sr_evaluation, "params", m)["verdict"] == "by construction"
    for share in (0.3, 40.0):
        m = {"vgg share %": share, "vgg share steps": 100, "vgg calls per sampling": 1.0}
        assert row(vgg_sr_evaluation, "vgg-cost", m)["verdict"] == "by construction"


@pytest.mark.parametrize("speedup, verdict", [(1.77, "reproduced"), (1.45, "reproduced"), (1.25, "partly"),
                                              (3.0, "partly"), (1.1, "contradicted"), (0.9, "contradicted")])
def test_vgg_sr_speed_needs_a_real_speed_up_for_partly(speedup, verdict):
    assert row(vgg_sr_evaluation, "speed", {"speed-up small": speedup})["verdict"] == verdict


CONCAT = {"final val PSNR:small + VGG (add)": 23.85, "final val PSNR:small + VGG (concat)": 23.78,
          "PSNR gap:small + VGG (concat)|bicubic (no model)": est(7.6, 7.2, 8.0, 200)}   # the committed quick run


def test_concat_that_learned_as_well_as_add_contradicts_the_paper():
    r = row(vgg_sr_evaluation, "concat", CONCAT)
    assert r["verdict"] == "contradicted" and "did not fail" in r["why"]
    learned_less = {**CONCAT, "final val PSNR:small + VGG (concat)": 22.0}
    assert row(vgg_sr_evaluation, "concat", learned_less)["verdict"] == "partly"
    failed = {**learned_less, "PSNR gap:small + VGG (concat)|bicubic (no model)": est(0.0, -0.1, 0.05, 200)}
    assert row(vgg_sr_evaluation, "concat", failed)["verdict"] == "reproduced"
    unsure = {**learned_less, "PSNR gap:small + VGG (concat)|bicubic (no model)": est(0.1, -0.1, 0.3, 200)}
    assert row(vgg_sr_evaluation, "concat", unsure)["verdict"] == "inconclusive"
    no_bicubic = {k: v for k, v in CONCAT.items() if "bicubic" not in k}
    assert row(vgg_sr_evaluation, "concat", no_bicubic)["verdict"] == "not testable here"
    assert "Sec. 4.1" in next(c for c in vgg_sr_evaluation.CLAIMS if c.key == "concat").paper


@pytest.mark.parametrize("gap, verdict", [(est(0.5, 0.3, 0.7, 200), "reproduced"), (est(0.27, -0.1, 0.6, 200), "inconclusive"),
                                          (est(0.0, -0.05, 0.05, 200), "partly"), (est(-0.5, -0.7, -0.3, 200), "contradicted")])
def test_bigger_better_reads_the_paired_psnr_gap(gap, verdict):
    assert row(vgg_sr_evaluation, "bigger-better", {"PSNR gap:original|small": gap})["verdict"] == verdict


def test_vgg_sr_paired_gaps_pair_the_same_images():
    rows = [{"model": "original", "per image": {"PSNR": [20.0, 22.0, 24.0]}},
            {"model": "small", "per image": {"PSNR": [19.0, 21.0, 23.0]}}, {"model": "bicubic (no model)"}]
    gaps = vgg_sr_evaluation.paired_gaps(rows)
    assert list(gaps) == ["original|small"] and gaps["original|small"].value == 1.0
    assert gaps["original|small"].low == gaps["original|small"].high == 1.0     # the same gap on every image


def test_the_vgg_sr_rules_on_the_papers_own_numbers():
    """66M / 9M parameters and 1.77x per forward pass (Secs. 3.1, Fig. 9): the speed is reproduced, the size holds
    by construction; the rest has no number in the paper and is not testable."""
    from fastdiff.studies.vgg_conditioned_sr import PAPER_PARAMETERS, PAPER_SPEEDUP_SMALL_VS_ORIGINAL
    m = vgg_sr_evaluation.measured_for_claims(
        params_paper=[{"variant": v, "trainable (M)": PAPER_PARAMETERS[v] / 1e6} for v in ("original", "small")],
        forward=[{"variant": "small", "speedup vs original": PAPER_SPEEDUP_SMALL_VS_ORIGINAL}], curves={},
        sr_rows=[], share=None, device="the paper's GPU", vgg="ImageNet VGG-11", steps=500_000)
    got = verdicts(vgg_sr_evaluation, m)
    assert got["speed"] == "reproduced" and got["params"] == "by construction"


# ------------------------------------------------------------------------------------------------- 02

SPEED = [{"skip type": "zero", "c": c, "time saved %": saved, "FLOPs saved %": flops}
         for c, saved, flops in ((0, 0.0, 0.0), (2, 45.7, 36.0))]


def skip(saved: float = 45.7, ratio=fd(0.92, 0.85, 1.0)) -> dict:
    """Study 2's numbers for `time`: the live time saved at c=2 and the paired ratio FD(c=2) / FD(c=0)."""
    speed = [dict(r, **{"time saved %": saved}) if r["c"] == 2 else r for r in SPEED]
    fds = {"zero-c0": fd(6.43), "zero-c2": fd(5.89)}
    return adaptive_layer_skipping_claims.measured_for_claims(section(fds, {("zero-c2", "zero-c0"): ratio}), speed)


def test_layer_skipping_time_keeps_the_quality_condition_in_every_branch():
    assert row(adaptive_layer_skipping_claims, "time", skip())["verdict"] == "reproduced"
    assert row(adaptive_layer_skipping_claims, "time", skip(20.0))["verdict"] == "partly"
    for saved in (45.7, 20.0):
        r = row(adaptive_layer_skipping_claims, "time", skip(saved, fd(3.1, 2.8, 3.4)))
        assert r["verdict"] == "contradicted" and "1.5x" in r["why"]
        assert row(adaptive_layer_skipping_claims, "time", skip(saved, fd(1.4, 1.2, 1.7)))["verdict"] == "inconclusive"


# ------------------------------------------------------------------------------------------------- 03

def test_cunet_params_hold_by_construction():
    for ratio in (3.94, 1.2):
        m = {"params ratio": ratio, "U-Net params (M)": 1.6, "cU-Net params (M)": 1.6 / ratio}
        assert row(continuous_unet, "params", m)["verdict"] == "by construction"


def cunet_rows(fds: dict[str, dict[int, tuple[float, float, float]]]) -> list[dict]:
    """Sweep rows as `continuous_unet.sweep_rows` gives them: {model: {steps: (value, low, high)}}."""
    return [{"model": name, "steps": k, "n": 1000, "key": f"{name}-{k}",
             "FD (LeNet-MNIST)": Estimate(v, lo, hi, 1000, "bias-corrected bootstrap 95%")}
            for name, by in fds.items() for k, (v, lo, hi) in by.items()]


def differences(rows: list[dict], half_width: float) -> dict:
    """Paired intervals of every two settings of one model: FD(a) - FD(b) +- ``half_width``."""
    out = {}
    for a in rows:
        for b in rows:
            if a["model"] == b["model"] and a["steps"] < b["steps"]:
                d = a["FD (LeNet-MNIST)"].value - b["FD (LeNet-MNIST)"].value
                out[(a["key"], b["key"])] = {"difference": Estimate(d, d - half_width, d + half_width, 1000, "paired")}
    return out


def fewer_steps(rows, pairs) -> dict:
    m = continuous_unet.measured_for_claims(params_rows=[], fd_rows=rows, timing_rows=[], device="a CPU",
                                            train_steps=1, fd_pairs=pairs)
    return row(continuous_unet, "fewer-steps", m)


def test_fewer_steps_reads_the_step_counts_within_noise_of_each_best():
    """The cU-Net's best at 5 and the U-Net's at 30: reproduced when the paired intervals separate the best from
    its neighbours, inconclusive when the cU-Net's 10 and 20 steps are within noise of its best and reach the
    U-Net's 20 (the sets overlap), contradicted when the cU-Net's whole set lies above the U-Net's."""
    curve = {5: 3.0, 10: 3.5, 20: 4.0, 30: 5.0, 50: 6.0, 100: 6.5}
    rows = cunet_rows({"cU-Net": {k: (v, v - 0.2, v + 0.2) for k, v in curve.items()},
                       "U-Net": {k: (v, v - 0.2, v + 0.2) for k, v in
                                 {5: 9.0, 10: 6.0, 20: 4.5, 30: 3.5, 50: 4.0, 100: 4.6}.items()}})
    r = fewer_steps(rows, differences(rows, 0.3))
    assert r["verdict"] == "reproduced" and "{5} (cU-Net) vs {30} (U-Net)" in r["ours"]
    r = fewer_steps(rows, differences(rows, 1.2))
    assert r["verdict"] == "inconclusive" and "overlap" in r["why"]
    assert "{5, 10, 20} (cU-Net) vs {20, 30, 50, 100} (U-Net)" in r["ours"]
    late = cunet_rows({"cU-Net": {k: (9 - v, 8.8 - v, 9.2 - v) for k, v in curve.items()},
                       "U-Net": {k: (v, v - 0.2, v + 0.2) for k, v in curve.items()}})
    assert fewer_steps(late, differences(late, 0.3))["verdict"] == "contradicted"


def test_without_paired_intervals_the_sets_come_from_overlapping_intervals():
    rows = cunet_rows({"cU-Net": {5: (3.0, 2.0, 4.0), 10: (3.5, 2.5, 4.5), 30: (6.0, 5.5, 6.5)},
                       "U-Net": {5: (9.0, 8.0, 10.0), 10: (5.0, 4.6, 5.4), 30: (3.0, 2.8, 3.2)}})
    r = fewer_steps(rows, {})
    assert r["verdict"] == "reproduced" and "{5, 10} (cU-Net) vs {30} (U-Net)" in r["ours"]
    rows[4]["FD (LeNet-MNIST)"] = Estimate(5.0, 3.1, 6.9, 1000, "wide")          # the U-Net's 10 steps reach 3.2
    r = fewer_steps(rows, {})
    assert r["verdict"] == "inconclusive" and "{5, 10} (cU-Net) vs {10, 30} (U-Net)" in r["ours"]


def test_the_same_best_step_count_without_intervals_is_inconclusive():
    fd = [{"model": name, "steps": k, "FD (LeNet-MNIST)": 5.0 - (k == 50)} for name in ("U-Net", "cU-Net")
          for k in (5, 10, 20, 30, 50, 100)]
    r = fewer_steps(fd, None)
    assert r["verdict"] == "inconclusive" and "{50} (cU-Net) vs {50} (U-Net)" in r["ours"]
    threshold = next(c for c in continuous_unet.CLAIMS if c.key == "fewer-steps").threshold
    assert "FD(k) - FD(best)" in threshold and "wholly below" in threshold and "inconclusive" in threshold


def test_faster_says_when_the_best_step_counts_are_uncertain():
    m = {"U-Net s per sample": 0.2, "cU-Net s per sample": 0.1, "U-Net best steps": 100, "cU-Net best steps": 50,
         "U-Net steps like best": [50, 100], "cU-Net steps like best": [30, 50, 100], "device": "a CPU"}
    r = row(continuous_unet, "faster", m)
    assert r["verdict"] == "reproduced" and "(50 vs 100)" in r["ours"] and "a CPU" in r["why"]
    assert "uncertain (within noise of the best: {30, 50, 100} for the cU-Net, {50, 100} for the U-Net" in r["why"]
    sure = row(continuous_unet, "faster", {**m, "U-Net steps like best": [100], "cU-Net steps like best": [50]})
    assert "uncertain" not in sure["why"]


@pytest.mark.parametrize("cunet, verdict", [((4.9, 4.6, 5.2), "reproduced"),      # 5.2 / 5.5 < 1.2 at worst
                                            ((6.2, 5.9, 6.9), "inconclusive"),    # 6.9 / 5.5 > 1.2 > 5.9 / 6.1
                                            ((9.0, 8.0, 10.0), "partly")])        # above 1.2, below 2 everywhere
def test_comparable_reads_the_best_fds_intervals(cunet, verdict):
    rows = cunet_rows({"U-Net": {30: (5.8, 5.5, 6.1), 50: (7.0, 6.7, 7.3)}, "cU-Net": {5: cunet, 10: (12, 11, 13)}})
    m = continuous_unet.measured_for_claims(params_rows=[], fd_rows=rows, timing_rows=[], device="a CPU",
                                            train_steps=1)
    r = row(continuous_unet, "comparable", m)
    assert r["verdict"] == verdict and "each FD within its sampling interval" in r["why"]
    assert f"{cunet[0]:.2f} [{cunet[1]:.2f}, {cunet[2]:.2f}] (cU-Net)" in r["ours"]


def test_the_continuous_unet_rules_on_the_papers_own_numbers_reproduce_its_claims():
    """Table 2 (GFLOPs, MB at 16 bytes per parameter) and Table 1's MNIST column (FID, the step count of the best FID
    and seconds per sample) fed through `measured_for_claims` as if measured here."""
    t1, t2 = continuous_unet.PAPER_TABLE1_MNIST, continuous_unet.PAPER_TABLE2
    grid = (5, 10, 20, 30, 50, 100)
    params = [{"model": name, "parameters (M)": t2[name][1] * 2**20 / 16 / 1e6, "GFLOPs per call": t2[name][0],
               "GFLOPs, f counted once": t2[name][0], "NFE per call": 1} for name in ("U-Net", "cU-Net")]
    fd = [{"model": name, "steps": k, "FD (LeNet-MNIST)": t1[name]["FID"] + (k != t1[name]["steps"])}
          for name in ("U-Net", "cU-Net") for k in grid]
    timing = [{"model": name, "seconds per sample": t1[name]["seconds"]} for name in ("U-Net", "cU-Net")]
    m = continuous_unet.measured_for_claims(params_rows=params, fd_rows=fd, timing_rows=timing, device="a CPU",
                                            train_steps=1)
    assert m["step grid"] == list(grid)
    assert verdicts(continuous_unet, m) == {"params": "by construction", "flops": "reproduced",
                                            "faster": "reproduced", "fewer-steps": "reproduced",
                                            "comparable": "reproduced", "gpu": "not testable here"}


# ------------------------------------------------------------------------------------------------- 05

def ratio(value: float, half_width: float = 0.02) -> Estimate:
    """A paired FD ratio with its interval (n = 1000)."""
    return Estimate(value, value - half_width, value + half_width, 1000, "bias-corrected bootstrap paired 95%")


ONE_MACHINE = {"device": "CPU: AMD EPYC, AVX-512 BF16 (2 threads)", "fd device": "CPU: AMD EPYC, AVX-512 BF16 (1 thread)"}
ARCH = {**ONE_MACHINE, "train steps": 8000, "bottleneck FLOPs ratio": 0.32, "bottleneck FD ratio": ratio(13.5, 1.0),
        "bottleneck sampling time ratio": 0.9, "bottleneck training time ratio": 0.9}


def test_an_architecture_change_that_ruins_quality_is_never_partly():
    assert row(performance_claims, "bottleneck", ARCH)["verdict"] == "contradicted"      # was "partly"
    assert row(performance_claims, "bottleneck", {**ARCH, "bottleneck FD ratio": ratio(1.08)})["verdict"] == "partly"
    faster = {**ARCH, "bottleneck FD ratio": ratio(1.08), "bottleneck sampling time ratio": 0.7}
    assert row(performance_claims, "bottleneck", faster)["verdict"] == "reproduced"


@pytest.mark.parametrize("key, prefix", [("bottleneck", "bottleneck"), ("fewer-levels", "fewer levels")])
def test_an_architecture_fd_interval_across_its_bound_is_inconclusive_in_both_branches(key, prefix):
    m = {**ONE_MACHINE, f"{prefix} FLOPs ratio": 0.5, f"{prefix} sampling time ratio": 0.7,
         f"{prefix} training time ratio": 0.7, f"{prefix} FD ratio": ratio(1.24, 0.05)}         # [1.19, 1.29] vs 1.25
    assert row(performance_claims, key, m)["verdict"] == "inconclusive"
    slower = {**m, f"{prefix} sampling time ratio": 0.9, f"{prefix} training time ratio": 0.9}   # partly's branch
    assert row(performance_claims, key, slower)["verdict"] == "inconclusive"
    assert row(performance_claims, key, {**m, f"{prefix} FD ratio": ratio(1.1)})["verdict"] == "reproduced"
    assert row(performance_claims, key, {**slower, f"{prefix} FD ratio": ratio(1.1)})["verdict"] == "partly"
    none = {**m, f"{prefix} sampling time ratio": 1.0, f"{prefix} training time ratio": 1.0}
    assert row(performance_claims, key, none)["verdict"] == "contradicted"       # no time saved: the FD cannot rescue it


def test_half_precision_that_ruins_quality_is_never_partly():
    m = {**ONE_MACHINE, "digits half speed-up": 1.1, "digits half FD ratio": ratio(1.02)}
    assert row(performance_claims, "half-digits", m)["verdict"] == "partly"
    assert row(performance_claims, "half-digits", {**m, "digits half FD ratio": ratio(1.45)})["verdict"] == \
        "contradicted"
    assert row(performance_claims, "half-digits", {**m, "digits half speed-up": 1.3})["verdict"] == "reproduced"
    across = {**m, "digits half speed-up": 1.3, "digits half FD ratio": ratio(1.09, 0.03)}      # [1.06, 1.12] vs 1.10
    assert row(performance_claims, "half-digits", across)["verdict"] == "inconclusive"
    assert row(performance_claims, "half-digits", {**across, "digits half speed-up": 0.8})["verdict"] == "contradicted"


def test_a_verdict_never_joins_two_machines():
    """The digits rows join this run's times with the committed FDs: on another machine (another CPU model or
    instruction class; threads aside) they are not judged. The CIFAR-10 row's speed comes from one benchmark file and
    names its machine; its quality is the digits row's, so the two numbers of issue 26's row are two rows now."""
    avx2 = "CPU: AMD EPYC, AVX2 (2 threads)"
    m = {**ONE_MACHINE, "digits half speed-up": 1.3, "digits half FD ratio": ratio(1.02)}
    for key, measured in (("half-digits", m), ("bottleneck", {**ARCH, "bottleneck FD ratio": ratio(1.08)})):
        assert row(performance_claims, key, measured)["verdict"] != "not testable here"
        r = row(performance_claims, key, {**measured, "fd device": avx2})
        assert r["verdict"] == "not testable here" and "one machine per verdict" in r["why"] and avx2 in r["why"]
    cifar = {"half speed-up": 1.75, "half rung": "bf16 + compile, frozen weights", "half twin": "compile, frozen weights",
             "half device": "CPU: AMD EPYC, AVX-512 BF16 (2 threads)"}
    r = row(performance_claims, "half", cifar)
    assert r["verdict"] == "reproduced" and cifar["half device"] in r["ours"] and "FD" not in r["ours"]
    assert row(performance_claims, "half-digits", cifar)["verdict"] == "not testable here"   # no speed-up of its own
    assert row(performance_claims, "half", {"digits half speed-up": 1.75})["verdict"] == "not testable here"


def test_the_diffusers_target_is_judged_but_not_counted_among_the_papers_claims(capsys):
    assert performance_claims.TARGETS == ("peer",) and "peer" in [c.key for c in performance_claims.CLAIMS]
    judged = judge(performance_claims.CLAIMS, {"best vs diffusers": 1.04})
    rows = [{**r, "study": performance_claims.STUDY, "device": "cpu", "data": "-", "profile": "quick", "file": "x"}
            for r in judged]
    counts = report.verdict_counts(rows)[performance_claims.STUDY]
    assert sum(counts.values()) == len(performance_claims.CLAIMS) - 1 and counts["partly"] == 0
    assert [r["key"] for r in rows if report.is_target(r)] == ["peer"]
    performance_claims.summary(digits_ladder=[{"rung": "fp32", "speed-up vs fp32": 1.0, "FD (LeNet-MNIST)": 3.0}],
                               arch_rows=[{"model": "baseline", "FD (LeNet-MNIST)": 3.0}], compare=None, floor=1.0,
                               verdicts=judged)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == "this project's own targets (not a claim of the proposal):" and "1.04x" in lines[-1]


# ------------------------------------------------------------------------------------------------- the report

def test_by_construction_rows_are_a_count_of_their_own_never_a_reproduction():
    m = {"speedup_ddim50": 19.9, "ddpm_steps": 1000, "ratio:ddim10|ddim50": 13.36 / 4.67}
    rows = [{**r, "study": "00_diffusion_basics"} for r in judge(diffusion_basics.CLAIMS, m)]
    counts = report.verdict_counts(rows)["00_diffusion_basics"]
    assert counts["by construction"] == 1 and counts["reproduced"] == 1          # graceful, not time-per-step
    assert counts["not testable here"] == 3


def test_the_report_summary_names_the_target_apart_from_the_claims_totals(capsys):
    from fastdiff.studies.speed_quality_map import METRIC, TIME
    point = {"label": "ddpm-10", "family": "DDPM", "model": "U-Net", "sampler": "DDPM", "steps": 10, "rung": "fp32",
             "cache interval": 0, "c": None, TIME: 10.0, "speed-up": 1.0, METRIC: 5.0}
    part = {"rows": [point], "reference": "ddpm-10", "tolerance": 0.1, "headline": None}
    claim_rows = [{"study": "00_diffusion_basics", "key": "time-per-step", "verdict": "by construction"},
                  {"study": performance_claims.STUDY, "key": "peer", "verdict": "partly"}]
    report.summary(part, solver_rows=[point], front=[point], claim_rows=claim_rows, verdicts=[])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == ("the studies' claims: 0 reproduced, 0 partly, 0 contradicted, 0 inconclusive, 0 not "
                         "testable here, 1 by construction")
    assert lines[-1] == "this project's own targets, not counted among the claims: peer (05_performance) partly"
