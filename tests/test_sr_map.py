"""The SR panels of the speed/quality map (`fastdiff.studies.sr_map`) on tiny untrained models built as each study
builds its own: a row per (model, steps) and bicubic, every point on the same LR images, times measured; bad
arguments are refused with what was given."""
import math

import pytest
import torch

from fastdiff import zoo
from fastdiff.data import downsample
from fastdiff.diffusion import make_schedule
from fastdiff.measure.sr_eval import bicubic, sr_metrics
from fastdiff.studies import sr_map, patch_parallel_sr
from fastdiff.studies import vgg_conditioned_sr as vggsr

KEYS = {"study", "model", "weights", "steps", "ms per image", "IQR (ms)", "PSNR", "SSIM", "LR-PSNR", "LPIPS",
        "PSNR [95%]", "SSIM [95%]", "LR-PSNR [95%]"}
# study 4's patch denoiser at a test size (the study's `build` with a narrower U-Net)
SWIN_UNET = {**patch_parallel_sr.CPU_UNET, "base_channels": 8, "channel_mult": (1, 2), "norm_groups": 4}


def tiny_models(panel):
    if panel == "digits":       # study 1's variants at its smoke profile's widths (32x32, 1 channel), random VGG
        widths = vggsr.PROFILES["smoke"].widths
        torch.manual_seed(0)
        return {name: vggsr.build_variant(name, widths, vgg_weights="random").eval()
                for name in ("small", "small + VGG (add)")}
    return {name: patch_parallel_sr.build(name, unet=SWIN_UNET).eval() for name in ("no shift", "fixed s8")}


@pytest.mark.parametrize("panel", ["digits", "photos"])
def test_a_panel_has_a_row_per_point_and_bicubic_on_the_same_lr_images(panel):
    models = tiny_models(panel)
    out = sr_map.measure_panel(panel, models=models, n=2, steps=(2,), batch_size=2, rounds=1, progress=False)
    spec = sr_map.PANELS[panel]
    assert (out["panel"], out["study"], out["scale"], out["n"], out["batch"], out["rounds"]) == \
        (panel, spec["study"], spec["scale"], 2, 2, 1)
    assert out["data"] == spec["data"] and out["device"].startswith("CPU")
    rows = out["rows"]
    assert [(r["model"], r["steps"]) for r in rows] == [(sr_map.BICUBIC, None)] + [(m, 2) for m in models]
    for r in rows:
        assert set(r) == KEYS and r["study"] == spec["study"]
        assert r["ms per image"] > 0 and r["IQR (ms)"] >= 0
        assert all(math.isfinite(r[k]) for k in ("PSNR", "SSIM", "LR-PSNR"))
        for k in sr_map.SR_METRICS:          # the mean with its bootstrap interval over the n images
            e = r[sr_map.interval_key(k)]
            assert e["value"] == pytest.approx(r[k], rel=1e-5) and e["low"] <= r[k] <= e["high"] and e["n"] == 2
    assert all(r["weights"] == "given" for r in rows[1:])
    # the LR inputs are the first n held-out images downsampled as the study does: bicubic's scores, recomputed
    hr = spec["loader"]()[:2]
    lr = downsample(hr, spec["scale"])
    expected = sr_metrics(bicubic(lr, spec["scale"]), hr, lr)
    for k in ("PSNR", "SSIM", "LR-PSNR", "LPIPS"):
        assert rows[0][k] == pytest.approx(expected[k]) if expected[k] is not None else rows[0][k] is None
    # every model's outputs are the study's own sampler's on those LR images, from the same seed
    first = next(iter(models))
    sr = spec["sample"](models[first], lr, make_schedule(spec["schedule"]), 2, device="cpu", seed=0,
                        batch_size=spec["eval_batch"], eta=1.0)
    assert rows[1]["PSNR"] == pytest.approx(sr_metrics(sr, hr, lr)["PSNR"])


def test_the_panels_name_zoo_entries_that_exist():
    known = zoo.entries()
    for panel, spec in sr_map.PANELS.items():
        assert len(spec["models"]) == 4, panel
        missing = [e for e in spec["models"].values() if e not in known]
        assert not missing, f"{panel}: {missing}"


def test_the_digits_panel_is_held_out_from_the_zoo_models_training_split():
    from fastdiff.data import load_dataset
    train = load_dataset("mnist-builtin", image_size=32, split="train")
    held = sr_map.held_out_digits()
    assert len(held) == 500 and held.shape[1:] == (1, 32, 32)
    seen = {x.numpy().tobytes() for x in train}
    assert not [i for i, x in enumerate(held) if x.numpy().tobytes() in seen]


@pytest.mark.parametrize("kwargs, match", [
    (dict(panel="faces"), "unknown panel 'faces'; choose one of \\['digits', 'photos'\\]"),
    (dict(steps=()), "steps must be a non-empty sequence.*got \\(\\)"),
    (dict(steps=10), "steps must be a non-empty sequence.*got 10"),
    (dict(steps=(10, 0)), "each of steps must be an integer >= 1, got 0"),
    (dict(steps=(2, 2)), "must not repeat"),
    (dict(n=0), "n must be an integer >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), "batch_size must be an integer >= 1, got 2.5"),
    (dict(rounds=0), "rounds must be an integer >= 1, got 0"),
    (dict(models={}), "models must be None .* or a non-empty dict"),
])
def test_bad_arguments_say_what_was_given_and_what_is_allowed(kwargs, match):
    args = {"panel": "photos", "models": {"m": None}, **kwargs}
    with pytest.raises(ValueError, match=match):
        sr_map.measure_panel(args.pop("panel"), **args, progress=False)
