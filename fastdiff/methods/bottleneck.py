"""Study 5's block method: the bottleneck ResNet block (He et al. 2016), 1x1 -> 3x3 -> 1x1, for the U-Net's block
factory (``UNetConfig(block="bottleneck", block_options={"reduction": 4})``): the 3x3 convolution works on
``out_ch / reduction`` channels, so its convolutions cost about (2 / reduction + 9 / reduction^2) / 18 of a ResNet
block's two 3x3 convolutions at the same width (reduction 4: 6%; reduction 2: 18%)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import AttentionBlock, group_norm, register_block


class BottleneckBlock(nn.Module):
    """GN -> SiLU -> conv1x1 (in -> mid), + Linear(time embedding), GN -> SiLU -> conv3x3 (mid -> mid),
    GN -> SiLU -> dropout -> conv1x1 (mid -> out), plus a 1x1 shortcut when the width changes."""

    def __init__(self, in_ch: int, out_ch: int, *, emb_dim: int, dropout: float = 0.0, norm_groups: int = 32,
                 reduction: int = 4):
        super().__init__()
        if not isinstance(reduction, int) or reduction < 1 or out_ch % reduction:
            raise ValueError(f"reduction must be a positive integer dividing the width {out_ch}, got {reduction!r}")
        mid = out_ch // reduction
        groups = next(g for g in range(min(norm_groups, mid), 0, -1) if mid % g == 0)
        self.norm1 = group_norm(in_ch, norm_groups)
        self.reduce = nn.Conv2d(in_ch, mid, 1)
        self.emb_proj = nn.Linear(emb_dim, mid)
        self.norm2 = group_norm(mid, groups)
        self.conv = nn.Conv2d(mid, mid, 3, padding=1)
        self.norm3 = group_norm(mid, groups)
        self.dropout = nn.Dropout(dropout)
        self.expand = nn.Conv2d(mid, out_ch, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.reduce(F.silu(self.norm1(x)))
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv(F.silu(self.norm2(h)))
        h = self.expand(self.dropout(F.silu(self.norm3(h))))
        return self.shortcut(x) + h


class BottleneckAttnBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, *, emb_dim: int, dropout: float, norm_groups: int,
                 attention: bool, num_heads: int = 1, reduction: int = 4):
        super().__init__()
        self.res = BottleneckBlock(in_ch, out_ch, emb_dim=emb_dim, dropout=dropout, norm_groups=norm_groups,
                                   reduction=reduction)
        self.attn = AttentionBlock(out_ch, num_heads=num_heads, norm_groups=norm_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb)
        return self.attn(h) if self.attn is not None else h


register_block("bottleneck")(BottleneckAttnBlock)
