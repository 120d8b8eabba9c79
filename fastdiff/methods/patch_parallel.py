"""Study 4's geometry (groundwork for the SwinDiffuser, Algorithms 2.1 and 2.2 of the thesis): the image is rolled by
a shift pattern, cut into d x d patches that one denoiser handles as a batch, and put back; every patch is told
where it lies by a Gaussian position mask on the LR image, rolled with the same shift.

Notation: x (b, C, H, W); d patches per side, each (H / d, W / d); a shift is (dy, dx) pixels at HR size (the LR
mask moves by (dy, dx) / scale). ``fixed`` shift patterns cycle (0, 0), (0, s), (s, 0), (s, s) while sampling and
draw one of them at random while training; ``random`` draws offsets in 0..s; ``none`` never shifts.
"""
from __future__ import annotations

import math

import torch

SHIFT_MODES = ("none", "fixed", "random")


def rolling_shift(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """Roll the image up and left by ``shift`` = (dy, dx) pixels (what leaves one side re-enters at the other)."""
    return torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))


def unroll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The inverse of `rolling_shift`."""
    return torch.roll(x, shifts=(shift[0], shift[1]), dims=(-2, -1))


def patchify(x: torch.Tensor, d: int) -> torch.Tensor:
    """(b, C, H, W) -> (b d^2, C, H/d, W/d), patch (i, j) of image n at index n d^2 + i d + j."""
    b, c, h, w = x.shape
    if h % d or w % d:
        raise ValueError(f"an image of {h}x{w} does not split into {d}x{d} patches")
    x = x.reshape(b, c, d, h // d, d, w // d).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * d * d, c, h // d, w // d)


def unpatchify(patches: torch.Tensor, d: int) -> torch.Tensor:
    """The inverse of `patchify`: (b d^2, C, h, w) -> (b, C, h d, w d)."""
    n, c, h, w = patches.shape
    if n % (d * d):
        raise ValueError(f"{n} patches are not a whole number of {d}x{d} images")
    x = patches.reshape(n // (d * d), d, d, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n // (d * d), c, d * h, d * w)


def gaussian_position_mask(size: tuple[int, int], d: int, *, shift: tuple[float, float] = (0.0, 0.0),
                           sigma: float | None = None, device=None) -> torch.Tensor:
    """(d^2, 1, h, w): for patch (i, j), a Gaussian centred on that patch's centre on an h x w (LR) grid, moved by
    ``shift`` (in LR pixels) as the rolled patch is, with wrap-around distances (the roll is circular). ``sigma``
    defaults to a quarter of the patch size. Peak 1."""
    h, w = size
    sigma = sigma if sigma is not None else min(h, w) / d / 4
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    masks = []
    for i in range(d):
        for j in range(d):
            cy = (i + 0.5) * h / d - 0.5 + shift[0]
            cx = (j + 0.5) * w / d - 0.5 + shift[1]
            dy = torch.remainder(ys - cy + h / 2, h) - h / 2
            dx = torch.remainder(xs - cx + w / 2, w) - w / 2
            masks.append(torch.exp(-(dy**2 + dx**2) / (2 * sigma**2)))
    return torch.stack(masks)[:, None]


def shift_for_step(mode: str, step_size: int, index: int, *, generator: torch.Generator | None = None,
                   training: bool = False) -> tuple[int, int]:
    """The shift of sampling step ``index`` (or of a training batch): ``fixed`` cycles (0,0), (0,s), (s,0), (s,s) in
    turn while sampling and draws one of them while training; ``random`` draws each offset in 0..s; ``none`` is
    (0, 0)."""
    if mode not in SHIFT_MODES:
        raise ValueError(f"unknown shift mode {mode!r}; choose one of {SHIFT_MODES}")
    s = int(step_size)
    if mode == "none" or s == 0:
        return (0, 0)
    cycle = ((0, 0), (0, s), (s, 0), (s, s))
    if mode == "fixed":
        k = int(torch.randint(4, (1,), generator=generator)) if training else index % 4
        return cycle[k]
    dy, dx = torch.randint(s + 1, (2,), generator=generator).tolist()
    return (dy, dx)


def seam_score(images: torch.Tensor, d: int) -> float:
    """Mean absolute jump across the patch boundaries divided by the mean absolute jump between neighbouring pixels
    inside patches (1: seams invisible in the statistics; larger: visible seams). The thesis judges seams only by
    eye; this puts a number on it."""
    b, c, h, w = images.shape
    ph, pw = h // d, w // d
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs()      # jump between rows r and r + 1
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs()
    rows = torch.zeros(h - 1, dtype=torch.bool)
    rows[[k * ph - 1 for k in range(1, d)]] = True
    cols = torch.zeros(w - 1, dtype=torch.bool)
    cols[[k * pw - 1 for k in range(1, d)]] = True
    boundary = torch.cat([dy[..., rows, :].flatten(), dx[..., :, cols].flatten()]).mean()
    interior = torch.cat([dy[..., ~rows, :].flatten(), dx[..., :, ~cols].flatten()]).mean()
    return float(boundary / interior) if interior > 0 else math.nan
