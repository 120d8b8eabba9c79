"""A function-based training loop with exact resume.

Every random draw of training comes from state that the checkpoint stores: a CPU generator for the
batch indices, a generator on the training device for t and the noise, and torch's global RNG (dropout).
So training 2N steps equals N steps + resume + N steps, weight for weight (tested on CPU).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import get_batch
from .diffusion import Schedule, noise_loss
from .unet import ARCHITECTURES
from .utils import atomic_write, progress_bar

CHECKPOINT_VERSION = 1


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
    amp: str = "none"                  # "none" | "bf16" | "fp16" (autocast)
    loss: str = "l2"                   # "l2" | "l1" on the noise
    checkpoint_every: int = 0          # 0: only at the end and on interrupt
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        checks = {"optimizer": ("adam", "adamw"), "amp": ("none", "bf16", "fp16"), "loss": ("l1", "l2")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")


def lr_at(cfg: TrainConfig, step: int) -> float:
    scale = 1.0
    if cfg.warmup_steps:
        scale = min(1.0, (step + 1) / cfg.warmup_steps)
    if cfg.cosine_decay and step >= cfg.warmup_steps:
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        scale = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * scale


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# ----------------------------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write atomically (temporary file, fsync, rename): a crash never leaves half a checkpoint."""
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} is not a fastdiff checkpoint of version {CHECKPOINT_VERSION}")
    return ckpt


def model_class(ckpt: dict) -> type[nn.Module]:
    """The class a checkpoint's model is rebuilt with: ``arch`` in ``module`` (older checkpoints: the U-Nets)."""
    if "module" not in ckpt:
        return ARCHITECTURES[ckpt["arch"]]
    module = importlib.import_module(ckpt["module"])
    if not ckpt["module"].startswith("fastdiff.") or not hasattr(module, ckpt["arch"]):
        raise ValueError(f"checkpoint names an unknown model class {ckpt['module']}.{ckpt['arch']}")
    return getattr(module, ckpt["arch"])


def load_model(path: str | Path, *, ema: bool = True, map_location="cpu") -> nn.Module:
    """Rebuild the model stored in a checkpoint from its config (EMA weights by default), in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    model = model_class(ckpt).from_config(ckpt["model_config"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.eval()


class _GracefulInterrupt:
    """First Ctrl-C (or a Jupyter kernel interrupt): finish the step, save, then raise KeyboardInterrupt.
    A second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


# ----------------------------------------------------------------------------------------------- the loop

def train(model: nn.Module, data, schedule: Schedule, cfg: TrainConfig, *, checkpoint: str | Path | None = None,
          resume: bool = True, device: str | torch.device | None = None, progress: bool = True,
          callback=None, timesteps=None, evaluate=None, evaluate_every: int = 0) -> dict:
    """Train ``model`` to predict the noise (DDPM Alg. 1) on ``data`` (a tensor of images, or a dataset of
    images or of {"x0": ..., **cond} dicts). Resumes from ``checkpoint`` when it exists and ``resume``.

    ``callback(step, loss)`` runs after every step. ``timesteps(batch_size, generator, device) -> (i, kwargs)``
    replaces the uniform draw of timestep indices and adds keyword arguments for the model (layer skipping's
    ``k``: `fastdiff.skipping.timestep_sampler`); it must draw from ``generator`` so that resume stays exact.
    ``evaluate(ema) -> dict`` (e.g. validation PSNR) runs on the EMA model at step 0 and every ``evaluate_every``
    steps; its rows {"step", "seconds", **result} are stored in the checkpoint, so a resumed run continues the
    curve. It runs under `torch.random.fork_rng` and its time is not counted as training time, so training with
    or without it gives the same weights.
    Returns {"model", "ema", "step", "history", "evals"}; history holds {"step", "loss", "lr", "seconds"} every
    ``log_every`` steps.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    schedule = schedule.to(device)  # q_sample then indexes it in place, with no copy per step
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)

    g_data = torch.Generator().manual_seed(cfg.seed)
    g_noise = torch.Generator(device).manual_seed(cfg.seed + 1)
    torch.manual_seed(cfg.seed + 2)  # dropout draws from the global RNG
    step, history, evals, last_saved = 0, [], [], None
    checkpoint = Path(checkpoint) if checkpoint else None

    def payload() -> dict:
        rng = {"data": g_data.get_state(), "noise": g_noise.get_state(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        return {"version": CHECKPOINT_VERSION, "arch": type(model).__name__, "module": type(model).__module__,
                "model_config": model.config.to_dict(), "train_config": dataclasses.asdict(cfg),
                "schedule": {"num_train_timesteps": schedule.num_train_timesteps, "length": len(schedule)},
                "step": step, "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng, "history": history,
                "evals": evals}

    if checkpoint is not None and resume and checkpoint.exists():
        ckpt = load_checkpoint(checkpoint)  # on the CPU: RNG states must stay there; weights are copied over
        if ckpt["model_config"] != model.config.to_dict() or ckpt["arch"] != type(model).__name__:
            raise ValueError(f"checkpoint {checkpoint} holds a different model ({ckpt['arch']}, "
                             f"{ckpt['model_config']}); use another path or resume=False")
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        g_data.set_state(ckpt["rng"]["data"])
        g_noise.set_state(ckpt["rng"]["noise"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], device)
        step, history, last_saved = ckpt["step"], ckpt["history"], ckpt["step"]
        evals = ckpt.get("evals", [])

    def save():
        nonlocal last_saved
        if checkpoint is not None:
            save_checkpoint(checkpoint, payload())
            last_saved = step

    bar = progress_bar(total=cfg.steps, initial=step, desc="train", disable=not progress)
    start = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)  # cumulative over resumes

    def run_evaluation():
        nonlocal start
        began = time.perf_counter()
        trained_seconds = began - start
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            result = evaluate(ema)
        start += time.perf_counter() - began  # evaluation is not training time
        evals.append({"step": step, "seconds": round(trained_seconds, 3), **result})

    if evaluate is not None and not any(e["step"] == step for e in evals):
        run_evaluation()
    mid_step = False  # True while model/optimizer/EMA may be half-updated
    with _GracefulInterrupt() as interrupt:
        try:
            while step < cfg.steps:
                mid_step = True
                for group in opt.param_groups:
                    group["lr"] = lr_at(cfg, step)
                batch = get_batch(data, torch.randint(len(data), (cfg.batch_size,), generator=g_data))
                cond = {}
                if isinstance(batch, dict):
                    cond = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "x0"}
                    batch = batch["x0"]
                x0 = batch.to(device, non_blocking=True)
                i = None
                if timesteps is not None:
                    i, extra = timesteps(x0.shape[0], g_noise, device)
                    cond = {**cond, **extra}
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = noise_loss(model, x0, schedule, loss=cfg.loss, cond=cond, i=i, generator=g_noise)
                value = loss.item()  # the one host sync of the step
                if not math.isfinite(value):
                    kept = f"the last good checkpoint ({checkpoint}, step {last_saved}) is kept" \
                        if last_saved is not None else "no checkpoint had been written"
                    raise FloatingPointError(f"loss is {value} at step {step + 1}; training stopped and {kept}")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                decay = min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay
                ema_update(ema, model, decay)
                step += 1
                mid_step = False

                if step % cfg.log_every == 0 or step == cfg.steps:
                    history.append({"step": step, "loss": value, "lr": opt.param_groups[0]["lr"],
                                    "seconds": time.perf_counter() - start})
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if evaluate is not None and evaluate_every and (step % evaluate_every == 0 or step == cfg.steps):
                    run_evaluation()
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    save()
                if callback is not None:
                    callback(step, value)
                if interrupt.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if checkpoint is not None and not mid_step:
                save()
                print(f"interrupted at step {step}; checkpoint saved to {checkpoint} (call train again to resume)")
            elif checkpoint is not None:
                print(f"interrupted inside step {step + 1}; the checkpoint of step {last_saved} is kept")
            raise
        finally:
            bar.close()
    if last_saved != step:
        save()
    model.eval()
    return {"model": model, "ema": ema, "step": step, "history": history, "evals": evals}
