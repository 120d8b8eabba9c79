"""Adaptive layer skipping (Giladi, Meir, Kawar, Elad, "Accelerating Diffusion Models using Adaptive Neural
Network Architecture"): at noisy timesteps the k deepest U-Net levels are bypassed through the existing skip
connections, with k given by the schedule k(t) of eq. (1).

Notation: N = number of U-Net levels; skipping k levels runs encoder and decoder levels 0..N-k-1 and leaves out
levels N-k..N-1, the downsample of level N-k-1 and the middle block. The first active decoder level (N-k-1) then
misses the input that the deeper decoder level would have given it (C_{N-k} channels at its resolution); the
paper's three ways to fill it are ``zero``, ``duplicate`` (the encoder tensor of that level fed to both inputs)
and ``interpolate`` (extra paths: the encoder tensor is resized bicubically to the middle block's size, run through
the middle block, and resized back, with a 1x1 convolution on each side to match channels).

The wrapper owns the base U-Net and re-composes its public levels; the base `UNet` is not changed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import Schedule
from .train import TrainConfig, train
from .unet import UNet, UNetConfig

SKIP_TYPES = ("zero", "duplicate", "interpolate")
TRAINING_SCHEMES = ("plain", "uniform", "consistent")

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


def k_of_t(t: float, num_levels: int, c: float) -> int:
    """Eq. (1): k(t) = min(N - 1, floor(N - N (1 - t)^c)), t in [0, 1] (1 = pure noise); c = 0 gives k = 0."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be normalised to [0, 1], got {t}")
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    if c == 0:
        return 0
    return min(num_levels - 1, math.floor(num_levels - num_levels * (1.0 - t) ** c + 1e-9))


def k_table(num_train_timesteps: int, num_levels: int, c: float) -> list[int]:
    """k for every integer timestep 0..T-1, with t normalised as t / (T - 1)."""
    T = num_train_timesteps
    return [k_of_t(i / (T - 1), num_levels, c) for i in range(T)]


def k_intervals(num_train_timesteps: int, num_levels: int, c: float) -> dict[int, tuple[int, int]]:
    """{k: (first, last) timestep with that k}; k(t) is non-decreasing in t, so each k holds one interval
    (a k that no timestep maps to is absent)."""
    intervals: dict[int, tuple[int, int]] = {}
    for t, k in enumerate(k_table(num_train_timesteps, num_levels, c)):
        first = intervals.get(k, (t, t))[0]
        intervals[k] = (first, t)
    return intervals


@dataclass
class SkippingConfig:
    unet: UNetConfig
    skip_type: str = "zero"

    def __post_init__(self):
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**self.unet)
        if self.skip_type not in SKIP_TYPES:
            raise ValueError(f"unknown skip_type {self.skip_type!r}; choose one of {SKIP_TYPES}")

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "skip_type": self.skip_type}


def _match_channels(h: torch.Tensor, channels: int) -> torch.Tensor:
    """Duplicate skipping when the missing input is wider than the encoder tensor: repeat its channels."""
    if h.shape[1] == channels:
        return h
    return h.repeat(1, math.ceil(channels / h.shape[1]), 1, 1)[:, :channels]


class LayerSkippingUNet(nn.Module):
    """``model(x_t, t, k=0)``: the wrapped U-Net with its k deepest levels bypassed. k = 0 is the U-Net itself,
    bit for bit. ``interpolate`` adds two 1x1 convolutions per level (the paper's extra paths); the output
    convolution starts at zero, so before training it behaves like ``zero``."""

    def __init__(self, config: SkippingConfig | UNet, *, skip_type: str | None = None):
        super().__init__()
        if isinstance(config, UNet):
            unet, config = config, SkippingConfig(config.config, skip_type or "zero")
        else:
            unet = UNet(config.unet)
        if type(unet) is not UNet:
            raise TypeError(f"layer skipping wraps the unconditional UNet, not {type(unet).__name__}")
        self.config, self.unet, self.skip_type = config, unet, config.skip_type
        c = unet.config
        self.num_levels = c.num_levels
        self.to_middle = self.from_middle = None
        if self.skip_type == "interpolate":
            mid = c.level_channels(c.num_levels - 1)
            self.to_middle = nn.ModuleList(nn.Conv2d(c.level_channels(l), mid, 1) for l in range(c.num_levels - 1))
            self.from_middle = nn.ModuleList(nn.Conv2d(mid, c.level_channels(l + 1), 1)
                                             for l in range(c.num_levels - 1))
            for conv in self.from_middle:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    @classmethod
    def from_config(cls, config: dict) -> "LayerSkippingUNet":
        return cls(SkippingConfig(**config))

    def _fill(self, h: torch.Tensor, emb: torch.Tensor, level: int) -> torch.Tensor:
        """The missing input of decoder level ``level`` (C_{level+1} channels), from encoder tensor ``h``."""
        channels = self.unet.config.level_channels(level + 1)
        if self.skip_type == "zero":
            return h.new_zeros(h.shape[0], channels, *h.shape[-2:])
        if self.skip_type == "duplicate":
            return _match_channels(h, channels)
        mid_size = self.unet.config.image_size >> (self.num_levels - 1)
        scale = h.shape[-1] // (self.unet.config.image_size >> level)  # images larger than the config's
        m = F.interpolate(h, size=(mid_size * scale, mid_size * scale), mode="bicubic", align_corners=False)
        m = self.unet.middle(self.to_middle[level](m), emb)
        m = F.interpolate(m, size=h.shape[-2:], mode="bicubic", align_corners=False)
        return self.from_middle[level](m)

    def forward(self, x: torch.Tensor, t: torch.Tensor, k: int = 0) -> torch.Tensor:
        k = int(k)
        if not 0 <= k < self.num_levels:
            raise ValueError(f"k must be in 0..{self.num_levels - 1} (the U-Net has {self.num_levels} levels), got {k}")
        unet = self.unet
        if k == 0:
            return unet(x, t)
        unet.check_input(x)
        active = self.num_levels - k
        emb = unet.embed(t)
        h = unet.stem(x)
        skips = [h]
        for level in range(active):
            h = unet.encoder[level](h, emb, skips, downsample=level < active - 1)
        h = self._fill(h, emb, active - 1)
        for level in reversed(range(active)):
            h = unet.decoder[level](h, emb, skips)
        return unet.head(h)


class ScheduledSkipping(nn.Module):
    """A sampler-ready ``model(x_t, t)`` that skips k(t) levels (eq. 1) at each step; t is the original
    timestep index (0..T-1), as every sampler here passes it, and must be the same for the whole batch."""

    def __init__(self, model: LayerSkippingUNet, c: float, num_train_timesteps: int):
        super().__init__()
        self.model, self.c = model, c
        self.table = k_table(num_train_timesteps, model.num_levels, c)
        self.calls: dict[int, int] = {}  # k -> number of network calls, for the FLOP prediction

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ts = set(t.reshape(-1).tolist())  # the one host transfer of the step
        if len(ts) != 1:
            raise ValueError("scheduled skipping needs one timestep per batch (k(t) must be one k)")
        k = self.table[int(ts.pop())]
        self.calls[k] = self.calls.get(k, 0) + 1
        return self.model(x, t, k=k)


def timestep_sampler(scheme: str, schedule: Schedule, num_levels: int, *, c: float = 2.0):
    """The (timesteps, model kwargs) draw of each training batch, for `fastdiff.train.train(timesteps=...)`.

    - ``plain``: t uniform, k = 0 (the normally trained baseline);
    - ``uniform``: t uniform, one k uniform in 0..N-1 per batch (the paper's first scheme);
    - ``consistent``: k(t)-consistent batches (the second scheme): draw t_0 uniformly and take k = k(t_0), then
      draw every t of the batch uniformly inside k's interval. Drawing k through t_0 weights each k by the length
      of its interval, so t stays uniform over the whole training run, as in plain DDPM training.
    """
    if scheme not in TRAINING_SCHEMES:
        raise ValueError(f"unknown training scheme {scheme!r}; choose one of {TRAINING_SCHEMES}")
    if len(schedule) != schedule.num_train_timesteps:
        raise ValueError("train on the full schedule, not a respaced one")
    T = schedule.num_train_timesteps
    table = k_table(T, num_levels, c)
    intervals = k_intervals(T, num_levels, c)

    def draw(batch_size: int, generator: torch.Generator, device: torch.device):
        if scheme == "plain":
            return torch.randint(T, (batch_size,), device=device, generator=generator), {}
        if scheme == "uniform":
            i = torch.randint(T, (batch_size,), device=device, generator=generator)
            k = int(torch.randint(num_levels, (1,), device=device, generator=generator))
            return i, {"k": k}
        t0 = int(torch.randint(T, (1,), device=device, generator=generator))
        k = table[t0]
        first, last = intervals[k]
        return torch.randint(first, last + 1, (batch_size,), device=device, generator=generator), {"k": k}

    return draw


def flops_by_k(model: LayerSkippingUNet, *, batch_size: int = 1) -> dict[int, float]:
    """FLOPs of one network call for each k (`torch.utils.flop_counter`)."""
    from .bench import count_flops
    c = model.unet.config
    p = next(model.parameters())
    x = torch.zeros(batch_size, c.in_channels, c.image_size, c.image_size, device=p.device, dtype=p.dtype)
    t = torch.zeros(batch_size, dtype=torch.long, device=p.device)
    return {k: count_flops(lambda k=k: model(x, t, k=k)) for k in range(model.num_levels)}


def predicted_time_fraction(flops: dict[int, float], timesteps: list[int], num_train_timesteps: int,
                            c: float) -> float:
    """Sampling FLOPs at c relative to c = 0 over the timesteps a sampler visits: what the schedule predicts
    for the time if time followed FLOPs."""
    table = k_table(num_train_timesteps, len(flops), c)
    return sum(flops[table[t]] for t in timesteps) / (flops[0] * len(timesteps))



# ------------------------------------------------------------------------------------------ the study (notebook 02)

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


PROFILES = {
    # 2 CPU cores: the built-in digits at 16x16 (4 levels: 16, 8, 4, 2), a 0.4M-parameter U-Net, five short
    # trainings; FD (LeNet-MNIST) on samples enlarged to 28x28 and padded to 32x32 like the digits LeNet knows
    "quick": SkippingProfile(
        image_size=16, model="quick",
        model_overrides=dict(base_channels=16, channel_mult=(1, 2, 2, 2), attention_resolutions=(4,), norm_groups=8),
        train=TrainConfig(steps=800, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.995, grad_clip=1.0,
                          log_every=10),
        quality_steps=20, quality_n=200, table3_steps=(10, 20, 40), speed_steps=20, speed_batch=32),
    # one GPU, CIFAR-10 (needs a download or data/cifar-10-batches-py): a documented smaller DDPM U-Net
    # (base 64 instead of 128, 9M instead of 35.7M parameters), 20k steps per variant; FID/KID need Inception
    "full": SkippingProfile(
        dataset="cifar10", model="ddpm_cifar10", model_overrides=dict(base_channels=64),
        train=TrainConfig(steps=20_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999, grad_clip=1.0,
                          amp="bf16", checkpoint_every=2000, log_every=50),
        quality_steps=100, quality_n=5000, table3_steps=(20, 40, 100, 200), speed_steps=100, speed_batch=128),
}

# The models the study trains: (skip type, training scheme); the first is the normally trained baseline,
# which skips only at inference (the paper's Table 1, row "DDPM").
VARIANTS = {"baseline (plain training)": ("zero", "plain"), "zero": ("zero", "consistent"),
            "duplicate": ("duplicate", "consistent"), "interpolate": ("interpolate", "consistent"),
            "zero, uniform k": ("zero", "uniform")}


def get_profile(name: str, **overrides) -> SkippingProfile:
    """A profile by name; ``train_steps=`` reaches into its TrainConfig, other keywords replace fields (None
    keeps the profile's value)."""
    from .utils import profile_by_name
    return profile_by_name(PROFILES, name, **overrides)


def train_variants(profile: SkippingProfile, data, schedule: Schedule, *, out_dir, device: torch.device,
                   variants: dict[str, tuple[str, str]] = VARIANTS, resume: bool = True) -> dict[str, dict]:
    """Train one model per variant from the same initial U-Net weights and data order; checkpoints go to
    ``out_dir/02_<variant>.pt`` and a re-run resumes or reuses them. Returns {variant: train() result}."""
    from pathlib import Path
    from .unet import build_unet
    from .utils import slug
    results = {}
    for name, (skip_type, scheme) in variants.items():
        torch.manual_seed(profile.train.seed)
        unet = build_unet(profile.model, image_size=profile.image_size, **profile.model_overrides)
        model = LayerSkippingUNet(unet, skip_type=skip_type)
        draw = timestep_sampler(scheme, schedule, model.num_levels, c=profile.train_c)
        path = Path(out_dir) / f"02_{slug(name)}.pt"
        print(f"training {name}: skip type {skip_type}, scheme {scheme}")
        results[name] = train(model, data, schedule, profile.train, checkpoint=path, resume=resume, device=device,
                              timesteps=draw)
    return results


def _sampler_run(model, schedule: Schedule, steps: int, eta: float, x_T: torch.Tensor, dtype: torch.dtype, seed: int):
    from .basics import sample_fn
    return sample_fn(model, schedule, "DDIM", steps, eta, x_T, x_T.device, dtype, seed)


def sample_many(model, schedule: Schedule, *, c: float, n: int, steps: int, eta: float, image_shape, device,
                dtype: torch.dtype = torch.float32, batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` samples with k(t) skipping at ``c`` (DDIM on ``steps`` respaced steps; eta = 1 is ancestral)."""
    scheduled = ScheduledSkipping(model.to(device).eval(), c, schedule.num_train_timesteps)
    x_T = torch.randn((n, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    return torch.cat([_sampler_run(scheduled, schedule, steps, eta, x_T[i:i + batch_size], dtype, seed + 1 + i)().float().cpu()
                      for i in range(0, n, batch_size)])


def as_lenet_digits(images: torch.Tensor) -> torch.Tensor:
    """Digits of any size as LeNet-MNIST was trained on them: 28x28 (bilinear) padded with black to 32x32."""
    if images.shape[-1] == 32:
        return images
    return F.pad(F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).clamp(-1, 1),
                 (2, 2, 2, 2), value=-1.0)


def make_scorer(reference: torch.Tensor, *, dataset: str, device):
    """``score(images) -> dict`` against ``reference``: FD (LeNet-MNIST) on the digits (reference statistics
    computed once), FID and KID (Inception, torch-fidelity) otherwise, when the weights are on disk (None and a
    note when not)."""
    from .metrics import LeNetFD, fidelity
    from .weights import is_available, missing_message
    if dataset.startswith("mnist"):
        fd = LeNetFD(as_lenet_digits(reference), device=device)
        return lambda images: {"FD (LeNet-MNIST)": fd(as_lenet_digits(images))}
    if not is_available("inception-v3-compat"):
        print("FID/KID skipped: " + missing_message("inception-v3-compat"))
        return lambda images: {"FID": None, "KID": None}

    def score(images):
        out = fidelity(images, reference, kid=True, device=device)
        return {"FID": out["FID"], "KID": out["KID"]}
    return score


def quality_table(models: dict, schedule: Schedule, score, image_shape, profile: SkippingProfile, *, device,
                  dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True) -> list[dict]:
    """The Table 1 analogue: quality (``score``, from `make_scorer`) of every trained variant at every c, all
    from the same x_T."""
    from .utils import progress_bar
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
    weights) at each c, measured side by side in one run by the harness (median of ``repeats``, deterministic
    DDIM), beside the time fraction that the FLOPs of k(t) predict."""
    from .bench import measure
    from .diffusion import respace, space_timesteps
    from .utils import progress_bar
    sched = respace(schedule, space_timesteps(schedule.num_train_timesteps, profile.speed_steps))
    x_T = torch.randn((profile.speed_batch, *image_shape), generator=torch.Generator().manual_seed(seed)).to(device)
    rows = []
    cells = [(name, c) for name in models for c in profile.cs]
    warm = set()
    flops = {name: flops_by_k(model.to(device).eval()) for name, model in models.items()}
    for name, c in progress_bar(cells, desc="speed table", disable=not progress):
        model = models[name].to(device).eval()
        run = _sampler_run(ScheduledSkipping(model, c, schedule.num_train_timesteps), schedule, profile.speed_steps,
                           0.0, x_T, dtype, seed)
        t = measure(run, device=device, warmup=int(name not in warm), repeats=repeats)  # one warm-up per model
        warm.add(name)
        rows.append({"skip type": model.skip_type, "variant": name, "c": c, "seconds": t["median_s"],
                     "seconds_iqr": t["iqr_s"], "predicted_time_fraction": predicted_time_fraction(
                         flops[name], sched.timesteps.tolist(), schedule.num_train_timesteps, c)})
    for r in rows:
        base = next(b for b in rows if b["variant"] == r["variant"] and b["c"] == 0)
        r["time saved %"] = 100 * (1 - r["seconds"] / base["seconds"])
        r["FLOPs saved %"] = 100 * (1 - r["predicted_time_fraction"])
    return rows


def table3(models: dict[str, tuple], schedule: Schedule, score, image_shape, profile: SkippingProfile, *,
           device, dtype: torch.dtype = torch.float32, seed: int = 0, progress: bool = True) -> list[dict]:
    """The Table 3 analogue: quality by sampler steps and eta, for {label: (model, c)}."""
    from .utils import progress_bar
    cells = [(label, eta, steps) for label in models for eta in profile.table3_etas for steps in profile.table3_steps]
    rows = []
    for label, eta, steps in progress_bar(cells, desc="steps x eta", disable=not progress):
        model, c = models[label]
        images = sample_many(model, schedule, c=c, n=profile.quality_n, steps=steps, eta=eta,
                             image_shape=image_shape, device=device, dtype=dtype, seed=seed)
        rows.append({"model": label, "eta": eta, "steps": steps, **score(images)})
    return rows
