"""The study functions that the notebooks' longer cells became (issue 28, section 5): each on a tiny fake results
set, and every study's `summary` printing the lines its notebook's "what we found" cell printed."""
import dataclasses
import json
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

from fastdiff.measure.intervals import Estimate
from fastdiff.results import Results
from fastdiff.studies import adaptive_layer_skipping as skipping
from fastdiff.studies import adaptive_layer_skipping_claims as skipping_claims
from fastdiff.studies import adaptive_layer_skipping_fd as skipping_fd_module
from fastdiff.studies import continuous_unet as cunet
from fastdiff.studies import diffusion_basics as basics
from fastdiff.studies import diffusion_basics_fd as basics_fd
from fastdiff.studies import speed_quality_map as M
from fastdiff.studies import fool_rate_game, performance, performance_claims, report
from fastdiff.studies import patch_parallel_sr_summary
from fastdiff.studies import vgg_conditioned_sr as vggsr
from fastdiff.studies import vgg_sr_evaluation as sreval
from fastdiff.studies.common import real_floor, setup, weights_label
from fastdiff.verdicts import verdict_lines
from test_skipping_fd import fd as skipping_fd, section as skipping_section

VERDICTS = [{"key": "a", "claim": "it is faster", "paper": "2x", "ours": "1.9x", "threshold": "", "verdict": "reproduced",
             "why": ""},
            {"key": "b", "claim": "it is better", "paper": "-", "ours": "-", "threshold": "", "verdict": "not testable here",
             "why": ""}]
VERDICT_LINES = ["       REPRODUCED  it is faster — ours: 1.9x", "NOT TESTABLE HERE  it is better — ours: -"]


def printed(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def run(tmp_path):
    return setup("99_test", profile="smoke", device="cpu", dtype="fp32", output_dir=tmp_path, quiet=True)


def test_verdict_lines_and_the_shared_helpers():
    assert verdict_lines(VERDICTS) == VERDICT_LINES and verdict_lines([]) == []
    assert weights_label({"a": "zoo:x", "b": "trained"}) == "a: zoo:x; b: trained"
    images = torch.arange(10.0).reshape(10, 1, 1, 1)
    got = real_floor(lambda x: {"n": len(x), "sum": x.sum().item()}, images, 3, seed=0)
    pick = torch.randperm(10, generator=torch.Generator().manual_seed(0))[:3]
    assert got == {"n": 3, "sum": images[pick].sum().item()}


# ------------------------------------------------------------------------------------------------- 00

TIMING = [{"sampler": "DDPM", "steps": 1000, "eta": None, "ms_per_image": 812.4, "border_deviation": 0.0123,
           "speedup": 1.0, "batch": 4, "repeats": 1},
          {"sampler": "DDIM", "steps": 50, "eta": 0.0, "ms_per_image": 40.25, "border_deviation": 0.05,
           "speedup": 20.2, "batch": 4, "repeats": 3}]
def _fd(value, n=1000):
    return {"value": value, "low": value - 0.5, "high": value + 0.5, "n": n, "method": "bias-corrected bootstrap 95%",
            "uncorrected": value + 2.0}


KID = {"mean": 0.001, "std": 0.0005, "subset_size": 1000, "subsets": 100}
FD_SECTION = {
    "settings": {"ddim10": {"label": "DDIM 10 steps, eta 0", "sampling": {"sampler": "DDIM", "options": {"eta": 0.0},
                                                                          "steps": 10}, "n": 1000, "fd": _fd(7.89),
                            "kid": KID, "entry": "basics/quick-ddpm", "sha256": "a" * 64},
                 "ddim10-eta1": {"label": "DDIM 10 steps, eta 1", "sampling": {"sampler": "DDIM",
                                                                               "options": {"eta": 1.0}, "steps": 10},
                                 "n": 1000, "fd": _fd(6.5), "kid": KID, "entry": "basics/quick-ddpm",
                                 "sha256": "a" * 64}},
    "floor": {"label": "real held-out digits (all 500)", "n": 500, "fd": _fd(1.23, 500), "kid": KID},
    "pairs": {"ddim10|ddim10-eta1": {"a": "ddim10", "b": "ddim10-eta1", "n": 1000, "difference": _fd(1.39),
                                     "ratio": _fd(1.21)}},
    "missing": [], "n": 1000, "n_boot": 1000, "utc": "2026-12-06T01:00:00+00:00", "device": "CPU: test (1 thread)",
    "reference": "4,500 digits"}
LIVE = [{"source": "real held-out digits (n=8)", "steps": None, "eta": None, "n": 8, "FD (LeNet-MNIST)": 3.0,
         "FD bias-corrected [95%]": Estimate(1.0, 0.0, 4.0, 8, "bias-corrected bootstrap 95%", 3.0)},
        {"source": "DDIM 10 steps, η=0", "steps": 10, "eta": 0.0, "n": 8, "FD (LeNet-MNIST)": 12.0,
         "FD bias-corrected [95%]": Estimate(20.0, 15.0, 25.0, 8, "bias-corrected bootstrap 95%", 12.0),
         "ms_per_image": 5.0}]


def test_basics_summary_prints_what_we_found(capsys):
    basics.summary(timing=TIMING, fd=FD_SECTION, verdicts=VERDICTS)
    assert printed(capsys) == [
        "DDPM 1000 steps: 812 ms/image, border_deviation 0.012",
        "DDIM   50 steps (η=0):    40.2 ms/image,  20.2x faster (step ratio 20x), border_deviation 0.050",
        "FD (LeNet-MNIST), bias-corrected [95%], committed: ddim10 7.89 [7.39, 8.39]; ddim10-eta1 6.50 [6.00, 7.00]; "
        "real held-out digits 1.23 [0.73, 1.73]", *VERDICT_LINES]


def test_basics_tables_from_the_committed_measurement():
    curve = basics_fd.fd_curve(FD_SECTION)
    assert [r["steps"] for r in curve] == [None, 10] and curve[1]["low"] == 7.39
    eta = basics_fd.eta_table(FD_SECTION)
    assert eta.loc[10, "FD(eta 0) - FD(eta 1), paired"] == "1.39 [0.89, 1.89]"
    live = basics_fd.beside_committed(LIVE, FD_SECTION)
    assert live["intervals overlap"].tolist() == [True, False]


def test_basics_results_with_details(run):
    info = {"steps": 3, "batch_size": 4, "amp": "fp32", "seconds": 12.345, "history": [{"loss": 0.5}],
            "provenance": "trained in this run"}
    unet_step = {"median_ms": 1.0, "repeats": 2, "batch_size": 4, "gflops": 0.1}
    res, details = basics.results_with_details(
        run, basics.get_profile("smoke"), info=info, model=nn.Linear(2, 3), n_reference=4500, timing=TIMING,
        eta_rows=[], fd_rows=LIVE, fd=FD_SECTION, unet_step=unet_step, measured={"x": 1}, verdicts=VERDICTS)
    assert isinstance(res, Results) and res.verdicts == VERDICTS and res.context["weights"] == "trained in this run"
    assert details["train"] == {"steps": 3, "batch_size": 4, "amp": "fp32", "seconds": 12.3, "final_loss": 0.5}
    assert details["model"]["parameters"] == 9 and details["fd_live"]["reference"] == "4500 training digits"
    assert details["fd_committed"] is FD_SECTION and "FD bias-corrected [95%]" not in details["fd_live"]["rows"][0]
    fd_rows = [r for r in res.rows if r.metric == "FD (LeNet-MNIST)"]
    assert len(fd_rows) == 5                          # two live, two committed settings and the committed floor
    assert all(r.low is not None for r in fd_rows)
    assert {r.setting.get("measured on") for r in fd_rows} == {None, "CPU: test (1 thread)"}


# ------------------------------------------------------------------------------------------------- 01

FORWARD = [{"variant": "original", "trainable (M)": 40.0, "GFLOPs": 20.0, "median_ms": 100.0,
            "speedup vs original": 1.0, "params ratio": 1.0, "repeats": 2},
           {"variant": "half", "trainable (M)": 10.0, "GFLOPs": 15.0, "median_ms": 80.0,
            "speedup vs original": 1.25, "params ratio": 4.0, "repeats": 2},
           {"variant": "small", "trainable (M)": 5.0, "GFLOPs": 10.0, "median_ms": 50.0,
            "speedup vs original": 2.0, "params ratio": 8.0, "repeats": 2},
           {"variant": "VGG-11 features, 3 stages (once per image)", "trainable (M)": 0.0, "GFLOPs": 1.0,
            "median_ms": 25.0, "speedup vs original": None, "params ratio": None, "repeats": 2}]
CURVES = {"small": [{"step": 0, "val PSNR": 10.0, "denoise PSNR": 9.0}, {"step": 100, "val PSNR": 12.5,
                                                                         "denoise PSNR": 11.0}],
          "small + VGG (add)": [{"step": 0, "val PSNR": 10.0, "denoise PSNR": 9.0},
                                {"step": 100, "val PSNR": 13.25, "denoise PSNR": 12.0}]}
SR_ROWS = [{"model": "real HR (floor)", "PSNR": None, "FD (LeNet-MNIST)": 0.5},
           {"model": "bicubic (no model)", "PSNR": 14.0, "FD (LeNet-MNIST)": 9.0},
           {"model": "small", "PSNR": 13.0, "FD (LeNet-MNIST)": 3.0},
           {"model": "small + VGG (add)", "PSNR": 13.5, "FD (LeNet-MNIST)": 2.0}]


def test_vgg_sr_speed_lines():
    assert sreval.speed_lines(FORWARD) == [
        "small vs original: 8.0x fewer parameters, 2.00x fewer FLOPs, 2.00x faster here · paper: 7x fewer "
        f"parameters, {vggsr.PAPER_SPEEDUP_SMALL_VS_ORIGINAL}x faster",
        "half vs original: 75% fewer parameters, 25% fewer FLOPs"]


def test_vgg_sr_summary_prints_what_we_found(capsys):
    profile = vggsr.get_profile("smoke")
    sreval.summary(profile, {"device": "cpu", "dtype": "fp32"}, forward=FORWARD, curves=CURVES, sr_rows=SR_ROWS,
                   eval_n=8, vgg_note="digits stand-in", verdicts=VERDICTS)
    assert printed(capsys) == [
        "speed (128x128, batch 1, cpu, fp32): small is 2.00x faster than original per step with 8.0x fewer "
        "parameters (paper: 1.77x with 7x); one VGG-11 pass costs 0.50 small-U-Net steps, paid once per image",
        "     small + VGG (add) vs small: final val PSNR 13.25 vs 12.50 dB at step 100",
        "best PSNR of the diffusion models: small + VGG (add) 13.50 dB; bicubic 14.00 dB (8 images, 2 steps)",
        "FD (LeNet-MNIST): real HR (floor) 0.5, bicubic (no model) 9.0, small 3.0, small + VGG (add) 2.0",
        "features: digits stand-in", *VERDICT_LINES]


def test_vgg_sr_convergence_baseline_and_curve_table():
    hr = torch.rand(2, 1, 32, 32) * 2 - 1
    baseline, metrics = sreval.convergence_baseline(hr, None, scale=4)
    assert metrics == ("val PSNR", "denoise PSNR") and set(baseline) == {"val PSNR", "label"}
    baseline, metrics = sreval.convergence_baseline(hr, torch.tensor([1, 2]), scale=4)
    assert metrics == ("val PSNR", "digit accuracy", "denoise PSNR") and 0 <= baseline["digit accuracy"] <= 1
    table = sreval.curve_table(CURVES)
    assert table.index.name == "step" and table.loc[100, "small + VGG (add)"] == 13.25 and list(table) == list(CURVES)


def test_vgg_features_resolve_and_the_splits():
    profile = vggsr.get_profile("smoke")
    used, note = vggsr.resolve_features(profile)                     # auto: the profile's digit stand-in
    assert used == "digits" and note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert vggsr.resolve_features(profile, "random")[0] == "random"
    name, train_hr, (val_hr, val_labels), (eval_hr, eval_labels) = vggsr.sr_splits(profile, seed=0)
    assert name == "mnist-builtin" and len(val_hr) == profile.val_n and len(eval_hr) == profile.eval_n
    assert val_labels.shape == (profile.val_n,) and eval_labels.shape == (profile.eval_n,)
    again = vggsr.validation_set(dataclasses.replace(profile, val_n=profile.eval_n), seed=0, draw=1)[0]
    assert torch.equal(eval_hr, again) and train_hr.shape[-1] == profile.hr_size


def test_vgg_sr_fool_rate_game_folders_and_session(tmp_path):
    hr = torch.rand(7, 1, 16, 16) * 2 - 1
    outputs = {m: torch.rand(7, 1, 16, 16) * 2 - 1 for m in sreval.GAME_MODELS}
    game = sreval.open_fool_rate_game(tmp_path, hr, outputs, n=6, scale=4)
    assert game["n"] == 6 and game["dir"] == tmp_path / "01_fool_rate_game"
    assert game["answers"] == tmp_path / "01_fool_rate_answers.jsonl"
    assert len(list((game["dir"] / "real").iterdir())) == 6 and (game["dir"] / "lr").is_dir()
    assert len(game["session"].trials) == 6                           # two per model


def test_vgg_sr_results_with_details(run):
    profile = vggsr.get_profile("smoke")
    res, details = sreval.results_with_details(
        run, profile, data_name="mnist-builtin", n_train=100, provenance={"small": "trained"},
        vgg={"requested": "auto", "used": "digits", "note": "stand-in"}, params_paper=[], params_ours=[],
        forward=FORWARD, curves=CURVES, bicubic_val={}, sr_rows=SR_ROWS, eval_n=8, share={}, game_dir="g",
        measured={}, verdicts=VERDICTS, paper_fool_rates={"small": 0.3})
    assert res.context["dataset"] == "mnist-builtin, 100 training images, 32x32 from 8x8"
    assert res.context["weights"] == "small: trained; frozen features: stand-in" and res.verdicts == VERDICTS
    assert details["paper"]["fool_rates"] == {"small": 0.3} and details["metrics"]["n"] == 8


# ------------------------------------------------------------------------------------------------- 02

SPEED = [{"skip type": s, "variant": s, "c": c, "median_ms": 10.0, "repeats": 1, "time saved %": saved,
          "FLOPs saved %": flops} for s in ("zero", "duplicate", "interpolate")
         for c, saved, flops in ((0, 0.0, 0.0), (2, 30.0, 40.0))]
SKIPPING_FD = skipping_section({"zero-c0": skipping_fd(3.0, 2.8, 3.2), "zero-c2": skipping_fd(4.5, 4.0, 5.0),
                                "plain-c0": skipping_fd(2.0, 1.9, 2.1)})


def test_skipping_summary_prints_what_we_found(capsys):
    skipping_claims.summary(fd=SKIPPING_FD, speed=SPEED, verdicts=VERDICTS, variants=["zero", skipping.PLAIN],
                            cs=(0, 2))
    assert printed(capsys) == [
        "                        zero: FD 3.00 [2.80, 3.20] at c=0, 4.50 [4.00, 5.00] at c=2",
        "   baseline (plain training): FD 2.00 [1.90, 2.10] at c=0, - at c=2",
        "       zero, c=2: 30.0% less sampling time (FLOPs predict 40.0%)",
        "  duplicate, c=2: 30.0% less sampling time (FLOPs predict 40.0%)",
        "interpolate, c=2: 30.0% less sampling time (FLOPs predict 40.0%)", *VERDICT_LINES]


def test_skipping_tables_and_results(run):
    table = skipping_claims.table2_beside_paper(SPEED)
    assert table.loc["zero", ("time saved % (measured)", 2)] == 30.0
    assert table.loc["zero", ("paper: time saved %", 2)] == skipping.PAPER_TABLE2_SPEEDUP["zero"][2]
    quality = skipping_claims.quality_table(SKIPPING_FD, ["zero", skipping.PLAIN], (0, 2))
    assert quality.loc["zero", "c = 2"] == "4.50 [4.00, 5.00]" and quality.loc[skipping.PLAIN, "c = 2"] == "-"
    t3 = skipping_claims.table3(SKIPPING_FD, skipping.get_profile("quick"))
    assert t3.loc[("baseline, c=0", "1"), "50 steps"] == "2.00 [1.90, 2.10]" and t3.shape == (4, 3)
    profile = skipping.get_profile("smoke")
    demo = [{"key": "zero-c2", "variant": "zero", "c": 2.0, "live": skipping_fd(5.0, 3.0, 7.0, n=100),
             "committed": skipping_fd(4.5, 4.0, 5.0)}]
    assert skipping_fd_module.demo_table(demo).loc["zero-c2"].tolist() == ["5.00 [3.00, 7.00]", "4.50 [4.00, 5.00]",
                                                                          True]
    res, details = skipping_claims.results_with_details(
        run, profile, n_train=50, levels=2, models={"zero": nn.Linear(1, 1)}, provenance={"zero": "trained"},
        train_info={}, fd=SKIPPING_FD, demo=demo, speed=SPEED, measured={}, verdicts=VERDICTS)
    assert res.verdicts == VERDICTS and details["model"]["parameters"] == {"zero": 2}
    assert details["variants"]["zero"] == {"skip_type": "zero", "scheme": "consistent"}
    assert res.context["dataset"].startswith(f"{profile.dataset}, 50 training images")
    fd_rows = [r for r in res.rows if r.metric == "FD (LeNet-MNIST)"]
    assert [(r.variant, r.value, r.low, r.high, r.n) for r in fd_rows] == [
        ("zero", 3.0, 2.8, 3.2, 1000), ("zero", 4.5, 4.0, 5.0, 1000), (skipping.PLAIN, 2.0, 1.9, 2.1, 1000),
        ("zero (live demonstration)", 5.0, 3.0, 7.0, 100)]
    assert fd_rows[0].setting["measured on"] == "a test CPU" and details["demo"][0]["live"]["n"] == 100


# ------------------------------------------------------------------------------------------------- 03

def test_continuous_unet_summary_and_results(capsys, run):
    fd = lambda v, n=1000: Estimate(v, v - 0.25, v + 0.25, n, "bias-corrected bootstrap 95%", v + 2)  # noqa: E731
    rows = [{"model": "real held-out digits", "steps": None, "n": 500, "key": "floor",
             "FD (LeNet-MNIST)": fd(1.234, 500), "FD plug-in": 3.2, "KID": 0.001, "KID std": 0.002},
            {"model": "cU-Net wo/A", "steps": 20, "n": 1000, "key": "cunet-wo-a-ddpm20", "FD (LeNet-MNIST)": fd(2.0),
             "FD plug-in": 4.0, "KID": 0.002, "KID std": 0.001}]
    measured = {"U-Net best FD": fd(3.14159), "U-Net best steps": 50, "U-Net steps like best": [30, 50],
                "cU-Net best FD": 4.5, "cU-Net best steps": 20, "cU-Net steps like best": [20]}
    timing = [{"model": "cU-Net", "seconds per sample": 0.0625}, {"model": "U-Net", "seconds per sample": 0.5}]
    cunet.summary(measured=measured, timing_rows=timing, fd_rows=rows, verdicts=VERDICTS)
    assert printed(capsys) == [
        "  U-Net: best FD 3.14 [2.89, 3.39] at 50 DDPM steps (within noise: {30, 50}); 0.500 s per sample there",
        " cU-Net: best FD 4.50 at 20 DDPM steps (within noise: {20}); 0.062 s per sample there",
        "floor (real held-out digits, n=500): 1.23 [0.98, 1.48]", *VERDICT_LINES]
    live = [{"model": "U-Net", "steps": 50, "n": 100, "FD (LeNet-MNIST)": fd(3.5, 100), "ms per sample": 9.0}]
    section = {"device": "a test CPU", "utc": "2026-01-02T03:04:05+00:00"}
    res, details = cunet.results_with_details(run, n_train=10, provenance={"U-Net": "zoo"}, train_info={},
                                              params_cpu=[], params_paper=[], fd_rows=rows, timing_rows=[],
                                              solver_rows=[], measured=measured, verdicts=VERDICTS, live_rows=live,
                                              fd=section)
    assert [r.variant for r in res.rows] == ["real held-out digits", "cU-Net wo/A", "U-Net (live)"]
    ablation = res.rows[1]
    assert (ablation.low, ablation.high, ablation.n) == (1.75, 2.25, 1000)
    assert ablation.setting["measured on"] == "a test CPU" and ablation.setting["kid"] == 0.002
    assert res.rows[2].n == 100 and "measured on" not in res.rows[2].setting
    assert details["measured_for_claims"]["U-Net best FD"]["low"] == pytest.approx(2.89159)
    assert details["fd_live"][0]["FD (LeNet-MNIST)"]["n"] == 100 and res.context["weights"] == "U-Net: zoo"
    json.dumps(details)                                                   # no Estimate left in the details


# ------------------------------------------------------------------------------------------------- 04

def test_swindiffuser_summary_and_process_table(capsys):
    rows = [{"model": "HR (real)", "seam score": 1.0},
            {"model": "fixed s8", "PSNR": 25.125, "SSIM": 0.8, "LR-PSNR": 30.0, "seam score": 1.5}]
    patch_parallel_sr_summary.summary(rows, VERDICTS)
    assert printed(capsys) == [
        "                          fixed s8: PSNR 25.12 dB, SSIM 0.800, LR-PSNR 30.00 dB, seam score 1.50",
        "                         HR (real): seam score 1.00", *VERDICT_LINES]
    bench = {"sizes": {64: {"a": {"model": "fixed s8", "processes": 2, "threads per process": 1, "patches": 4,
                                  "seconds per image": 0.5, "shares": {"denoise": 0.9}}}}}
    table = patch_parallel_sr_summary.process_table(bench)
    assert table.loc[("64x64", "fixed s8", 2), "denoise share"] == 0.9


def test_swindiffuser_results_keep_each_model_once(run):
    def row(model):
        return {"model": model, "PSNR": 20.0}
    tables = {"3.1": [row("no shift"), row("fixed s8")], "3.2": [row("no shift"), row("random s8")],
              "3.3": [row("16x16 patches, fixed s4")], "3.5": [row("full-image baseline")]}
    rows = [row("HR (real)"), row("no shift"), row("bicubic (no model)")]
    res, details = patch_parallel_sr_summary.results_with_details(
        run, dataset="photos", provenance={"fixed s8": "zoo"}, train_info={}, rows=rows, tables=tables,
        time_table=[], bench=None, measured={}, verdicts=VERDICTS, steps=4)
    psnr = [r.variant for r in res.rows if r.metric == "PSNR"]
    assert psnr == ["no shift", "fixed s8", "random s8", "16x16 patches, fixed s4", "full-image baseline",
                    "HR (real)", "bicubic (no model)"]
    assert details["table_3_2"] == tables["3.2"] and details["processes"] is None


# ------------------------------------------------------------------------------------------------- 05

LADDER = [{"rung": "fp32", "dtype": "fp32", "layout": "NCHW", "ms per call": 10.0, "speed-up vs fp32": 1.0,
           "FD (LeNet-MNIST)": 3.0, "GFLOP/s": 1.0},
          {"rung": "bf16", "dtype": "bf16", "layout": "NCHW", "ms per call": 5.0, "speed-up vs fp32": 2.0,
           "FD (LeNet-MNIST)": 3.5, "GFLOP/s": 2.0}]
ARCH = [{"model": "baseline", "FD (LeNet-MNIST)": 3.0},
        {"model": "bottleneck", "FLOPs vs baseline": 0.5, "sampling time vs baseline": 0.6,
         "training time vs baseline": 0.7, "FD (LeNet-MNIST)": 3.25}]


def test_performance_summary_prints_what_we_found(capsys):
    compare = {"best vs best": 1.5, "device": "a GPU"}
    performance_claims.summary(digits_ladder=LADDER, arch_rows=ARCH, compare=compare, floor=1.0, verdicts=VERDICTS)
    lines = ["digits U-Net: fastest rung 'bf16', 2.00x fp32, FD 3.50 vs 3.00 (floor 1.00)",
             "bottleneck: 50% FLOPs, 60% sampling time, 70% training time, FD 3.25 vs 3.00"]
    assert printed(capsys) == lines + ["fastdiff vs diffusers, best vs best: 1.50x (a GPU)", *VERDICT_LINES]
    performance_claims.summary(digits_ladder=LADDER, arch_rows=ARCH, compare=None, floor=1.0, verdicts=VERDICTS)
    assert printed(capsys) == lines + VERDICT_LINES


def test_performance_summary_and_results_carry_the_fd_intervals(capsys, run):
    def est(v, n=1000):
        return Estimate(v, v - 0.1, v + 0.1, n, "bias-corrected bootstrap 95%")
    ladder = [{**LADDER[0], "FD (LeNet-MNIST)": est(3.0)},
              {**LADDER[1], "FD (LeNet-MNIST)": est(3.5), "FD / fp32": est(1.2)}]
    performance_claims.summary(digits_ladder=ladder, arch_rows=[], compare=None, floor=est(1.0), verdicts=[])
    assert printed(capsys) == ["digits U-Net: fastest rung 'bf16', 2.00x fp32, FD 3.50 [3.40, 3.60] vs 3.00 [2.90, "
                               "3.10], ratio 1.20 [1.10, 1.30] (floor 1.00 [0.90, 1.10])"]
    cifar = {"rows": [], "libraries": [], "device": "", "source": "not run (cifar10=skip)", "bench": None}
    res, details = performance_claims.results_with_details(
        run, provenance={"baseline": "zoo"}, train_info={}, roofs={}, digits_ladder=ladder, cifar=cifar,
        compare=None, digits_roof={}, arch_rows=[], ddp=None, measured={}, verdicts=VERDICTS, ddim_steps=2,
        fd={"n": 1000}, fd_device="CPU: X, AVX2 (1 thread)", fd_source="the FD measurement")
    fd_rows = [r for r in res.rows if r.metric == "FD (LeNet-MNIST)"]
    assert [(r.value, r.low, r.high, r.n, r.device) for r in fd_rows] == [
        (3.0, 2.9, 3.1, 1000, "CPU: X, AVX2 (1 thread)"), (3.5, 3.4, 3.6, 1000, "CPU: X, AVX2 (1 thread)")]
    assert all(r.setting["source"] == "the FD measurement" for r in fd_rows) and details["fd"] == {"n": 1000}


def test_performance_tables():
    table = performance.ladder_table(LADDER)
    assert list(table.index) == ["fp32", "bf16"]
    assert list(table) == ["ms per call", "speed-up vs fp32", "GFLOP/s", "FD (LeNet-MNIST)"]    # LADDER_COLUMNS' order
    libs = [{"library": lib, "rung": rung, "ms per call": ms} for lib, rung, ms in
            (("fastdiff", "fp32", 4.0), ("diffusers", "bf16", 3.0), ("fastdiff", "bf16", 2.0), ("diffusers", "fp32", 6.0))]
    table = performance.library_table(libs)
    assert list(table.index) == ["fp32", "bf16"] and table.loc["fp32", "diffusers / fastdiff"] == 1.5


def test_performance_cifar10_ladder_skip_and_results(run, tmp_path):
    roofs = {"matmul GFLOP/s (fp32)": 10.0}
    skipped = performance.cifar10_ladder(performance.get_profile("smoke"), None, run=run, roofs=roofs)
    assert skipped == {"rows": [], "libraries": [], "device": "", "source": "not run (cifar10=skip)", "bench": None}
    bench = {"benchmark": "performance", "environment": {"device": "a CPU", "utc": "2024-01-01"}, "batch": 8,
             "peaks": {"matmul GFLOP/s (fp32)": 100.0},
             "models": {"ddpm_cifar10": {"rows": [{"rung": "fp32", "dtype": "fp32", "GFLOP/s": 50.0}]}},
             "libraries": {"rows": [{"library": "fastdiff"}]}}
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "performance.json").write_text(json.dumps(bench))
    got = performance.cifar10_ladder(performance.get_profile("smoke", cifar10="results"), None, run=run, roofs=roofs,
                                     results_dir=tmp_path)
    assert got["rows"] == [{"rung": "fp32", "dtype": "fp32", "GFLOP/s": 50.0, "% of peak": 50.0}]   # its own roofs
    assert got["libraries"] == [{"library": "fastdiff"}] and got["device"] == "a CPU"
    assert got["source"] == "benchmarks/performance.py on a CPU, 2024-01-01, batch 8" and got["bench"]["batch"] == 8


def test_performance_results_with_details(run):
    cifar = {"rows": [], "libraries": [], "device": "", "source": "not run (cifar10=skip)", "bench": None}
    res, details = performance_claims.results_with_details(
        run, provenance={"baseline": "zoo"}, train_info={}, roofs={}, digits_ladder=LADDER, cifar=cifar,
        compare=None, digits_roof={}, arch_rows=[], ddp=None, measured={}, verdicts=VERDICTS, ddim_steps=2)
    assert details["cifar10_source"] == "not run (cifar10=skip)" and details["digits_ladder"] == LADDER
    assert {r.variant for r in res.rows} == {"digits U-Net: fp32", "digits U-Net: bf16"}


# ------------------------------------------------------------------------------------------------- 06

def test_fool_rate_summary_with_and_without_answers(capsys):
    paper = [f"paper, {m}: {rate:.0%}" for m, rate in fool_rate_game.PAPER_FOOL_RATES.items()]
    fool_rate_game.summary(pd.DataFrame())
    assert printed(capsys) == ["no answers yet: this run only drew the game (papermill/nbval do not play it)", *paper]
    table = pd.DataFrame([{"model": "small", "show_s": 5.0, "image_set": "demo", "fooled": 3, "n": 10,
                           "fool_rate": 0.3, "ci_low": 0.108, "ci_high": 0.603, "median_response_s": 1.25}])
    fool_rate_game.summary(table)
    assert printed(capsys) == ["small (5 s, images demo): fooled 3 of 10 times, fool rate 30% (95% CI 11%-60%), "
                               "median response 1.2 s", *paper]


# ------------------------------------------------------------------------------------------------- 07

def test_report_map_lines_table_and_summary(capsys):
    from fastdiff.studies.speed_quality_map import METRIC, TIME

    def point(label, family, sampler, steps, ms, fd, cache=0):
        return {"label": label, "family": family, "model": "U-Net", "sampler": sampler, "steps": steps, "NFE": steps,
                "full U-Net calls": steps, "rung": "fp32", "cache interval": cache, "c": None, TIME: ms,
                "IQR (ms)": 0.1, "speed-up": 10.0 / ms, METRIC: fd}
    rows = [point("ddpm-10", "DDPM (ancestral)", "DDPM", 10, 10.0, 5.0), point("ddim-5", "DDIM", "DDIM", 5, 5.0, 5.1),
            point("ddim-5 + DeepCache", "DeepCache", "DDIM", 5, 2.5, 5.4, cache=2)]
    part = {"rows": rows, "reference": "ddpm-10", "device": "cpu", "batch": 4, "rounds": 2, "n": 8, "floor": 1.5,
            "weights": {"U-Net": "zoo:u-net"}, "tolerance": 0.1, "headline": {**rows[1], "limit": 5.5}}
    assert report.map_lines(part) == ["cpu · batch 4 · 2 interleaved rounds · FD of 8 samples against the training "
                                      "digits · held-out real digits 1.50", "  U-Net: zoo:u-net"]
    table = report.map_table(rows)
    assert list(table) == report.MAP_COLUMNS and list(table.index) == ["ddpm-10", "ddim-5", "ddim-5 + DeepCache"]
    claim_rows = [{"study": "00", "verdict": "reproduced"}, {"study": "02", "verdict": "partly"}]
    front = report.pareto_front(rows, x=TIME, y=METRIC)
    report.summary(part, solver_rows=rows[:2], front=front, claim_rows=claim_rows, verdicts=VERDICTS)
    lines = printed(capsys)
    assert lines[:4] == [report.headline_line(part),
                         "with a solver alone (no method, fp32): ddim-5, FD 5.10, 2x faster than ddpm-10",
                         "Pareto front: ddim-5 + DeepCache < ddim-5 < ddpm-10",
                         "  ddim-5 + DeepCache: 2.00x ddim-5, FD 5.40 vs 5.10"]
    assert lines[4].startswith("the studies' claims: 1 reproduced, 1 partly, 0 ")
    assert lines[5:] == VERDICT_LINES


def test_report_equal_time_table_within_interval_and_what_to_reach_for():
    from fastdiff.measure.intervals import Estimate
    from fastdiff.studies.speed_quality_map import FD_INTERVAL, FLOPS, METRIC, RATIO, TIME

    def point(label, family, ms, fd, nfe, *, cache=None, gflops=1.0, steps=50, sampler="DDIM", half=1.0):
        return {"label": label, "family": family, "model": "U-Net", "sampler": sampler, "steps": steps, "NFE": nfe,
                "rung": "fp32", "cache interval": None, "cache": cache, "c": None, TIME: ms, METRIC: fd,
                FD_INTERVAL: Estimate(fd, fd - half, fd + half, 1000, "t"), RATIO: Estimate(fd / 2, 0.1, 9, 1000, "t"),
                FLOPS: gflops}
    rows = [point("DDPM 1000", "DDPM (ancestral)", 100.0, 2.0, 1000, sampler="DDPM", steps=1000, gflops=20.0),
            point("DDIM 50", "DDIM", 5.0, 3.0, 50), point("DDIM 10", "DDIM", 1.0, 12.0, 10, steps=10, gflops=0.2),
            point("cache 2", "DeepCache", 3.0, 3.1, 50, cache="DeepCache N=2", gflops=0.6),
            point("fbc", "first-block cache", 0.9, 5.0, 50, cache="first-block cache 0.1", gflops=0.1, half=0.5),
            point("lost", "encoder propagation", 4.9, 3.0, 50, cache="encoder propagation N=2", gflops=0.5)]
    part = {"rows": rows, "reference": "DDPM 1000", "device": "cpu (2 threads)",
            **{k: v for k, v in M.judge_map(rows, rows[0]).items()}}
    lines = report.within_interval_lines(part)
    assert lines[0].startswith("fastest setting whose FD is within DDPM 1000's interval (2.00 [1.00, 3.00]: FD <= "
                               "3.00): lost (50 evaluations), FD 3.00 [2.00, 4.00]")      # cache 2 is faster, at 3.1
    assert lines[1].startswith("  within 10 network evaluations: fastest within the interval: none; best FD: "
                               "DDIM 10 (10 evaluations), FD 12.00")
    table = report.equal_time_table(part)
    assert list(table.index) == [0.9, 3.0, 4.9]
    assert table.loc[0.9, report.BEST] == "-"                          # no step count that fast
    assert table.loc[3.0, report.STEPS].startswith("DDIM 10: FD 12.00") and table.loc[3.0, report.BEST] == report.CACHES
    assert table.loc[4.9, report.BEST] == report.CACHES                 # DDIM 50 takes 5.0 ms
    assert table.loc[4.9, report.CACHES].startswith("lost: FD 3.00") and \
        table.loc[4.9, report.DISTILLED] == "no distilled model on this map yet"
    reach = report.reach_for_lines(part)
    assert reach[1].startswith("  first-block cache: fbc, 0.900 ms per image") and "lost (50% fewer FLOPs, 2% less " \
        "time)" in reach[-1]
