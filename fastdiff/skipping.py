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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import Schedule
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
        t0 = int(t.reshape(-1)[0])
        if t.numel() > 1 and not bool((t == t0).all()):
            raise ValueError("scheduled skipping needs one timestep per batch (k(t) must be one k)")
        k = self.table[t0]
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

