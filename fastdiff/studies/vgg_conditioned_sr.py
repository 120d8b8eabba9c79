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

from ..diffusion import Schedule
from ..measure.bench import count_flops, interleaved, measure
from ..measure.sr_eval import super_resolve
from ..methods.vgg_features import VGGFeatureFusion
from ..nn import count_parameters
from ..sampling import prepare_condition
from ..train import TrainConfig, train
from ..unet import UNetConfig, build_unet
from ..utils import autocast, profile_by_name, slug

# The paper's figures (text of Secs. 3.1, 4.5, 4.6; Figs. 3 and 10 have no numbers we could read off).
PAPER_PARAMETERS = {"original": 66e6, "half": 33e6, "small": 9e6}
PAPER_SPEEDUP_SMALL_VS_ORIGINAL = 1.77      # average single forward pass, Fig. 9 (GPU not named beyond A100 training)
PAPER_STEPS = (50, 100, 200, 500, 1000, 2000)  # Fig. 10 columns
PAPER_SETUP = "FFHQ 32->128, 55k training images, 500k iterations at batch 128 on one A100, L1 noise loss"


# The paper's U-Nets (Sec. 3.1), by what is kept of SR3's: channel multipliers, attention on the 1/8-size level,
# attention in the middle (bottleneck) block.
ARCHITECTURES = {
    "original": ((1, 2, 4, 8, 8), True, True),
    "half": ((1, 2, 4, 8), False, False),        # last level and the attention dropped
    "small": ((1, 2, 4), False, False),          # last two levels dropped
    "small+attn": ((1, 2, 4), False, True),      # ... with attention on the bottleneck
}
# The models the study compares: name -> (architecture, fusion, LR image concatenated)
VARIANTS = {
    "original": ("original", "none", True),
    "half": ("half", "none", True),
    "small": ("small", "none", True),
    "small + attention": ("small+attn", "none", True),
    "small + VGG (add)": ("small", "add", True),
    "small + VGG (concat)": ("small", "concat", True),
    "small, VGG only": ("small", "add", False),
}
PAPER_VARIANT = {"original": "original", "half": "half", "small": "small"}


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
    arch, _, lr_concat = VARIANTS[name]
    mult, level_attn, middle_attn = ARCHITECTURES[arch]
    w = widths
    return UNetConfig(image_size=w.image_size, in_channels=w.channels, base_channels=w.base_channels,
                      channel_mult=mult, num_res_blocks=w.num_res_blocks,
                      attention_resolutions=(w.image_size // 8,) if level_attn else (),
                      middle_attention=middle_attn, dropout=w.dropout, cond_channels=w.channels if lr_concat else 0,
                      norm_groups=w.norm_groups)


def build_variant(name: str, widths: Widths = PAPER_WIDTHS, *, vgg_weights: str = "imagenet", vgg_seed: int = 0,
                  load_vgg: bool = True, vgg_state: dict | None = None, vgg_label: str = "") -> nn.Module:
    """One of `VARIANTS` at the given widths: a `SuperResUNet` (SR3), or one wrapped in `VGGFeatureFusion`.
    ``load_vgg=False`` builds without reading VGG weights (for parameter counts and timing, where the weights do
    not matter)."""
    inner = build_unet(variant_unet_config(name, widths))   # built first: same seed, same U-Net with or without VGG
    fusion = VARIANTS[name][1]
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
    dataset: str = "photos"        # photos (scikit-image patches, offline) | folder:<path> (FFHQ, CelebA-HQ)
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
    timing_batch: int = 1          # forward timing at the paper's widths and 128x128
    timing_repeats: int = 5
    game_n: int = 24               # images written for the fool-rate game (a third of them per model per session)

    @property
    def hr_size(self) -> int:
        return self.widths.image_size


PROFILES = {
    # 2 CPU cores: 8->32 on 32x32 patches of the bundled photos, U-Nets at a quarter of the paper's width
    # (base 16), 200 steps per variant: a demonstration of the pipeline, far too short for good samples.
    # Timing (forward passes) is still done at the paper's widths and 128x128.
    "quick": SRProfile(
        widths=Widths(image_size=32, base_channels=16, num_res_blocks=1, norm_groups=8, dropout=0.0),
        train=TrainConfig(steps=200, batch_size=16, lr=1e-3, warmup_steps=20, ema_decay=0.995, loss="l1",
                          log_every=10),
        val_n=8, val_every=50, val_steps=50, eval_n=24, eval_steps=50, grid_steps=(50, 100, 200),
        timing_batch=1, timing_repeats=7, game_n=24),
    # one GPU: the paper's 32->128 and widths (66M / 38M / 10M) on a face folder (or the photos at 128x128)
    "full": SRProfile(
        widths=PAPER_WIDTHS,
        train=TrainConfig(steps=20_000, batch_size=32, lr=1e-4, warmup_steps=500, ema_decay=0.9999, loss="l1",
                          amp="bf16", checkpoint_every=2000, log_every=50),
        val_n=16, val_every=1000, val_steps=100, eval_n=256, eval_steps=500, grid_steps=PAPER_STEPS,
        timing_batch=8, timing_repeats=10, game_n=48),
}


def get_profile(name: str, **overrides) -> SRProfile:
    """A profile by name; ``train_<field>=`` reaches into its TrainConfig, other keywords replace fields (None
    keeps the profile's value)."""
    return profile_by_name(PROFILES, name, **overrides)


def load_sr_data(profile: SRProfile, *, face_dir: str = "", split: str = "train", seed: int = 0):
    """The HR images of a split: ``face_dir`` (a folder of face photos) when given, else the profile's dataset."""
    from ..data import load_dataset
    name = f"folder:{face_dir}" if face_dir else profile.dataset
    return name, load_dataset(name, image_size=profile.hr_size, split=split, seed=seed)


def take(data, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` images (all of them when the split is smaller) of a tensor or dataset, chosen by a seeded
    permutation (the photo patches come in order)."""
    n = min(n, len(data))
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data[idx] if isinstance(data, torch.Tensor) else torch.stack([data[int(i)] for i in idx])


def val_psnr(hr: torch.Tensor, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
             dtype: torch.dtype = torch.float32, seed: int = 0, denoise_fractions=(0.25, 0.5, 0.75)):
    """``evaluate(model) -> dict`` for `fastdiff.train.train`, always on the same images and noise:

    - ``val PSNR``: mean PSNR of SR outputs sampled with ``steps`` ancestral steps (the paper's Fig. 3 curve);
    - ``denoise PSNR``: mean PSNR of the one-step x_0 prediction from x_t = q(x_t | x_0) at the timesteps
      ``fraction * T``. It tells how well the network has learnt each noise level, without the sampler
      compounding its errors, and is cheap (one forward per timestep).
    """
    from ..diffusion import q_sample
    from ..measure.metrics import psnr
    T = schedule.num_train_timesteps
    ts = [min(T - 1, round(f * T)) for f in denoise_fractions]
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(seed + 7))

    @torch.no_grad()
    def evaluate(model) -> dict:
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
            den.append(psnr(((xt - (1 - a) ** 0.5 * pred) / a ** 0.5).clamp(-1, 1).cpu(), hr).mean().item())
        return {"val PSNR": psnr(sr, hr).mean().item(), "denoise PSNR": sum(den) / len(den)}
    return evaluate


def checkpoint_name(variant: str) -> str:
    return f"01_{slug(variant)}.pt"


def train_variants(profile: SRProfile, train_hr, val_hr: torch.Tensor, schedule: Schedule, *, out_dir,
                   device: torch.device, vgg_weights: str, variants=tuple(VARIANTS), resume: bool = True,
                   dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, dict]:
    """Train each variant (L1 noise loss) from the same seed and data order, logging validation PSNR every
    ``profile.val_every`` steps; checkpoints go to ``out_dir/01_<variant>.pt`` and a re-run resumes or reuses
    them. ``vgg_weights`` comes from `resolve_vgg_weights`. Returns {variant: train() result}."""
    from ..data import SRPairs, downsample
    pairs = SRPairs(train_hr, profile.scale)
    val_lr = downsample(val_hr, profile.scale)
    evaluate = val_psnr(val_hr, val_lr, schedule, profile.val_steps, device=device, dtype=dtype, seed=seed)
    results = {}
    for name in variants:
        torch.manual_seed(profile.train.seed)
        model = build_variant(name, profile.widths, vgg_weights=vgg_weights, vgg_seed=seed)
        print(f"training {name}: {trainable_parameters(model) / 1e6:.2f}M trainable parameters · "
              f"{variant_label(model)}")
        results[name] = train(model, pairs, schedule, profile.train, checkpoint=Path(out_dir) / checkpoint_name(name),
                              resume=resume, device=device, evaluate=evaluate, evaluate_every=profile.val_every)
    return results


def forward_times(variants=("original", "half", "small", "small + attention", "small + VGG (add)"), *,
                  widths: Widths = PAPER_WIDTHS, scale: int = 4, batch_size: int = 1, device, dtype=torch.float32,
                  repeats: int = 5, progress: bool = True) -> list[dict]:
    """One denoising step (a forward pass) of each variant, with the LR upsampling and concatenation included and
    VGG precomputed as during sampling; plus one VGG-11 pass (what sampling pays once per image). Weights are
    untrained and VGG random: time does not depend on them. Timed side by side in one run
    (`fastdiff.measure.bench.interleaved`: one warm-up each, then ``repeats`` rounds of one call of every
    variant); each row gives the median and IQR over the rounds. Speedup is relative to ``original``."""
    s = widths.image_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, widths.channels, s, s, generator=gen).to(device)
    lr = torch.randn(batch_size, widths.channels, s // scale, s // scale, generator=gen).clamp(-1, 1).to(device)
    t = torch.full((batch_size,), 500, dtype=torch.long, device=device)
    calls, info = {}, {}
    with torch.no_grad(), autocast(device, dtype):
        for name in variants:
            model = build_variant(name, widths, vgg_weights="random", load_vgg=False).to(device).eval()
            cond = prepare_condition(model, x, {"lr": lr})
            calls[name] = lambda model=model, cond=cond: model(x, t, **cond)
            info[name] = (trainable_parameters(model), count_flops(calls[name]))
            vgg = getattr(model, "vgg", None)
            if vgg is not None and not any(k.startswith("VGG-11") for k in calls):
                key = f"VGG-11 features, {vgg.num_stages} stages (once per image)"
                calls[key] = lambda model=model: model.vgg_features(lr, x.shape[-2:])
                info[key] = (0, count_flops(calls[key]))
        times = interleaved(calls, device=device, rounds=repeats, warmup=1, progress=progress)
    rows = [{"variant": name, "trainable (M)": round(info[name][0] / 1e6, 2), "GFLOPs": round(info[name][1] / 1e9, 2),
             "median_ms": 1e3 * t["median_s"], "iqr_ms": 1e3 * t["iqr_s"], "repeats": t["repeats"]}
            for name, t in times.items()]
    base = next((r for r in rows if r["variant"] == "original"), None)
    for r in rows:
        r["speedup vs original"] = None if base is None or r["variant"].startswith("VGG") else \
            base["median_ms"] / r["median_ms"]
        r["params ratio"] = (None if base is None or not r["trainable (M)"]
                             else base["trainable (M)"] / r["trainable (M)"])
    return rows


def vgg_share(model: VGGFeatureFusion, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
              dtype: torch.dtype = torch.float32, repeats: int = 3) -> dict:
    """How much of one sampling call (``steps`` ancestral steps, VGG computed once inside it) the VGG-11 pass
    takes: both timed by the harness in the same run."""
    size = model.base.config.image_size
    model = model.to(device).eval()
    lr = lr.to(device)
    with torch.no_grad(), autocast(device, dtype):
        v = measure(lambda: model.vgg_features(lr, (size, size)), device=device, warmup=1, repeats=max(repeats, 5))
    calls = model.vgg.calls
    s = measure(lambda: super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, size=size),
                device=device, warmup=0, repeats=repeats)
    vgg_calls = (model.vgg.calls - calls) / s["repeats"]
    return {"steps": steps, "batch": len(lr), "vgg_ms": 1e3 * v["median_s"], "sampling_s": s["median_s"],
            "vgg_share_percent": 100 * v["median_s"] / s["median_s"], "vgg_calls_per_sampling": vgg_calls}


STUDY = "01_vgg_conditioned_sr"
PAPER_SOURCE = "VGG-SR paper (Klement et al.), Secs. 3.1 and 4.6"


def collect_results(run, *, dataset: str, weights: str, params_paper: list[dict], forward: list[dict],
                    trained: dict, metrics: list[dict], eval_n: int, eval_steps: int, timing_batch: int):
    """The notebook's numbers as `fastdiff.results` rows."""
    from ..results import Results
    res = Results(STUDY, device=run.env["device"], dtype=run.dtype_name, dataset=dataset, weights=weights,
                  profile=run.profile, seed=run.seed, environment=run.env)
    for r in params_paper:
        res.add("SR3 variants", r["variant"], "parameters", r["trainable (M)"], setting={"widths": "paper"},
                paper_value=r.get("paper (M)"), paper_source=PAPER_SOURCE if r.get("paper (M)") else "")
    for r in forward:
        common = dict(n=r["repeats"], batch=timing_batch, size="128x128, paper widths", weights="untrained (timing)")
        res.add("SR3 variants", r["variant"], "time per call", r["median_ms"], **common)
        if r["speedup vs original"] is not None:
            paper = PAPER_SPEEDUP_SMALL_VS_ORIGINAL if r["variant"] == "small" else None
            res.add("SR3 variants", r["variant"], "speed-up", r["speedup vs original"], **common, paper_value=paper,
                    paper_source=PAPER_SOURCE if paper else "", versus="original")
    for name, r in trained.items():
        last = r["evals"][-1]
        for metric in ("val PSNR", "denoise PSNR"):
            res.add("VGG features" if "VGG" in name else "SR3 variants", name, metric, last[metric],
                    steps=r["step"], training_step=last["step"])
    for r in metrics:
        for metric in ("PSNR", "SSIM", "LPIPS", "LR-PSNR"):
            if r.get(metric) is not None:
                method = "bicubic" if r["model"].startswith("bicubic") else \
                    ("VGG features" if "VGG" in r["model"] else "SR3 variants")
                res.add(method, r["model"], metric, r[metric], n=eval_n, steps=eval_steps)
    return res
