"""Study 2's FD settings, measured once by ``python benchmarks/digits_fd.py --study 02`` (`fastdiff.measure.fd_sweep`):
the five zoo variants sampled as `adaptive_layer_skipping.sample_from` samples them (k(t) skipping at c, DDIM on a
respaced schedule, batches of 256 whose sampler noise is seeded 1 + the batch's first index), every setting from the
same n = 1000 x_T:

- the quality table (the paper's Table 1): every variant at every c of the quick profile, 50 steps, eta 1;
- the steps x eta table (Table 3): zero skipping at c = 2 and the plain baseline at c = 0, at every step count and
  eta of the quick profile;
- DDIM at equal time (the paper's Sec. 4.3 and conclusion): the plain baseline at c = 0 with as many DDIM steps as
  fit in the time zero skipping takes at c = 2 with 50 steps (`EQUAL_TIME`), at eta 1 and eta 0;
- consistent against uniform k(t) training: "zero" and "zero, uniform k" at every c (in the quality table).

Keys: "<variant>-c<c>" at the quality table's steps and eta, "-<steps>steps" and "-eta<eta>" where they differ
("zero-c2-10steps-eta0"), "plain-c0-equal-time[-eta0]" for DDIM at equal time. `sweep_of` gives the same sweep of
models trained in a notebook run, for the profiles that measure in the notebook; `load_or_measure` is notebook 02's
way in, and `live_demo` samples a few cells again beside the measurement.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import zoo
from ..checkpoint import digest
from ..data import load_dataset
from ..diffusion import make_schedule
from ..measure import fd_sweep
from ..measure.fd_sweep import FDSetting
from ..measure.intervals import fd_interval
from ..measure.seed_spread import fixed_noise, lenet_features
from .adaptive_layer_skipping import PLAIN, PROFILES, STUDY, ZOO_MODELS, SkippingProfile, sample_from

IMAGE_SIZE = PROFILES["quick"].image_size
BATCH = 256
SHORT = {PLAIN: "plain", "zero": "zero", "duplicate": "duplicate", "interpolate": "interpolate",
         "zero, uniform k": "zero-uniform"}
TABLE3 = (("zero", 2.0), (PLAIN, 0.0))          # (variant, c) of the steps x eta table, as notebook 02 shows it
# The time zero skipping takes at c = 2 as a fraction of c = 0's (50 DDIM steps, batch 32): the committed Table 2 of
# notebook 02 (results/cpu/02_adaptive_layer_skipping-quick.json, 2026-12-05, AMD EPYC AVX-512 BF16, 2 threads:
# 397 ms against 747 ms, interleaved medians). The FLOPs of k(t) predict 0.640 (32 steps): on this small network the
# skipped levels save more time than their FLOPs, so the measured time is the fairer (and the stricter) match. The
# baseline gets the whole steps that fit: floor(0.532 x 50) = 26, never more time than skipping takes.
EQUAL_TIME = {"time_fraction": 0.5316, "flops_fraction": 0.6398, "of": "zero skipping at c=2",
              "source": "results/cpu/02_adaptive_layer_skipping-quick.json, Table 2 (2026-12-05): 397 ms / 747 ms"}


def equal_time_steps(steps: int) -> int:
    """The DDIM steps of the plain baseline that take no more time than zero skipping at c = 2 in ``steps``."""
    return max(1, math.floor(EQUAL_TIME["time_fraction"] * steps))


def key(variant: str, c: float, steps: int | None = None, eta: float | None = None, *,
        profile: SkippingProfile = PROFILES["quick"]) -> str:
    """A setting's key: "zero-c2" at the quality table's steps and eta, "plain-c0-10steps-eta0" elsewhere."""
    out = f"{SHORT[variant]}-c{c:g}"
    if steps is not None and steps != profile.quality_steps:
        out += f"-{steps}steps"
    return out + ("" if eta is None or eta == profile.quality_eta else f"-eta{eta:g}")


def equal_time_key(eta: float | None = None, *, profile: SkippingProfile = PROFILES["quick"]) -> str:
    """The key of the plain baseline at equal time: "plain-c0-equal-time", "plain-c0-equal-time-eta0"."""
    return "plain-c0-equal-time" + ("" if eta is None or eta == profile.quality_eta else f"-eta{eta:g}")


def pairs_of(profile: SkippingProfile = PROFILES["quick"], variants=tuple(SHORT)) -> tuple[tuple[str, str], ...]:
    """The pairs the verdicts read (same x_T, so paired): c = 2 against c = 0 of one model (time, plain-falls-apart,
    trained-holds), zero against the baseline at c = 0 and 2, interpolate against the other skip types at the
    largest c, DDIM at equal time against zero skipping at c = 2 (each eta of the steps x eta table), and the
    consistent against the uniform schedule at every c."""
    k = lambda v, c, **kw: key(v, c, profile=profile, **kw)  # noqa: E731
    cs, big = profile.cs, max(profile.cs)
    out = [(k(v, 2), k(v, 0)) for v in (PLAIN, "zero") if 2 in cs]
    out += [(k("zero", c), k(PLAIN, c)) for c in (0, 2) if c in cs]
    out += [(k("interpolate", big), k(v, big)) for v in ("zero", "duplicate") if {"interpolate", v} <= set(variants)]
    out += [(equal_time_key(eta, profile=profile), k("zero", 2, eta=eta)) for eta in _etas(profile) if 2 in cs]
    if "zero, uniform k" in variants:
        out += [(k("zero", c), k("zero, uniform k", c)) for c in cs]
    return tuple(out)


def _etas(profile: SkippingProfile) -> tuple[float, ...]:
    """The quality table's eta first, then the other etas of the steps x eta table."""
    return (profile.quality_eta, *(e for e in profile.table3_etas if e != profile.quality_eta))


PAIRS = pairs_of()


def settings_of(models: dict, *, entries: dict[str, tuple[str | None, str | None]], profile: SkippingProfile,
                device="cpu", batch: int = BATCH) -> list[FDSetting]:
    """The settings of ``models`` ({variant: model}): the quality table, the steps x eta table (of `TABLE3`'s
    variants present) and DDIM at equal time (when the plain baseline is present); ``entries``: {variant: (zoo
    entry or None, sha256 of the weights)}."""
    schedule = make_schedule("linear")
    cells = {key(v, c, profile=profile): (v, c, profile.quality_steps, profile.quality_eta, None)
             for v in models for c in profile.cs}
    for v, c in TABLE3:
        if v in models and c in profile.cs:
            cells.update({key(v, c, s, e, profile=profile): (v, c, s, e, None)
                          for e in profile.table3_etas for s in profile.table3_steps})
    if PLAIN in models:
        steps = equal_time_steps(profile.quality_steps)
        cells.update({equal_time_key(e, profile=profile): (PLAIN, 0.0, steps, e, {
            **EQUAL_TIME, "of": f"{EQUAL_TIME['of']}, {profile.quality_steps} steps"}) for e in _etas(profile)})
    out = []
    for k, (v, c, steps, eta, equal) in cells.items():
        sampling = {"variant": v, "c": float(c), "sampler": "DDIM", "options": {"eta": float(eta)}, "steps": steps,
                    "batch": batch, "schedule": "linear", **({"equal_time": equal} if equal else {})}
        label = f"{v}, c={c:g}, DDIM {steps} steps, eta {eta:g}" + (" (equal time)" if equal else "")
        sample = _sampling_fn(models[v], schedule, c=c, steps=steps, eta=eta, device=device, batch=batch)
        out.append(FDSetting(k, label, sampling, sample, entry=entries[v][0], sha256=entries[v][1]))
    return out


def _sampling_fn(model, schedule, *, c: float, steps: int, eta: float, device, batch: int):
    def sample(x_T: torch.Tensor) -> torch.Tensor:
        return sample_from(model, schedule, x_T, c=c, steps=steps, eta=eta, device=device, batch_size=batch)
    return sample


def fd_settings(device="cpu") -> list[FDSetting]:
    """The settings of study 2's measurement: the five zoo variants, each loaded once, their sha256 recorded."""
    models, entries = {}, {}
    for name, entry in ZOO_MODELS.items():
        models[name], e = zoo.load(entry, device=device, verbose=False)
        entries[name] = (entry, e.sha256)
    return settings_of(models, entries=entries, profile=PROFILES["quick"], device=device)


def sweep_of(models: dict, profile: SkippingProfile, *, batch: int = BATCH):
    """This study's sweep (STUDY, IMAGE_SIZE, PAIRS, fd_settings) of models trained in a run rather than the zoo's,
    at ``profile``'s cs, steps and etas, for `fastdiff.measure.fd_sweep.load_or_measure`; each model's weights are
    fingerprinted by their digest (a cached measurement of other weights is sampled again)."""
    entries = {name: (None, digest(m.state_dict())) for name, m in models.items()}
    return SimpleNamespace(
        STUDY=STUDY, IMAGE_SIZE=profile.image_size, PAIRS=pairs_of(profile, tuple(models)),
        fd_settings=lambda device="cpu": settings_of(models, entries=entries, profile=profile, device=device,
                                                     batch=batch))


# ------------------------------------------------------------------------------------------ notebook 02

def load_or_measure(remeasure, *, weights: str, models: dict, profile_name: str, profile: SkippingProfile, device,
                    out, root="../results", cache="../runs/digits_fd") -> tuple[dict, dict]:
    """(the measuring machine's environment, study 2's section) for notebook 02: the zoo's weights as
    `fastdiff.measure.fd_sweep.load_or_measure` gives them (``remeasure`` "auto": the committed measurement on the
    quick profile, measured here on the others; True: measured here, ``profile.quality_n`` samples per setting,
    features cached in ``cache``); weights trained in this run are always measured here (cached under ``out``)."""
    if profile.dataset != "mnist-builtin":
        raise ValueError(f"the FD measurement (LeNet-MNIST) scores digits; the {profile_name!r} profile samples "
                         f"{profile.dataset}, which it does not measure")
    common = dict(profile=profile_name, device=device, n=profile.quality_n, n_boot=profile.fd_boot)
    if weights == "zoo":
        return fd_sweep.load_or_measure(remeasure, sys.modules[__name__], root=root, cache=cache, **common)
    return fd_sweep.load_or_measure(True, sweep_of(models, profile), cache=Path(out) / "digits_fd", **common)


def header(env: dict, fd: dict) -> str:
    """Where and when the section was measured, and the command that measures it again (`fd_sweep.header`, with the
    section's own machine: the file's environment is that of its last writer, which may be another study's)."""
    return fd_sweep.header({"environment": {**env, "device": fd.get("device", env["device"])}, "studies": {STUDY: fd}},
                           STUDY)


def live_demo(models: dict, fd: dict, keys, *, n: int, image_size: int, device, n_boot: int = 200) -> list[dict]:
    """A few settings of the measurement (``keys``) sampled again here from the first ``n`` of its x_T (in one batch
    of ``n``, so with other sampler noise) and scored the same way, against the training digits at ``image_size``:
    {"key", "variant", "c", "live": FD Estimate, "committed": the measurement's Estimate}."""
    reference = load_dataset("mnist-builtin", image_size=image_size, split="train", seed=0)
    features, ref_stats = lenet_features(reference, device=device)
    x_T, schedule = fixed_noise(n, reference.shape[1:], seed=0), make_schedule("linear")
    committed, rows = fd_sweep.estimates(fd), []
    for k in keys:
        s = fd["settings"][k]["sampling"]
        images = sample_from(models[s["variant"]], schedule, x_T, c=s["c"], steps=s["steps"],
                             eta=s["options"]["eta"], device=device, batch_size=s["batch"])
        rows.append({"key": k, "variant": s["variant"], "c": s["c"], "committed": committed[k],
                     "live": fd_interval(features(images), ref_stats, n_boot=n_boot)})
    return rows


def demo_table(rows: list[dict]):
    """`live_demo`'s FDs beside the measurement's: both bias-corrected with their 95% intervals (the plug-in FD of
    a small n sits far above that of n = 1000; the corrected values compare), and whether the intervals overlap."""
    import pandas as pd
    return pd.DataFrame([{"setting": r["key"], f"live (n={r['live'].n})": r["live"].format(2),
                          f"measured (n={r['committed'].n})": r["committed"].format(2),
                          "intervals overlap": r["live"].low <= r["committed"].high and
                          r["committed"].low <= r["live"].high} for r in rows]).set_index("setting")
