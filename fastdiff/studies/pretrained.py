"""The full profile on a model people already have (issue 29): a diffusers DDPM pipeline -- ``google/ddpm-cifar10-32``
(the DDPM paper's CIFAR-10 model, the one the DDIM and DeepCache papers measure) from the hub or its cache, or any
local pipeline folder, e.g. a zoo model exported by ``fastdiff export`` -- loaded into fastdiff's U-Net
(`fastdiff.diffusers_io.load_pipeline`) and sampled in the settings of a study's paper, each scored beside the
paper's own number.

Per study (`points`): 00 DDPM's 1000 ancestral steps and DDIM at 10/20/50/100 steps, eta 0 and 1 (the DDIM paper's
Table 1); 02 the plainly trained model with its deepest levels skipped at inference, c = 0..5 (the layer-skipping
paper's "DDPM" row of Table 1, where it falls apart); 05 DDIM 100 on study 5's ladder rungs (what each rung costs in
quality); 07 the map's anchors: DDPM 1000, DDIM 100, DeepCache N = 2/3/5 on DDIM 100 (DeepCache's Table 3),
DPM-Solver++(2M) 20, UniPC 10, DEIS 10 and the digits map's headline, first-block cache 0.05 + DPM-Solver++ 20.

The score follows the images: RGB images get FID against the CIFAR-10 training set with torch-fidelity's Inception-v3
(``inception-v3-compat``, the 2048-d pool features FID is defined on), greyscale digits FD (LeNet-MNIST) against the
built-in training digits -- never called FID. Every setting samples the first ``n`` of one fixed x_T, so settings
compare paired, and each score carries the bias-corrected bootstrap interval of `fastdiff.measure.fd_sweep` (the same
`collect`/`summarise` that the digit studies use, with its cache: an interrupted run resumes). Our number is set
beside the paper's only as a comparison: it is like for like only with FID (Inception) at the papers' 50,000
samples; at smaller n FID sits above the 50k value (its bias falls as 1/n), and FD (LeNet-MNIST) has another scale.
"""
from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import torch

from .. import papers
from ..checkpoint import digest
from ..devices import environment
from ..portable_json import save_results
from ..measure import fd_sweep
from ..measure.fd_sweep import FDSetting, estimate_from
from ..measure.seed_spread import fixed_noise
from ..methods.layer_skipping import LayerSkippingUNet
from ..sampling import DDIM, DDPM, DEIS, DPMPP_2M, UNIPC
from .speed_quality_map import FAST_RUNG, Point, build_point, point_call

__all__ = ["STUDIES", "PAPER_N", "points", "pipeline_status", "scorer", "measure", "table", "headline", "run"]

STUDIES = {"00": "00_diffusion_basics", "02": "02_adaptive_layer_skipping", "05": "05_performance", "07": "07_report"}
PAPER_N = 50_000                    # the papers' FID sample count (CIFAR-10)
CHUNK = 5_000                       # a setting with more samples is sampled (and kept) this many at a time
SKIPPED = "U-Net, skip-trained"     # the map's label of a LayerSkippingUNet; here it wraps the pretrained U-Net
_DDIM1 = DDIM.with_options(eta=1.0)
_00, _02, _07 = "00_diffusion_basics", "02_adaptive_layer_skipping", "07_report"


def _points_00() -> list[tuple[Point, tuple | None]]:
    out = [(Point("DDPM 1000", "DDPM (ancestral)", sampler=DDPM, steps=1000), (_00, "DDPM 1000"))]
    for eta, sampler in ((0.0, DDIM), (1.0, _DDIM1)):
        out += [(Point(f"DDIM {s}, eta {eta:g}", "DDIM", sampler=sampler, steps=s), (_00, f"DDIM {s}, eta {eta:g}"))
                for s in (10, 20, 50, 100)]
    return out


def _points_02() -> list[tuple[Point, tuple | None]]:
    # the paper's "DDPM" row of Table 1 (c = 0 is DDPM's own 3.17): the pretrained model with its 1000 ancestral
    # steps, zero fill where levels are skipped
    return [(Point(f"plain model, skipping c={c}, DDPM 1000", "layer skipping (study 2)", model=SKIPPED,
                   sampler=DDPM, steps=1000, skip_c=c), (_02, f"DDPM, c={c}")) for c in (0, 1, 2, 3, 5)]


def _points_05() -> list[tuple[Point, tuple | None]]:
    rungs = ("fp32", "channels_last", "bf16 autocast", FAST_RUNG, "bf16 + compile, frozen weights")
    return [(Point(f"DDIM 100, {r}", "precision / compile (study 5)", steps=100, rung=r),
             (_00, "DDIM 100, eta 0") if r == "fp32" else None) for r in rungs]


def _points_07() -> list[tuple[Point, tuple | None]]:
    dpm20 = dict(sampler=DPMPP_2M, steps=20)
    return [(Point("DDPM 1000", "DDPM (ancestral)", sampler=DDPM, steps=1000), (_00, "DDPM 1000")),
            (Point("DDIM 100", "DDIM", steps=100), (_07, "DDIM 100")),
            *((Point(f"DeepCache N={n}, DDIM 100", "DeepCache", steps=100, cache_interval=n),
               (_07, f"DeepCache N={n}, DDIM 100") if n == 5 else None) for n in (2, 3, 5)),
            (Point("DPM-Solver++(2M) 20", "DPM-Solver++(2M)", **dpm20), None),
            (Point("UniPC 10", "UniPC (bh2)", sampler=UNIPC, steps=10), None),   # its 3.87: ScoreSDE's NCSN++
            (Point("DEIS 10", "DEIS", sampler=DEIS, steps=10), None),
            (Point("first-block cache 0.05 + DPM-Solver++ 20", "combination", fb_threshold=0.05, **dpm20), None)]


# where our setting differs from the one behind the paper's number: shown, and the two are then not compared
CAVEATS = {**{f"DDIM {s}, eta {e:g}": "the DDIM paper's CIFAR-10 column spaces its steps quadratically; ours evenly"
              for s in (10, 20, 50, 100) for e in (0.0, 1.0)},
           "DDIM 100, fp32": "the DDIM paper's CIFAR-10 column spaces its steps quadratically; ours evenly"}
VARIANCE_NOTE = ("fastdiff's DDPM steps use the posterior variance (beta tilde); the DDPM paper's CIFAR-10 FID 3.17 "
                 "used sigma^2 = beta")

_POINTS = {"00": _points_00, "02": _points_02, "05": _points_05, "07": _points_07}
REFERENCE = {"00": "DDPM 1000", "07": "DDPM 1000", "02": "plain model, skipping c=0, DDPM 1000",
             "05": "DDIM 100, fp32"}


def _study(study) -> str:
    key = str(study)[:2]
    if key not in STUDIES:
        raise ValueError(f"the pretrained path is offered by studies {sorted(STUDIES)}, not {study!r}")
    return key


def points(study: str, *, compile_rungs: bool = True) -> list[tuple[Point, tuple | None]]:
    """(point, (paper study, variant) of its FID in `fastdiff.papers`, or None) of ``study`` ("00", "02", "05" or
    "07"); ``compile_rungs=False`` leaves out study 5's torch.compile rungs (minutes of compiling on a CPU)."""
    out = _POINTS[_study(study)]()
    return [(p, ref) for p, ref in out if compile_rungs or "compile" not in p.rung]


def _key(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "+.=-" else "-" for ch in label.lower()).strip("-")


def pipeline_status(source) -> str | None:
    """None when ``source`` names a pretrained pipeline to load; otherwise the sentence a notebook prints: no
    pipeline given, or given and absent (no such folder, no network and not in the hub cache)."""
    if source is None or (isinstance(source, str) and source.strip().lower() in ("", "none", "false", "no")):
        return ("No pretrained pipeline given, so this section measures nothing: run with `-p pretrained "
                "google/ddpm-cifar10-32` (hub id, with a network or its hub cache) or `-p pretrained <folder>` (a "
                "diffusers DDPM pipeline folder, e.g. one written by `fastdiff export`).")
    if not isinstance(source, (str, Path)):
        raise ValueError(f"pretrained must be a hub id or a pipeline folder (a string), got {source!r}")
    return None


def scorer(image_shape, *, device, root: str | Path | None = None, batch_size: int = 250):
    """(features: images in [-1, 1] -> (N, d) features, reference statistics, reference features, floor features,
    description) for images of ``image_shape`` (C, H, W): greyscale -> FD (LeNet-MNIST) against the built-in training
    digits (floor: the held-out ones); RGB -> FID (torch-fidelity's Inception-v3) against the CIFAR-10 training set
    in ``root`` (floor: its test set). Missing Inception weights or data are a clear error saying where they go."""
    from ..data import load_dataset
    from ..measure.seed_spread import lenet_features
    root = Path(root) if root is not None else fd_sweep.REPO / "data"
    c, h, w = image_shape
    if c == 1:
        reference = load_dataset("mnist-builtin", image_size=h, split="train", seed=0)
        held_out = load_dataset("mnist-builtin", image_size=h, split="val", seed=0)
        features, ref_stats = lenet_features(reference, device=device)
        return (features, ref_stats, features(reference), features(held_out),
                {"metric": "FD (LeNet-MNIST), not FID", "reference": f"the {len(reference)} built-in MNIST training "
                 f"digits at {h}x{w}", "floor_set": f"the {len(held_out)} held-out digits"})
    if c != 3:
        raise ValueError(f"a pretrained pipeline of {c}-channel images has no score here (1: digits, 3: RGB)")
    features = inception_features(device=device, batch_size=batch_size)
    train = load_dataset("cifar10", image_size=h, split="train", root=root)
    test = load_dataset("cifar10", image_size=h, split="val", root=root)
    ref = _dataset_features(features, train, batch_size)
    from torch_fidelity.metric_fid import fid_features_to_statistics
    return (features, fid_features_to_statistics(ref), ref, _dataset_features(features, test, batch_size),
            {"metric": "FID (Inception-v3, torch-fidelity)", "reference": f"the {len(train)} CIFAR-10 training "
             f"images", "floor_set": f"the {len(test)} CIFAR-10 test images"})


def _dataset_features(features, dataset, batch_size: int) -> torch.Tensor:
    return torch.cat([features(torch.stack([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]))
                      for i in range(0, len(dataset), batch_size)])


def inception_features(*, device, batch_size: int = 250):
    """images in [-1, 1] (N, 3, H, W) -> (N, 2048) float64 pool features of torch-fidelity's Inception-v3, from the
    weights `fastdiff weights` puts on disk (rounded to uint8 first, as torch-fidelity reads images)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from ..measure.metrics import to_uint8
    from ..weights import require
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                      feature_extractor_weights_path=str(require("inception-v3-compat")))
    net = net.to(device).eval()

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        u8 = to_uint8(images)
        return torch.cat([net(u8[i:i + batch_size].to(device))[0].double().cpu()
                          for i in range(0, len(u8), batch_size)])
    return features


def _settings(pairs, models, schedule, *, source: str, sha256: str, device, batch: int, n: int) -> list[FDSetting]:
    """A chunk is a whole number of batches, so a chunk draws the images the whole x_T draws."""
    out = []
    for point, _ in pairs:
        model = build_point(point, models, schedule, device=device, batch_size=batch)

        def sample(x_T, start: int = 0, point=point, model=model):
            return torch.cat([point_call(point, model, schedule, x_T[i:i + batch].to(device),
                                         seed=1 + start + i)().float().cpu() for i in range(0, len(x_T), batch)])
        sampling = {"sampler": point.sampler.label, "options": dict(point.sampler.options), "steps": point.steps,
                    "batch": batch, "rung": point.rung, "c": point.skip_c, "cache": point.cache}
        out.append(FDSetting(_key(point.label), point.label, sampling, sample, entry=source, sha256=sha256,
                             chunk=max(1, CHUNK // batch) * batch if n > CHUNK else None))
    return out


def measure(source, study: str, *, n: int, device="cpu", batch: int = 250, n_boot: int | None = None,
            cache: str | Path | None = None, root: str | Path | None = None, compile_rungs: bool = True,
            progress: bool = True, pipeline: tuple | None = None) -> dict:
    """``study``'s settings on the pipeline ``source`` (hub id or folder): each sampled from the first ``n`` of one
    x_T (seed 0) in batches of ``batch`` and scored with its interval; the pairs are each setting against the
    study's reference setting (paired: same x_T). Returns the section: settings, pairs, floor (as
    `fastdiff.measure.fd_sweep.summarise`), the points' NFE, the paper numbers, the machine and the date.
    ``n_boot`` None: 1000 resamples for FD (LeNet), 200 for FID (each resample of 2048-d features takes a matrix
    square root of 2048 x 2048: seconds)."""
    from ..checks import check_int
    from ..diffusers_io import load_pipeline
    key = _study(study)
    check_int("pretrained_n", n, low=2)
    check_int("batch", batch, low=1)
    start = time.time()
    device = torch.device(device)
    unet, schedule = pipeline if pipeline is not None else load_pipeline(source)
    unet.to(device).eval()
    models = {"U-Net": unet, SKIPPED: LayerSkippingUNet(unet, skip_type="zero").eval()}
    shape = (unet.config.in_channels, unet.config.image_size, unet.config.image_size)
    chosen = points(key, compile_rungs=compile_rungs)
    sha = digest({"weights": unet.state_dict(), "betas": schedule.betas})     # the model is both
    settings = _settings(chosen, models, schedule, source=str(source), sha256=sha, device=device,
                         batch=min(batch, n), n=n)
    features, ref_stats, ref_features, floor_features, about = scorer(shape, device=device, root=root)
    x_T = fixed_noise(n, shape, seed=0)
    cache = Path(cache) if cache is not None else fd_sweep.REPO / "runs" / "pretrained"
    got = fd_sweep.collect(settings, features, x_T=x_T, x_T_seed=0, cache=cache / f"{key}-{sha[:12]}-n{n}",
                           progress=progress)
    if device.type == "cuda":          # the bootstrap's products and eigensolves, on the GPU (minutes, not a day)
        got = {k: {**v, "features": v["features"].to(device)} for k, v in got.items()}
        ref_features, floor_features = ref_features.to(device), floor_features.to(device)
    ref = _key(REFERENCE[key])
    n_boot = n_boot or (1000 if ref_features.shape[1] < 1000 else 200)
    section = fd_sweep.summarise(settings, got, ref_stats=ref_stats, ref_features=ref_features,
                                 floor_features=floor_features, floor_label=about["floor_set"], n_boot=n_boot,
                                 pairs_of=[(s.key, ref) for s in settings if s.key != ref])
    for (point, paper), s in zip(chosen, settings):
        section["settings"][s.key].update({
            "NFE": point.nfe, "ms_per_image": round(1e3 * got[s.key]["seconds"] / got[s.key]["n"], 3),
            "paper": None if paper is None else {"value": papers.value(*paper, "FID"), "cite": papers.cite(
                paper[0], paper[1], metric="FID"), "caveat": CAVEATS.get(point.label)}})
    return {**section, **about, "study": STUDIES[key], "source": str(source), "sha256": sha, "n": n,
            "n_boot": n_boot, "batch": batch, "reference_setting": ref, "image_shape": list(shape),
            "device": environment(device)["device"], "seconds": round(time.time() - start, 1),
            "notes": [VARIANCE_NOTE] if any(p.sampler.name == DDPM.name for p, _ in chosen) else [],
            "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def comparable(section: dict) -> bool:
    """Whether our numbers are like for like with the papers': FID (Inception) at their 50,000 samples."""
    return section["metric"].startswith("FID") and section["n"] >= PAPER_N


def _agreement(e, paper: float | None, like_for_like: bool, caveat: str | None = None) -> str:
    """Ours (the plug-in value, as the papers report FID, with its interval) against the paper's: "agrees" when the
    whole 95% interval is within 10% of the paper's number, "differs" when none of it is, "inconclusive" when it
    straddles; "not comparable" off the papers' metric and n, or where the setting differs from the paper's."""
    if paper is None:
        return ""
    if not like_for_like:
        return "not comparable"
    if caveat:
        return f"not comparable ({caveat})"
    low, high = 0.9 * paper, 1.1 * paper
    if low <= e.low and e.high <= high:
        return "agrees (within 10%)"
    if e.high < low or e.low > high:
        return "differs (by more than 10%)"
    return "inconclusive"


def table(section: dict):
    """One row per setting: NFE, sampling time per image (the measurement's sampling wall time: a label, not a
    benchmark), the plug-in score (what the papers report) with its 95% interval, the bias-corrected value, the
    paired ratio to the study's reference setting, the paper's FID and how ours compares."""
    import pandas as pd
    metric = "FID" if section["metric"].startswith("FID") else "FD (LeNet-MNIST)"
    pairs = fd_sweep.pairs(section)
    plug_in = fd_sweep.estimates(section, plug_in=True)
    like = comparable(section)
    rows = []
    for k, r in section["settings"].items():
        e = plug_in[k]
        ratio = pairs.get((k, section["reference_setting"]), {}).get("ratio")
        paper = (r.get("paper") or {}).get("value")
        rows.append({"setting": r["label"], "NFE": r["NFE"], "ms / image": r["ms_per_image"], metric: e.value,
                     "95% low": e.low, "95% high": e.high,
                     "bias-corrected": estimate_from(r["fd"]).value,
                     "paired ratio to the reference": None if ratio is None else
                     f"{ratio.value:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]",
                     "paper FID": paper,
                     "ours vs paper": _agreement(e, paper, like, (r.get("paper") or {}).get("caveat"))})
    return pd.DataFrame(rows).round(3)


def headline(section: dict) -> str:
    """The fastest setting whose score lies within the reference setting's 95% interval (the map's rule), or why
    there is none; labelled with the machine, n and the metric."""
    ref_key = section["reference_setting"]
    ref = estimate_from(section["settings"][ref_key]["fd"])
    inside = [(r["ms_per_image"], k) for k, r in section["settings"].items()
              if k != ref_key and estimate_from(r["fd"]).value <= ref.high]
    where = (f"{section['metric']}, n = {section['n']}, {section['device']}, {section['utc'][:10]}; times are the "
             f"measurement's sampling wall time")
    if not inside:
        return f"no setting's score is within {section['settings'][ref_key]['label']}'s interval (<= {ref.high:.2f}) ({where})"
    ms, k = min(inside)
    r = section["settings"][k]
    e = estimate_from(r["fd"])
    speed = section["settings"][ref_key]["ms_per_image"] / ms if ms else float("nan")
    return (f"fastest within {section['settings'][ref_key]['label']}'s interval (<= {ref.high:.2f}): {r['label']}, "
            f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}], {ms:.1f} ms per image, {speed:.1f}x faster ({where})")


def run(source, study: str, *, profile: str, device, out: str | Path | None = None, n=None, batch: int | None = None,
        cache: str | Path | None = None, progress: bool = False) -> dict | None:
    """A notebook's pretrained section: prints plainly when no pipeline is given or it cannot be loaded here (then
    None), else measures ``study`` (``n`` samples per setting; None: the profile's -- 50,000 on ``full`` as the
    papers, 1,000 on ``quick``, 8 on ``smoke``), writes ``<out>/<study>_pretrained.json`` and returns the section.
    Papermill's strings are accepted for ``n``; ``cache``: the samples' feature cache (default
    ``runs/pretrained/`` of the checkout)."""
    from ..checks import check_int
    message = pipeline_status(source)
    if message:
        print(message)
        return None
    n = {"full": PAPER_N, "smoke": 8}.get(profile, 1000) if n in (None, "None", "") else n
    n = int(n) if isinstance(n, str) and n.strip().isdigit() else n
    check_int("pretrained_n", n, low=2)
    _study(study)
    from ..diffusers_io import load_pipeline
    source = str(source).strip()
    try:
        pipeline = load_pipeline(source)
    except OSError as e:          # no such folder; a hub id with no network nor cache (a damaged folder: ValueError)
        print(f"The pretrained pipeline {source!r} is not here, so this section measures nothing: {e}")
        return None
    section = measure(source, study, n=n, device=device, batch=batch or (8 if profile == "smoke" else 250),
                      n_boot=20 if profile == "smoke" else None, compile_rungs=profile != "smoke",
                      cache=cache, progress=progress, pipeline=pipeline)
    if out is not None:
        print("wrote", save_results(out, f"{STUDIES[_study(study)]}_pretrained", section))
    if not comparable(section):
        print(f"Beside the papers' numbers only for orientation: ours is {section['metric']} at n = {section['n']}; "
              f"the papers report FID (Inception) at n = {PAPER_N}.")
    for note in section.get("notes", []):
        print("note:", note)
    return section
