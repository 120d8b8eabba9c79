"""Super-resolution evaluation shared by the SR studies (1 and 4): sample SR outputs for a set of LR images
from the same noise, and score them the way the SR literature does (PSNR, SSIM, LPIPS, LR-PSNR), with bicubic
upsampling as the row every model must beat."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import downsample
from ..diffusion import Schedule
from ..progress import progress_bar
from ..sampling import DDIM, sampler_call


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The interpolation baseline every SR model must beat."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def super_resolve(model: nn.Module, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
                  dtype: torch.dtype = torch.float32, seed: int = 0, batch_size: int = 64, eta: float = 1.0,
                  size: int | None = None, channels: int | None = None, cond: dict | None = None,
                  residual_scale: int | None = None, progress: bool = False) -> torch.Tensor:
    """SR outputs (``size`` x ``size``, default the model's image size) for the LR images ``lr``, with
    ``steps`` respaced steps of DDIM(eta); eta = 1 is SR3's ancestral sampling. ``model(x_t, t, lr=..., **cond)``
    is any SR model (a `SuperResUNet`, a stack of wrappers over one, a SwinDiffuser); ``cond`` adds conditioning
    shared by every batch (a SwinDiffuser's shift plan). ``residual_scale``: the model diffuses the residual over
    bicubic upsampling by that factor (SRDiff), which is added back before clamping. The starting noise of image i
    does not depend on the batch size (so deterministic DDIM, eta = 0, gives the same image in any batch; the
    ancestral noise of later steps is drawn per batch). Returns float32 images on the CPU."""
    device = torch.device(device)
    if size is None or channels is None:
        config = getattr(model, "base", model).config
        size, channels = size or config.image_size, channels or config.in_channels
    x_T = torch.randn((len(lr), channels, size, size), generator=torch.Generator().manual_seed(seed))
    model = model.to(device).eval()
    outs = []
    chunks = range(0, len(lr), batch_size)
    for i in progress_bar(chunks, desc=f"SR {steps} steps", disable=not progress or len(chunks) == 1):
        part = lr[i:i + batch_size].to(device)
        run = sampler_call(model, schedule, DDIM.with_options(eta=eta), steps, x_T[i:i + batch_size].to(device),
                           dtype=dtype, seed=seed + 1 + i, cond={"lr": part, **(cond or {})})
        x = run().float()
        if residual_scale:
            x = x + F.interpolate(part.float(), scale_factor=residual_scale, mode="bicubic", align_corners=False)
        outs.append(x.clamp(-1, 1).cpu())
    return torch.cat(outs)


def per_image_metrics(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> dict[str, list[float]]:
    """PSNR (dB), SSIM and LR-PSNR (dB) of every image, for intervals over the images
    (`fastdiff.measure.intervals.mean_interval`, `paired_difference_interval`)."""
    from .metrics import lr_psnr, psnr, ssim
    return {"PSNR": psnr(sr, hr).tolist(), "SSIM": ssim(sr, hr).tolist(), "LR-PSNR": lr_psnr(sr, lr).tolist()}


def sr_metrics(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, *, device="cpu") -> dict:
    """Mean PSNR (dB), SSIM, LR-PSNR (dB) and LPIPS (AlexNet; None when its weights are missing)."""
    from ..weights import is_available
    from .metrics import lpips_distance, lr_psnr, psnr, ssim
    return {"PSNR": psnr(sr, hr).mean().item(), "SSIM": ssim(sr, hr).mean().item(),
            "LPIPS": lpips_distance(sr, hr, device=device).mean().item() if is_available("alexnet") else None,
            "LR-PSNR": lr_psnr(sr, lr).mean().item()}


def metrics_table(models: dict[str, nn.Module], hr: torch.Tensor, schedule: Schedule, *, scale: int, steps: int,
                  device, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[list[dict], dict]:
    """PSNR, SSIM, LPIPS and LR-PSNR of every model's outputs on ``hr``'s LR images (``steps`` ancestral steps,
    the same noise for all), with bicubic upsampling as the first row; each row also keeps every image's PSNR,
    SSIM and LR-PSNR ("per image") and their means with 95% bootstrap intervals ("intervals": {metric: Estimate}),
    so that two rows compare paired (`paired_difference_interval`). Returns (rows, {name: SR images})."""
    from .intervals import mean_interval
    lr = downsample(hr, scale)
    outputs = {"bicubic (no model)": bicubic(lr, scale)}
    for name, model in progress_bar(models.items(), desc="SR metrics", total=len(models)):
        outputs[name] = super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, seed=seed,
                                      size=hr.shape[-1])
    rows = []
    for name, sr in outputs.items():
        each = per_image_metrics(sr, hr, lr)
        rows.append({"model": name, **sr_metrics(sr, hr, lr, device=device), "per image": each,
                     "intervals": {k: mean_interval(v) for k, v in each.items()}})
    return rows, outputs


def steps_grid(models: dict[str, nn.Module], lr: torch.Tensor, schedule: Schedule, steps, *, device,
               dtype: torch.dtype = torch.float32, seed: int = 0, size: int | None = None) -> dict[str, dict[int, torch.Tensor]]:
    """{model: {steps: SR images}} from the same noise (the VGG-SR paper's Fig. 10)."""
    cells = [(name, n) for name in models for n in steps]
    grid: dict[str, dict[int, torch.Tensor]] = {name: {} for name in models}
    for name, n in progress_bar(cells, desc="steps grid"):
        grid[name][n] = super_resolve(models[name], lr, schedule, n, device=device, dtype=dtype, seed=seed,
                                      size=size)
    return grid
