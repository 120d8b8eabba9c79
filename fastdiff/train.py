"""A function-based training loop with exact resume, and checkpoints that survive errors.

Every random draw of training comes from state that the checkpoint stores: a CPU generator for the
batch indices, a generator on the training device for t and the noise, and torch's global RNG (dropout).
So training 2N steps equals N steps + resume + N steps, weight for weight (tested on CPU). An error of any
kind (a bad image, a NaN loss, out of memory, Ctrl-C) saves the last consistent state before it is raised,
and resuming with changed settings says what changed (`fastdiff.checkpoint` holds the file format).

The pieces: `TrainState` (what a run trains and what its checkpoint holds; it loads and writes itself), `resume_from`
and `save` (the checkpoint file), `compute_gradients` and `apply_update` (one step, split where the weights change),
and `train`, the loop that calls them.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_model, save_checkpoint  # noqa: F401  (load_model: public API)
from .checks import check_bool
from .data import check_training_data, get_batch
from .devices import DTYPES
from .diffusion import Schedule, noise_loss
from .files import DiskFullError, file_lock
from .interrupts import GracefulInterrupt, Interrupted  # noqa: F401  (Interrupted: public API)
from .progress import progress_bar
from .registry import model_spec
from .train_config import TrainConfig, lr_at, resume_differences


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# ----------------------------------------------------------------------------------------------- the state

def _process_group() -> tuple[int, int]:
    """(rank, world size) of the initialised `torch.distributed` group, (0, 1) without one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(eq=False)
class TrainState:
    """One training run: what it trains with (settings, schedule, device, DDP wrapper and rank) and what its
    checkpoint holds (weights, EMA, optimizer, AMP scaler, the generators, step, history, evals, sessions)."""
    cfg: TrainConfig
    schedule: Schedule
    device: torch.device
    model: nn.Module
    net: nn.Module                      # what the loss calls: the model, or its DistributedDataParallel wrapper
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    g_data: torch.Generator             # the batch indices (CPU)
    g_noise: torch.Generator            # t and the noise (the training device); dropout uses torch's global RNG
    spec: dict                          # `fastdiff.registry.model_spec` of the model
    rank: int = 0
    world: int = 1
    step: int = 0                       # steps done
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)
    sessions: int = 1                   # calls of `train` that trained this run, this one included
    resumed_from: int | None = None     # the step this call resumed at (None: from scratch)
    last_saved: int | None = None       # the step the checkpoint file holds (None: none written by this run)
    objective: dict | None = None       # what a ``loss_fn`` says it is (``describe()``); None: the noise loss
    loss_fn: object = None              # a ``loss_fn`` with state of its own (``stateful``): saved and restored

    @classmethod
    def start(cls, model: nn.Module, schedule: Schedule, cfg: TrainConfig,
              device: str | torch.device | None = None) -> TrainState:
        """Step 0 of a run: the model on ``device`` (default: where it is), a fresh EMA copy, optimizer and scaler,
        and every generator seeded from ``cfg.seed``."""
        device = torch.device(device) if device is not None else next(model.parameters()).device
        model.to(device).train()
        rank, world = _process_group()
        net = model if world == 1 else nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
        schedule = schedule.to(device)  # q_sample then indexes it in place, with no copy per step
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        g_data = torch.Generator().manual_seed(cfg.seed)
        g_noise = torch.Generator(device).manual_seed(cfg.seed + 1)
        torch.manual_seed(cfg.seed + 2)  # dropout draws from the global RNG
        return cls(cfg, schedule, device, model, net, ema, optimizer, scaler, g_data, g_noise, model_spec(model),
                   rank, world)

    def schedule_state(self) -> dict:
        return {"timesteps": self.schedule.timesteps.cpu(), "alpha_bar": self.schedule.alpha_bar.cpu(),
                "num_train_timesteps": self.schedule.num_train_timesteps}

    def rng_state(self) -> dict:
        rng = {"data": self.g_data.get_state(), "noise": self.g_noise.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def to_checkpoint(self, rng: dict | None = None) -> dict:
        """The checkpoint (`fastdiff.checkpoint`'s format, version 2); ``rng``: generator states to store instead of
        the current ones. A run with a ``loss_fn`` that describes itself also stores that as ``objective``."""
        extra = {} if self.objective is None else {"objective": self.objective}
        if self.loss_fn is not None:
            extra["loss_state"] = self.loss_fn.state_dict()
        return {**extra, "version": 2, "model_spec": self.spec, "train_config": dataclasses.asdict(self.cfg),
                "schedule": self.schedule_state(), "step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng or self.rng_state(), "history": self.history,
                "evals": self.evals, "sessions": self.sessions}

    def load(self, ckpt: dict) -> None:
        """Continue the run ``ckpt`` holds (a checkpoint loaded on the CPU: RNG states must stay there)."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.g_data.set_state(ckpt["rng"]["data"])
        self.g_noise.set_state(ckpt["rng"]["noise"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        if self.loss_fn is not None:                # after the weights: the loss's state may refer to them
            if "loss_state" not in ckpt:
                raise ValueError("the checkpoint holds no state of the loss, which has state of its own (e.g. a "
                                 "target network): it cannot resume exactly; start over (resume=False)")
            self.loss_fn.load_state_dict(ckpt["loss_state"], self.model)
        self.step, self.history, self.last_saved = ckpt["step"], ckpt["history"], ckpt["step"]
        self.evals, self.sessions, self.resumed_from = ckpt.get("evals", []), ckpt.get("sessions", 1) + 1, ckpt["step"]

    def result(self) -> dict:
        """What `train` returns."""
        return {"model": self.model, "ema": self.ema, "step": self.step, "history": self.history, "evals": self.evals,
                "sessions": self.sessions, "resumed_from": self.resumed_from}


# ----------------------------------------------------------------------------------------------- the checkpoint

def resume_from(state: TrainState, checkpoint: Path, on_change: str = "error") -> None:
    """Load ``checkpoint`` into ``state`` and say so. A different model stops; other training settings or schedule
    (`resume_differences`) stop too unless ``on_change="continue"``. A checkpoint that holds more steps than
    ``state.cfg.steps`` warns (for `train`'s caller) that it is returned as it is."""
    ckpt = load_checkpoint(checkpoint)  # on the CPU: RNG states must stay there; weights are copied over
    if ckpt["model_spec"] != state.spec:
        raise ValueError(f"checkpoint {checkpoint} holds a different model ({ckpt['model_spec']['arch']}: "
                         f"{ckpt['model_spec']['config']}); use another path or resume=False to start over")
    diffs = resume_differences(ckpt, state.cfg, state.schedule_state())
    if ckpt.get("objective") != state.objective:
        diffs.append(f"objective: {_brief(ckpt.get('objective'))} in the checkpoint, {_brief(state.objective)} asked")
    if diffs and on_change == "error":
        raise ValueError(f"checkpoint {checkpoint} (step {ckpt['step']}) was trained with other settings: "
                         + "; ".join(diffs) + ". Use the same settings to resume exactly, on_change='continue' "
                         "to go on from there with the new ones, or resume=False (or another path) to start over")
    state.load(ckpt)
    note = f" with changed settings ({'; '.join(diffs)})" if diffs else ""
    print(f"resuming {checkpoint} at step {state.step} of {state.cfg.steps}{note}")
    if state.step > state.cfg.steps:
        warnings.warn(f"checkpoint {checkpoint} already holds {state.step} steps, more than the {state.cfg.steps} "
                      f"asked: returning its model as it is (not retrained, not cut back)", stacklevel=3)


def _brief(objective: dict | None) -> str:
    """An objective (`TrainState.objective`) in a line: the noise loss, or its fields (long values cut)."""
    fields = ", ".join(f"{k}: {str(v)[:16]}" for k, v in (objective or {}).items())
    return "the noise loss" if objective is None else "{" + fields + "}"


def save(state: TrainState, checkpoint: Path | None, rng: dict | None = None) -> None:
    """Write ``state`` to ``checkpoint`` (nothing without one; rank 0 alone under DDP: every rank holds the same
    state), unless its weights hold NaN/inf. ``rng``: the generator states to store (those from before a failed
    step). A full disk says which step the file still holds."""
    if checkpoint is None:
        return
    if state.rank != 0:
        state.last_saved = state.step
        return
    if not all(torch.isfinite(p).all() for p in state.model.parameters()):
        print(f"not saving step {state.step}: the weights hold NaN/inf; {checkpoint} keeps step {state.last_saved}")
        return
    try:
        save_checkpoint(checkpoint, state.to_checkpoint(rng))
    except DiskFullError as e:
        kept = f"it still holds step {state.last_saved}" if state.last_saved is not None else "none was saved before"
        raise DiskFullError(e.errno, f"checkpoint not saved at step {state.step} ({kept}): {e.strerror}") from e
    state.last_saved = state.step


def _save_on_error(state: TrainState, checkpoint: Path | None, error: BaseException, mid_step: bool,
                   rng_before: dict | None) -> None:
    """Before ``error`` propagates, save the last consistent state and say where training stopped: between steps,
    the state as it is; inside a step before the update, the state from before it (``rng_before``); after the
    update, nothing (the checkpoint keeps its step). A full disk saves nothing more."""
    what = (f"interrupted ({error.signal_name})" if isinstance(error, Interrupted) else "interrupted"
            if isinstance(error, KeyboardInterrupt) else f"stopped by {type(error).__name__}")
    step = state.step
    if checkpoint is None or isinstance(error, DiskFullError):
        pass
    elif not mid_step:
        save(state, checkpoint)
        print(f"{what} after step {step}; checkpoint saved to {checkpoint} (call train again to resume)")
    elif rng_before is not None:   # the step had not touched the weights: save the state from before it
        save(state, checkpoint, rng_before)
        print(f"{what} inside step {step + 1}; the state after step {step} is saved to {checkpoint} "
              f"(call train again to resume: step {step + 1} is redone)")
    else:
        print(f"{what} inside step {step + 1}, after the weights changed; {checkpoint} keeps step {state.last_saved}")


# ----------------------------------------------------------------------------------------------- one step

def _rows(value, n: int, lo: int, hi: int):
    """This rank's rows of a per-sample tensor of the global batch; anything else (a shift, a scalar k) as it is."""
    return value[lo:hi] if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == n else value


def _global_mean(loss: torch.Tensor) -> float:
    import torch.distributed as dist
    total = loss.detach().float().clone()
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()


def compute_gradients(state: TrainState, data, timesteps=None, loss_fn=None) -> float:
    """Step ``state.step + 1`` up to the update: its LR, this rank's rows of the global batch, the loss (returned:
    the global batch's; ``loss_fn`` in `noise_loss`'s signature replaces it) and its (clipped) gradients. The
    weights are untouched; a non-finite loss stops here."""
    cfg, device, g_noise = state.cfg, state.device, state.g_noise
    for group in state.optimizer.param_groups:
        group["lr"] = lr_at(cfg, state.step)
    # the global batch's draws, on every rank alike; this rank takes rows lo:hi (all of them alone)
    n, lo, hi = cfg.batch_size * state.world, cfg.batch_size * state.rank, cfg.batch_size * (state.rank + 1)
    batch = get_batch(data, torch.randint(len(data), (n,), generator=state.g_data)[lo:hi])
    cond = {}
    if isinstance(batch, dict):
        cond = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "x0"}
        batch = batch["x0"]
    x0 = batch.to(device, non_blocking=True)
    i, noise = None, None
    if timesteps is not None:
        i, extra = timesteps(n, g_noise, device)
        cond = {**cond, **{k: _rows(v, n, lo, hi) for k, v in extra.items()}}
    if state.world > 1:
        if i is None:
            i = torch.randint(len(state.schedule), (n,), device=device, generator=g_noise)
        noise = torch.randn((n, *x0.shape[1:]), device=device, dtype=x0.dtype, generator=g_noise)[lo:hi]
    i = None if i is None else i[lo:hi]
    amp_dtype = None if cfg.amp == "fp32" else DTYPES[cfg.amp]
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = (loss_fn or noise_loss)(state.net, x0, state.schedule, loss=cfg.loss, cond=cond, i=i, noise=noise,
                                       generator=g_noise)
    value = loss.item() if state.world == 1 else _global_mean(loss)  # the one host sync of the step
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {state.step + 1}: lower the learning rate, keep "
                                 f"grad_clip on, or check the data for NaN/inf")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if cfg.grad_clip:
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    return value


def apply_update(state: TrainState) -> None:
    """The optimizer's and the EMA's update of step ``state.step + 1``, which is then done."""
    cfg, step = state.cfg, state.step
    state.scaler.step(state.optimizer)
    state.scaler.update()
    decay = min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay
    ema_update(state.ema, state.model, decay)   # looked up at each call (tests wrap it)
    state.step += 1


class _Stopwatch:
    """Training seconds, cumulative over resumes (it starts at ``seconds``); time inside `paused()` is not counted."""

    def __init__(self, seconds: float = 0.0):
        self.start = time.perf_counter() - seconds

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    @contextlib.contextmanager
    def paused(self):
        """The clock stands still inside; yields the seconds until then."""
        began = time.perf_counter()
        try:
            yield began - self.start
        finally:
            self.start += time.perf_counter() - began


def run_evaluation(state: TrainState, evaluate, clock: _Stopwatch) -> None:
    """Append {"step", "seconds", **evaluate(ema)} to ``state.evals``; the evaluation draws from forked RNGs and its
    time is not training time, so it changes neither the weights nor the clock."""
    devices = [state.device] if state.device.type == "cuda" else []
    with clock.paused() as trained_seconds, torch.random.fork_rng(devices=devices):
        result = evaluate(state.ema)
    state.evals.append({"step": state.step, "seconds": round(trained_seconds, 3), **result})


# ----------------------------------------------------------------------------------------------- the loop

def train(model: nn.Module, data, schedule: Schedule, cfg: TrainConfig, *, checkpoint: str | Path | None = None,
          resume: bool = True, on_change: str = "error", device: str | torch.device | None = None,
          progress: bool = True, callback=None, timesteps=None, evaluate=None, evaluate_every: int = 0,
          until: int | None = None, loss_fn=None) -> dict:
    """Train ``model`` to predict the noise (DDPM Alg. 1) on ``data`` (a tensor of images, or a dataset of
    images or of {"x0": ..., **cond} dicts). Resumes from ``checkpoint`` when it exists and ``resume``.

    Resuming says so, and checks the stored run against this call: a different model or schedule, or other
    training settings (lr, batch size, seed, loss ...; not ``steps``, ``checkpoint_every``, ``log_every``) stop
    with the list of differences, unless ``on_change="continue"`` (go on with the new settings; the run then
    differs from a straight one). A checkpoint that already holds more steps than asked is returned as it is,
    with a warning. Any error during training (Ctrl-C, a bad image, a NaN loss, out of memory) first saves the
    last consistent state (the previous step's, when the error came inside a step), so nothing done is lost.

    ``until`` stops at that step (a checkpoint is written) while ``cfg.steps`` keeps setting the LR schedule, so a
    long run can be trained in pieces that resume exactly. ``callback(step, loss)`` runs after every step.
    ``timesteps(batch_size, generator, device) -> (i, kwargs)`` replaces the uniform draw of timestep indices and
    adds keyword arguments for the model (layer skipping's ``k``: `fastdiff.methods.layer_skipping.timestep_sampler`);
    it must draw from ``generator`` so that resume stays exact. ``evaluate(ema) -> dict`` (e.g. validation PSNR) runs
    on the EMA model at step 0 and every ``evaluate_every`` steps; its rows {"step", "seconds", **result} are stored
    in the checkpoint, so a resumed run continues the curve. It runs under `torch.random.fork_rng` and its time is not
    counted as training time, so training with or without it gives the same weights.
    ``loss_fn(net, x0, schedule, *, loss, cond, i, noise, generator)`` replaces the noise loss (`noise_loss`, whose
    signature it shares; progressive distillation's: `fastdiff.methods.progressive_distillation.DistillationLoss`);
    it must draw from ``generator`` (or take ``i`` and ``noise`` when given) so that resume stays exact. If it has
    ``describe() -> dict`` (e.g. its teacher's digest), that is stored in the checkpoint, and resuming with another
    one is a change like other settings. If its ``stateful`` is true, its ``state_dict()`` (e.g. a target
    network: `fastdiff.methods.consistency_distillation` with mu > 0) is saved with every checkpoint and
    restored by its ``load_state_dict(state, model)`` after the model's weights on resume, so that resume stays
    exact.
    Under ``torchrun`` (a `torch.distributed` process group is initialised: gloo on the CPU, nccl on CUDA) every
    rank trains a `DistributedDataParallel` copy on its own ``cfg.batch_size`` samples of one global batch of
    ``world_size * batch_size``: the indices, timesteps and noise of the global batch are drawn from the same
    generators on every rank and each rank takes its slice, so N processes with batch B make the update of one
    process with batch N B (tested with gloo; dropout draws per rank, so with dropout they differ), and resume
    stays exact. Rank 0 alone writes the checkpoint (of the model itself, not the wrapper) and shows progress;
    the logged loss is the global batch's.
    Returns {"model", "ema", "step", "history", "evals", "sessions", "resumed_from"}; history holds {"step",
    "loss", "lr", "seconds"} every ``log_every`` steps; ``resumed_from`` is the step the run resumed at (None:
    trained from scratch in this call).
    """
    if on_change not in ("error", "continue"):
        raise ValueError(f"on_change must be 'error' or 'continue', got {on_change!r}")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < 1):
        raise ValueError(f"until must be a positive integer step, got {until!r}")
    target = cfg.steps if until is None else min(until, cfg.steps)
    if len(data) == 0:
        raise ValueError("the training data is empty")
    resume = check_bool("resume", resume)               # papermill's -p resume false arrives as the text "false"
    check_training_data(data, next(model.parameters()).dtype)   # once: dtype and [-1, 1], on a sample of the data
    state = TrainState.start(model, schedule, cfg, device)
    describe = getattr(loss_fn, "describe", None)
    state.objective = describe() if describe is not None else None
    if getattr(loss_fn, "stateful", False):
        state.loss_fn = loss_fn                 # its state (a target network) goes into every checkpoint
    checkpoint = Path(checkpoint) if checkpoint else None
    # one process trains a checkpoint at a time: a second one stops here with the holder's pid (not after
    # deleting the first one's temporaries and resuming from an older step)
    lock = file_lock(checkpoint, what=f"the checkpoint {checkpoint}") if checkpoint is not None and state.rank == 0 \
        else contextlib.nullcontext()
    with lock:
        if checkpoint is not None and resume and checkpoint.exists():
            resume_from(state, checkpoint, on_change)
            if state.step >= target:            # nothing to train: not a session of its own
                model.eval()
                return {**state.result(), "sessions": state.sessions - 1}
        bar = progress_bar(total=cfg.steps, initial=state.step, disable=not progress or state.rank != 0,
                           desc="train" if state.world == 1 else f"train ({state.world} processes)")
        clock = _Stopwatch(state.history[-1]["seconds"] if state.history else 0.0)
        if evaluate is not None and not any(e["step"] == state.step for e in state.evals):
            run_evaluation(state, evaluate, clock)
        mid_step, rng_before = False, None
        with GracefulInterrupt() as interrupt:
            try:
                while state.step < target:
                    mid_step, rng_before = True, state.rng_state()  # until the update an error saves this state
                    value = compute_gradients(state, data, timesteps, loss_fn)
                    rng_before = None                               # from here an error keeps the last checkpoint
                    apply_update(state)
                    mid_step, step = False, state.step
                    if step % cfg.log_every == 0 or step == cfg.steps:
                        state.history.append({"step": step, "loss": value, "lr": state.optimizer.param_groups[0]["lr"],
                                              "seconds": clock.seconds()})
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                    if evaluate is not None and evaluate_every and (step % evaluate_every == 0 or step == cfg.steps):
                        run_evaluation(state, evaluate, clock)
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                        save(state, checkpoint)
                    if callback is not None:
                        callback(step, value)
                    if interrupt.requested:
                        raise Interrupted(interrupt.signum)
            except BaseException as error:
                _save_on_error(state, checkpoint, error, mid_step, rng_before)
                raise
            finally:
                bar.close()
        if state.last_saved != state.step:
            save(state, checkpoint)
        if state.world > 1:
            import torch.distributed as dist
            dist.barrier()          # rank 0's checkpoint is on disk before any rank goes on (and may resume from it)
        model.eval()
        return state.result()
