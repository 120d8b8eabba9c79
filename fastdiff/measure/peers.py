"""The libraries users would pick instead, in fastdiff's own calling convention, so that the benchmarks time them
side by side with fastdiff's models on the same inputs.

`diffusers_unet(config)` builds HuggingFace diffusers' ``UNet2DModel`` with the configuration of a fastdiff
`UNetConfig` (the DDPM CIFAR-10 U-Net of Ho et al. 2020: the same 35,746,307 parameters), wrapped in
`DiffusersUNet`: ``model(x_t, t)`` returns the predicted noise as a tensor, ``example_inputs`` and
``set_attention`` behave as fastdiff's. diffusers is a test/benchmark dependency only (``pip install diffusers``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..unet import UNetConfig, unet_config


def _diffusers():
    try:
        import diffusers
    except ImportError as e:
        raise ImportError("the side-by-side with diffusers needs HuggingFace diffusers: pip install diffusers "
                          "(a test/benchmark dependency of fastdiff, not a runtime one)") from e
    return diffusers


class DiffusersUNet(nn.Module):
    """diffusers' ``UNet2DModel`` behind fastdiff's U-Net interface (noise prediction, no class labels)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        diffusers = _diffusers()
        c = config
        if c.block != "resnet" or c.cond_channels or not c.middle_attention:
            raise ValueError("diffusers' UNet2DModel is compared for plain ResNet-block U-Nets with middle attention "
                             f"only (block={c.block!r}, cond_channels={c.cond_channels})")
        sizes = [c.image_size // 2 ** level for level in range(c.num_levels)]
        attn = [size in c.attention_resolutions for size in sizes]
        self.config = c
        self.net = diffusers.UNet2DModel(
            sample_size=c.image_size, in_channels=c.in_channels, out_channels=c.out_channels,
            block_out_channels=tuple(c.base_channels * m for m in c.channel_mult), layers_per_block=c.num_res_blocks,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
            dropout=c.dropout, norm_num_groups=c.norm_groups, attention_head_dim=None,
            flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6)
        if c.num_heads != 1:
            raise ValueError("the diffusers twin is built with one attention head per block, as DDPM's U-Net")

    @property
    def base(self):
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t).sample

    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None, sr_scale: int = 8):
        c, p = self.config, next(self.parameters())
        x = torch.randn(batch_size, c.in_channels, c.image_size, c.image_size, generator=generator)
        t = torch.randint(0, 1000, (batch_size,), generator=generator)
        return x.to(p.device), t.to(p.device), {}

    def set_attention(self, impl: str) -> "DiffusersUNet":
        """``sdpa``: diffusers' default ``AttnProcessor2_0`` (F.scaled_dot_product_attention); ``manual``: its
        ``AttnProcessor`` (softmax of the explicit score matrix)."""
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
        if impl not in ("sdpa", "manual"):
            raise ValueError(f"attention impl must be 'sdpa' or 'manual', got {impl!r}")
        for module in self.net.modules():
            if hasattr(module, "set_processor"):        # diffusers' Attention
                module.set_processor(AttnProcessor2_0() if impl == "sdpa" else AttnProcessor())
        return self


def diffusers_unet(config: UNetConfig | str = "ddpm_cifar10", **overrides) -> DiffusersUNet:
    """diffusers' twin of a fastdiff U-Net configuration (a preset name or a `UNetConfig`)."""
    if isinstance(config, str):
        config = unet_config(config, **overrides)
    return DiffusersUNet(config)
