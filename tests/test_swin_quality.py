"""Study 4's measure-once quality file (`fastdiff.studies.patch_parallel_sr_quality`) and the claims judged on its
paired gaps: a gap whose 95% interval straddles zero is inconclusive, never a coin-flip verdict."""
from __future__ import annotations

import json

import pytest
import torch

from fastdiff import zoo
from fastdiff.diffusion import make_schedule
from fastdiff.measure.intervals import Estimate
from fastdiff.portable_json import save_results
from fastdiff.studies import patch_parallel_sr as study
from fastdiff.studies import patch_parallel_sr_quality as quality
from fastdiff.verdicts import judge

SWIN_UNET = {**study.CPU_UNET, "base_channels": 8, "channel_mult": (1, 2), "norm_groups": 4}
MODELS = ("no shift", "fixed s8")


@pytest.fixture(scope="module")
def measured():
    torch.manual_seed(0)
    models = {name: study.build(name, unet=SWIN_UNET).eval() for name in MODELS}
    hr = study.photos("val")[:4]
    return quality.measure(models, hr, make_schedule(study.SCHEDULE), steps=2, device="cpu", sanity_n=2,
                           progress=False)


def test_the_measurement_keeps_every_images_scores_and_a_sanity_record_per_model(measured):
    assert measured["benchmark"] == quality.NAME and measured["n"] == 4 and measured["steps"] == 2
    assert set(measured["per_image"]) == {quality.BICUBIC, "HR (real)", *MODELS, quality.NO_SHIFT_SAMPLING}
    for label, scores in measured["per_image"].items():
        assert all(len(v) == 4 for v in scores.values()), label
    assert [r["model"] for r in measured["sanity"]] == list(MODELS)
    assert all(r["n"] == 2 and r["samples"] == 8 for r in measured["sanity"])
    assert measured["environment"]["device"].startswith("CPU") and measured["weights"]["fixed s8"]["sha256"] is None
    json.dumps(measured)                                               # plain JSON, as written


def test_the_table_gives_means_with_intervals_and_n(measured):
    rows = {r["model"]: r for r in quality.table(measured)}
    psnr = rows["fixed s8"]["PSNR"]
    assert isinstance(psnr, Estimate) and psnr.n == 4 and psnr.low <= psnr.value <= psnr.high
    assert psnr.value == pytest.approx(sum(measured["per_image"]["fixed s8"]["PSNR"]) / 4)
    assert set(rows["HR (real)"]) == {"model", "n", "seam score"}
    text = quality.formatted([rows["fixed s8"]])[0]["PSNR"]
    assert "[" in text and "]" in text
    m = quality.measured_for_claims(measured)
    gap = m[study.gap_key("PSNR", "fixed s8", "no shift")]
    per = measured["per_image"]
    assert gap.value == pytest.approx(sum(a - b for a, b in zip(per["fixed s8"]["PSNR"], per["no shift"]["PSNR"])) / 4)
    assert "paired" in gap.method and m["quality device"].startswith("measured on CPU")


def test_reading_checks_that_the_file_measured_the_weights_loaded_here(measured, tmp_path):
    entry = study.ZOO_MODELS["fixed s8"]
    data = {**measured, "weights": {"fixed s8": {"entry": entry, "sha256": zoo.entry(entry).sha256}}}
    save_results(tmp_path / "cpu", quality.NAME, data)
    got = quality.load(root=tmp_path, models={"fixed s8": None}, entries={"fixed s8": entry})
    assert got["n"] == 4
    data["weights"]["fixed s8"]["sha256"] = "0" * 64
    save_results(tmp_path / "cpu", quality.NAME, data)
    with pytest.raises(ValueError, match="did not measure the weights of 'fixed s8'.*remeasure = True"):
        quality.load(root=tmp_path, models={"fixed s8": None}, entries={"fixed s8": entry})
    with pytest.raises(ValueError, match="did not measure the weights"):            # weights trained in this run
        quality.load(root=tmp_path, models={"fixed s8": None}, entries=None)
    with pytest.raises(FileNotFoundError, match="swindiffuser_quality"):
        quality.load(device_type="cuda", root=tmp_path)


@pytest.mark.parametrize("given, profile, expected", [("auto", "quick", False), ("auto", "smoke", True),
                                                      ("auto", "full", True), ("false", "smoke", False),
                                                      ("True", "quick", True), (False, "full", False)])
def test_remeasure_auto_reads_on_the_quick_profile_only(given, profile, expected):
    assert quality.resolve_remeasure(given, profile) is expected


def test_remeasure_rejects_what_is_not_a_yes_or_no():
    with pytest.raises((TypeError, ValueError), match="remeasure"):
        quality.resolve_remeasure("maybe", "quick")


def est(low, high):
    return Estimate((low + high) / 2, low, high, 56, "bootstrap paired 95%")


def gaps(**by_claim):
    """Every gap the claims read at +-0.1 around `value` (straddling zero by default)."""
    m = {study.gap_key(metric, a, b): est(-0.1, 0.1) for metric, a, b in quality.CLAIM_GAPS}
    m.update({study.gap_key(*k.split("|")): v for k, v in by_claim.items()})
    return m


def verdict(m, key):
    return {r["key"]: r for r in judge(study.CLAIMS, m)}[key]["verdict"]


def test_gaps_whose_intervals_straddle_zero_are_inconclusive():
    m = gaps()
    for key in ("shifting", "best-step", "fixed-vs-random", "patch-size", "below-baseline"):
        assert verdict(m, key) == "inconclusive", key


def test_paired_gaps_decide_when_their_intervals_clear_zero():
    up, down = est(0.1, 0.3), est(-0.3, -0.1)
    main, rnd, base = study.MAIN, "random s8", study.BASELINE
    assert verdict(gaps(**{f"PSNR|{main}|{rnd}": up, f"SSIM|{main}|{rnd}": up}), "fixed-vs-random") == "reproduced"
    assert verdict(gaps(**{f"PSNR|{main}|{rnd}": up, f"SSIM|{main}|{rnd}": down}), "fixed-vs-random") == "partly"
    assert verdict(gaps(**{f"PSNR|{main}|{rnd}": down, f"SSIM|{main}|{rnd}": down}), "fixed-vs-random") == \
        "contradicted"
    assert verdict(gaps(**{f"PSNR|{main}|{rnd}": up}), "fixed-vs-random") == "inconclusive"   # SSIM straddles
    assert verdict(gaps(**{f"PSNR|{base}|{main}": up, f"SSIM|{base}|{main}": up}), "below-baseline") == "reproduced"
    shift = {f"PSNR|{main}|no shift": up, f"SSIM|{main}|no shift": up, f"seam score|no shift|{main}": up}
    assert verdict(gaps(**shift), "shifting") == "reproduced"


def test_the_best_step_is_s8_only_when_it_beats_every_other_step():
    others = [v for v in study.TABLE_3_1 if v != study.MAIN]
    up, down = est(0.01, 0.02), est(-0.02, -0.01)
    assert verdict(gaps(**{f"SSIM|{study.MAIN}|{v}": up for v in others}), "best-step") == "reproduced"
    one_better = {f"SSIM|{study.MAIN}|{v}": up for v in others} | {f"SSIM|{study.MAIN}|{others[0]}": down}
    assert verdict(gaps(**one_better), "best-step") == "partly"
    two_better = one_better | {f"SSIM|{study.MAIN}|{others[1]}": down}
    assert verdict(gaps(**two_better), "best-step") == "contradicted"


def test_a_model_trained_later_merges_only_from_the_same_machine_and_patches(measured):
    later = {**measured, "per_image": {quality.BICUBIC: measured["per_image"][quality.BICUBIC], "new": {"PSNR": [1.0]}},
             "sanity": [{"model": "new", "passed": True}], "weights": {"new": {"entry": None, "sha256": None}},
             "environment": {**measured["environment"], "utc": "later"}}
    merged = quality.merge(measured, later)
    assert set(merged["per_image"]) == set(measured["per_image"]) | {"new"}
    assert [r["model"] for r in merged["sanity"]] == [*MODELS, "new"]
    assert merged["added"] == [{"models": ["new"], "utc": "later"}] and "new added at later" in quality.banner(merged)
    with pytest.raises(ValueError, match="two machines"):
        quality.merge(measured, {**later, "environment": {**later["environment"], "device": "GPU: H100"}})
    with pytest.raises(ValueError, match="different steps"):
        quality.merge(measured, {**later, "steps": 100})
    other = {**later["per_image"], quality.BICUBIC: {"PSNR": [0.0]}}
    with pytest.raises(ValueError, match="different held-out patches"):
        quality.merge(measured, {**later, "per_image": other})
