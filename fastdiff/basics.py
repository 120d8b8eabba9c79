"""Notebook 00, diffusion basics: the profiles, and the sampling sweep (DDPM with all steps against
DDIM with fewer), every sampler started from the same x_T so the grids can be compared image by image."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .diffusion import Schedule, respace, space_timesteps
from .sampling import get_sampler
from .train import TrainConfig
from .utils import dtype_name, timed


@dataclass
class BasicsProfile:
    model: str = "quick"                  # U-Net preset
    model_overrides: dict = field(default_factory=dict)
    schedule: str = "linear"
    train: TrainConfig = field(default_factory=TrainConfig)
    n_samples: int = 16                   # images per sampler (one batch)
    ddim_steps: tuple[int, ...] = (100, 50, 20, 10)
    ddim_eta: float = 0.0
    eta_sweep_steps: int = 50             # DDIM steps for the eta comparison
    etas: tuple[float, ...] = (0.0, 0.5, 1.0)
    forward_steps: tuple[int, ...] = (0, 50, 100, 250, 500, 750, 999)


PROFILES = {
    # 2 CPU cores, ~3 minutes for the notebook: a 1.1M-parameter U-Net, 700 steps of batch 32 in bf16
    "quick": BasicsProfile(
        model="quick",
        train=TrainConfig(steps=700, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.995, grad_clip=1.0,
                          amp="bf16", log_every=10)),
    # one GPU (not yet timed on one): a 6.8M-parameter U-Net, 2 ResBlocks per level, 20k steps of batch 128
    "full": BasicsProfile(
        model="quick", model_overrides=dict(base_channels=64, num_res_blocks=2, attention_resolutions=(16, 8),
                                            dropout=0.1, norm_groups=32),
        train=TrainConfig(steps=20_000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999,
                          grad_clip=1.0, amp="bf16", checkpoint_every=2000, log_every=50),
        n_samples=64),
}


def as_steps(value) -> tuple[int, ...]:
    """Step counts from an int, a list, or a string such as "100,50,20" or "[100, 50]" (papermill's ``-p``
    passes lists as strings)."""
    if isinstance(value, str):
        value = [v for v in value.strip("[]() ").split(",") if v.strip()]
    elif isinstance(value, int):
        value = [value]
    try:
        steps = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"step counts must be integers, e.g. [100, 50] or '100,50'; got {value!r}") from None
    if not steps or min(steps) < 1:
        raise ValueError(f"step counts must be positive integers, got {value!r}")
    return steps


def get_profile(name: str, **overrides) -> BasicsProfile:
    """A profile by name; ``train_steps=``, ``n_samples=``, ``ddim_steps=`` ... override single fields
    (``train_<field>`` reaches into the TrainConfig); None keeps the profile's value."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    if overrides.get("ddim_steps") is not None:
        overrides["ddim_steps"] = as_steps(overrides["ddim_steps"])
    p = PROFILES[name]
    train_kw = {k[len("train_"):]: v for k, v in overrides.items() if k.startswith("train_") and v is not None}
    other = {k: v for k, v in overrides.items() if not k.startswith("train_") and v is not None}
    return dataclasses.replace(p, train=dataclasses.replace(p.train, **train_kw), **other)


def default_runs(num_train_timesteps: int, ddim_steps=(100, 50, 20, 10), eta: float = 0.0) -> list[tuple]:
    """DDPM over every training step, then DDIM at each of ``ddim_steps``: (sampler, steps, eta) triples."""
    return [("DDPM", num_train_timesteps, None)] + [("DDIM", n, eta) for n in ddim_steps]


def border_deviation(images: torch.Tensor, border: int = 2) -> float:
    """Mean |x - (-1)| over the 2-pixel frame that zero-padding adds around every 28x28 MNIST digit.
    Real padded digits score exactly 0; a sampler that leaves speckled backgrounds scores higher."""
    frame = torch.ones_like(images[0, 0], dtype=torch.bool)
    frame[border:-border, border:-border] = False
    return (images[..., frame] + 1).abs().mean().item()


def sampling_sweep(model, schedule: Schedule, *, shape: tuple[int, ...], runs: list[tuple], device: torch.device,
                   dtype: torch.dtype = torch.float32, seed: int = 0,
                   progress: bool = True) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Sample one batch per (sampler, steps, eta) in ``runs`` (see `default_runs`), all from the same x_T.

    DDPM runs on the schedule respaced to ``steps``; DDIM likewise with its eta. Returns ({label: samples},
    rows); each row holds sampler, steps, eta, batch, total and per-image seconds (device synchronised),
    the dtype, the speed-up over the first run, and `border_deviation`. The network runs under autocast
    when dtype is not fp32.
    """
    model = model.to(device).eval()
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    samples, rows, seconds_each = {}, [], []
    for name, steps, eta in runs:
        sched = respace(schedule, space_timesteps(schedule.num_train_timesteps, steps))
        kw = {} if eta is None else {"eta": eta}
        sampler = get_sampler(name.lower())
        gen = torch.Generator(device).manual_seed(seed + 1)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out, seconds = timed(lambda: sampler(model, x_T.clone(), sched, generator=gen, progress=progress, **kw),
                                 device)
        seconds_each.append(seconds)
        label = f"{name} {steps}" + ("" if eta is None else f", η={eta:g}")
        samples[label] = out = out.float().cpu()
        rows.append({"sampler": name, "steps": steps, "eta": eta, "batch": shape[0], "seconds": seconds,
                     "seconds_per_image": seconds / shape[0], "dtype": dtype_name(dtype),
                     "border_deviation": round(border_deviation(out), 4)})
    for r, seconds in zip(rows, seconds_each):
        r["speedup"] = round(seconds_each[0] / seconds, 1)
    return samples, rows
