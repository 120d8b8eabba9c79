"""Adaptive layer skipping (Giladi, Meir, Kawar, Elad, "Accelerating Diffusion Models using Adaptive Neural
Network Architecture"): at noisy timesteps the k deepest U-Net levels are bypassed through the existing skip
connections, with k given by the schedule k(t) of eq. (1).

Notation: N = number of U-Net levels; skipping k levels runs encoder and decoder levels 0..N-k-1 and leaves out
levels N-k..N-1, the downsample of level N-k-1 and the middle block. The first active decoder level (N-k-1) then
misses the input that the deeper decoder level would have given it (C_{N-k} channels at its resolution); the
paper's three ways to fill it are ``zero``, ``duplicate`` (the encoder tensor of that level fed to both inputs)
and ``interpolate`` (extra paths: the encoder tensor is resized bicubically to the middle block's size, run through
the middle block, and resized back, with a 1x1 convolution on each side to match channels).

`LayerSkippingUNet` is a wrapper over the U-Net's level walk: for k > 0 it stops the walk at level N-k-1 with its
fill as the walk's bottom (`LevelHooks.with_bottom`) and hands everything else (conditioning, other methods' hooks)
to the model it wraps. It owns the deep levels: a stack with another method that replaces them (a second skipping
wrapper, deep-feature caching) is refused when it is built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion import Schedule
from ..registry import build_model, register_architecture, renamed
from ..unet import NO_HOOKS, LevelHooks, UNetWrapper

SKIP_TYPES = ("zero", "duplicate", "interpolate")
TRAINING_SCHEMES = ("plain", "uniform", "consistent")


def k_of_t(t: float, num_levels: int, c: float) -> int:
    """Eq. (1): k(t) = min(N - 1, floor(N - N (1 - t)^c)), t in [0, 1] (1 = pure noise); c = 0 gives k = 0."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be normalised to [0, 1], got {t}")
    if not isinstance(c, (int, float)) or isinstance(c, bool) or not math.isfinite(c) or c < 0:
        raise ValueError(f"c must be a finite number >= 0, got {c!r}")
    if c == 0:
        return 0
    return min(num_levels - 1, math.floor(num_levels - num_levels * (1.0 - t) ** c + 1e-9))


def k_table(num_train_timesteps: int, num_levels: int, c: float) -> list[int]:
    """k for every integer timestep 0..T-1, with t normalised as t / (T - 1)."""
    T = num_train_timesteps
    if T < 2:
        raise ValueError(f"k(t) needs at least 2 training timesteps, got {T}")
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
    inner: dict                 # the wrapped model's spec (`fastdiff.registry.model_spec`)
    skip_type: str = "zero"

    def __post_init__(self):
        if self.skip_type not in SKIP_TYPES:
            raise ValueError(f"unknown skip_type {self.skip_type!r}; choose one of {SKIP_TYPES}")


def _match_channels(h: torch.Tensor, channels: int) -> torch.Tensor:
    """Duplicate skipping when the missing input is wider than the encoder tensor: repeat its channels."""
    if h.shape[1] == channels:
        return h
    return h.repeat(1, math.ceil(channels / h.shape[1]), 1, 1)[:, :channels]


@register_architecture("layer-skipping", legacy_class="LayerSkippingUNet")
class LayerSkippingUNet(UNetWrapper):
    """``model(x_t, t, k=0, **cond)``: the wrapped model with its k deepest levels bypassed. k = 0 is the wrapped
    model itself, bit for bit. ``interpolate`` adds two 1x1 convolutions per level (the paper's extra paths); the
    output convolution starts at zero, so before training it behaves like ``zero``."""

    owns = ("the deep levels (what the walk runs below a level)",)

    def __init__(self, inner: nn.Module, *, skip_type: str = "zero"):
        super().__init__(inner)
        self.config = SkippingConfig(self.inner_spec(), skip_type)
        self.skip_type = skip_type
        c = self.base.config
        self.to_middle = self.from_middle = None
        if skip_type == "interpolate":
            mid = c.level_channels(c.num_levels - 1)
            self.to_middle = nn.ModuleList(nn.Conv2d(c.level_channels(l), mid, 1) for l in range(c.num_levels - 1))
            self.from_middle = nn.ModuleList(nn.Conv2d(mid, c.level_channels(l + 1), 1)
                                             for l in range(c.num_levels - 1))
            for conv in self.from_middle:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    @classmethod
    def from_config(cls, config: dict) -> "LayerSkippingUNet":
        cfg = SkippingConfig(**config)
        return cls(build_model(cfg.inner), skip_type=cfg.skip_type)

    @staticmethod
    def from_legacy(config: dict, state_dict: dict) -> tuple[dict, dict]:
        """Checkpoints of ``fastdiff.skipping.LayerSkippingUNet`` (before the registry): {"unet": ..., "skip_type"}
        and the U-Net's weights under ``unet.``."""
        inner = {"arch": "unet", "config": config["unet"]}
        return ({"arch": "layer-skipping", "config": {"inner": inner, "skip_type": config["skip_type"]}},
                renamed(state_dict, "unet.", "inner."))

    def _fill(self, level: int, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The missing input of decoder level ``level`` (C_{level+1} channels), from encoder tensor ``h``."""
        base = self.base
        channels = base.config.level_channels(level + 1)
        if self.skip_type == "zero":
            return h.new_zeros(h.shape[0], channels, *h.shape[-2:])
        if self.skip_type == "duplicate":
            return _match_channels(h, channels)
        mid_size = base.config.image_size >> (self.num_levels - 1)
        scale = h.shape[-1] // (base.config.image_size >> level)  # images larger than the config's
        m = F.interpolate(h, size=(mid_size * scale, mid_size * scale), mode="bicubic", align_corners=False)
        m = base.middle(self.to_middle[level](m), emb)
        m = F.interpolate(m, size=h.shape[-2:], mode="bicubic", align_corners=False)
        return self.from_middle[level](m)

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, *, k: int = 0,
             **cond) -> torch.Tensor:
        if isinstance(k, bool) or not isinstance(k, int) and not (isinstance(k, torch.Tensor) and k.numel() == 1):
            raise ValueError(f"k must be an integer number of levels, got {k!r}")
        k = int(k)
        if not 0 <= k < self.num_levels:
            raise ValueError(f"k must be in 0..{self.num_levels - 1} (the U-Net has {self.num_levels} levels), got {k}")
        if k:
            hooks = (hooks or NO_HOOKS).with_bottom(self.num_levels - k, self._fill)
        return self.inner.walk(x, t, hooks, **cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, k: int = 0, **cond) -> torch.Tensor:
        return self.walk(x, t, None, k=k, **cond)


class ScheduledSkipping(UNetWrapper):
    """A sampler-ready ``model(x_t, t, **cond)`` that skips k(t) levels (eq. 1) at each step; t is the original
    timestep index (0..T-1), as every sampler here passes it, and must be the same for the whole batch.
    Conditioning prepared once per sampling call (`prepare_condition`) is handed through to the models below."""

    def __init__(self, model: LayerSkippingUNet, c: float, num_train_timesteps: int):
        if not isinstance(model, LayerSkippingUNet):
            raise TypeError(f"scheduled skipping drives a LayerSkippingUNet, not {type(model).__name__}")
        super().__init__(model)
        self.c = c
        self.table = k_table(num_train_timesteps, model.num_levels, c)
        self.calls: dict[int, int] = {}  # k -> number of network calls, for the FLOP prediction

    @property
    def model(self) -> LayerSkippingUNet:
        return self.inner

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, **cond) -> torch.Tensor:
        ts = set(t.reshape(-1).tolist())  # the one host transfer of the step
        if len(ts) != 1:
            raise ValueError("scheduled skipping needs one timestep per batch (k(t) must be one k)")
        step = int(ts.pop())
        if not 0 <= step < len(self.table):
            raise ValueError(f"timestep {step} is outside the schedule's 0..{len(self.table) - 1}")
        k = self.table[step]
        self.calls[k] = self.calls.get(k, 0) + 1
        return self.inner.walk(x, t, hooks, k=k, **cond)


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


def predicted_time_fraction(cost_by_k: dict[int, float], timesteps: list[int], num_train_timesteps: int,
                            c: float) -> float:
    """Sampling cost at c relative to c = 0 over the timesteps a sampler visits, from the cost (e.g. FLOPs) of
    one network call at each k: what the schedule predicts for the time if time followed that cost."""
    table = k_table(num_train_timesteps, len(cost_by_k), c)
    return sum(cost_by_k[table[t]] for t in timesteps) / (cost_by_k[0] * len(timesteps))
