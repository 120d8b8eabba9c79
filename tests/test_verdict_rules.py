"""The claims' rules can fail: a row that holds by construction says "by construction" (never "reproduced"), a
"partly" keeps the quality condition of its "reproduced", a paper's "failed to learn" is contradicted when ours
learned, and this project's own target stays out of the papers' claim totals. Fed the papers' own numbers, the rules
that can take them say "reproduced"."""
import pytest

from fastdiff.studies import (adaptive_layer_skipping, continuous_unet, diffusion_basics, performance_claims, report,
                              vgg_sr_evaluation)
from fastdiff.verdicts import judge


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


@pytest.mark.parametrize("fd10, verdict", [(13.36, "reproduced"), (8.0, "reproduced"), (30.0, "partly"),
                                           (50.0, "contradicted")])
def test_graceful_has_a_bound_and_can_be_contradicted(fd10, verdict):
    assert row(diffusion_basics, "graceful", {"fd_ddim10": fd10, "fd_ddim50": 4.67})["verdict"] == verdict


def test_the_diffusion_basics_rules_on_the_ddim_papers_table_1_reproduce_its_claims():
    """DDIM's Table 1 (CIFAR-10, eta 0): FID 13.36 at 10 steps, 4.67 at 50; 6.84 (eta 0) vs 18.36 (eta 1) at 20."""
    got = verdicts(diffusion_basics, {"fd_ddim10": 13.36, "fd_ddim50": 4.67, "fd_eta0": 6.84, "fd_eta1": 18.36,
                                      "eta_steps": 20})
    assert got["graceful"] == got["eta"] == "reproduced"


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
          "PSNR:small + VGG (concat)": 23.24, "PSNR:bicubic (no model)": 15.64}    # the committed quick run


def test_concat_that_learned_as_well_as_add_contradicts_the_paper():
    r = row(vgg_sr_evaluation, "concat", CONCAT)
    assert r["verdict"] == "contradicted" and "did not fail" in r["why"]
    learned_less = {**CONCAT, "final val PSNR:small + VGG (concat)": 22.0}
    assert row(vgg_sr_evaluation, "concat", learned_less)["verdict"] == "partly"
    failed = {**learned_less, "PSNR:small + VGG (concat)": 15.6}         # no better than bicubic upsampling
    assert row(vgg_sr_evaluation, "concat", failed)["verdict"] == "reproduced"
    no_bicubic = {k: v for k, v in CONCAT.items() if k != "PSNR:bicubic (no model)"}
    assert row(vgg_sr_evaluation, "concat", no_bicubic)["verdict"] == "not testable here"
    assert "Sec. 4.1" in next(c for c in vgg_sr_evaluation.CLAIMS if c.key == "concat").paper


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

SKIP = {"time saved:zero:c2": 45.7, "FLOPs saved:zero:c2": 36.0, "fd:zero:c0": 6.43, "fd:zero:c2": 5.89}


def test_layer_skipping_time_keeps_the_quality_condition_in_every_branch():
    assert row(adaptive_layer_skipping, "time", SKIP)["verdict"] == "reproduced"
    assert row(adaptive_layer_skipping, "time", {**SKIP, "time saved:zero:c2": 20.0})["verdict"] == "partly"
    ruined = {**SKIP, "fd:zero:c2": 20.0}
    for saved in (45.7, 20.0):
        r = row(adaptive_layer_skipping, "time", {**ruined, "time saved:zero:c2": saved})
        assert r["verdict"] == "contradicted" and "1.5x" in r["why"]


# ------------------------------------------------------------------------------------------------- 03

def test_cunet_params_hold_by_construction():
    for ratio in (3.94, 1.2):
        m = {"params ratio": ratio, "U-Net params (M)": 1.6, "cU-Net params (M)": 1.6 / ratio}
        assert row(continuous_unet, "params", m)["verdict"] == "by construction"


def test_the_same_best_step_count_is_not_partly_but_inconclusive_on_a_coarse_grid():
    m = {"U-Net best steps": 50, "cU-Net best steps": 50, "step grid": [5, 10, 20, 50, 100]}
    r = row(continuous_unet, "fewer-steps", m)
    assert r["verdict"] == "inconclusive" and "has no 30" in r["why"]
    assert row(continuous_unet, "fewer-steps", {**m, "cU-Net best steps": 100})["verdict"] == "contradicted"
    assert row(continuous_unet, "fewer-steps", {**m, "cU-Net best steps": 5})["verdict"] == "reproduced"


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

ARCH = {"baseline FD": 6.01, "train steps": 8000, "bottleneck FLOPs ratio": 0.32, "bottleneck FD": 81.04,
        "bottleneck sampling time ratio": 0.9, "bottleneck training time ratio": 0.9}


def test_an_architecture_change_that_ruins_quality_is_never_partly():
    assert row(performance_claims, "bottleneck", ARCH)["verdict"] == "contradicted"      # was "partly"
    assert row(performance_claims, "bottleneck", {**ARCH, "bottleneck FD": 6.5})["verdict"] == "partly"
    faster = {**ARCH, "bottleneck FD": 6.5, "bottleneck sampling time ratio": 0.7}
    assert row(performance_claims, "bottleneck", faster)["verdict"] == "reproduced"


def test_half_precision_that_ruins_quality_is_never_partly():
    m = {"half speed-up": 1.1, "half FD": 8.5, "fp32 FD": 8.3}
    assert row(performance_claims, "half", m)["verdict"] == "partly"
    assert row(performance_claims, "half", {**m, "half FD": 12.0})["verdict"] == "contradicted"


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
    m = {"speedup_ddim50": 19.9, "ddpm_steps": 1000, "fd_ddim10": 13.36, "fd_ddim50": 4.67}
    rows = [{**r, "study": "00_diffusion_basics"} for r in judge(diffusion_basics.CLAIMS, m)]
    counts = report.verdict_counts(rows)["00_diffusion_basics"]
    assert counts["by construction"] == 1 and counts["reproduced"] == 1          # graceful, not time-per-step
    assert counts["not testable here"] == 2


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
