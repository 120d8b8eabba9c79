"""Consistency distillation (Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models", Alg. 2, CD): a student
f_theta(z_t, t) learns to map every point of a teacher's probability-flow ODE trajectory to the trajectory's clean
end, so that one evaluation at pure noise is a sample (Alg. 1 adds optional refinement steps).

Notation as in `fastdiff.methods.progressive_distillation`: alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t),
z_t = alpha_t x + sigma_t eps. The consistency function is the student's x-prediction,

    f_theta(z_t, t) = x_hat(z_t, t) = alpha_t z_t - sigma_t v_theta(z_t, t)   (= (z_t - sigma_t eps_hat) / alpha_t)

with the network's output read as v (`VPrediction`, `v_student`): well conditioned at t = T - 1, where
1 / alpha_t is 156 on the linear schedule. The student stays a ``model(x, t) -> eps`` like every model here; its
one-step sample ``sampler_call(student, student_schedule(schedule, 1), DDIM, 1, x_T)`` is f(x_T, T - 1) clipped to
[-1, 1] (tested), and `consistency_sample` is Alg. 1 for 1 or more steps.

Discretisation. The N-point grid t_1 < ... < t_N is the trailing grid `student_timesteps(T, N)` (t_N = T - 1), and
t_0 is the clean end (alpha = 1, sigma = 0), where f(x, t_0) = x holds exactly: the paper's boundary condition
f(x, eps) = x, here with eps at the clean end instead of a skip parameterisation. Per training image n is uniform
in 0..N-1, z_{t_{n+1}} = alpha x + sigma eps, and ONE DDIM step (eta = 0) of the teacher lands on z_hat_{t_n} --
the "DDIM ODE solver" of the paper's App. (the first-order exponential integrator of the VP PF-ODE; the paper's
best CIFAR-10 result uses Heun with N = 18). The step is that of `fastdiff.sampling.sample_ddim`, x_0 clipped to
[-1, 1] by default (tested to 1e-10 in float64). The target is f_{theta^-}(z_hat, t_n) under no_grad, and at
n = 0 the boundary: z_hat itself (the teacher's clipped x_0 prediction from z_{t_1}). We use N = 18 (the paper's
CIFAR-10 value): a DDIM step of ~56 timesteps is accurate enough on 16x16 digits, and fewer points let the
consistency propagate from t_0 to T - 1 in fewer training steps.

Distance. The paper's best CD metric is LPIPS, whose AlexNet weights cannot be downloaded here, so the loss is
d(x, y) = mean of (x - y)^2 over pixels ("l2", the paper's L2 ablation; lambda(t_n) = 1), or the pseudo-Huber
sqrt(|x - y|^2 + c^2) - c, c = 0.00054 sqrt(dim) (Song & Dhariwal 2023, "Improved Techniques for Training
Consistency Models", Sec. 3.3). We keep L2 by default: pseudo-Huber's gain in that paper is robustness to the
noisy single-sample targets of consistency *training*; distillation's target is a deterministic teacher step.

Target network. theta^- <- stopgrad(mu theta^- + (1 - mu) theta) after each update (Alg. 2). The paper's CIFAR-10 CD
used mu = 0, theta^- = stopgrad(theta) (its released CIFAR-10 configuration, ``training.stopgrad``, with no target
EMA), and mu = 0.95 on ImageNet 64 and LSUN. `fastdiff.train.train` does not pass its EMA (kept for evaluation and
export) to the loss, so a target network with mu > 0 lives in the loss. mu = 0 (theta^- = stopgrad(theta), which
Song & Dhariwal 2023, Sec. 3.2, argue for in consistency training: with mu > 0 the objective's N -> infinity limit
is not consistency matching) needs no state: the loss is a function of the weights the checkpoint holds, and resume
is exact (tested); it is the default and the first recipe's (``distill/cd``, the CIFAR-10 setting);
``distill/cd-mu95`` trains with the ImageNet 64 setting, mu = 0.95, as an ablation. With mu > 0 the loss keeps
theta^- (a frozen copy of the student made at the first call, as Alg. 2's theta^- <- theta) and folds in the
student's new weights at the next call after each optimizer step (the weights' version counters say when they
changed); its ``stateful`` is then true, so `fastdiff.train.train` saves its `state_dict` with every checkpoint and
calls `load_state_dict(state, model)` after loading the model's weights: resume stays exact (tested, between steps
and inside one).
"""
from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch import nn

from ..checkpoint import digest
from ..diffusion import Schedule, check_positions, extract
from ..registry import model_spec
from ..sampling import Sampler, prepare_condition
from .progressive_distillation import grid_positions, student_timesteps, teacher_steps

METRICS = ("l2", "pseudo-huber")


# ------------------------------------------------------------------------------------- the consistency function

def consistency_function(model, z: torch.Tensor, i: torch.Tensor, schedule: Schedule, *,
                         cond: dict | None = None) -> torch.Tensor:
    """f(z_t, t) = x_hat = (z_t - sigma_t eps_hat) / alpha_t of ``model(z, t) -> eps`` at positions ``i`` of
    ``schedule`` (for a `VPrediction` this is alpha_t z_t - sigma_t v). fp32 arithmetic (fp64 for an fp64 ``z``)."""
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    i = i.to(z.device)
    a = schedule.alpha_bar.to(z.device)[i].reshape(-1, *([1] * (z.ndim - 1)))          # float64
    eps = model(z, schedule.timesteps.to(z.device)[i], **(cond or {}))
    return (z.to(dtype) - (1 - a).sqrt().to(dtype) * eps.to(dtype)) / a.sqrt().to(dtype)


def teacher_ode_step(teacher, z: torch.Tensor, schedule: Schedule, n: torch.Tensor, *, grid: torch.Tensor,
                     cond: dict | None = None, clip_x0: bool = True) -> torch.Tensor:
    """z_hat_{t_{n-1}}: one DDIM step (eta = 0) of ``teacher`` from ``z`` at grid index ``n`` (0-based: grid[n] is
    t_{n+1}) to index n - 1, or to the clean end from index 0 (`teacher_steps`, the sampler's step)."""
    return teacher_steps(teacher, z, schedule, n, 1, grid=grid, cond=cond, clip_x0=clip_x0)


@torch.no_grad()
def consistency_target(teacher, target_net, z: torch.Tensor, schedule: Schedule, n: torch.Tensor, *,
                       grid: torch.Tensor, cond: dict | None = None, clip_x0: bool = True) -> torch.Tensor:
    """Alg. 2's target for z = z_{t_{n+1}} at grid index ``n`` (0-based): f_{theta^-}(z_hat_{t_n}, t_n) of
    ``target_net`` (theta^-) after one teacher ODE step; from t_1 (n = 0) the clean end's f(x, t_0) = x, z_hat
    itself (the teacher's x_0 prediction). fp32 (fp64 for an fp64 ``z``)."""
    grid = grid.to(z.device)
    n = n.to(z.device)
    # 1. one teacher ODE (DDIM) step t_{n+1} -> t_n (the clean end from t_1)
    z_hat = teacher_ode_step(teacher, z, schedule, n, grid=grid, cond=cond, clip_x0=clip_x0)
    # 2. the target f_{theta^-}(z_hat, t_n); at the clean end z_hat itself (the boundary condition)
    f_minus = consistency_function(target_net, z_hat, grid[(n - 1).clamp(min=0)], schedule, cond=cond)
    boundary = (n == 0).reshape(-1, *([1] * (z.ndim - 1)))
    return torch.where(boundary, z_hat.to(f_minus.dtype), f_minus)


# ----------------------------------------------------------------------------------------------- sampling

def consistency_timesteps(num_timesteps: int, grid_steps: int, sample_steps: int) -> list[int]:
    """The ``sample_steps`` times of multistep sampling, descending, on the ``grid_steps``-point training grid (f is
    trained only there): its nested trailing subgrid, so 1 step is [T - 1] and 2 steps are [T - 1, the grid's
    middle] (499 for T = 1000, N = 18; the paper searched this time, greedily, on CIFAR-10)."""
    grid = student_timesteps(num_timesteps, grid_steps)
    if isinstance(sample_steps, bool) or not isinstance(sample_steps, int) or not 1 <= sample_steps <= grid_steps:
        raise ValueError(f"sample_steps must be an integer in 1..{grid_steps} (the grid's points), got "
                         f"{sample_steps!r}")
    return [grid[j] for j in reversed(student_timesteps(grid_steps, sample_steps))]


@torch.no_grad()
def consistency_sample(model, schedule: Schedule, x_T: torch.Tensor, timesteps, *,
                       generator: torch.Generator | None = None, cond: dict | None = None,
                       clip_x0: bool = True) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1): x = f(x_T, tau_1); for each further tau,
    z = alpha_tau x + sigma_tau * fresh noise (from ``generator``), x = f(z, tau). ``timesteps``: strictly
    decreasing positions in ``schedule`` (`consistency_timesteps`); ``x_T`` is taken as z at the first. Each x is
    clipped to [-1, 1] when ``clip_x0`` (as the DDIM sampler clips x_0; Alg. 1 clips the output to the data range)."""
    ts = [int(t) for t in timesteps]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be a non-empty, strictly decreasing list of positions, got {ts}")
    check_positions(schedule, torch.tensor(ts))
    x = None
    for t in ts:
        i = torch.full((x_T.shape[0],), t, dtype=torch.long, device=x_T.device)
        if x is None:
            z = x_T
        else:
            a = extract(schedule.alpha_bar, i, x)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            z = a.sqrt() * x + (1 - a).sqrt() * noise
        x = consistency_function(model, z, i, schedule, cond=cond).to(x_T.dtype)
        if clip_x0:
            x = x.clamp(-1, 1)
    return x


def sample_consistency(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None,
                       cond: dict | None = None, generator: torch.Generator | None = None, callback=None,
                       progress: bool = True, grid_steps: int = 18, clip_x0: bool = True) -> torch.Tensor:
    """`consistency_sample` in the samplers' shared signature (`fastdiff.sampling`), so that a map point or a
    notebook samples a consistency model like any other: ``steps`` (default 1) times of `consistency_timesteps` on
    the ``grid_steps``-point training grid of ``schedule``, the *training* schedule (not respaced: the times are its
    positions). One sampling run: `prepare_condition` is called once. ``callback`` and ``progress`` are accepted
    and unused (at most a few steps)."""
    del callback, progress
    if len(schedule) != schedule.num_train_timesteps:
        raise ValueError(f"multistep consistency sampling takes the training schedule (its times are positions on "
                         f"it), got one respaced to {len(schedule)} of {schedule.num_train_timesteps} steps")
    ts = consistency_timesteps(len(schedule), grid_steps, 1 if steps is None else steps)
    cond = prepare_condition(model, x, cond)
    return consistency_sample(model, schedule, x, ts, generator=generator, cond=cond, clip_x0=clip_x0)


CONSISTENCY = Sampler("consistency", "consistency (Alg. 1)", sample_consistency)


# ----------------------------------------------------------------------------------------------- the loss

class ConsistencyDistillationLoss:
    """Consistency distillation (Alg. 2) on the training ``schedule``, called like `fastdiff.diffusion.noise_loss`
    (so `fastdiff.train.train` takes it as ``loss_fn``, with ``timesteps=loss.timesteps``): ``loss(model, x0,
    schedule, *, loss="l2", cond=None, i=None, noise=None, generator=None)``. ``i`` holds positions on the
    ``steps``-point grid (t_{n+1}; `timesteps` draws them uniformly); the loss is the batch mean of
    d(f_theta(z_{t_{n+1}}), target) with the target f_{theta^-}(z_hat_{t_n}, t_n), or z_hat at the clean end.

    ``teacher``: an eps-predictor, never trained. ``steps``: N >= 2 grid points. ``target_decay``: mu in [0, 1)
    (module docstring: 0, theta^- = stopgrad(theta), keeps resume exact). ``metric``: "l2" or "pseudo-huber".
    ``clip_x0``: the teacher's DDIM step clips x_0 to [-1, 1], as the project's DDIM sampler does. theta^- runs in
    eval mode (no dropout: a deterministic target; the digits teacher has none anyway)."""

    def __init__(self, teacher: nn.Module, schedule: Schedule, *, steps: int = 18, target_decay: float = 0.0,
                 metric: str = "l2", clip_x0: bool = True):
        if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= len(schedule):
            raise ValueError(f"steps (the grid's points N) must be an integer in 2..{len(schedule)}, got {steps!r}; "
                             f"with one point there is no ODE step to be consistent across")
        if isinstance(target_decay, bool) or not isinstance(target_decay, (int, float)) or \
                not math.isfinite(target_decay) or not 0 <= target_decay < 1:
            raise ValueError(f"target_decay (mu, the target network's EMA decay) must be a number in [0, 1), got "
                             f"{target_decay!r}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
        self.grid = torch.tensor(student_timesteps(len(schedule), steps))
        self.teacher = teacher.eval()             # run under no_grad (`teacher_steps`): it never trains
        self.steps, self.target_decay, self.metric, self.clip_x0 = steps, float(target_decay), metric, clip_x0
        self.num_timesteps = len(schedule)
        self.target: nn.Module | None = None      # theta^- (mu > 0 only), made from the student at the first call
        self._seen: int | None = None             # the student's weight versions at the last target update
        self._student: nn.Module | None = None

    def timesteps(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        """`fastdiff.train.train`'s ``timesteps`` hook: ``n`` positions uniform over the grid."""
        k = torch.randint(self.steps, (n,), device=device, generator=generator)
        return self.grid.to(device)[k], {}

    def describe(self) -> dict:
        """What a checkpoint records of this loss (resuming with another teacher, grid or mu is a change)."""
        return {"method": "consistency distillation", "grid_steps": self.steps, "target_decay": self.target_decay,
                "metric": self.metric, "clip_x0": self.clip_x0, "teacher_spec": model_spec(self.teacher),
                "teacher_weights": digest(self.teacher.state_dict())}

    # the target network theta^- (mu > 0)
    @property
    def stateful(self) -> bool:
        """Whether the loss has state a checkpoint must carry (theta^-, when mu > 0)."""
        return self.target_decay > 0

    def state_dict(self) -> dict:
        """The loss's own state: theta^- (None with mu = 0 or before the first call), and whether it already holds
        the student's current weights (the update is folded in lazily, at the call after the optimizer's step)."""
        if self.target is None:
            return {"target": None, "current": False}
        return {"target": self.target.state_dict(), "current": self._seen == _versions(self._student)}

    def load_state_dict(self, state: dict, model: nn.Module) -> None:
        """Restore theta^- for ``model``, the student, whose weights must be loaded first (a checkpoint's)."""
        student = getattr(model, "module", model)
        if state["target"] is None:
            self.target, self._seen = None, None
            return
        if self.target is None:
            self.target = copy.deepcopy(student).eval().requires_grad_(False)
        self.target.load_state_dict(state["target"])
        self._student = student
        self._seen = _versions(student) if state["current"] else None    # None: fold the student in at the next call

    @torch.no_grad()
    def _target_network(self, model: nn.Module) -> nn.Module:
        """theta^-: the student itself when mu = 0; else the loss's copy, made at the first call (theta^- <- theta,
        Alg. 2) and moved toward the student each time the student's weights have changed since (once per update)."""
        if self.target_decay == 0:
            return model
        student = self._student = getattr(model, "module", model)      # a DistributedDataParallel wrapper's model
        versions = _versions(student)
        if self.target is None:
            self.target = copy.deepcopy(student).eval().requires_grad_(False)
        elif versions != self._seen:
            for e, p in zip(self.target.parameters(), student.parameters()):
                e.lerp_(p.detach(), 1 - self.target_decay)
            for e, b in zip(self.target.buffers(), student.buffers()):
                e.copy_(b)
        self._seen = versions
        return self.target

    def __call__(self, model, x0: torch.Tensor, schedule: Schedule, *, loss: str = "l2", cond: dict | None = None,
                 i: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if loss != "l2":
            raise ValueError(f"consistency distillation takes its distance from metric={self.metric!r}; the "
                             f"training config's loss must be 'l2', got {loss!r}")
        T, device = len(schedule), x0.device
        if T != self.num_timesteps:
            raise ValueError(f"this loss was built for a schedule of {self.num_timesteps} steps, got {T}")
        self.teacher.to(device)
        grid = self.grid.to(device)
        i, n = grid_positions(schedule, grid, i, len(x0), device=device, generator=generator,   # grid[n] = t_{n+1}
                              what=f"{self.steps}-point")
        if noise is None:
            noise = torch.randn(x0.shape, device=device, dtype=x0.dtype, generator=generator)
        a = extract(schedule.alpha_bar, i, x0)
        z = a.sqrt() * x0 + (1 - a).sqrt() * noise               # z_{t_{n+1}}
        target_net = self._target_network(model)
        with _eval_mode(target_net):              # theta^- without dropout: a deterministic target
            target = consistency_target(self.teacher, target_net, z, schedule, n, grid=grid, cond=cond,
                                        clip_x0=self.clip_x0)
        # the student's f_theta(z_{t_{n+1}}, t_{n+1}) and the distance
        f = consistency_function(model, z, i, schedule, cond=cond)
        sq = (f - target).pow(2).flatten(1)
        if self.metric == "l2":
            return sq.mean(1).mean()
        c = 0.00054 * math.sqrt(sq.shape[1])
        return ((sq.sum(1) + c * c).sqrt() - c).mean()


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """``model`` in eval mode inside (dropout off), each submodule's mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def _versions(model: nn.Module) -> int:
    """Sum of the parameters' in-place version counters: it changes whenever an optimizer updates the weights."""
    return sum(p._version for p in model.parameters())
