"""Shared U-Net building blocks (DDPM, Ho et al. 2020, appendix B; SR3, Saharia et al. 2021).

Every block that needs the time embedding takes ``forward(h, emb)``; the others take ``forward(h)``.
Later studies reuse these blocks rather than writing variants of them.

The U-Net builds its blocks through a *block factory* looked up by name (`BLOCKS`, `register_block`), so a
method can swap the ResNet block for another (study 3's ODE block, study 5's 1x1 bottleneck) by naming it in
the config, without a new U-Net. A factory is called ``factory(in_ch, out_ch, *, emb_dim, dropout, norm_groups,
attention, num_heads, **block_options)`` and returns a module with ``forward(h, emb)``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in the Transformer and DDPM.

    emb[:, i] = sin(t * w_i), emb[:, half + i] = cos(t * w_i), w_i = max_period^(-i / (half - 1)).
    """
    if t.ndim != 1:
        raise ValueError(f"timesteps must be a 1-D tensor of shape (batch,), got shape {tuple(t.shape)}")
    half = dim // 2
    w = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * w[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"GroupNorm: {channels} channels do not divide into {groups} groups; "
                         f"choose widths that are multiples of norm_groups={groups}")
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, + Linear(time embedding), GroupNorm -> SiLU -> dropout -> conv3x3,
    plus a 1x1 shortcut when the width changes (DDPM's ResnetBlock)."""

    def __init__(self, in_ch: int, out_ch: int, *, emb_dim: int, dropout: float = 0.0, norm_groups: int = 32):
        super().__init__()
        self.norm1 = group_norm(in_ch, norm_groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual connection: x + proj(softmax(q k^T / sqrt(d)) v)."""

    def __init__(self, channels: int, *, num_heads: int = 1, norm_groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = group_norm(channels, norm_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    impl = "sdpa"   # "sdpa": F.scaled_dot_product_attention; "manual": softmax(q k^T / sqrt(d)) v written out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hgt, wid = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, hgt * wid).unbind(1)
        q, k, v = q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)   # (b, heads, tokens, d)
        if self.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            out = weights @ v
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, hgt, wid))


class ResAttnBlock(nn.Module):
    """One U-Net block: a ResBlock, then self-attention when the level asks for it."""

    def __init__(self, in_ch: int, out_ch: int, *, emb_dim: int, dropout: float, norm_groups: int,
                 attention: bool, num_heads: int = 1):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim=emb_dim, dropout=dropout, norm_groups=norm_groups)
        self.attn = AttentionBlock(out_ch, num_heads=num_heads, norm_groups=norm_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


BLOCKS: dict[str, Callable[..., nn.Module]] = {}


def register_block(name: str):
    """Register a block factory under ``name`` (the value of `UNetConfig.block`)."""
    def add(factory):
        if name in BLOCKS and BLOCKS[name] is not factory:
            raise ValueError(f"a block factory named {name!r} is already registered ({BLOCKS[name].__qualname__})")
        BLOCKS[name] = factory
        return factory
    return add


register_block("resnet")(ResAttnBlock)


def make_block(name: str, in_ch: int, out_ch: int, *, options: dict | None = None, **kw) -> nn.Module:
    """A block from the factory registered as ``name`` (``resnet``: `ResAttnBlock`)."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; registered blocks: {sorted(BLOCKS)} (a method's block is "
                         f"registered when fastdiff.methods is imported)")
    return BLOCKS[name](in_ch, out_ch, **kw, **(options or {}))


class Downsample(nn.Module):
    """Strided 3x3 convolution halving the resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def set_attention(model: nn.Module, impl: str) -> nn.Module:
    """Every attention block of ``model`` computed by ``impl`` (``sdpa`` | ``manual``), in place."""
    if impl not in ("sdpa", "manual"):
        raise ValueError(f"attention impl must be 'sdpa' or 'manual', got {impl!r}")
    for m in model.modules():
        if isinstance(m, AttentionBlock):
            m.impl = impl
    return model


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
