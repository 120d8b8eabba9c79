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

The verdicts read the spread through `spread_for_claims` (what a study's measured numbers keep of the file) and
`compare_within_spread` (a comparison of FDs that holds, fails, or that the spread can carry across its threshold);
`spread_header` and `spread_table` show the file in a notebook.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..diffusion import Schedule
from ..progress import progress_bar
from ..sampling import Sampler, sampler_call
from ..verdicts import holds
from .intervals import Estimate, fd_interval
from .metrics import LeNetFD, as_lenet_digits

__all__ = ["fixed_noise", "generate", "lenet_features", "spread", "seed_spread", "estimate_dict", "spread_for_claims",
           "SpreadComparison", "compare_within_spread", "spread_header", "spread_table"]


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
    std = (0.0 if max(v) == min(v) else math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))) \
        if len(v) > 1 else None
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


# ---- the spread in the verdicts ---------------------------------------------------------------------------------

def spread_for_claims(data: dict, *, metric: str) -> dict:
    """What a study's verdicts keep of a spread file (``seed_spread.json`` as `fastdiff.results.read_benchmark` reads
    it), as plain JSON for its measured numbers: {"file", "device", "date", "entries": {entry: {"largest_gap",
    "n_seeds", "setting"}}}, an entry's setting being how its replicas were sampled and scored (sampler, steps, c,
    the sampler's options, n, "estimator": "bias-corrected FD"). Entries with fewer than two seeds measured have no
    spread and are left out. A file of another metric than ``metric`` gives {"not applied": why}."""
    if data.get("metric") != metric:
        return {"not applied": f"the spread file measured {data.get('metric')}, these numbers are {metric}"}
    env, entries = data["environment"], {}
    for name, e in data["entries"].items():
        if e["spread"]["n_seeds"] >= 2:
            sampling = {k: v for k, v in e["sampling"].items() if k not in ("options", "batch_size") and v is not None}
            entries[name] = {"largest_gap": e["spread"]["largest_gap"], "n_seeds": e["spread"]["n_seeds"],
                             "setting": {**sampling, **e["sampling"]["options"], "n": data["n"],
                                         "estimator": "bias-corrected FD"}}
    return {"file": f"results/{env['device_type']}/{data['benchmark']}.json", "device": env["device"],
            "date": env["utc"][:10], "entries": entries}


@dataclass(frozen=True)
class SpreadComparison:
    """A quantity of FDs as measured (``value``) and its range [``low``, ``high``] with every FD moved within its
    spread (`compare_within_spread`): an estimate for `fastdiff.verdicts.holds`. ``gaps``: {entry: the largest gap
    between its seeds} (empty: no spread applied); ``label``: what the quantity is; ``source``: the spread applied
    (file, machine, date, each entry's gap, where its setting differs from ours) or why none was."""
    value: float
    low: float
    high: float
    gaps: dict[str, float]
    label: str
    source: str

    def holds(self, threshold: float, *, better: str = "lower") -> bool | None:
        """True if the comparison with ``threshold`` holds wherever the spread moves the FDs, False if it fails
        everywhere, None (undecided) if the spread can carry the quantity across the threshold."""
        return holds(self, threshold, better=better)

    @property
    def span(self) -> str:
        """The quantity's range within the spread, in words."""
        return f"{self.label} within it {self.low:.3g} to {self.high:.3g}"

    @property
    def why(self) -> str:
        """For a verdict's why: the spread applied and the quantity's range within it, or that none was applied."""
        return f"{self.source}; {self.span}" if self.gaps else self.source


def compare_within_spread(quantity: Callable[..., float], compared: list[tuple[str, float, dict]],
                          spread: dict | None, *, label: str) -> SpreadComparison:
    """``quantity(FD_1, FD_2, ...)`` of the FDs a claim compares, with its range when each FD moves within the spread
    of retraining of its model, so that a comparison ``quantity <= threshold`` holds (True), fails (False) or is
    undecided (None): `SpreadComparison.holds`, which is `fastdiff.verdicts.holds` on that range.

    ``compared``: (zoo entry, our FD, the setting we measured it at: sampler, steps, c, eta, n, estimator; None
    values unknown) in the order ``quantity`` takes them; ``spread``: `spread_for_claims` of the spread file, or None.
    *Within its spread*: our FD plus or minus the largest gap between the seeds of its entry (max_s FD_s - min_s
    FD_s: how far retraining alone moved that recipe's FD), and not below 0 (an FD is never negative). Every FD moves
    independently, two FDs of one model too (their seeds would move together: this is the cautious reading). The range
    is ``quantity``'s minimum and maximum over those moves; ``quantity`` must be monotone in each FD (ratios and
    differences of FDs are), so they lie at the corners; a division by an FD moved to 0 leaves it unbounded.

    A gap is a difference of two FDs at one setting, so a bias both share (the plug-in FD's, which grows as n shrinks)
    cancels in it; it is applied as measured to our FDs at another setting (another c, step count or n, the plug-in FD
    instead of the bias-corrected one): each entry has one measured setting, the nearest there is, and ``source`` says
    where it differs from ours. Without a spread (None, a file of another metric, an entry with fewer than two seeds)
    the range is the value itself: the comparison is the plain one, and ``source`` says that no spread was applied.

    An FD may be an `Estimate` (its sampling interval): it then moves from its interval's low end less the gap to its
    high end plus the gap, so the range carries the noise of the samples and of training together (cautious again: a
    paired interval of the same quantity, where both FDs share x_T, is narrower)."""
    value = quantity(*(getattr(fd, "value", fd) for _, fd, _ in compared))
    entries = (spread or {}).get("entries", {})
    missing = sorted({e for e, _, _ in compared if e not in entries})
    sampled = any(hasattr(fd, "low") for _, fd, _ in compared)
    no_spread = spread is None or "not applied" in spread or bool(missing)
    gaps = {} if no_spread else {e: entries[e]["largest_gap"] for e, _, _ in compared}
    reason = "no spread file was given" if spread is None else spread.get("not applied") or \
        f"no spread of {', '.join(missing)} in {spread['file']} (fewer than two seeds measured)"
    if no_spread and not sampled:
        return SpreadComparison(value, value, value, {}, label, f"no spread of retraining applied: {reason}")
    try:
        corners = [quantity(*c) for c in itertools.product(*[
            (max(0.0, getattr(fd, "low", fd) - gaps.get(e, 0.0)), getattr(fd, "high", fd) + gaps.get(e, 0.0))
            for e, fd, _ in compared])]
        low, high = min(corners), max(corners)
    except ZeroDivisionError:
        low, high = -math.inf, math.inf
    if no_spread:
        return SpreadComparison(value, low, high, {}, label, f"each FD within its sampling interval; no spread of "
                                f"retraining applied: {reason}")
    elsewhere = []
    for e in gaps:
        theirs, ours = entries[e]["setting"], [setting for x, _, setting in compared if x == e]
        keys = [k for k in theirs if any(o.get(k) not in (None, theirs[k]) for o in ours)]
        if keys:
            mine = {k: list(dict.fromkeys(o[k] for o in ours if o.get(k) is not None)) for k in keys}
            elsewhere.append(f"{e} at {_setting({k: [theirs[k]] for k in keys})}, ours at {_setting(mine)}")
    source = ("each FD within its sampling interval widened by " if sampled else "") + (
              f"spread of retraining from {spread['file']} ({spread['device']}, {spread['date']}): each FD moved by "
              f"± the largest gap between its model's seeds, " + ", ".join(
                  f"{e} {g:.2f} ({entries[e]['n_seeds']} seeds)" for e, g in gaps.items()))
    if elsewhere:
        source += "; measured at another setting than ours (the nearest measured, used as is): " + \
            "; ".join(elsewhere)
    return SpreadComparison(value, low, high, gaps, label, source)


def _setting(values: dict[str, list]) -> str:
    """Settings in words: {"c": [0, 2], "n": [200], "estimator": ["plug-in FD"]} is "c=0 and 2, n=200, plug-in FD"."""
    return ", ".join((f"{k}=" if isinstance(v[0], (int, float)) else "") + " and ".join(
        f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v) for k, v in values.items())


def spread_header(data: dict) -> str:
    """A spread file's metric, samples, machine and date, in a line."""
    env = data["environment"]
    return (f"{data['metric']} of every seed replica, bias-corrected, with its bootstrap interval ({data['n_boot']} "
            f"resamples), n = {data['n']} samples each · measured on {env['device']} · {env['utc']} · "
            f"results/{env['device_type']}/{data['benchmark']}.json")


def spread_table(data: dict, *, study: str | None = None):
    """A spread file as a table: a row per (entry, seed) with FD [low, high] (bias-corrected), the plug-in FD and n
    (a seed not measured says why), then a row "spread" per entry with the spread across its seeds; ``study`` (e.g.
    "02_adaptive_layer_skipping") keeps that study's entries."""
    import pandas as pd
    rows = []
    for name, e in data["entries"].items():
        if study not in (None, e["study"]):
            continue
        for seed, r in e["seeds"].items():
            fd = r["fd"] and Estimate(**r["fd"])
            rows.append({"entry": name, "seed": seed, "FD [low, high]": fd.format(2) if fd else
                         f"not measured: {r['note']}", "plug-in FD": f"{fd.uncorrected:.2f}" if fd else "",
                         "n": fd.n if fd else ""})
        rows.append({"entry": name, "seed": "spread", "FD [low, high]": _spread_line(e["spread"]), "plug-in FD": "",
                     "n": f"{e['spread']['n_seeds']} seeds"})
    return pd.DataFrame(rows, columns=["entry", "seed", "FD [low, high]", "plug-in FD", "n"]).set_index(
        ["entry", "seed"])


def _spread_line(s: dict) -> str:
    """`spread` in a line: mean, min, max, std, the largest gap and its seeds."""
    if not s["n_seeds"]:
        return "no seed measured"
    std = "-" if s["std"] is None else f"{s['std']:.2f}"
    lo, hi = s["largest_gap_seeds"]
    return (f"mean {s['mean']:.2f}, min {s['min']:.2f}, max {s['max']:.2f}, std {std}; largest gap "
            f"{s['largest_gap']:.2f} (seed {lo} to seed {hi})")
