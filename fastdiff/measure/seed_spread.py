"""The spread of retraining: how far apart the FDs of one recipe trained with different seeds lie.

A gap between two trained models carries two noises: that of the samples scored (the bootstrap interval of each FD,
`fastdiff.measure.intervals.fd_interval`) and that of training itself (initial weights, data order, noise draws).
The zoo retrains a calibration set of models with other seeds (`fastdiff.recipes.REPLICA_SEEDS`, `replica_name`);
`seed_spread` samples every replica from the *same* x_T with the same sampler and steps, scores each with FD
(LeNet-MNIST) and its bias-corrected bootstrap interval, and summarises the FDs across seeds (`spread`): mean, min,
max, standard deviation and the largest gap between two seeds. A gap between two methods that is no larger than
the largest gap between seeds of one method is not evidence of a difference.

Notation: FD_s is the bias-corrected FD of the replica trained with seed s (`Estimate.value`; its plug-in value,
what the notebooks' tables report, is ``uncorrected``).
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch import nn

from ..diffusion import Schedule
from ..progress import progress_bar
from ..sampling import Sampler, sampler_call
from .intervals import Estimate, fd_interval
from .metrics import LeNetFD, as_lenet_digits

__all__ = ["fixed_noise", "generate", "lenet_features", "spread", "seed_spread", "estimate_dict"]


def fixed_noise(n: int, image_shape, *, seed: int = 0) -> torch.Tensor:
    """The x_T every replica starts from: ``n`` standard-normal images drawn on the CPU from ``seed`` (the studies
    draw theirs the same way), so the same on every machine and for every replica."""
    return torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(model_or_fn, x_T: torch.Tensor, *, schedule: Schedule | None = None, sampler: Sampler | None = None,
             steps: int | None = None, batch_size: int = 200, seed: int = 0, device="cpu",
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Samples from ``x_T`` (on the CPU, float32, in [-1, 1]). A model (an ``nn.Module`` called as ``model(x, t,
    **cond)``, e.g. a `ScheduledSkipping` wrapper) is sampled with ``sampler`` in ``steps`` steps on ``schedule``,
    in batches of ``batch_size`` whose sampler noise is seeded ``seed + 1 + i`` (i: the batch's first index), as the
    studies' `sample_many` and `fd_curve` do; anything else is a sampling function ``fn(x_T) -> images``."""
    if not isinstance(model_or_fn, nn.Module):
        if not callable(model_or_fn):
            raise TypeError(f"a replica must be a model (nn.Module) or a sampling function x_T -> images, got "
                            f"{type(model_or_fn).__name__}")
        return model_or_fn(x_T).float().cpu()
    if schedule is None or sampler is None or steps is None:
        raise ValueError("sampling a model needs schedule, sampler and steps (or pass a function x_T -> images)")
    model = model_or_fn.to(device).eval()
    x_T = x_T.to(device)
    return torch.cat([sampler_call(model, schedule, sampler, steps, x_T[i:i + batch_size], dtype=dtype,
                                   seed=seed + 1 + i)().float().cpu() for i in range(0, len(x_T), batch_size)])


def lenet_features(reference: torch.Tensor, *, device="cpu"):
    """(features, reference statistics) of FD (LeNet-MNIST) as `fastdiff.measure.metrics.sample_scorer` scores
    digits: ``features(images)`` gives the (N, 84) fc2 features of digits of any size (resized as
    `as_lenet_digits`), the statistics are those of ``reference`` (e.g. the 4,500 training digits), computed once."""
    fd = LeNetFD(as_lenet_digits(reference), device=device)
    return (lambda images: fd.features(as_lenet_digits(images))), fd.reference_stats


def spread(values: dict[int, float]) -> dict:
    """The spread of FD_s across seeds: {"seeds", "n_seeds", "mean", "min", "max", "std" (sample standard deviation,
    ddof 1; None for one seed), "largest_gap" (max - min: the largest gap between two seeds), "largest_gap_seeds"
    ([seed of the lowest, seed of the highest])}. No values: every number None."""
    seeds = sorted(values)
    if not seeds:
        return {"seeds": [], "n_seeds": 0, "mean": None, "min": None, "max": None, "std": None, "largest_gap": None,
                "largest_gap_seeds": None}
    v = [float(values[s]) for s in seeds]
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    lo = min(seeds, key=lambda s: values[s])
    hi = max(seeds, key=lambda s: values[s])
    return {"seeds": seeds, "n_seeds": len(seeds), "mean": mean, "min": values[lo], "max": values[hi], "std": std,
            "largest_gap": values[hi] - values[lo], "largest_gap_seeds": [lo, hi]}


def estimate_dict(e: Estimate) -> dict:
    """An `Estimate` as plain JSON fields: value, low, high, n, method, uncorrected."""
    return dataclasses.asdict(e)


def seed_spread(replicas: dict, features, reference, *, x_T: torch.Tensor, n_boot: int = 1000,
                confidence: float = 0.95, progress: bool = True, **sampling) -> dict:
    """FD with its bias-corrected bootstrap interval for every replica, and their spread.

    ``replicas``: {seed: model, sampling function ``x_T -> images``, or None for a replica that is not there (it is
    listed under "missing" and left out of the spread)}; ``features``: images -> (N, d) features (`lenet_features`);
    ``reference``: the reference features or statistics ``{"mu", "sigma"}``; ``sampling``: `generate`'s keywords
    (schedule, sampler, steps, batch_size, seed, device, dtype). Every replica starts from the same ``x_T`` and every
    interval resamples the same indices (fd_interval's fixed generator), so the replicas differ only by training.
    Returns {"fd": {seed: Estimate}, "missing": [seeds], "seconds": {seed: sampling + scoring time},
    "spread": `spread` of the bias-corrected FDs, "sampling_half_width": the mean half-width of the intervals (the
    sampling noise of one FD, beside which the spread of training is read)}."""
    fds, seconds = {}, {}
    missing = sorted(s for s, r in replicas.items() if r is None)
    present = sorted(s for s, r in replicas.items() if r is not None)
    for s in progress_bar(present, desc="seed replicas", disable=not progress):
        start = time.perf_counter()
        images = generate(replicas[s], x_T, **sampling)
        fds[s] = fd_interval(features(images), reference, n_boot=n_boot, confidence=confidence)
        seconds[s] = time.perf_counter() - start
    half = [(e.high - e.low) / 2 for e in fds.values()]
    return {"fd": fds, "missing": missing, "seconds": seconds,
            "spread": spread({s: e.value for s, e in fds.items()}),
            "sampling_half_width": sum(half) / len(half) if half else None}
