"""The digits map's FD settings, measured once by ``python benchmarks/digits_fd.py --study 07``
(`fastdiff.measure.fd_sweep`): every point of the map (`speed_quality_map.POINTS`) sampled as the map samples it
(`speed_quality_map.build_point` and `sample_point`: the same zoo model, sampler, steps, layer skipping, deep-feature
caching and ladder rung, in batches of the map's 50 with the same noise seeds), all from the same n x_T, so that
each point's FD carries a bootstrap interval and its *paired* ratio to the reference, FD(point) / FD(DDPM 1000),
cancels the noise the two share.

The pairs (`PAIRS`): every point against the reference (what the headline reads: `fastdiff.measure.pareto
.headline_with_intervals`); the solver step pairs whose scatter issue 26 names (a sampler that has converged should
not move by a quarter between 20 and 50 steps: DPM-Solver++ 20 vs 50, Heun 10 vs 20, DDIM 50 vs 100, DDPM 250 and 100
vs 1000); and each method against its own baseline, the same model and sampler without it (as
`report_claims.beside_base` reads the map).

A half-precision rung on a CPU records the instruction class that computed it, as study 5's settings do."""
from __future__ import annotations

import re

import torch

from .. import zoo
from ..devices import instruction_class
from ..diffusion import make_schedule
from ..measure.fd_sweep import FDSetting
from ..methods import int8_simulation
from .inference_ladder import INT8_DYNAMIC, INT8_SIMULATED
from .speed_quality_map import (CALIBRATION, FAST_RUNG, MODELS, POINTS, QUALITY_ONLY, REFERENCE, RUNGS, STUDENT_POINTS,
                                STUDENTS, UNWRAP, Point, build_point, sample_point)

STUDY = "07_report"
IMAGE_SIZE = 16
BATCH = 50                      # the map's batch: its quality run's noise seeds and its compiled rung's shape
MODEL_KEYS = {"U-Net": "", "U-Net, skip-trained": "skiptrained", "fewer levels": "fewer-levels",
              "bottleneck": "bottleneck", "U-Net (study 3)": "unet3", "cU-Net": "cunet",
              **{label: f"pd{n}" for label, n in STUDENTS.items() if MODELS[label].startswith("distill/pd")},
              "CD student": "cd", "CD student, mu 0.95": "cd-mu95", "U-Net, Block Caching 0.2 + scale-shift": "bc0.2-ss"}


def point_key(point: Point) -> str:
    """A point's setting key, from what it samples: "ddpm1000", "dpmpp2m20-cache2", "ddim50-skiptrained-skip2",
    "dpmpp2m10-fewer-levels-compile-frozen-weights"."""
    parts = [f"{point.sampler.name}{point.steps}"] + [f"{k}{v:g}" for k, v in point.sampler.options if k != "eta" or v]
    parts += [MODEL_KEYS[point.model]] if MODEL_KEYS[point.model] else []
    parts += [f"skip{point.skip_c:g}"] if point.skip_c is not None else []
    parts += [f"cache{point.cache_interval}"] if point.cache_interval is not None else []
    parts += [f"encprop{point.encprop_interval}"] if point.encprop_interval is not None else []
    parts += [f"fbc{point.fb_threshold:g}"] if point.fb_threshold is not None else []
    parts += [f"bc{point.block_threshold:g}"] if point.block_threshold is not None else []
    parts += [re.sub(r"[^a-z0-9]+", "-", point.rung.lower()).strip("-")] if point.rung != "fp32" else []
    return "-".join(parts)


def keys(points=POINTS["quick"] + QUALITY_ONLY["quick"]) -> dict[str, str]:
    """{point label: setting key} of ``points``."""
    return {p.label: point_key(p) for p in points}


REF = point_key(REFERENCE)
_LABEL = keys()
# a converged sampler should not move between these step counts (the scatter issue 26 names); (fewer, more)
STEP_PAIRS = (("DPM-Solver++(2M) 20", "DPM-Solver++(2M) 50"), ("DPM-Solver++(2M) 10", "DPM-Solver++(2M) 20"),
              ("Heun (Karras) 10", "Heun (Karras) 20"), ("DDIM 50", "DDIM 100"), ("DDIM 20", "DDIM 50"),
              ("UniPC 10", "UniPC 20"), ("DEIS 10", "DEIS 20"), ("iPNDM 10", "iPNDM 20"))
# (a method's point, its baseline: the same model and sampler without the method), as report_claims.beside_base
BASELINE_PAIRS = (
    *((f"skipping c={c:g}, DDIM 50", "skipping c=0, DDIM 50") for c in (1, 2, 3, 5)),
    *((f"DeepCache N={n}, DDIM 100", "DDIM 100") for n in (2, 3, 5)), ("DeepCache N=3, DDIM 50", "DDIM 50"),
    *((f"{m}, DDIM 50", "DDIM 50") for m in ("fewer levels", "bottleneck", "U-Net (study 3)")),
    ("cU-Net, DDIM 50", "U-Net (study 3), DDIM 50"),
    *((f"{r}, DDIM 50", "DDIM 50") for r in ("channels_last", "bf16 autocast", FAST_RUNG)),
    (f"DPM-Solver++ 10 + {FAST_RUNG}", "DPM-Solver++(2M) 10"),
    ("skipping c=2 + DPM-Solver++ 10", "DPM-Solver++(2M) 10"),
    ("DeepCache N=2 + DPM-Solver++ 20", "DPM-Solver++(2M) 20"),
    (f"fewer levels + DPM-Solver++ 10 + {FAST_RUNG}", "DPM-Solver++(2M) 10"),
    ("cU-Net + DPM-Solver++ 10", "DPM-Solver++(2M) 10"),
    *((f"first-block cache {t:g}, DDIM 50", "DDIM 50") for t in (0.05, 0.1)),
    *((f"encoder propagation N={n}, DDIM 50", "DDIM 50") for n in (2, 3)),
    ("first-block cache 0.05 + DPM-Solver++ 20", "DPM-Solver++(2M) 20"),
    ("encoder propagation N=2 + DPM-Solver++ 20", "DPM-Solver++(2M) 20"),
    *((f"Block Caching {t:g}, DDIM 50", "DDIM 50") for t in (0.1, 0.2)),
    ("Block Caching 0.2 + scale-shift, DDIM 50", "DDIM 50"),
    ("Block Caching 0.2 + scale-shift, DDIM 50", "Block Caching 0.2, DDIM 50"),     # what the scale-shift buys
    ("Block Caching 0.2 + DPM-Solver++ 20", "DPM-Solver++(2M) 20"),
    (f"{INT8_DYNAMIC.name}, DDIM 50", "DDIM 50"), *((f"{r.name}, DDIM 50", "DDIM 50") for r in INT8_SIMULATED),
    # a student against DDIM at about its steps on the U-Net it was distilled from (its teacher's own model)
    *((p.label, "DDIM 10") for p in STUDENT_POINTS))
# the newer multistep solvers against DPM-Solver++(2M) at the same steps (what UniPC's claim reads)
SOLVER_PAIRS = (("UniPC 10", "DPM-Solver++(2M) 10"), ("UniPC 5", "DPM-Solver++(2M) 5"),
                ("DEIS 10", "DPM-Solver++(2M) 10"), ("DEIS 20", "DPM-Solver++(2M) 20"),
                ("iPNDM 10", "DPM-Solver++(2M) 10"), ("iPNDM 5", "DPM-Solver++(2M) 5"),
                # and the students at equal steps (the consistency-distillation claim reads the first pair)
                ("CD student, 1 step", "PD student, 1 step"), ("CD student, 2 steps", "PD student, 2 steps"),
                ("CD student, mu 0.95, 1 step", "PD student, 1 step"),
                ("CD student, mu 0.95, 2 steps", "PD student, 2 steps"),
                ("CD student, mu 0.95, 1 step", "CD student, 1 step"))
# what the notebook shows of the scatter: the step pairs and DDPM's shorter chains against the reference
SCATTER = STEP_PAIRS + (("DDPM 250", REFERENCE.label), ("DDPM 100", REFERENCE.label))
# the pairs the map reads (a, b): FD(a) - FD(b) and FD(a) / FD(b) over their common x_T
PAIRS = tuple((k, REF) for k in _LABEL.values() if k != REF) + \
    tuple((_LABEL[a], _LABEL[b]) for a, b in STEP_PAIRS + BASELINE_PAIRS + SOLVER_PAIRS)


def _sampler(point: Point, model, schedule, *, device, batch: int):
    def sample(x_T: torch.Tensor) -> torch.Tensor:      # built (compiled) only when sampled, not when cached
        size = min(batch, len(x_T))
        built = build_point(point, {point.model: model}, schedule, device=device, batch_size=size)
        return sample_point(point, built, schedule, x_T.to(device), batch_size=size)
    return sample


def _zoo_models(labels, device) -> tuple[dict, dict]:
    """({label: model}, {label: (entry, sha256)}) of the zoo models the points use (study 2's plain U-Net taken out
    of its skipping wrapper, as the map samples it)."""
    models, weights = {}, {}
    for label in labels:
        model, e = zoo.load(MODELS[label], device=device, verbose=False)
        models[label] = model.inner if label in UNWRAP else model
        weights[label] = (MODELS[label], e.sha256)
    return models, weights


def fd_settings(device="cpu", *, points="quick", models: dict | None = None, batch: int = BATCH) -> list[FDSetting]:
    """One setting per point of ``points`` (a `POINTS` name, with its `QUALITY_ONLY` settings, or a list), the
    reference first as in the map.
    ``models``: {`MODELS` label: model} instead of the zoo's (the tests' tiny ones; recorded as not the zoo's)."""
    device = torch.device(device)
    points = POINTS[points] + QUALITY_ONLY[points] if isinstance(points, str) else tuple(points)
    needed = sorted({p.model for p in points})
    if models is None:
        models, weights = _zoo_models(needed, device)
    else:
        if missing := [m for m in needed if m not in models]:
            raise ValueError(f"the points need the models {missing}; given: {sorted(models)}")
        weights = {label: ("given in this run", None) for label in needed}
    schedule = make_schedule("linear")
    out = []
    for p in points:
        rung = RUNGS[p.rung]
        # every option with the value it samples with (a changed default is a new setting, not a stale cache)
        sampling = {"point": p.label, "model": p.model, "sampler": p.sampler.label,
                    "options": p.sampler.effective_options(),
                    "steps": p.steps, "c": p.skip_c, "cache_interval": p.cache_interval, "rung": p.rung,
                    "dtype": rung.dtype, "batch": batch}
        # the other step caches only where a point has them
        sampling.update({k: v for k, v in (("fb_threshold", p.fb_threshold), ("encprop_interval", p.encprop_interval),
                                           ("block_threshold", p.block_threshold)) if v is not None})
        if p.block_threshold is not None or rung.simulated == "static":
            sampling["calibration"] = dict(CALIBRATION)
        if rung.simulated is not None:
            sampling["quantization"] = int8_simulation.SCHEME
        if rung.dtype != "fp32" and device.type == "cpu":
            sampling["arithmetic"] = instruction_class()
        entry, sha = weights[p.model]
        out.append(FDSetting(point_key(p), p.label, sampling,
                             _sampler(p, models[p.model].eval(), schedule, device=device, batch=batch),
                             entry=entry, sha256=sha))
    return out


def pair_table(section: dict, pairs=SCATTER):
    """The measurement's paired comparisons of ``pairs`` (labels (a, b)): each FD (bias-corrected, 95% interval) and
    the paired difference FD(a) - FD(b) and ratio FD(a) / FD(b) over their common x_T, as text; a pair the section
    lacks is left out. Whether DPM-Solver++ 20 and 50 differ is read here, not from two FDs' distance."""
    import pandas as pd
    from ..measure import fd_sweep
    fds, paired = fd_sweep.estimates(section), fd_sweep.pairs(section)
    key = {r["label"]: k for k, r in section["settings"].items()}
    rows = []
    for a, b in pairs:
        got = paired.get((key.get(a), key.get(b)))
        if got is not None:
            rows.append({"a": a, "b": b, "FD(a)": fds[key[a]].format(2), "FD(b)": fds[key[b]].format(2),
                         "FD(a) - FD(b), paired": got["difference"].format(2),
                         "FD(a) / FD(b), paired": got["ratio"].format(3), "n": got["n"]})
    return pd.DataFrame(rows, columns=["a", "b", "FD(a)", "FD(b)", "FD(a) - FD(b), paired", "FD(a) / FD(b), paired",
                                       "n"]).set_index(["a", "b"])
