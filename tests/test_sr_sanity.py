"""The SR sanity bars (issue 27) on synthetic outputs: bicubic passes all three; a colour-shifted output fails the
colour bar; blurred or noisy outputs fail the PSNR bar; a failed model makes the claims that read it "not testable
here" in study 4's verdicts, and only those."""
import pytest
import torch
import torch.nn.functional as F

from fastdiff.data import downsample
from fastdiff.measure.sr_eval import bicubic
from fastdiff.measure.sr_sanity import BARS, FAILED, check_models, colour_shift, not_testable, sanity_check
from fastdiff.studies import patch_parallel_sr
from fastdiff.verdicts import judge


def images(n=6, size=32, seed=0):
    """Smooth colour fields with some detail, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 1.6 - 0.8, size=size, mode="bicubic",
                           align_corners=False)
    return (coarse + 0.08 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)


HR = images()
LR = downsample(HR, 2)
BIC = bicubic(LR, 2)


def copies(x, k=BARS.samples):
    return x.expand(k, *x.shape).clone()


def test_bicubic_passes_every_bar():
    r = sanity_check("bicubic", copies(BIC), HR, LR)
    assert r["passed"] and r["reason"].startswith("passes:")
    assert r["LR-PSNR"] == pytest.approx(r["bicubic LR-PSNR"]) and r["PSNR of the sample mean"] == pytest.approx(
        r["bicubic PSNR"])
    assert r["largest colour shift"] < 0.01 and r["n"] == len(HR) and r["samples"] == BARS.samples
    assert sanity_check("HR itself", copies(HR), HR, LR)["passed"]


def test_a_colour_cast_on_one_patch_fails_the_colour_bar():
    shifted = BIC.clone()
    shifted[2] += torch.tensor([0.1, -0.1, 0.1]).view(3, 1, 1)         # pink/green, one patch
    r = sanity_check("cast", copies(shifted.clamp(-1, 1)), HR, LR)
    assert not r["passed"] and "colour shift" in r["reason"].split("passes")[0]
    assert r["largest colour shift"] > BARS.colour_tol and "1 of 6 patches" in r["reason"]
    assert colour_shift(shifted, HR)[2] > 0.09 and colour_shift(shifted, HR)[0] < 0.01


@pytest.mark.parametrize("kind", ["blurred", "noisy"])
def test_blurred_or_noisy_outputs_fail_the_psnr_bar(kind):
    if kind == "blurred":
        out = copies(F.avg_pool2d(BIC, 5, stride=1, padding=2, count_include_pad=False))
    else:
        g = torch.Generator().manual_seed(1)
        out = (copies(BIC) + 0.15 * torch.randn(BARS.samples, *BIC.shape, generator=g)).clamp(-1, 1)
    r = sanity_check(kind, out, HR, LR)
    assert not r["passed"] and r["PSNR of the sample mean"] < r["bicubic PSNR"]
    assert "PSNR of the mean of 8 samples" in r["reason"] and r["reason"].startswith("fails:")


def test_the_samples_are_drawn_per_seed_and_their_shape_is_checked():
    seen = []
    records = check_models({"bicubic": lambda k: seen.append(k) or BIC}, HR, LR)
    assert seen == list(range(BARS.samples)) and records[0]["passed"]
    with pytest.raises(ValueError, match="samples must be"):
        sanity_check("x", BIC, HR, LR)


def test_a_failed_model_makes_the_claims_that_read_it_not_testable():
    records = [{"model": "full-image baseline", "passed": False, "reason": "fails: colour"},
               {"model": "fixed s8", "passed": True, "reason": "passes"}]
    told = not_testable({"a": ("fixed s8",), "b": ("fixed s8", "full-image baseline"), "c": ()}, records)
    assert told == {"b": f"{FAILED}: full-image baseline"}
    # study 4: the baseline failing leaves every claim that compares with it untestable, the others judged
    keys = patch_parallel_sr.sanity_not_testable(records)
    assert set(keys) == {"below-baseline"}
    rows = {r["key"]: r for r in judge(patch_parallel_sr.CLAIMS, {}, not_testable=keys)}
    assert rows["below-baseline"]["verdict"] == "not testable here"
    assert rows["below-baseline"]["why"].startswith("model failed the SR sanity checks")
    assert set(patch_parallel_sr.CLAIM_MODELS) == {c.key for c in patch_parallel_sr.CLAIMS}
    assert {m for ms in patch_parallel_sr.CLAIM_MODELS.values() for m in ms} <= set(patch_parallel_sr.VARIANTS)
    every = [{"model": m, "passed": False, "reason": "x"} for m in patch_parallel_sr.VARIANTS]
    assert set(patch_parallel_sr.sanity_not_testable(every)) == {c.key for c in patch_parallel_sr.CLAIMS} - {"two-devices"}


def test_study_1_judges_only_claims_whose_models_pass():
    from fastdiff.studies import vgg_sr_evaluation as study1
    records = [{"model": "small", "passed": False, "reason": "fails: LR-PSNR"},
               {"model": "original", "passed": True, "reason": "passes"}]
    keys = study1.sanity_not_testable(records)
    assert set(keys) == {"converges", "bigger-better"} and keys["converges"] == f"{FAILED}: small"
    rows = {r["key"]: r["verdict"] for r in judge(study1.CLAIMS, {"PSNR:original": 30.0, "PSNR:small": 20.0},
                                                  not_testable=keys)}
    assert rows["bigger-better"] == "not testable here"       # not "reproduced" on a broken model's PSNR
    assert set(study1.CLAIM_MODELS) <= {c.key for c in study1.CLAIMS}
