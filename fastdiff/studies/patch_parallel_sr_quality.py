"""Study 4's quality measurement, made once per machine and read by notebook 04 (measure once, show many times).

`measure` scores every model (and bicubic upsampling, and the fixed-s8 model sampled without shifting) on *all* the
held-out photo patches with the same x_T and noise, keeping each image's PSNR, SSIM, LR-PSNR and seam score, and
runs the SR sanity checks (`fastdiff.measure.sr_sanity`: 8 samples of each of the first ``sanity_n`` patches per
model). `python benchmarks/swindiffuser_quality.py` writes it to ``results/<cpu|cuda>/swindiffuser_quality.json``
with the machine, the date and each model's zoo sha256. The notebook reads it (`load`), turns the per-image numbers
into means with bootstrap intervals (`table`) and paired gaps (`measured_for_claims`), and judges the claims only
on models that passed the sanity checks."""
from __future__ import annotations

import time

import torch

from .. import zoo
from ..checks import check_bool
from ..data import downsample
from ..devices import cpu_features, environment
from ..measure import sr_sanity
from ..measure.intervals import mean_interval, paired_difference_interval
from ..measure.sr_eval import bicubic, per_image_metrics
from ..methods.patch_parallel import seam_score
from ..progress import progress_bar
from ..results import read_benchmark
from . import patch_parallel_sr as study

NAME = "swindiffuser_quality"
BICUBIC = "bicubic (no model)"
NO_SHIFT_SAMPLING = "fixed s8, sampled without shift"
METRICS = ("PSNR", "SSIM", "LR-PSNR", "seam score")


def settings_for(models) -> dict:
    """{row label: (model, shift_mode, step_size)}: every model with its own shift plan, and fixed s8 sampled
    without shifting (what the shifts do at sampling time, apart from what they did in training)."""
    out = {name: (name, None, None) for name in models}
    if study.MAIN in models:
        out[NO_SHIFT_SAMPLING] = (study.MAIN, "none", 0)
    return out


def per_image(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, grid: int = 2) -> dict[str, list[float]]:
    """Each image's PSNR, SSIM, LR-PSNR and seam score (on the d = ``grid`` patch grid)."""
    return {**per_image_metrics(sr, hr, lr), "seam score": [seam_score(x[None], grid) for x in sr]}


def measure(models: dict, hr: torch.Tensor, schedule, *, steps: int, device, sanity_n: int, seed: int = 0,
            batch_size: int = 64, entries: dict[str, str] | None = None, progress: bool = True) -> dict:
    """Every model's per-image scores on the LR images of ``hr`` (all of them) and its sanity record on the first
    ``sanity_n``; ``entries``: {model: zoo entry}, whose sha256 is recorded (None: weights trained in this run)."""
    start = time.time()
    lr = downsample(hr, 2)
    scores = {BICUBIC: per_image(bicubic(lr, 2), hr, lr), "HR (real)": {"seam score": [seam_score(x[None], 2)
                                                                                       for x in hr]}}
    for label, (name, mode, s) in progress_bar(settings_for(models).items(), desc="SR quality", disable=not progress):
        sr = study.super_resolve(models[name], lr, schedule, steps, device=device, shift_mode=mode, step_size=s,
                                 seed=seed, batch_size=batch_size)
        scores[label] = per_image(sr, hr, lr)
    records = study.sanity_records(models, hr[:sanity_n], schedule, steps=steps, device=device, seed=seed,
                                   batch_size=batch_size)
    weights = {name: ({"entry": entries[name], "sha256": zoo.entry(entries[name]).sha256}
                      if entries and name in entries else {"entry": None, "sha256": None}) for name in models}
    return {"benchmark": NAME, "environment": environment(torch.device(device)), "cpu": cpu_features(),
            "data": study.DATA_LABEL, "n": len(hr), "steps": steps, "sampler": "ancestral (DDIM eta = 1), respaced",
            "seed": seed, "sanity_n": sanity_n, "weights": weights, "per_image": scores, "sanity": records,
            "seconds": time.time() - start}


def merge(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s models added (a model trained after the first measurement): both must come from the
    same machine, patches, steps and seed (the bicubic scores must agree), so that every row stays comparable."""
    for key in ("n", "steps", "seed", "sanity_n", "sampler", "data"):
        if old[key] != new[key]:
            raise ValueError(f"cannot merge measurements with different {key}: {old[key]!r} and {new[key]!r}")
    if old["environment"]["device"] != new["environment"]["device"]:
        raise ValueError(f"cannot merge measurements of two machines ({old['environment']['device']} and "
                         f"{new['environment']['device']}): measure every model again on one")
    if old["per_image"][BICUBIC] != new["per_image"][BICUBIC]:
        raise ValueError("cannot merge: the two measurements scored different held-out patches (bicubic differs)")
    added = list(new["weights"])
    return {**old, "per_image": {**old["per_image"], **new["per_image"]},
            "sanity": [r for r in old["sanity"] if r["model"] not in added] + new["sanity"],
            "weights": {**old["weights"], **new["weights"]}, "seconds": old["seconds"] + new["seconds"],
            "added": [*old.get("added", []), {"models": added, "utc": new["environment"]["utc"]}]}


def load(*, device_type: str = "cpu", root="../results", models: dict | None = None,
         entries: dict[str, str] | None = None) -> dict:
    """The committed measurement of this device type (`read_benchmark`), after checking that it scored the weights
    loaded here (the zoo's sha256): a measurement of other weights is an error that says how to re-measure."""
    data = read_benchmark(NAME, device_type, root=root)
    for name in (models or {}):
        rec = data["weights"].get(name)
        have = zoo.entry(entries[name]).sha256 if entries and name in entries else None
        if rec is None or have is None or rec["sha256"] != have:
            raise ValueError(f"results/{device_type}/{NAME}.json did not measure the weights of {name!r} loaded here "
                             f"(recorded {rec and rec.get('sha256')}, loaded {have}): run `python benchmarks/"
                             f"{NAME}.py`, or set remeasure = True")
    return data


def banner(data: dict) -> str:
    env = data["environment"]
    added = "".join(f"; {', '.join(a['models'])} added at {a['utc']}" for a in data.get("added", []))
    return (f"measured on {env['device']} at {env['utc']} (torch {env['torch']}): {data['n']} held-out patches, "
            f"{data['steps']} {data['sampler']} steps, seed {data['seed']}; sanity checks on the first "
            f"{data['sanity_n']} ({sr_sanity.BARS.samples} samples each); {data['seconds'] / 60:.0f} min{added}")


def table(data: dict) -> list[dict]:
    """One row per setting: each metric's mean with its 95% bootstrap interval over the images, and n."""
    rows = []
    for label, scores in data["per_image"].items():
        row = {"model": label, "n": len(next(iter(scores.values())))}
        for metric in METRICS:
            if metric in scores:
                row[metric] = mean_interval(scores[metric])
        rows.append(row)
    return rows


def means(rows: list[dict]) -> list[dict]:
    """`table`'s rows with plain means (for the thesis's tables, `study.beside_paper`)."""
    return [{k: (v.value if hasattr(v, "value") else v) for k, v in r.items()} for r in rows]


def formatted(rows: list[dict]) -> list[dict]:
    """`table`'s rows as text, "32.56 [32.10, 33.02]", for display."""
    return [{k: (v.format() if hasattr(v, "format") else v) for k, v in r.items()} for r in rows]


CLAIM_GAPS = [("PSNR", study.MAIN, "no shift"), ("SSIM", study.MAIN, "no shift"), ("seam score", "no shift", study.MAIN),
              *(("SSIM", study.MAIN, v) for v in study.TABLE_3_1 if v != study.MAIN),
              *((m, study.MAIN, b) for m in ("PSNR", "SSIM") for b in ("random s8", "16x16 patches, fixed s4")),
              ("PSNR", study.BASELINE, study.MAIN), ("SSIM", study.BASELINE, study.MAIN)]


def measured_for_claims(data: dict, *, bench: dict | None = None) -> dict:
    """What the claims read: the paired gaps (`study.gap_key`) over the measured images, with the measurement's
    device; the 1- and 2-process times from this run's benchmark (`study.bench_for_claims`), if any."""
    m = {"steps": data["steps"], **study.bench_for_claims(bench)}
    m["quality device"] = f"measured on {data['environment']['device']}"
    scores = data["per_image"]
    for metric, a, b in CLAIM_GAPS:
        if a in scores and b in scores:
            m[study.gap_key(metric, a, b)] = paired_difference_interval(scores[a][metric], scores[b][metric])
    return m


def resolve_remeasure(remeasure, profile: str) -> bool:
    """``remeasure``: "auto" measures on every profile but quick (whose zoo models the committed file measured);
    True / False (or papermill's "true" / "false")."""
    if isinstance(remeasure, str) and remeasure.lower() == "auto":
        return profile != "quick"
    try:
        return check_bool("remeasure", remeasure)
    except ValueError as e:
        raise ValueError(f"{e} (or 'auto')") from None


def load_or_measure(remeasure, *, profile: str, models: dict, weights: str, hr: torch.Tensor, schedule, steps: int,
                    device, sanity_n: int, root="../results") -> dict:
    """The committed measurement of this device type (checked against the zoo weights loaded here), or a new one
    of ``models`` on ``hr`` (`measure`) when ``remeasure`` says so."""
    entries = {name: study.ZOO_MODELS[name] for name in models} if weights == "zoo" else None
    if not resolve_remeasure(remeasure, profile):
        return load(device_type=torch.device(device).type, root=root, models=models, entries=entries)
    return measure(models, hr, schedule, steps=steps, device=device, sanity_n=min(sanity_n, len(hr)), entries=entries,
                   progress=False)
