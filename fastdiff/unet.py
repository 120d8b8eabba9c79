"""The base U-Net of DDPM (Ho et al. 2020) and SR3 (Saharia et al. 2021), with its levels made explicit and
one level walk that every method goes through.

Notation: N = len(channel_mult) levels. Encoder level l works at image_size / 2^l with
base_channels * channel_mult[l] channels; decoder level l mirrors it. The skip tensors that decoder
level l consumes are exactly the ones encoder level l produced (its input and each block output).

`UNet.walk(x, t, hooks)` is the forward pass. A method does not re-implement it: it is a wrapper
(`UNetWrapper`) that adds what it changes to the `LevelHooks` and hands them on to the model it wraps,
so methods stack (VGG features added at every encoder block *and* the k deepest levels skipped, say).
The blocks come from a named factory (`fastdiff.nn.BLOCKS`), so a method can also replace the ResNet block.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_image_dtype
from .nn import Downsample, Upsample, count_parameters, group_norm, make_block, timestep_embedding
from .registry import UnknownArchitectureError, model_spec, register_architecture


@dataclass
class UNetConfig:
    image_size: int = 32
    in_channels: int = 3
    out_channels: int | None = None          # None: same as in_channels (noise prediction)
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes (pixels) that get self-attention
    middle_attention: bool = True
    dropout: float = 0.1
    cond_channels: int = 0                   # extra input channels concatenated to x_t (SR3: the LR image)
    num_heads: int = 1
    norm_groups: int = 32
    block: str = "resnet"                    # the block factory (`fastdiff.nn.BLOCKS`)
    block_options: dict = field(default_factory=dict)   # extra keyword arguments of that factory

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        self.attention_resolutions = tuple(self.attention_resolutions)
        self.block_options = dict(self.block_options)
        if self.out_channels is None:
            self.out_channels = self.in_channels
        n = len(self.channel_mult)
        if n < 1:
            raise ValueError("channel_mult needs at least one level")
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks", "num_heads", "norm_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"UNetConfig.{name} must be a positive integer, got {value!r}")
        if any(not isinstance(m, int) or m < 1 for m in self.channel_mult):
            raise ValueError(f"channel_mult must hold positive integers, got {self.channel_mult}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0, got {self.cond_channels}")
        if self.image_size % 2 ** (n - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{n - 1} "
                             f"(needed by {n} levels of channel_mult={self.channel_mult})")
        level_sizes = {self.image_size // 2**level for level in range(n)}
        missing = [r for r in self.attention_resolutions if r not in level_sizes]
        if missing:
            raise ValueError(f"attention_resolutions {missing} match no level; level sizes are {sorted(level_sizes)}")

    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    def level_channels(self, level: int) -> int:
        return self.base_channels * self.channel_mult[level]


PRESETS: dict[str, dict] = {
    # a few thousand parameters, 8x8 images: for unit tests
    "tiny": dict(image_size=8, in_channels=1, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                 attention_resolutions=(4,), dropout=0.0, norm_groups=4),
    # CPU notebooks on 32x32 MNIST digits
    "quick": dict(image_size=32, in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                  attention_resolutions=(8,), dropout=0.0, norm_groups=8),
    # DDPM's CIFAR-10 model: 35.7M parameters in the paper
    "ddpm_cifar10": dict(image_size=32, in_channels=3, base_channels=128, channel_mult=(1, 2, 2, 2),
                         num_res_blocks=2, attention_resolutions=(16,), dropout=0.1),
    # SR3 16->128 (faces): LR image upsampled and concatenated; the VGG-SR paper quotes 66M
    "sr3": dict(image_size=128, in_channels=3, base_channels=64, channel_mult=(1, 2, 4, 8, 8), num_res_blocks=2,
                attention_resolutions=(16,), dropout=0.2, cond_channels=3),
}

PAPER_PARAMETERS = {"ddpm_cifar10": (35.7e6, "DDPM (Ho et al. 2020), CIFAR-10 model"),
                    "sr3": (66e6, "VGG-SR paper's count for the SR3 U-Net")}


def unet_config(preset: str, **overrides) -> UNetConfig:
    """A named preset (``tiny``, ``quick``, ``ddpm_cifar10``, ``sr3``) with optional field overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown U-Net preset {preset!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(UNetConfig)}
    if unknown:
        raise ValueError(f"unknown UNetConfig fields {sorted(unknown)}")
    return UNetConfig(**{**PRESETS[preset], **overrides})


# ----------------------------------------------------------------------------------------------- the level walk

# A hook of the level walk: ``hook(level, h, emb) -> h``, for every place the walk offers (one signature).
Hook = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LevelHooks:
    """What the wrappers of a U-Net change in its level walk (`UNet.walk`). Immutable: a wrapper adds its part with
    ``with_encoder_block`` / ``with_decoder_input`` / ``with_bottom`` (new hooks, the others kept) and hands them on.
    Every hook is ``hook(level, h, emb) -> h``; the walk knows nothing of the methods that set them.

    - ``encoder_block``: applied, in order, to the output of every encoder block of a level before it becomes a skip
      tensor (study 1 adds VGG features there);
    - ``decoder_input``: applied, in order, to what decoder level ``level`` receives from below (deep-feature
      caching records it there);
    - ``depth``, ``bottom``: the walk runs encoder and decoder levels 0..depth-1 only (None: all levels), and
      ``bottom(depth - 1, h, emb)``, given the encoder output h of level depth-1, returns what decoder level
      depth-1 receives in place of the middle block and every deeper level (layer skipping fills it; deep-feature
      caching returns its cache). Without ``bottom`` the middle block runs, so the walk must run every level.
    """
    encoder_block: tuple[Hook, ...] = ()
    decoder_input: tuple[Hook, ...] = ()
    depth: int | None = None
    bottom: Hook | None = None

    def __post_init__(self):
        for name in ("encoder_block", "decoder_input"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    def with_encoder_block(self, hook: Hook) -> "LevelHooks":
        return dataclasses.replace(self, encoder_block=(*self.encoder_block, hook))

    def with_decoder_input(self, hook: Hook) -> "LevelHooks":
        return dataclasses.replace(self, decoder_input=(*self.decoder_input, hook))

    def with_bottom(self, depth: int, hook: Hook) -> "LevelHooks":
        """The walk stops at level depth-1 and ``hook`` replaces what lies below; one method per walk may do so."""
        if self.bottom is not None:
            raise ValueError("two methods in one stack replace the deep levels of the walk: use one of them")
        return dataclasses.replace(self, depth=depth, bottom=hook)


NO_HOOKS = LevelHooks()


class EncoderLevel(nn.Module):
    """num_res_blocks blocks at one resolution, then a downsample (all levels but the deepest)."""

    def __init__(self, blocks: list[nn.Module], down: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.down = down

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor], *, downsample: bool = True,
                level: int = 0, hooks: tuple[Hook, ...] = ()) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, emb)
            for hook in hooks:                      # `LevelHooks.encoder_block`
                h = hook(level, h, emb)
            skips.append(h)
        if self.down is not None and downsample:  # a walk that stops at this level does not downsample
            h = self.down(h)
            skips.append(h)
        return h


class DecoderLevel(nn.Module):
    """num_res_blocks + 1 blocks, each fed the concatenation of h and one popped skip; then an upsample."""

    def __init__(self, blocks: list[nn.Module], up: nn.Module | None):
        super().__init__()
        self.blocks, self.up = nn.ModuleList(blocks), up

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return h if self.up is None else self.up(h)


class MiddleBlock(nn.Module):
    """Block -> attention -> block at the lowest resolution."""

    def __init__(self, ch: int, *, block: str = "resnet", block_options: dict | None = None, emb_dim: int,
                 dropout: float, norm_groups: int, attention: bool, num_heads: int):
        super().__init__()
        kw = dict(emb_dim=emb_dim, dropout=dropout, norm_groups=norm_groups, num_heads=num_heads,
                  options=block_options)
        self.block1 = make_block(block, ch, ch, attention=attention, **kw)
        self.block2 = make_block(block, ch, ch, attention=False, **kw)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(h, emb), emb)


@register_architecture("unet")
class UNet(nn.Module):
    """Noise-prediction U-Net: ``model(x_t, t) -> eps``. ``t`` holds one (integer or real) timestep per image."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_embed = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(c.in_channels + c.cond_channels, c.base_channels, 3, padding=1)
        kw = dict(emb_dim=emb_dim, dropout=c.dropout, norm_groups=c.norm_groups, num_heads=c.num_heads,
                  options=c.block_options)

        # Encoder: record every skip width so the decoder can mirror it.
        skip_ch, ch, encoder = [c.base_channels], c.base_channels, []
        for level in range(c.num_levels):
            out = c.level_channels(level)
            attn = (c.image_size >> level) in c.attention_resolutions
            blocks = []
            for _ in range(c.num_res_blocks):
                blocks.append(make_block(c.block, ch, out, attention=attn, **kw))
                ch = out
                skip_ch.append(ch)
            last = level == c.num_levels - 1
            encoder.append(EncoderLevel(blocks, None if last else Downsample(ch)))
            if not last:
                skip_ch.append(ch)
        self.encoder = nn.ModuleList(encoder)
        self.middle = MiddleBlock(ch, block=c.block, block_options=c.block_options, attention=c.middle_attention,
                                  emb_dim=emb_dim, dropout=c.dropout, norm_groups=c.norm_groups,
                                  num_heads=c.num_heads)

        # Decoder, built deepest level first; stored so that decoder[l] mirrors encoder[l].
        decoder = []
        for level in reversed(range(c.num_levels)):
            out = c.level_channels(level)
            attn = (c.image_size >> level) in c.attention_resolutions
            blocks = []
            for _ in range(c.num_res_blocks + 1):
                blocks.append(make_block(c.block, ch + skip_ch.pop(), out, attention=attn, **kw))
                ch = out
            decoder.append(DecoderLevel(blocks, Upsample(ch) if level > 0 else None))
        self.decoder = nn.ModuleList(reversed(decoder))
        self.head = nn.Sequential(group_norm(ch, c.norm_groups), nn.SiLU(),
                                  nn.Conv2d(ch, c.out_channels, 3, padding=1))

    @classmethod
    def from_config(cls, config: dict) -> "UNet":
        """Rebuild from ``dataclasses.asdict(config)`` (what checkpoints store)."""
        return cls(UNetConfig(**config))

    @property
    def base(self) -> "UNet":
        """The U-Net at the bottom of a stack of wrappers (here: itself)."""
        return self

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    # The pieces below are public so that wrappers can reach them (e.g. the middle block, for interpolation).
    def embed(self, t: torch.Tensor) -> torch.Tensor:
        # the sinusoids are computed in fp32, then cast to the weights' dtype (a model cast to bf16 runs too)
        freqs = timestep_embedding(t, self.config.base_channels)
        return self.time_embed(freqs.to(self.time_embed[0].weight.dtype))

    def check_input(self, x: torch.Tensor, t: torch.Tensor | None = None) -> None:
        c = self.config
        channels, divisor = c.in_channels + c.cond_channels, 2 ** (c.num_levels - 1)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels or x.shape[-1] % divisor or \
                x.shape[-2] % divisor:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"U-Net expects (batch, {channels}, H, W) with H and W divisible by {divisor}, got {got}")
        check_image_dtype("x", x, self.time_embed[0].weight.dtype)
        if t is not None and (not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],)):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be a tensor of shape ({x.shape[0]},): one timestep per image; got {got}")

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None) -> torch.Tensor:
        """The one forward pass: stem, encoder levels, middle block, decoder levels, head, with ``hooks``."""
        hooks = NO_HOOKS if hooks is None else hooks
        self.check_input(x, t)
        n = self.num_levels
        depth = n if hooks.depth is None else hooks.depth
        if not 1 <= depth <= n:
            raise ValueError(f"hooks.depth must be in 1..{n} (the levels the walk runs), got {depth}")
        if depth < n and hooks.bottom is None:
            raise ValueError(f"a walk of {depth} of {n} levels needs hooks.bottom (what replaces the levels below)")
        emb = self.embed(t)
        h = self.stem(x)
        skips = [h]
        for level in range(depth):
            h = self.encoder[level](h, emb, skips, downsample=level < depth - 1, level=level, hooks=hooks.encoder_block)
        h = self.middle(h, emb) if hooks.bottom is None else hooks.bottom(depth - 1, h, emb)
        for level in reversed(range(depth)):
            for hook in hooks.decoder_input:
                h = hook(level, h, emb)
            h = self.decoder[level](h, emb, skips)
        return self.head(h)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.walk(x, t)

    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None, sr_scale: int = 8):
        """(x_t, t, cond) of the model's own size, on its device, for timing and FLOP counts."""
        c, p = self.config, next(self.parameters())
        x = torch.randn(batch_size, c.in_channels, c.image_size, c.image_size, generator=generator)
        t = torch.randint(0, 1000, (batch_size,), generator=generator)
        return x.to(p.device), t.to(p.device), {}


@register_architecture("sr-unet")
class SuperResUNet(UNet):
    """SR3 conditioning: ``model(x_t, t, lr=low_res)`` bicubically upsamples ``lr`` to x_t's size and
    concatenates it along channels (Saharia et al. 2021, Sec. 2.3)."""

    def __init__(self, config: UNetConfig):
        if config.cond_channels == 0:
            raise ValueError("SuperResUNet needs cond_channels > 0 (the channels of the LR image)")
        super().__init__(config)

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, *,
             lr: torch.Tensor) -> torch.Tensor:
        check_lr(x, lr, self.config.cond_channels)
        up = F.interpolate(lr, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return super().walk(torch.cat([x, up.to(x.dtype)], dim=1), t, hooks)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, lr: torch.Tensor) -> torch.Tensor:
        return self.walk(x, t, lr=lr)

    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None, sr_scale: int = 8):
        x, t, _ = super().example_inputs(batch_size, generator=generator)
        size = self.config.image_size // sr_scale
        lr = torch.rand(batch_size, self.config.cond_channels, size, size, generator=generator) * 2 - 1
        return x, t, {"lr": lr.to(x.device)}


def check_lr(x: torch.Tensor, lr, channels: int) -> None:
    """The LR image of an SR model: (batch, channels, h, w) with h and w dividing x's size."""
    if not isinstance(lr, torch.Tensor) or lr.ndim != 4 or lr.shape[1] != channels or lr.shape[0] != x.shape[0]:
        got = tuple(lr.shape) if isinstance(lr, torch.Tensor) else type(lr).__name__
        raise ValueError(f"lr must be ({x.shape[0]}, {channels}, h, w) for x of shape {tuple(x.shape)}, got {got}")
    check_image_dtype("lr", lr)
    if x.shape[-1] % lr.shape[-1] or x.shape[-2] % lr.shape[-2]:
        raise ValueError(f"LR size {tuple(lr.shape[-2:])} does not divide the output size {tuple(x.shape[-2:])}")


class UNetWrapper(nn.Module):
    """A method over the level walk of ``inner`` (a `UNet` or another wrapper). A subclass implements
    ``walk(x, t, hooks, **cond)``: it takes its own conditioning out of ``cond``, adds its part to ``hooks``
    (`LevelHooks.with_...`) and calls ``self.inner.walk``. Everything else (the base U-Net, `prepare_condition`,
    example inputs) is handed through, so wrappers stack.

    ``owns`` names what a wrapper changes that no other wrapper of the same stack may change too (the deep levels,
    a conditioning key); a stack where two wrappers own the same thing is refused when it is built."""

    owns: tuple[str, ...] = ()

    def __init__(self, inner: nn.Module):
        super().__init__()
        if not hasattr(inner, "walk"):
            raise TypeError(f"{type(self).__name__} wraps the level walk of a UNet or of another U-Net wrapper; "
                            f"{type(inner).__name__} has none")
        below = inner
        while below is not None:
            shared = [part for part in getattr(below, "owns", ()) if part in self.owns]
            if shared:
                raise ValueError(f"{type(self).__name__} cannot wrap a stack holding {type(below).__name__}: both "
                                 f"change {shared[0]}; use one of them")
            below = getattr(below, "inner", None)
        self.inner = inner

    @property
    def base(self) -> UNet:
        return self.inner.base

    @property
    def num_levels(self) -> int:
        return self.base.num_levels

    def inner_spec(self) -> dict:
        """The wrapped model's spec (`fastdiff.registry.model_spec`), for a wrapper whose config goes into checkpoints.
        A sampling-time wrapper (registered nowhere: DeepCache, ScheduledSkipping) has none, so a stored wrapper goes
        under it, never over it; the other order is refused here, when the stack is built."""
        try:
            return model_spec(self.inner)
        except UnknownArchitectureError:
            if not isinstance(self.inner, UNetWrapper):
                raise
            name, inner = type(self).__name__, type(self.inner).__name__
            raise ValueError(f"{name} cannot wrap {inner}: {name} is stored in checkpoints with the spec of the model "
                             f"it wraps, and {inner} is a sampling-time wrapper that no checkpoint holds; wrap the "
                             f"other way round, {inner}({name}(...))") from None

    def walk(self, x, t, hooks: LevelHooks | None = None, **cond):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        return self.walk(x, t, None, **cond)

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """Conditioning computed once per sampling call by the models below (see `fastdiff.sampling`)."""
        prepare = getattr(self.inner, "prepare_condition", None)
        return prepare(x, cond) if prepare is not None else cond

    def example_inputs(self, batch_size: int, **kw):
        return self.inner.example_inputs(batch_size, **kw)


def build_unet(config: UNetConfig | str, **overrides) -> UNet:
    """A U-Net from a config or preset name; a config with cond_channels builds the SR3 variant."""
    if isinstance(config, str):
        config = unet_config(config, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    return SuperResUNet(config) if config.cond_channels else UNet(config)


# Presets with overrides whose counts are worth showing beside a paper's figure: label -> (preset, overrides, the
# PAPER_PARAMETERS key)
PARAMETER_TABLE_EXTRAS = {"sr3, 1 ResBlock per level": ("sr3", {"num_res_blocks": 1}, "sr3")}


def parameter_table() -> list[dict]:
    """Parameter count of every preset (and of PARAMETER_TABLE_EXTRAS), beside the published count where there is
    one."""
    entries = [(name, name, {}, name) for name in PRESETS]
    entries += [(label, preset, kw, paper_key) for label, (preset, kw, paper_key) in PARAMETER_TABLE_EXTRAS.items()]
    rows = []
    for label, preset, kw, paper_key in entries:
        n = count_parameters(build_unet(preset, **kw))
        paper, source = PAPER_PARAMETERS.get(paper_key, (None, ""))
        rows.append({"model": label, "parameters": n, "paper": paper,
                     "ours / paper": None if paper is None else round(n / paper, 3), "paper's figure": source})
    return rows
