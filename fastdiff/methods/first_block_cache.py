"""Adaptive first-block caching (FirstBlockCache of ParaAttention, after TeaCache: Liu et al. 2024, "Timestep
Embedding Tells: It's Time to Cache for Video Diffusion Model"): the output of the network's first block changes
with the input and the timestep, and where it changed little since the last full call, so does the rest of the
network. Each call runs the first block; if the relative L1 change

    delta = mean |e0 - e0_full| / mean |e0_full|

of its output e0 against e0_full, the first-block output of the last full call, is below ``threshold``, the call is
cached, otherwise full (it runs the whole walk and refreshes the cache).

Notation: the first block is the stem convolution and the first block of encoder level 0 (with the timestep
embedding), as the base U-Net's level walk hands it to its first ``encoder_block`` hook; e0 is its output and d0 the
output of decoder level 0 (the input of the head: GroupNorm, SiLU, 3x3 conv). Both have C_0 channels at full
resolution. What is cached and reused is ParaAttention's residual of the remaining blocks, r = d0 - e0 of the last
full call (the skip connections make the rest of the U-Net no chain of residual blocks, but r is still what the
network added to its first block's output); a cached call returns head(e0 + r), its own first block and head on the
reused residual. (ParaAttention measures the first block's residual, TeaCache an accumulated change of the
modulated input; we measure the first block's output, as the study specifies.)

It is a wrapper over the level walk: the first block is the base U-Net's walk stopped by its first
``encoder_block`` hook (a probe that runs through no other wrapper, so a cached call leaves the wrappers below
untouched: their counters and caches see full calls only), a full call is the wrapped model's walk with the head's
input recorded. ``threshold=0`` is the wrapped model (every call full, the same output bit for bit; tested).
A sampling run starts at `prepare_condition` (every sampler calls it) or `reset`: the cache is dropped there; a
cache of another shape, dtype or device is never reused (the call is full). It goes outermost: a cached call runs
none of the walk past the first block, so the hooks of a wrapper over it (DeepCache's record) would not run.
"""
from __future__ import annotations

import inspect

import torch

from ..unet import NO_HOOKS, LevelHooks, UNetWrapper


class _FirstBlock(Exception):
    """Stops the probe walk after the first block, carrying its output."""

    def __init__(self, h: torch.Tensor):
        super().__init__()
        self.h = h


def _stop_at_first_block(level: int, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    raise _FirstBlock(h)


def relative_l1(a: torch.Tensor, b: torch.Tensor) -> float:
    """mean |a - b| / mean |b| (inf where b is all zeros)."""
    num, den = (a - b).abs().mean().item(), b.abs().mean().item()
    return num / den if den > 0 else float("inf")


class FirstBlockCache(UNetWrapper):
    """A sampler-ready ``model(x_t, t, **cond)`` that reuses the rest-of-network residual while the first block's
    output changes by less than ``threshold`` (relative L1) since the last full call. A run starts afresh at
    `prepare_condition` (every sampler calls it once per run) or `reset`; ``calls`` counts full and cached calls
    over all runs, ``run_calls`` those of the current run; ``deltas`` holds the current run's relative changes
    (None for a call with nothing to compare with)."""

    owns = ("the steps the walk runs (a cache across sampling steps)",)

    def __init__(self, inner, *, threshold: float):
        super().__init__(inner)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"threshold must be a number (0: no caching), got {type(threshold).__name__}")
        if not threshold >= 0:
            raise ValueError(f"threshold must be a number >= 0 (0: no caching, inf: every call after the first "
                             f"cached), got {threshold!r}")
        self.threshold = float(threshold)
        params = inspect.signature(self.base.walk).parameters
        self._base_keys = None if any(p.kind is p.VAR_KEYWORD for p in params.values()) else set(params)
        self.calls = {"full": 0, "cached": 0}
        self.reset()

    def reset(self) -> None:
        """Forget the cache: the next call is a full one."""
        self._first: torch.Tensor | None = None      # e0 of the last full call
        self._residual: torch.Tensor | None = None   # r = d0 - e0 of the last full call
        self.run_calls = {"full": 0, "cached": 0}
        self.deltas: list[float | None] = []

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """The start of a sampling run (samplers call this once per run): a fresh cache; then the models below."""
        self.reset()
        return super().prepare_condition(x, cond)

    def first_block(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        """e0: the base U-Net's walk up to its first encoder-block hook (stem, first block of level 0)."""
        base_cond = cond if self._base_keys is None else {k: v for k, v in cond.items() if k in self._base_keys}
        try:
            self.base.walk(x, t, NO_HOOKS.with_encoder_block(_stop_at_first_block), **base_cond)
        except _FirstBlock as stop:
            return stop.h
        raise RuntimeError("the U-Net's walk ran no encoder block")  # pragma: no cover - every level has blocks

    def _fits(self, e0: torch.Tensor) -> bool:
        cached = self._first
        return cached is not None and cached.shape == e0.shape and cached.dtype == e0.dtype and \
            cached.device == e0.device

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, **cond) -> torch.Tensor:
        if hooks is not None and hooks != NO_HOOKS:
            raise ValueError("FirstBlockCache goes outermost: a cached call runs none of the walk past the first "
                             "block, so the hooks of a wrapper over it (DeepCache's record of the deep features) "
                             "would not run; wrap the other way round, FirstBlockCache(DeepCache(...))")
        e0 = self.first_block(x, t, **cond)
        delta = relative_l1(e0, self._first) if self._fits(e0) else None
        self.deltas.append(delta)
        head = self.base.head
        if delta is not None and delta < self.threshold:
            self.calls["cached"] += 1
            self.run_calls["cached"] += 1
            return head(e0 + self._residual)
        seen = []
        handle = head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            out = self.inner.walk(x, t, hooks, **cond)
        finally:
            handle.remove()
        self._first, self._residual = e0.detach(), (seen[-1] - e0).detach()
        self.calls["full"] += 1
        self.run_calls["full"] += 1
        return out

    def nfe_share(self) -> float:
        """The share of full calls so far (1 without caching)."""
        n = self.calls["full"] + self.calls["cached"]
        return self.calls["full"] / n if n else 1.0
