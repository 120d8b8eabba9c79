"""Study 5's convolution method: im2col, a convolution written as an unfold of the input into columns followed by one
matrix multiplication (Chellapilla et al. 2006; what cuDNN and oneDNN choose among). `Im2colConv2d` is a drop-in
for ``nn.Conv2d`` (same parameters, same state-dict keys), and `convert_to_im2col` swaps every convolution of a model
for it, so the rest of the model (and any method wrapper) is unchanged.

Notation: input (B, C, H, W), weight (O, C / groups, kh, kw); unfold gives (B, C kh kw, L) with L = H' W' output
positions; per group the weight is a (O / g, C / g kh kw) matrix, and the output is weight @ columns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def im2col_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *, stride=1, padding=0,
                  dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` computed as unfold + matmul (zero padding only)."""
    b, c, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    stride, padding, dilation = (nn.modules.utils._pair(v) for v in (stride, padding, dilation))
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)     # (B, C kh kw, L)
    h_out = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    w_out = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = cols.view(b, groups, (c // groups) * kh * kw, h_out * w_out)
    mat = weight.view(groups, out_ch // groups, -1).to(cols.dtype)
    out = torch.matmul(mat, cols)                                                       # (B, g, O/g, L)
    out = out.reshape(b, out_ch, h_out, w_out)
    if bias is not None:
        out = out + bias.to(out.dtype)[None, :, None, None]
    return out


class Im2colConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward is `im2col_conv2d` (same parameters and state dict)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"im2col convolution supports zero padding only, got {self.padding_mode!r}")
        if isinstance(self.padding, str):
            raise ValueError(f"im2col convolution needs numeric padding, got {self.padding!r}")

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "Im2colConv2d":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        new.load_state_dict(conv.state_dict())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return im2col_conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, groups=self.groups)


def convert_to_im2col(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv2d`` of ``model`` (in place) by an `Im2colConv2d` holding the same weights."""
    for name, child in list(model.named_children()):
        if type(child) is nn.Conv2d:
            setattr(model, name, Im2colConv2d.from_conv(child))
        else:
            convert_to_im2col(child)
    return model
