"""The papers' numbers as data in one shape (`fastdiff.papers`): every number is complete and unique, lookups fail
with a message naming what is there, and the studies' constants and claims read them instead of typing them. Fed
the paper's own numbers (read from `fastdiff.papers`), every study's rules say "reproduced"; the same numbers with an
interval across a threshold say "inconclusive"."""
import pytest

from fastdiff import papers
from fastdiff.measure.intervals import Estimate
from fastdiff.studies import (adaptive_layer_skipping, adaptive_layer_skipping_claims, continuous_unet,
                              diffusion_basics, fool_rate_game, patch_parallel_sr, performance_claims, report_claims,
                              vgg_conditioned_sr)
from fastdiff.studies import adaptive_layer_skipping_fd as skipping_fd
from fastdiff.studies import patch_parallel_sr_quality
from fastdiff.verdicts import judge

S0, S1, S2, S3, S4, S5, S7 = ("00_diffusion_basics", "01_vgg_conditioned_sr", "02_adaptive_layer_skipping",
                              "03_continuous_unet", "04_swindiffuser", "05_performance", "07_report")


def test_every_number_has_the_same_fields_and_no_number_is_given_twice():
    keys = [(p.study, p.table, p.variant, p.metric) for p in papers.NUMBERS]
    assert len(keys) == len(set(keys))
    for p in papers.NUMBERS:
        assert all(isinstance(getattr(p, f), str) and getattr(p, f) for f in ("study", "table", "variant", "metric",
                                                                               "source"))
        assert isinstance(p.value, float) and p.value > 0 and isinstance(p.unit, str)


def test_lookups_name_what_is_there():
    assert papers.value("00_diffusion_basics", "DDIM 50, eta 0", "FID") == 4.67
    with pytest.raises(KeyError, match="DDIM 50, eta 0 / FID"):
        papers.value("00_diffusion_basics", "DDIM 51, eta 0", "FID")
    with pytest.raises(ValueError, match="unknown field"):
        papers.numbers("00_diffusion_basics", colour="red")
    assert papers.cite("00_diffusion_basics", "DDIM 20, eta 0", "DDIM 20, eta 1", metric="FID").startswith(
        "FID 6.84 (DDIM 20, eta 0) vs 18.36 (DDIM 20, eta 1); DDIM paper")
    assert list(papers.table("01_vgg_conditioned_sr").columns) == ["table", "variant", "metric", "value", "unit",
                                                                   "source"]


def test_the_studies_read_their_paper_numbers_from_the_data():
    assert vgg_conditioned_sr.PAPER_PARAMETERS["small"] == 9e6
    assert vgg_conditioned_sr.PAPER_SPEEDUP_SMALL_VS_ORIGINAL == papers.value("01_vgg_conditioned_sr",
                                                                              "small vs original", "speed-up")
    assert fool_rate_game.PAPER_FOOL_RATES["original (66M)"] == pytest.approx(0.40)
    claim = {c.key: c for c in diffusion_basics.CLAIMS}
    assert "4.67 (DDIM 50, eta 0)" in claim["ddim50-quality"].paper and "3.17 (DDPM 1000)" in claim["ddim50-quality"].paper
    assert "41.07 (DDIM 10, eta 1)" in claim["eta-10"].paper
    assert fool_rate_game.PAPER_SHOW_SECONDS == papers.value(S1, "human study", "seconds shown")
    assert "10 participants, 5 s per trial" in fool_rate_game.PAPER_SOURCE
    # 02: the Tables the notebook shows and the claims' paper column
    skip = adaptive_layer_skipping
    assert skip.PAPER_TABLE1_FID["DDPM"][2] == papers.value(S2, "DDPM, c=2", "FID") == 73.15
    assert skip.PAPER_TABLE2_SPEEDUP["zero"] == {0: 0.0, **{c: papers.value(S2, f"zero, c={c}", "time saved")
                                                           for c in (1, 2, 3, 5)}}
    assert skip.PAPER_TABLE3_FID["ours"][None][1000] == papers.value(S2, "zero c=2, DDPM 1000", "FID") == 4.57
    assert skip.PAPER_TABLE3_FID["DDPM/DDIM"][0.0][10] == 13.46       # as the skipping paper prints DDIM's 13.36
    assert len(papers.numbers(S2, table="Table 1")) == 20 and len(papers.numbers(S2, table="Table 3")) == 40
    claim = {c.key: c for c in adaptive_layer_skipping_claims.CLAIMS}
    assert claim["time"].paper == "zero skipping: 47.5% less time at c=2 (Table 2)"
    assert claim["plain-falls-apart"].paper == "FID 3.17 -> 73.15 at c=2 (23x; Table 1, row DDPM)"
    assert "eta 1 8.01 (50 steps) vs ours 11.90 (100), eta 0 4.67 vs 9.74" in claim["ddim-equal-time"].paper
    # 03
    assert continuous_unet.PAPER_TABLE1_MNIST["cU-Net"] == {"FID": 2.98, "steps": 5, "seconds": 0.54}
    assert continuous_unet.PAPER_TABLE2["cU-Net wo/A/R"] == (papers.value(S3, "cU-Net wo/A/R", "GFLOPs"),
                                                             papers.value(S3, "cU-Net wo/A/R", "memory"))
    claim = {c.key: c for c in continuous_unet.CLAIMS}
    assert claim["flops"].paper == "7.21 vs 2.90 GFLOPs (Table 2; 40%)"
    assert claim["faster"].claim == "the cU-Net infers 30% to 80% faster on a CPU"
    assert claim["params"].paper.startswith("545.5 vs 137.9 MB (Table 2; 3.96x)")
    # 04
    sr = patch_parallel_sr
    assert sr.PAPER_TABLE_3_1[8] == tuple(papers.value(S4, "step 8", m) for m in sr.METRICS)
    assert sr.PAPER_TABLE_3_6 == {"SwinDiffuser": {1: 7.229, 2: 4.893}, "SRDiff": {1: 5.59}}
    assert sr.THESIS.startswith("Ye, ") and all(p.source.startswith("SwinDiffuser thesis (Ye 2024)")
                                                for p in papers.numbers(S4))
    claim = {c.key: c for c in sr.CLAIMS}
    assert claim["patch-size"].paper == "28.18 vs 24.81 dB, 0.908 vs 0.827 (Table 3.3)"
    assert claim["two-devices"].paper.startswith("128x128: 7.23 s -> 4.89 s on 2 GPUs (Table 3.6); 64x64: 0.92")
    # 05: the proposal expects, but gives no number
    assert papers.numbers(S5) == []
    assert all("no number" in c.paper for c in performance_claims.CLAIMS if c.key not in performance_claims.TARGETS)
    # 07's own claims
    claim = {c.key: c for c in report_claims.CLAIMS}
    assert "1.85x, FID 5.73 vs 4.19" in claim["deepcache"].paper and "rose 1.37x" in claim["deepcache"].threshold
    assert claim["dpm-solver"].paper.startswith("15-20 steps") and claim["heun"].paper.startswith("18 steps, 35 NFE")


# ------------------------------------------------------------------------------ the papers' numbers through the rules
# Where a rule reads an interval, the paper's number at the centre of an interval that reaches across the rule's
# threshold must give "inconclusive": the verdict turns on the interval, not on where its value falls. The runs of the
# paper's numbers alone ("reproduced") that already live beside each study's other rule tests are named here.

def exact(value: float) -> Estimate:
    """A paper's number as an estimate: no interval (the papers give none)."""
    return Estimate(value, value, value, 1000, "the paper's number")


def across(value: float, threshold: float) -> Estimate:
    """The paper's ``value`` with an interval that reaches a little past ``threshold``."""
    margin = 0.1 * abs(value - threshold)
    return Estimate(value, min(value, threshold) - margin, max(value, threshold) + margin, 1000, "straddle")


def verdicts(module, measured: dict) -> dict[str, str]:
    return {r["key"]: r["verdict"] for r in judge(module.CLAIMS, measured)}


def test_00_the_ddim_papers_ratios_across_their_thresholds_are_inconclusive():
    """Table 1's numbers reproduce (as plain numbers too: test_verdict_rules.py, test_the_diffusion_basics_rules_on_
    the_ddim_papers_table_1_reproduce_its_claims); with intervals across the thresholds they are inconclusive."""
    def fid(variant):
        return papers.value(S0, variant, "FID")
    ratio, fall = fid("DDIM 50, eta 0") / fid("DDPM 1000"), fid("DDIM 10, eta 0") / fid("DDIM 50, eta 0")
    paper = {"ratio:ddim50|ddpm1000": exact(ratio), "ratio:ddim10|ddim50": exact(fall),
             **{f"difference:ddim{s}|ddim{s}-eta1": exact(fid(f"DDIM {s}, eta 0") - fid(f"DDIM {s}, eta 1"))
                for s in (10, 20)}}
    assert verdicts(diffusion_basics, paper) == {"ddim50-quality": "reproduced", "time-per-step": "not testable here",
                                                 "graceful": "reproduced", "eta": "reproduced", "eta-10": "reproduced"}
    straddles = {"ratio:ddim50|ddpm1000": across(ratio, 1.5), "ratio:ddim10|ddim50": across(fall, 4.0),
                 **{k: across(e.value, 0.0) for k, e in paper.items() if k.startswith("difference")}}
    assert verdicts(diffusion_basics, straddles) == {**{k: "inconclusive" for k in ("ddim50-quality", "graceful", "eta",
                                                                                     "eta-10")},
                                                     "time-per-step": "not testable here"}


def test_01_the_vgg_sr_paper_numbers_reach_only_rules_without_intervals():
    """Reproduced on the paper's numbers (speed 1.77x; params by construction): test_verdict_rules.py,
    test_the_vgg_sr_rules_on_the_papers_own_numbers, through `vgg_conditioned_sr`'s constants read from here. No
    straddle is possible: the speed rule reads one timed ratio (no interval), and the rules that read intervals
    (converges, concat, bigger-better) judge claims the paper gives no number for (Fig. 3, Sec. 4.1); its fool rates
    are notebook 06's game, with no rule of their own."""
    assert vgg_conditioned_sr.PAPER_SPEEDUP_SMALL_VS_ORIGINAL == papers.value(S1, "small vs original", "speed-up")
    assert {p.metric for p in papers.numbers(S1)} == {"parameters", "speed-up", "fool rate", "seconds shown",
                                                      "participants"}


def skipping(fds: dict, *, pairs=None, speed=()) -> dict[str, str]:
    from test_skipping_fd import section
    m = adaptive_layer_skipping_claims.measured_for_claims(section(fds, pairs), list(speed))
    return verdicts(adaptive_layer_skipping_claims, m)


def test_02_the_skipping_papers_numbers_with_intervals_across_their_thresholds_are_inconclusive():
    """Reproduced on Tables 1-3 themselves: test_skipping_fd.py, test_the_papers_own_numbers_reproduce_its_claims
    (through the study's tables, read from here). The uniform-k claim has no number in the paper."""
    def fid(variant):
        return papers.value(S2, variant, "FID")
    key, plain = skipping_fd.key, adaptive_layer_skipping.PLAIN
    saved = papers.value(S2, "zero, c=2", "time saved")
    speed = [{"skip type": "zero", "c": c, "time saved %": v, "FLOPs saved %": v} for c, v in ((0, 0.0), (2, saved))]
    cells = {key(v, c): exact(fid(f"{row}, c={c}")) for v, row in ((plain, "DDPM"), ("zero", "zero")) for c in (0, 2)}
    assert skipping(cells, speed=speed)["time"] == "reproduced"
    kept = fid("zero, c=2") / fid("zero, c=0")                                      # 1.22 against the bound 1.5
    fell = fid("DDPM, c=2") / fid("DDPM, c=0")                                      # 23 against 3 (partly: 1.5)
    got = skipping(cells, speed=speed, pairs={(key("zero", 2), key("zero", 0)): across(kept, 1.5),
                                              (key(plain, 2), key(plain, 0)): across(fell, 3.0)})
    assert got["time"] == "inconclusive" and got["plain-falls-apart"] == "inconclusive"
    # across two models: the FD of zero at c=0 with an interval that carries its ratio to DDPM's past 2x
    wide = {**cells, key("zero", 0): across(fid("zero, c=0"), 2 * fid("DDPM, c=0"))}
    assert skipping(cells)["c0-cost"] == "reproduced" and skipping(wide)["c0-cost"] == "inconclusive"


def test_03_the_continuous_unet_papers_fids_across_the_bound_are_inconclusive():
    """Reproduced on Tables 1 and 2 themselves: test_verdict_rules.py, test_the_continuous_unet_rules_on_the_papers_
    own_numbers_reproduce_its_claims. flops and faster read plain numbers (GFLOPs counted, times measured live: no
    interval), fewer-steps reads sets of step counts; comparable reads the two FDs' intervals."""
    fid = {m: papers.value(S3, f"{m}, MNIST", "FID") for m in ("U-Net", "cU-Net")}
    steps = {m: int(papers.value(S3, f"{m}, MNIST", "best steps")) for m in ("U-Net", "cU-Net")}

    def comparable(cunet: Estimate) -> str:
        rows = [{"model": m, "steps": steps[m], "n": 1000, "key": f"{m}-{steps[m]}", "FD (LeNet-MNIST)": e}
                for m, e in (("U-Net", exact(fid["U-Net"])), ("cU-Net", cunet))]
        m = continuous_unet.measured_for_claims(params_rows=[], fd_rows=rows, timing_rows=[], device="a CPU",
                                                train_steps=1)
        return verdicts(continuous_unet, m)["comparable"]
    assert comparable(exact(fid["cU-Net"])) == "reproduced"                       # 2.98 / 3.61 = 0.83 <= 1.2
    assert comparable(across(fid["cU-Net"], 1.2 * fid["U-Net"])) == "inconclusive"


# our variants -> the thesis's rows (Tables 3.1-3.3 at 64x64; Table 3.5 at 128x128 for the baseline comparison)
THESIS_ROWS = {"fixed s8": "step 8", "no shift": "step 0", "fixed s4": "step 4", "fixed s12": "step 12",
               "fixed s16": "step 16", "random s8": "random pattern", "16x16 patches, fixed s4": "16x16 patches"}
THESIS_ROWS_128 = {patch_parallel_sr.MAIN: "SwinDiffuser, 128x128", patch_parallel_sr.BASELINE: "SRDiff, 128x128"}


def thesis_gaps(value) -> dict:
    """The paired gaps the SwinDiffuser claims read, from the thesis's tables (``value``: a gap -> an estimate); the
    thesis has no seam score, so that gap is absent."""
    gaps = {}
    for metric, a, b in patch_parallel_sr_quality.CLAIM_GAPS:
        rows = THESIS_ROWS_128 if patch_parallel_sr.BASELINE in (a, b) else THESIS_ROWS
        if metric != "seam score":
            gap = papers.value(S4, rows[a], metric) - papers.value(S4, rows[b], metric)
            gaps[patch_parallel_sr.gap_key(metric, a, b)] = value(gap)
    return gaps


def test_04_the_thesiss_tables_reproduce_its_claims_and_a_gap_across_zero_is_inconclusive():
    """Tables 3.1-3.6 as if measured here. shifting also reads the seam score, which the thesis does not report (it
    shows the artifacts in figures), so on the thesis's numbers alone it is not testable. two-devices: 128x128 on two
    GPUs is reproduced; the thesis's own 64x64 row, slower on two, contradicts it (its overhead, Sec. 3.2.4)."""
    def bench(size, seconds):
        return {"large size": size, "1-process s per image (large)": seconds[1],
                "2-process s per image (large)": seconds[2], "shared cores": False, "device": "RTX A4000"}
    got = verdicts(patch_parallel_sr, {**thesis_gaps(exact), **bench(128, patch_parallel_sr.PAPER_TABLE_3_6[
        "SwinDiffuser"])})
    assert got == {"shifting": "not testable here", "best-step": "reproduced", "fixed-vs-random": "reproduced",
                   "patch-size": "reproduced", "two-devices": "reproduced", "below-baseline": "reproduced"}
    assert verdicts(patch_parallel_sr, bench(64, patch_parallel_sr.PAPER_TABLE_3_4))["two-devices"] == "contradicted"
    gaps = thesis_gaps(exact)
    psnr = patch_parallel_sr.gap_key("PSNR", patch_parallel_sr.MAIN, "random s8")        # 28.179 - 27.283
    assert verdicts(patch_parallel_sr, {**gaps, psnr: across(gaps[psnr].value, 0.0)})["fixed-vs-random"] == \
        "inconclusive"
    with_seams = {**gaps, patch_parallel_sr.gap_key("seam score", "no shift", patch_parallel_sr.MAIN): exact(0.1)}
    assert verdicts(patch_parallel_sr, with_seams)["shifting"] == "reproduced"      # given a seam gap of our own


def test_05_the_proposal_gives_no_number_to_run():
    """Study 5's proposal expects each speed-up but gives no number (Sec. 1, 3), so no rule can take the paper's own
    numbers; its thresholds are ours, and an FD ratio across its bound is inconclusive in
    test_verdict_rules.py (test_an_architecture_fd_interval_across_its_bound_is_inconclusive_in_both_branches)."""
    assert papers.numbers(S5) == [] and performance_claims.HALF_PAPER.startswith("expected, no number")


def test_07_deepcaches_own_numbers_reproduce_and_its_ratio_across_the_bound_is_inconclusive():
    """DeepCache's CIFAR-10 row through the rule. DPM-Solver++ and Heun give step counts for "high quality", not an
    FD against DDPM 1000, which is what their rules read: those claims have no paper number to feed."""
    speed = papers.value(S7, "DeepCache N=5, DDIM 100", "speed-up")
    cached, plain = papers.value(S7, "DeepCache N=5, DDIM 100", "FID"), papers.value(S7, "DDIM 100", "FID")
    m = {"deepcache speed-up": speed, "deepcache FD": cached, "ddim100 FD": plain, "deepcache FD ratio": cached / plain}
    assert verdicts(report_claims, m)["deepcache"] == "reproduced"
    straddle = {**m, "deepcache FD ratio": across(cached / plain, 1.5)}
    assert verdicts(report_claims, straddle)["deepcache"] == "inconclusive"
