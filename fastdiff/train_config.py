"""What a training run is asked to do, apart from the loop that does it: `TrainConfig` (the settings stored in every
checkpoint), `lr_at` (its learning-rate schedule: linear warm-up, then cosine decay) and `resume_differences`
(what resuming a stored run with these settings would change). `fastdiff.train` imports them."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .devices import DTYPES


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    optimizer: str = "adam"            # "adam" | "adamw"
    weight_decay: float = 0.0
    warmup_steps: int = 0              # linear LR warm-up
    cosine_decay: bool = False         # cosine decay to min_lr_ratio * lr after warm-up
    min_lr_ratio: float = 0.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True            # decay_t = min(ema_decay, (1 + t) / (10 + t))
    grad_clip: float | None = 1.0      # max global gradient norm
    amp: str = "fp32"                  # "fp32" | "bf16" | "fp16" (autocast; fp32 runs without it)
    loss: str = "l2"                   # "l2" | "l1" on the noise
    checkpoint_every: int = 500        # also at the end, on Ctrl-C and on any error; 0: only then
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        checks = {"optimizer": ("adam", "adamw"), "amp": tuple(DTYPES), "loss": ("l1", "l2")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        for name, low in (("steps", 1), ("batch_size", 1), ("warmup_steps", 0), ("checkpoint_every", 0),
                          ("log_every", 1), ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, got {value!r}")
        for name, low, high in (("lr", 0.0, None), ("weight_decay", 0.0, None), ("min_lr_ratio", 0.0, 1.0),
                                ("ema_decay", 0.0, 1.0)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
                value >= low and (high is None or value <= high) and (name != "lr" or value > 0)
            if not ok:
                bound = f"in [{low}, {high}]" if high is not None else ("> 0" if name == "lr" else f">= {low}")
                raise ValueError(f"TrainConfig.{name} must be a number {bound}, got {value!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"TrainConfig.grad_clip must be None or a number > 0, got {self.grad_clip!r}")


# settings that do not change the arithmetic of training: a resume may change them freely
_FREE_SETTINGS = ("steps", "checkpoint_every", "log_every")


def lr_at(cfg: TrainConfig, step: int) -> float:
    scale = 1.0
    if cfg.warmup_steps:
        scale = min(1.0, (step + 1) / cfg.warmup_steps)
    if cfg.cosine_decay and step >= cfg.warmup_steps:
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        scale = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * scale


def resume_differences(stored: dict, cfg: TrainConfig, schedule_state: dict) -> list[str]:
    """What a resume would change, one line each (empty: the run continues as a straight run would)."""
    diffs = []
    now = dataclasses.asdict(cfg)
    for key in sorted(set(stored["train_config"]) | set(now)):
        if key in _FREE_SETTINGS:
            continue
        a, b = stored["train_config"].get(key, "<absent>"), now.get(key, "<absent>")
        if a != b:
            diffs.append(f"{key}: {a!r} in the checkpoint, {b!r} asked")
    old = stored.get("schedule", {})
    if isinstance(old.get("alpha_bar"), torch.Tensor):
        same = old["alpha_bar"].shape == schedule_state["alpha_bar"].shape and \
            torch.equal(old["alpha_bar"], schedule_state["alpha_bar"]) and \
            torch.equal(old["timesteps"], schedule_state["timesteps"])
        if not same:
            diffs.append(f"schedule: {len(old['alpha_bar'])} steps in the checkpoint, "
                         f"{len(schedule_state['alpha_bar'])} asked (or other alpha_bar values)")
    if cfg.cosine_decay and stored["train_config"].get("steps") != cfg.steps:
        diffs.append(f"steps: {stored['train_config'].get('steps')} in the checkpoint, {cfg.steps} asked, which "
                     f"moves the cosine LR schedule")
    return diffs
