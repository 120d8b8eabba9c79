"""fastdiff: reproductions of studies on making diffusion models faster.

Modules: `diffusion` (schedules, forward process, loss), `sampling` (DDPM, DDIM), `unet` (the base U-Net and
its presets), `data` (offline and torchvision datasets), `train` (resumable training), `runner`
(`fastdiff reproduce`), and one module per notebook (`basics` for 00).
"""
__version__ = "0.1.0"
