"""Encoder propagation (Li et al. 2023, "Faster Diffusion: Rethinking the Role of UNet Encoder in Diffusion
Models", Sec. 3.2): the encoder's features change little between adjacent sampling steps, the decoder's change a
lot, so the full U-Net runs only at *key* calls and the calls in between skip the encoder and run the decoder alone
on the encoder features of the last key call, with their own timestep embedding.

Notation: the paper's encoder E is the down path *and* the middle block, its decoder D the up path. Here E is the
stem, the encoder levels and the middle block of the walk; its features are the skip tensors {s} (stem output,
every encoder block output, every downsample output) and m, the middle block's output. A non-key call at timestep
t returns head(D({s}, m, emb(t))): the walk's decoder levels, deepest first, then the head. It does not read x_t
at all (the paper's noise-prediction at a non-key step depends on t only; its "prior noise injection", which
adds z_T back to the latent, acts on the sampler and is not part of this wrapper).

It is a wrapper over the level walk: a key call is the wrapped model's walk with the middle block as its bottom at
full depth (`LevelHooks.with_bottom`, where it records m and the complete skip list), so the inner wrappers'
encoder hooks (VGG features) go into the recorded skips; a non-key call runs the base U-Net's decoder levels and
head on them (with the decoder-input hooks it is handed). Which calls are key: every ``interval``-th call of a
sampling run (uniform), or the call indices ``key_calls`` (the paper's non-uniform choice for Stable Diffusion).
A run starts at `prepare_condition` (every sampler calls it once per run) or `reset`; its first call is a key call,
and a call whose x_t or t does not fit the recorded features (another batch, size, dtype or device) runs in full.
``interval=1`` is the wrapped model (every call full, the same output bit for bit; tested).

It owns the deep levels (it replaces the middle block and everything above the decoder) and the steps the walk runs
(a cache across steps): layer skipping, DeepCache and FirstBlockCache are refused over or under it.
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..unet import NO_HOOKS, LevelHooks, UNetWrapper


class EncoderPropagation(UNetWrapper):
    """A sampler-ready ``model(x_t, t, **cond)`` that runs the full U-Net at key calls and the decoder alone, on the
    last key call's encoder features, at the others. Key calls: every ``interval``-th call of a sampling run, or
    the 0-based call indices ``key_calls`` (call 0 is always key). ``calls`` counts full and partial (decoder-only)
    calls over all runs, ``run_calls`` those of the current run."""

    owns = ("the deep levels (what the walk runs below a level)",
            "the steps the walk runs (a cache across sampling steps)")

    def __init__(self, inner, *, interval: int = 1, key_calls: Iterable[int] | None = None):
        super().__init__(inner)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValueError(f"interval must be a positive integer (1: every call full), got {interval!r}")
        if key_calls is not None:
            if interval != 1:
                raise ValueError("give either interval or key_calls, not both")
            if isinstance(key_calls, (str, bytes)) or not hasattr(key_calls, "__iter__"):
                raise TypeError(f"key_calls must be an iterable of call indices, got {type(key_calls).__name__}")
            key_calls = tuple(key_calls)
            if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in key_calls):
                raise ValueError(f"key_calls must hold call indices >= 0, got {key_calls!r}")
            key_calls = frozenset(key_calls) | {0}
        self.interval, self.key_calls = interval, key_calls
        self.calls = {"full": 0, "partial": 0}
        self.reset()

    def reset(self) -> None:
        """Forget the encoder features: the next call is a full one."""
        self._skips: list[torch.Tensor] | None = None   # {s} of the last key call, shallowest first
        self._middle: torch.Tensor | None = None        # m of the last key call
        self._key_x: tuple | None = None                # (shape, dtype, device) of that call's x_t
        self._index = 0                                 # calls so far in this run
        self.run_calls = {"full": 0, "partial": 0}

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """The start of a sampling run (samplers call this once per run): no features; then the models below."""
        self.reset()
        return super().prepare_condition(x, cond)

    def is_key(self, index: int) -> bool:
        """Whether call ``index`` (0-based, in the run) runs the full U-Net."""
        return index % self.interval == 0 if self.key_calls is None else index in self.key_calls

    def _fits(self, x: torch.Tensor, t: torch.Tensor) -> bool:
        return self._middle is not None and isinstance(t, torch.Tensor) and t.shape == (x.shape[0],) and \
            self._key_x == (x.shape, x.dtype, x.device)

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, **cond) -> torch.Tensor:
        hooks = hooks or NO_HOOKS
        if hooks.encoder_block or hooks.bottom is not None:
            raise ValueError("EncoderPropagation goes outermost: a non-key call runs no encoder, so the encoder "
                             "hooks of a wrapper over it would not run")
        index, self._index = self._index, self._index + 1
        if not self.is_key(index) and self._fits(x, t):
            self.calls["partial"] += 1
            self.run_calls["partial"] += 1
            return self._decode(t, hooks)
        self.calls["full"] += 1
        self.run_calls["full"] += 1
        return self._full(x, t, hooks, **cond)

    def _full(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks, **cond) -> torch.Tensor:
        """The wrapped walk, with the middle block as the bottom at full depth: it records {s} and m."""
        base, seen = self.base, []
        # the walk hands encoder level 0 its skip list: keep a reference, complete when the middle block runs
        handle = base.encoder[0].register_forward_pre_hook(lambda module, args: seen.append(args[2]))

        def middle(level: int, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            m = base.middle(h, emb)
            self._skips, self._middle = [s.detach() for s in seen[-1]], m.detach()
            return m
        self._skips = self._middle = None
        try:
            out = self.inner.walk(x, t, hooks.with_bottom(self.num_levels, middle), **cond)
        finally:
            handle.remove()
        self._key_x = (x.shape, x.dtype, x.device)
        return out

    def _decode(self, t: torch.Tensor, hooks: LevelHooks) -> torch.Tensor:
        """head(D({s}, m, emb(t))): the walk's decoder half on the recorded encoder features."""
        base = self.base
        emb, h, skips = base.embed(t), self._middle, list(self._skips)
        for level in reversed(range(self.num_levels)):
            for hook in hooks.decoder_input:
                h = hook(level, h, emb)
            h = base.decoder[level](h, emb, skips)
        return base.head(h)

    def nfe_share(self) -> float:
        """The share of full calls so far (1 without propagation)."""
        n = self.calls["full"] + self.calls["partial"]
        return self.calls["full"] / n if n else 1.0
