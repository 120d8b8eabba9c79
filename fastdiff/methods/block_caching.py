"""Block caching (Wimbauer et al. 2024, "Cache Me if You Can: Accelerating Diffusion Models through Block Caching",
CVPR 2024): the outputs of a U-Net's blocks change smoothly over the denoising steps, each block by its own amount,
and often very little from one step to the next. So each block is recomputed only at the calls of a *cache
schedule*, and at the others the walk takes its output from the block's last computation.

Notation: a *block* is one block the level walk runs as a unit, named by its module path in the base U-Net
(`block_names`): each block of an encoder level (``encoder.{l}.blocks.{j}``: a ResNet block, with its attention
where the level has one), the middle block (``middle``: block, attention, block) and each block of a decoder level
(``decoder.{l}.blocks.{j}``). The stem, the down- and upsamplings and the head always run (they are cheap).
o_i(c) is the output of block i at call c (0-based) of a sampling run; the paper's relative change is

    L1rel(i, c) = ||o_i(c) - o_i(c-1)||_1 / ||o_i(c)||_1,

per image, averaged over the batch. `calibrate` measures it for every block on one sampling run that computes
every block at every call. `cache_schedule` sets the schedule from it: block i computes at call 0, and
at call c when its change accumulated since its last computation, sum_{s=last+1}^{c} L1rel(i, s), reaches the
threshold delta (``>=``, so delta = 0 computes every block at every call); at the other calls its cached output is
reused. The paper's learned per-block scale-shift adjustment of the cached outputs is left out: this is
the training-free part of the method.

It is a wrapper over the level walk: for the length of one call it stands in for the forward of every block module
of the base U-Net (restored when the call returns), so the wrapped model's walk runs as ever, with its hooks (VGG
features are added to a cached encoder block's output as to a computed one). (While a call runs, the base U-Net's
blocks are the cache's: a bare call of the same U-Net from another thread would go through it.) The cache holds
each block's raw output (detached: it holds no graph) with its input's shape, dtype and device; a cache whose input
does not match is never reused (the block computes). A sampling run starts at `prepare_condition` (every sampler
calls it once per run) or `reset`: the caches are dropped and the call index starts at 0. A schedule computing
every block at every call (``schedule=None``, or threshold 0) is the wrapped model, the same output bit for bit
(tested).

It owns the deep levels (it decides whether the middle block and the blocks of every level run) and the steps the
walk runs (a cache across steps): layer skipping, DeepCache, FirstBlockCache and EncoderPropagation are refused over
or under it; it stacks over a VGG feature fusion.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from ..unet import LevelHooks, UNetWrapper

# {block name: the 0-based call indices of a sampling run at which the block computes}
Schedule = Mapping[str, Iterable[int]]


def blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The blocks of ``model``'s base U-Net in the order the walk runs them: {module path: module}."""
    base, found = model.base, {}
    for level, encoder in enumerate(base.encoder):
        for j, block in enumerate(encoder.blocks):
            found[f"encoder.{level}.blocks.{j}"] = block
    found["middle"] = base.middle
    for level in reversed(range(len(base.decoder))):
        for j, block in enumerate(base.decoder[level].blocks):
            found[f"decoder.{level}.blocks.{j}"] = block
    return found


def block_names(model: nn.Module) -> list[str]:
    """The names of the blocks a cache schedule may name, in walk order."""
    return list(blocks(model))


def relative_l1(new: torch.Tensor, old: torch.Tensor) -> float:
    """L1rel = ||new - old||_1 / ||new||_1 per image, averaged over the batch (inf for an all-zero output)."""
    new, old = new.float().flatten(1), old.float().flatten(1)
    num, den = (new - old).abs().sum(1), new.abs().sum(1)
    return (num / den).mean().item() if bool((den > 0).all()) else float("inf")


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
        raise ValueError(f"threshold must be a number >= 0 (0: every block at every call, inf: every block at the "
                         f"first call only), got {threshold!r}")
    return float(threshold)


def calibrate(model: nn.Module, run: Callable[[nn.Module], object]) -> dict[str, list[float | None]]:
    """L1rel(i, c) of every block i at every call c of one sampling run: ``run(m)`` samples once with ``m`` (``model``
    in a block cache computing every block at every call), e.g. ``lambda m: sampler_call(m, schedule, DDIM, 10,
    x_T)()``. Returns {block name: [None, L1rel(i, 1), ..., L1rel(i, n-1)]} over the run's n calls."""
    probe = BlockCaching(model)
    probe._recording = True
    probe.reset()
    run(probe)
    if probe.runs > 1:
        raise ValueError(f"calibrate's run must make one sampling run, it made {probe.runs} (prepare_condition was "
                         f"called {probe.runs} times): calibrate on one batch of images")
    if probe.index == 0:
        raise ValueError("calibrate's run made no call of the model: it must sample once with the model it is given")
    return probe.changes


def cache_schedule(changes: Mapping[str, list], threshold: float) -> dict[str, frozenset[int]]:
    """The cache schedule of the changes `calibrate` measured: block i computes at call 0 and wherever its change
    accumulated since its last computation reaches ``threshold``."""
    threshold = _check_threshold(threshold)
    if not isinstance(changes, Mapping) or not changes:
        raise ValueError(f"changes must be a non-empty dict {{block name: [None, L1rel(1), ...]}} (what calibrate "
                         f"returns), got {type(changes).__name__}")
    lengths = {len(series) if isinstance(series, (list, tuple)) else -1 for series in changes.values()}
    if len(lengths) != 1 or min(lengths) < 1:
        raise ValueError("changes must hold one list per block, all of the same length (the run's calls) >= 1")
    schedule = {}
    for name, series in changes.items():
        if any(c is not None and (isinstance(c, bool) or not isinstance(c, (int, float)) or not c >= 0)
               for c in series):
            raise ValueError(f"the changes of block {name!r} must be numbers >= 0 (None: nothing to compare with, "
                             f"the block computes); got {list(series)!r}")
        computed, accumulated = {0}, 0.0
        for call, change in enumerate(series[1:], start=1):
            accumulated = math.inf if change is None else accumulated + change
            if accumulated >= threshold:
                computed.add(call)
                accumulated = 0.0
        schedule[name] = frozenset(computed)
    return schedule


class BlockCaching(UNetWrapper):
    """A sampler-ready ``model(x_t, t, **cond)`` whose blocks compute only at the calls of their cache schedule and
    reuse their last output at the others. ``schedule``: {block name (`block_names`): call indices that compute};
    a block it leaves out computes at every call, call 0 always computes. ``num_calls``: the calls a run may make
    (a calibrated schedule covers its calibration run; a longer run is refused), None for no limit. ``calls``
    counts full and cached *block* calls over all runs, ``run_calls`` those of the current run, ``computed`` the
    call indices at which each block computed in the current run."""

    owns = ("the deep levels (what the walk runs below a level)",
            "the steps the walk runs (a cache across sampling steps)")

    def __init__(self, inner, *, schedule: Schedule | None = None, num_calls: int | None = None):
        super().__init__(inner)
        self.names = block_names(self)
        if num_calls is not None and (isinstance(num_calls, bool) or not isinstance(num_calls, int) or num_calls < 1):
            raise ValueError(f"num_calls must be a positive integer (the calls of a run) or None, got {num_calls!r}")
        self.schedule, self.num_calls = self._checked(schedule or {}, num_calls), num_calls
        self.changes: dict[str, list] | None = None      # L1rel of every block, when calibrating or calibrated
        self._recording = False                           # calibrating: every computed block's L1rel is recorded
        self.calls = {"full": 0, "cached": 0}
        self.runs = 0
        self.reset()

    def _checked(self, schedule, num_calls: int | None) -> dict[str, frozenset[int]]:
        if not isinstance(schedule, Mapping):
            raise ValueError(f"schedule must be a dict {{block name: call indices that compute}}, got "
                             f"{type(schedule).__name__}")
        checked = {}
        for name, indices in schedule.items():
            if name not in self.names:
                raise ValueError(f"the schedule names {name!r}, no block of this U-Net; its blocks are "
                                 f"{', '.join(self.names)}")
            if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
                raise ValueError(f"the schedule of block {name!r} must be a set of call indices, got "
                                 f"{type(indices).__name__}")
            indices = frozenset(indices)
            bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or i < 0
                   or (num_calls is not None and i >= num_calls)]
            if bad:
                limit = "" if num_calls is None else f" and < num_calls = {num_calls}"
                raise ValueError(f"the schedule of block {name!r} must hold call indices >= 0{limit}, got {bad!r}")
            checked[name] = indices | {0}
        return checked

    @classmethod
    def calibrated(cls, inner, run: Callable[[nn.Module], object], *, threshold: float) -> "BlockCaching":
        """``inner`` under the cache schedule of its changes on ``run`` (see `calibrate`) at ``threshold``."""
        threshold = _check_threshold(threshold)
        changes = calibrate(inner, run)
        model = cls(inner, schedule=cache_schedule(changes, threshold), num_calls=len(changes["middle"]))
        model.changes = changes
        return model

    def reset(self) -> None:
        """Forget the cached outputs: the next call is call 0 of a run, every block computes."""
        self._cache: dict[str, tuple[tuple, torch.Tensor]] = {}   # name -> ((shape, dtype, device) of input, output)
        self.index = 0                                            # calls so far in this run
        self.run_calls = {"full": 0, "cached": 0}
        self.computed: dict[str, list[int]] = {name: [] for name in self.names}
        if self._recording:                                       # calibrating: a fresh record
            self.changes = {name: [] for name in self.names}

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """The start of a sampling run (samplers call this once per run): no cache; then the models below."""
        self.runs += 1
        self.reset()
        return super().prepare_condition(x, cond)

    def computes(self, name: str, index: int) -> bool:
        """Whether block ``name`` computes at call ``index`` of a run (given a cache it may reuse)."""
        return name not in self.schedule or index in self.schedule[name]

    def _cached_forward(self, name: str, index: int, forward: Callable) -> Callable:
        def block(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            key, cached = (h.shape, h.dtype, h.device), self._cache.get(name)
            if cached is not None and cached[0] == key and not self.computes(name, index):
                self.calls["cached"] += 1
                self.run_calls["cached"] += 1
                return cached[1]
            out = forward(h, emb)
            if self._recording:
                fits = cached is not None and cached[0] == key
                self.changes[name].append(relative_l1(out, cached[1]) if fits else None)
            self._cache[name] = (key, out.detach())
            self.calls["full"] += 1
            self.run_calls["full"] += 1
            self.computed[name].append(index)
            return out
        return block

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, **cond) -> torch.Tensor:
        index = self.index
        if self.num_calls is not None and index >= self.num_calls:
            raise ValueError(f"the cache schedule covers {self.num_calls} calls of a sampling run and this is call "
                             f"{index + 1}: calibrate with the sampler and step count it is used with (a new run "
                             f"starts with prepare_condition, which every sampler calls)")
        self.index += 1
        patched = []
        try:
            for name, module in blocks(self).items():
                patched.append((module, module.__dict__.get("forward")))
                module.forward = self._cached_forward(name, index, module.forward)
            return self.inner.walk(x, t, hooks, **cond)
        finally:
            for module, previous in reversed(patched):
                if previous is None:
                    del module.forward
                else:
                    module.forward = previous

    def compute_share(self) -> float:
        """The share of block calls that computed so far (1 without caching; not weighted by the blocks' cost)."""
        n = self.calls["full"] + self.calls["cached"]
        return self.calls["full"] / n if n else 1.0
