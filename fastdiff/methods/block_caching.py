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
reused. That is the training-free part of the method.

The paper's scale-shift adjustment (its section "Scale-Shift Adjustment") is the learned part: where the schedule
has block i reuse its cache at call c, the walk takes

    y_i(c) = (1 + s_{i,c}) * o_i(last) + h_{i,c},

o_i(last) the block's output at its last computation, s_{i,c} and h_{i,c} vectors over its output channels
(`ScaleShift`: one pair per reused (block, call), zero at init, when the adjusted model is the unadjusted one bit for
bit, tested). The adjusted output is not cached, so (s, h) of call c act at call c alone, and y_i(c) reaches the
network's output only through blocks that compute at call c (a reused block ignores its input: when the last block
is reused, its own (s, h) are the only ones that act at that call). `AdjustedBlockCaching` is the stored model:
the schedule, the sampler and steps it was calibrated for and the U-Net it wraps (frozen) in its config, s and h its
only trainable weights, learned in a student-teacher setup (`fastdiff.methods.block_caching_adjust`).

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
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch
from torch import nn

from ..registry import build_model, register_architecture
from ..sampling import DDIM, Sampler, get_sampler
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


def block_channels(model: nn.Module) -> dict[str, int]:
    """The output channels of every block: C_l for the blocks of encoder and decoder level l, C_{N-1} the middle's."""
    c = model.base.config
    return {name: c.level_channels(c.num_levels - 1 if name == "middle" else int(name.split(".")[1]))
            for name in block_names(model)}


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


class ScaleShift(nn.Module):
    """The scale-shift adjustment of cached block outputs: for each (block i, call c) of ``calls`` ({block name: the
    calls at which it reuses its cache}) y = (1 + s_{i,c}) * y_cached + h_{i,c}, s and h vectors over the block's
    ``channels`` ({block name: C}), zero at init. Block i's s (and h) for all its calls is one (calls, C) weight,
    ``scale.<name>`` (``shift.<name>``), its name's dots as underscores; the other (block, call) pairs pass as they
    are."""

    def __init__(self, calls: Mapping[str, Iterable[int]], channels: Mapping[str, int]):
        super().__init__()
        self.rows: dict[str, dict[int, int]] = {}          # block name -> {call index: row of s and h}
        for name, indices in calls.items():
            if name not in channels:
                raise ValueError(f"the scale-shift names {name!r}, no block of this U-Net; its blocks are "
                                 f"{', '.join(channels)}")
            indices = sorted(set(indices))
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices):
                raise ValueError(f"the scale-shift calls of block {name!r} must be call indices >= 0, got {indices!r}")
            if indices:
                self.rows[name] = {c: row for row, c in enumerate(indices)}
        self.scale = nn.ParameterDict({_key(n): nn.Parameter(torch.zeros(len(r), channels[n])) for n, r in
                                       self.rows.items()})
        self.shift = nn.ParameterDict({_key(n): nn.Parameter(torch.zeros(len(r), channels[n])) for n, r in
                                       self.rows.items()})

    def pairs(self) -> list[tuple[str, int]]:
        """The adjusted (block name, call index) pairs."""
        return [(name, c) for name, rows in self.rows.items() for c in rows]

    def forward(self, name: str, index: int, y: torch.Tensor) -> torch.Tensor:
        row = self.rows.get(name, {}).get(index)
        if row is None:
            return y
        s, h = self.scale[_key(name)][row], self.shift[_key(name)][row]
        if y.shape[1] != s.numel():
            raise ValueError(f"the scale-shift of block {name!r} has {s.numel()} channels, its output {y.shape[1]}")
        shape = (1, -1) + (1,) * (y.ndim - 2)                  # over the channels of (batch, C, H, W)
        return y * (1 + s.to(y.dtype).view(shape)) + h.to(y.dtype).view(shape)

    def check_finite(self) -> None:
        bad = [f"{part}.{key}" for part in ("scale", "shift") for key, w in getattr(self, part).items()
               if not bool(torch.isfinite(w).all())]
        if bad:
            raise ValueError(f"the scale-shift weights {', '.join(bad)} hold NaN or inf (a diverged training?); "
                             f"load finite ones")


def _key(name: str) -> str:
    """A block name as a weight name (no dots): "decoder.1.blocks.0" -> "decoder_1_blocks_0"."""
    return name.replace(".", "_")


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
        self.adjust: ScaleShift | None = None              # the scale-shift of the cached outputs (none: as cached)
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

    def reused_calls(self) -> dict[str, list[int]]:
        """{block name: the calls of a ``num_calls`` run at which the schedule has it reuse its cache} (blocks that
        compute at every call left out)."""
        if self.num_calls is None:
            raise ValueError("the reused calls of a schedule need its num_calls (the calls of a run)")
        reused = {name: [c for c in range(self.num_calls) if not self.computes(name, c)] for name in self.names}
        return {name: calls for name, calls in reused.items() if calls}

    def _cached_forward(self, name: str, index: int, forward: Callable) -> Callable:
        def block(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            key, cached = (h.shape, h.dtype, h.device), self._cache.get(name)
            if cached is not None and cached[0] == key and not self.computes(name, index):
                self.calls["cached"] += 1
                self.run_calls["cached"] += 1
                return cached[1] if self.adjust is None else self.adjust(name, index, cached[1])
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


@dataclass
class ScaleShiftConfig:
    inner: dict                      # the wrapped model's spec (`fastdiff.registry.model_spec`)
    schedule: dict                   # {block name: sorted call indices that compute} (`cache_schedule`)
    num_calls: int                   # the calls of the run it was calibrated on
    sampler: str = "ddim"            # that run's sampler (a `fastdiff.sampling.SAMPLERS` name) ...
    sampler_options: dict = field(default_factory=dict)    # ... every option it ran with (`effective_options`)
    steps: int = 50                  # ... and steps (on the training schedule)


@register_architecture("block-caching-scale-shift")
class AdjustedBlockCaching(BlockCaching):
    """`BlockCaching` with the learned scale-shift of its cached outputs (`ScaleShift`, ``adjust``), for one
    ``sampler`` in ``steps`` steps (the run its ``schedule`` was calibrated on: ``sampler.nfe(steps) == num_calls``).
    The wrapped model is frozen (``requires_grad`` off, kept in eval mode by ``train()``): s and h are the only
    weights that train. With s = h = 0 (at init) it samples what `BlockCaching` with the same schedule samples."""

    def __init__(self, inner: nn.Module, *, schedule: Schedule, num_calls: int, sampler: Sampler = DDIM,
                 steps: int):
        sampler = get_sampler(sampler)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if isinstance(num_calls, bool) or not isinstance(num_calls, int) or sampler.nfe(steps) != num_calls:
            raise ValueError(f"the schedule covers {num_calls!r} calls, and {sampler.describe(steps)} makes "
                             f"{sampler.nfe(steps)}: give the sampler and steps it was calibrated on")
        super().__init__(inner, schedule=schedule, num_calls=num_calls)
        self.inner.requires_grad_(False)
        self.sampler, self.steps = sampler, steps
        self.adjust = ScaleShift(self.reused_calls(), block_channels(self))
        self.config = ScaleShiftConfig(self.inner_spec(), {n: sorted(c) for n, c in sorted(self.schedule.items())},
                                       num_calls, sampler.name, sampler.effective_options(), steps)

    @classmethod
    def from_config(cls, config: dict) -> "AdjustedBlockCaching":
        cfg = ScaleShiftConfig(**config)
        sampler = get_sampler(cfg.sampler).with_options(**cfg.sampler_options)
        return cls(build_model(cfg.inner), schedule=cfg.schedule, num_calls=cfg.num_calls, sampler=sampler,
                   steps=cfg.steps)

    @classmethod
    def from_cache(cls, cache: BlockCaching, *, sampler: Sampler = DDIM, steps: int) -> "AdjustedBlockCaching":
        """The adjusted model of a (calibrated) block cache: its model, schedule and calls, zero s and h."""
        return cls(cache.inner, schedule=cache.schedule, num_calls=cache.num_calls, sampler=sampler, steps=steps)

    def calibrated_for(self, sampler: Sampler, steps: int) -> bool:
        """Whether ``sampler`` in ``steps`` steps is the run its schedule was calibrated on (every option alike)."""
        sampler = get_sampler(sampler)
        return (sampler.name, sampler.effective_options(), steps) == \
            (self.sampler.name, self.sampler.effective_options(), self.steps)

    def train(self, mode: bool = True) -> "AdjustedBlockCaching":
        super().train(mode)
        self.inner.train(False)          # the frozen model is a fixed function (no dropout) in training too
        return self

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        self.adjust.check_finite()
        return super().prepare_condition(x, cond)
