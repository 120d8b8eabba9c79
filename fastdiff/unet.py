"""The base U-Net of DDPM (Ho et al. 2020) and SR3 (Saharia et al. 2021), with its levels made explicit.

Notation: N = len(channel_mult) levels. Encoder level l works at image_size / 2^l with
base_channels * channel_mult[l] channels; decoder level l mirrors it. The skip tensors that decoder
level l consumes are exactly the ones encoder level l produced (its input and each block output),
so a wrapper can drop the k deepest levels, or add features at a level, without touching this file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .nn import Downsample, ResAttnBlock, Upsample, count_parameters, group_norm, timestep_embedding


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

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        self.attention_resolutions = tuple(self.attention_resolutions)
        if self.out_channels is None:
            self.out_channels = self.in_channels
        n = len(self.channel_mult)
        if n < 1:
            raise ValueError("channel_mult needs at least one level")
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


class EncoderLevel(nn.Module):
    """num_res_blocks blocks at one resolution, then a downsample (all levels but the deepest)."""

    def __init__(self, blocks: list[nn.Module], down: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.down = down

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor], *,
                downsample: bool = True, fuse=None) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, emb)
            if fuse is not None:  # study 1 adds (or concatenates) VGG features to every block output
                h = fuse(h)
            skips.append(h)
        if self.down is not None and downsample:  # layer skipping stops at a level: no downsample there
            h = self.down(h)
            skips.append(h)
        return h


class DecoderLevel(nn.Module):
    """num_res_blocks + 1 blocks, each fed the concatenation of h and one popped skip; then an upsample."""

    def __init__(self, blocks: list[nn.Module], up: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.up = up

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        if self.up is not None:
            h = self.up(h)
        return h


class MiddleBlock(nn.Module):
    """ResBlock -> attention -> ResBlock at the lowest resolution."""

    def __init__(self, ch: int, *, emb_dim: int, dropout: float, norm_groups: int, attention: bool, num_heads: int):
        super().__init__()
        kw = dict(emb_dim=emb_dim, dropout=dropout, norm_groups=norm_groups, num_heads=num_heads)
        self.block1 = ResAttnBlock(ch, ch, attention=attention, **kw)
        self.block2 = ResAttnBlock(ch, ch, attention=False, **kw)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(h, emb), emb)


class UNet(nn.Module):
    """Noise-prediction U-Net: ``model(x_t, t) -> eps``. ``t`` holds one (integer or real) timestep per image."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_embed = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(c.in_channels + c.cond_channels, c.base_channels, 3, padding=1)
        kw = dict(emb_dim=emb_dim, dropout=c.dropout, norm_groups=c.norm_groups, num_heads=c.num_heads)

        # Encoder: record every skip width so the decoder can mirror it.
        skip_ch, ch, encoder = [c.base_channels], c.base_channels, []
        for level in range(c.num_levels):
            out = c.level_channels(level)
            attn = (c.image_size >> level) in c.attention_resolutions
            blocks = []
            for _ in range(c.num_res_blocks):
                blocks.append(ResAttnBlock(ch, out, attention=attn, **kw))
                ch = out
                skip_ch.append(ch)
            last = level == c.num_levels - 1
            encoder.append(EncoderLevel(blocks, None if last else Downsample(ch)))
            if not last:
                skip_ch.append(ch)
        self.encoder = nn.ModuleList(encoder)
        self.middle = MiddleBlock(ch, attention=c.middle_attention, **kw)

        # Decoder, built deepest level first; stored so that decoder[l] mirrors encoder[l].
        decoder = []
        for level in reversed(range(c.num_levels)):
            out = c.level_channels(level)
            attn = (c.image_size >> level) in c.attention_resolutions
            blocks = []
            for _ in range(c.num_res_blocks + 1):
                blocks.append(ResAttnBlock(ch + skip_ch.pop(), out, attention=attn, **kw))
                ch = out
            decoder.append(DecoderLevel(blocks, Upsample(ch) if level > 0 else None))
        self.decoder = nn.ModuleList(reversed(decoder))
        self.head = nn.Sequential(group_norm(ch, c.norm_groups), nn.SiLU(),
                                  nn.Conv2d(ch, c.out_channels, 3, padding=1))

    @classmethod
    def from_config(cls, config: dict) -> "UNet":
        """Rebuild from ``config.to_dict()`` (what checkpoints store)."""
        return cls(UNetConfig(**config))

    # The pieces below are public so that study wrappers can re-compose the forward pass.
    def embed(self, t: torch.Tensor) -> torch.Tensor:
        # the sinusoids are computed in fp32, then cast to the weights' dtype (a model cast to bf16 runs too)
        freqs = timestep_embedding(t, self.config.base_channels)
        return self.time_embed(freqs.to(self.time_embed[0].weight.dtype))

    def check_input(self, x: torch.Tensor) -> None:
        c = self.config
        expected = (c.in_channels + c.cond_channels, c.image_size)
        if x.ndim != 4 or x.shape[1] != expected[0] or x.shape[-1] % 2 ** (c.num_levels - 1) or \
                x.shape[-2] % 2 ** (c.num_levels - 1):
            raise ValueError(f"U-Net expects (batch, {expected[0]}, H, W) with H and W divisible by "
                             f"{2 ** (c.num_levels - 1)}, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        emb = self.embed(t)
        h = self.stem(x)
        skips = [h]
        for level in self.encoder:
            h = level(h, emb, skips)
        h = self.middle(h, emb)
        for level in reversed(self.decoder):
            h = level(h, emb, skips)
        return self.head(h)


class SuperResUNet(UNet):
    """SR3 conditioning: ``model(x_t, t, lr=low_res)`` bicubically upsamples ``lr`` to x_t's size and
    concatenates it along channels (Saharia et al. 2021, Sec. 2.3)."""

    def __init__(self, config: UNetConfig):
        if config.cond_channels == 0:
            raise ValueError("SuperResUNet needs cond_channels > 0 (the channels of the LR image)")
        super().__init__(config)

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4 or lr.shape[1] != self.config.cond_channels:
            raise ValueError(f"lr must be (batch, {self.config.cond_channels}, h, w), got {tuple(lr.shape)}")
        if x.shape[-1] % lr.shape[-1] or x.shape[-2] % lr.shape[-2]:
            raise ValueError(f"LR size {tuple(lr.shape[-2:])} does not divide the output size {tuple(x.shape[-2:])}")
        up = F.interpolate(lr, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return super().forward(torch.cat([x, up], dim=1), t)


ARCHITECTURES: dict[str, type[nn.Module]] = {"UNet": UNet, "SuperResUNet": SuperResUNet}


def build_unet(config: UNetConfig | str, **overrides) -> UNet:
    """A U-Net from a config or preset name; a config with cond_channels builds the SR3 variant."""
    if isinstance(config, str):
        config = unet_config(config, **overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    return SuperResUNet(config) if config.cond_channels else UNet(config)


# Variants whose counts are worth showing beside a paper's figure.
VARIANTS = {"sr3, 1 ResBlock per level": ("sr3", {"num_res_blocks": 1}, "sr3")}


def parameter_table() -> list[dict]:
    """Parameter count of every preset (and of VARIANTS), beside the published count where there is one."""
    entries = [(name, name, {}, name) for name in PRESETS]
    entries += [(label, preset, kw, paper_key) for label, (preset, kw, paper_key) in VARIANTS.items()]
    rows = []
    for label, preset, kw, paper_key in entries:
        n = count_parameters(build_unet(preset, **kw))
        paper, source = PAPER_PARAMETERS.get(paper_key, (None, ""))
        rows.append({"model": label, "parameters": n, "paper": paper,
                     "ours / paper": None if paper is None else round(n / paper, 3), "paper's figure": source})
    return rows
