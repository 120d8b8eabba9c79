"""Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of Diffusion Models",
Alg. 2): a student learns to take in one deterministic DDIM step what its teacher takes in two, starting from the
teacher's weights; the student then becomes the teacher and the step count halves again (64 -> 32 -> ... -> 1).

Notation: alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), z_t = alpha_t x + sigma_t eps, SNR_t = alpha_t^2 /
sigma_t^2. One DDIM step (eta = 0) from z_t to s < t with the predictions (x_hat, eps_hat):
z_s = alpha_s x_hat + sigma_s eps_hat, eps_hat = (z_t - alpha_t x_hat) / sigma_t.

The target (Alg. 2). For a training image x, a student step t -> t'' on the student's N-step grid and
z_t = alpha_t x + sigma_t eps, the teacher takes ``factor`` (2 in the paper) DDIM steps t -> t' -> t'' of its own
grid, landing on z_t''. The student's one step lands there too if its x-prediction is

    x_tilde = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t)

(solve the DDIM step for x_hat; at the last step t'' is the clean end, alpha = 1, sigma = 0, and x_tilde = z_t''),
and it regresses x_hat(z_t) onto x_tilde with the weight max(SNR_t, 1) ("truncated SNR", the paper's Sec. 4;
equal to max(|x - x_hat|^2, |eps - eps_hat|^2)) or SNR_t + 1 (the v-space MSE). The teacher's steps are those of
`fastdiff.sampling.sample_ddim` with its default x_0 clipping, so the teacher is exactly the project's DDIM sampler
(tested), and the students are sampled the same way.

Grids. DDIM here steps from position i of a respaced schedule to position i - 1, and from the first kept step to
the clean image. The N-step grid is the "trailing" one, t_j = round((j + 1) T / N) - 1 for j = 0..N-1: it ends at
t = T - 1, so the 1-step student starts from pure noise, and every grid is the odd entries of the grid with twice
as many steps (`student_timesteps`), so a student step is exactly ``factor`` teacher steps. Sample a student with
DDIM on ``student_schedule(schedule, N)`` (`sample_ddim(student, x_T, student_schedule(schedule, N))`, or
``sampler_call(student, student_schedule(schedule, N), DDIM, N, x_T)``): the existing sampler, no option added.
(``DDIM`` with ``steps=N`` on the training schedule would keep steps 0 and T - 1 instead, another grid.)

Parameterisation. Our digits U-Net predicts eps, and x_hat = (z_t - sigma_t eps_hat) / alpha_t divides by
alpha_t, which is 0.0064 at t = T - 1 on the linear schedule: an eps error of 0.01 is an x error of 1.6, so the
paper's finding that eps-prediction breaks down at 1-2 steps (its Sec. 4) applies here with full force, and the
1-step student must predict x from z_T alone. So the student keeps the network and reads its output as
v = alpha_t eps - sigma_t x (`VPrediction`): x_hat = alpha_t z_t - sigma_t v, well conditioned at every t. The
wrapper returns eps = sigma_t z_t + alpha_t v, so the student stays a ``model(x, t) -> eps`` like every model here,
and every sampler, the checkpoint, the zoo and the other wrappers take it unchanged. The first stage's teacher is
the eps U-Net itself; its student starts from the same weights read as v, which is not the teacher's function (at
high noise it is far from it), so that stage also learns the change of parameterisation: it gets more steps than
the later ones, whose students start as exact copies of their (v) teachers, as in the paper.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import digest
from ..diffusion import Schedule, check_positions, extract, make_schedule, respace
from ..registry import build_model, model_spec, register_architecture
from ..unet import LevelHooks, UNetWrapper

WEIGHTINGS = ("truncated-snr", "snr+1")


# ----------------------------------------------------------------------------------------------- grids

def student_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The ``steps``-step grid on ``num_timesteps`` (T) positions: t_j = round((j + 1) T / steps) - 1 (halves rounded
    up, in integers), j = 0..steps-1, ascending, ending at T - 1. ``student_timesteps(T, N)`` is
    ``student_timesteps(T, k N)[k-1::k]`` for every k: the grids nest."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be an integer in 1..{num_timesteps}, got {steps!r}")
    return [(2 * (j + 1) * num_timesteps + steps) // (2 * steps) - 1 for j in range(steps)]


def student_schedule(schedule: Schedule, steps: int) -> Schedule:
    """``schedule`` respaced to the ``steps``-step grid (`student_timesteps`): DDIM on it is how a student of
    ``steps`` steps (or its teacher, at twice as many) samples."""
    kept = student_timesteps(len(schedule), steps)
    return respace(schedule, schedule.timesteps[kept])


# ----------------------------------------------------------------------------------------------- v-prediction

@dataclass
class VPredictionConfig:
    inner: dict                      # the wrapped model's spec (`fastdiff.registry.model_spec`)
    schedule: str = "linear"         # `fastdiff.diffusion.make_schedule` name: alpha_t, sigma_t at each t
    num_timesteps: int | None = None  # its length (None: the schedule's own)


@register_architecture("v-prediction")
class VPrediction(UNetWrapper):
    """``model(z_t, t, **cond) -> eps`` whose wrapped network predicts v = alpha_t eps - sigma_t x (Salimans & Ho
    2022, Sec. 4 and App. D): eps = sigma_t z_t + alpha_t v (and x = alpha_t z_t - sigma_t v). ``t`` is the
    original timestep (0..T-1) of ``schedule``; a fractional one (Heun) interpolates abar linearly."""

    def __init__(self, inner: nn.Module, *, schedule: str = "linear", num_timesteps: int | None = None):
        super().__init__(inner)
        self.config = VPredictionConfig(self.inner_spec(), schedule, num_timesteps)
        self._alpha_bar = make_schedule(schedule, num_timesteps).alpha_bar        # float64, not a weight
        self._tables: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_config(cls, config: dict) -> "VPrediction":
        cfg = VPredictionConfig(**config)
        return cls(build_model(cfg.inner), schedule=cfg.schedule, num_timesteps=cfg.num_timesteps)

    def alpha_sigma(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t) per image, shaped to broadcast over ``x``, in fp32 (fp64 for an fp64 ``x``)."""
        table = self._tables.get(x.device)
        if table is None:
            table = self._tables[x.device] = self._alpha_bar.to(x.device)
        t = t.to(x.device)
        if t.is_floating_point():
            lo = t.floor().long().clamp(0, len(table) - 1)
            hi = (lo + 1).clamp(max=len(table) - 1)
            abar = torch.lerp(table[lo], table[hi], (t.double() - lo.double()).clamp(0, 1))
        else:
            abar = table[t]
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        shape = (-1, *([1] * (x.ndim - 1)))
        return abar.sqrt().to(dtype).reshape(shape), (1 - abar).sqrt().to(dtype).reshape(shape)

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, **cond) -> torch.Tensor:
        v = self.inner.walk(x, t, hooks, **cond)
        alpha, sigma = self.alpha_sigma(t, x)
        return (sigma * x + alpha * v).to(x.dtype)


def v_student(teacher: nn.Module, *, schedule: str = "linear", num_timesteps: int | None = None) -> nn.Module:
    """A stage's student: a trainable copy of ``teacher`` whose output is read as v (`VPrediction`); a teacher that
    already predicts v (every teacher after the first) is copied as it is."""
    student = copy.deepcopy(teacher).requires_grad_(True)
    return student if isinstance(student, VPrediction) else VPrediction(student, schedule=schedule,
                                                                        num_timesteps=num_timesteps)


# ----------------------------------------------------------------------------------------------- the target

def _grid_alpha_bar(schedule: Schedule, grid: torch.Tensor, device) -> torch.Tensor:
    """abar at the clean end (1), then at each position of ``grid``: index j + 1 is grid[j]."""
    abar = schedule.alpha_bar
    return torch.cat([abar.new_ones(1), abar[grid.to(abar.device)]]).to(device)


def _x0(eps: torch.Tensor, z: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (z - sigma * eps) / alpha


@torch.no_grad()
def teacher_steps(teacher, z: torch.Tensor, schedule: Schedule, start: torch.Tensor, steps: int, *,
                  grid: torch.Tensor, cond: dict | None = None, clip_x0: bool = True) -> torch.Tensor:
    """``steps`` DDIM steps (eta = 0) of ``teacher`` from ``z``, each image from its own index ``start`` of ``grid``
    (positions in ``schedule``) down the grid; past index 0 the step lands on the clean image. x_0 is clipped to
    [-1, 1] and eps re-derived from it, as `fastdiff.sampling.sample_ddim` does. Returns z at the end."""
    timesteps = schedule.timesteps.to(z.device)
    abar = _grid_alpha_bar(schedule, grid, z.device)
    j = start.to(z.device)
    for _ in range(steps):
        a, a_next = extract(abar, j + 1, z), extract(abar, j, z)
        alpha, sigma = a.sqrt(), (1 - a).sqrt()
        eps = teacher(z, timesteps[grid.to(z.device)[j]], **(cond or {})).to(z.dtype)
        x0 = _x0(eps, z, alpha, sigma)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (z - alpha * x0) / sigma
        z = a_next.sqrt() * x0 + (1 - a_next).clamp(min=0).sqrt() * eps
        j = j - 1
    return z


def distillation_target(teacher, z: torch.Tensor, schedule: Schedule, k: torch.Tensor, *, steps: int,
                        factor: int = 2, cond: dict | None = None, clip_x0: bool = True) -> torch.Tensor:
    """x_tilde (Alg. 2): the x-prediction whose one DDIM step from ``z`` at the student's grid index ``k`` (of
    ``steps``) lands where ``factor`` DDIM steps of ``teacher`` land, on the grid with ``factor * steps`` steps."""
    T = len(schedule)
    grid = torch.tensor(student_timesteps(T, steps * factor), device=z.device)
    start = k.to(z.device) * factor + factor - 1
    z_end = teacher_steps(teacher, z, schedule, start, factor, grid=grid, cond=cond, clip_x0=clip_x0)
    abar = _grid_alpha_bar(schedule, grid, z.device)
    a, a_end = extract(abar, start + 1, z), extract(abar, start + 1 - factor, z)
    ratio = (1 - a_end).sqrt() / (1 - a).sqrt()                     # sigma_t'' / sigma_t
    return (z_end - ratio * z) / (a_end.sqrt() - ratio * a.sqrt())



def grid_positions(schedule: Schedule, grid: torch.Tensor, i: torch.Tensor | None, batch: int, *, device,
                   generator: torch.Generator | None, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(positions, their index on ``grid``) of a distillation loss's batch: ``i`` checked to lie on the grid, or
    drawn uniformly from it when None."""
    if i is None:
        i = grid[torch.randint(len(grid), (batch,), device=device, generator=generator)]
    check_positions(schedule, i)
    i = i.to(device)
    index_of = torch.full((len(schedule),), -1, dtype=torch.long, device=device)
    index_of[grid] = torch.arange(len(grid), device=device)
    k = index_of[i]
    if (k < 0).any():
        raise ValueError(f"positions {sorted(set(i[k < 0].tolist()))[:5]} are not on the {what} grid; pass "
                         f"timesteps=loss.timesteps to train")
    return i, k

class DistillationLoss:
    """One stage's loss on the training ``schedule``, called like `fastdiff.diffusion.noise_loss` (so
    `fastdiff.train.train` takes it as ``loss_fn``, with ``timesteps=loss.timesteps``):
    ``loss(model, x0, schedule, *, loss="l2", cond=None, i=None, noise=None, generator=None)``. ``i`` holds positions
    on the student's ``steps``-step grid (`timesteps` draws them, uniform over the grid; drawn from ``generator`` when
    None); the loss is the mean over the batch of w(SNR_t) |x_hat - x_tilde|^2 (mean over pixels), x_hat the
    student's x-prediction, x_tilde `distillation_target` of ``teacher`` (``factor`` DDIM steps per student step),
    w per ``weighting``: "truncated-snr" max(SNR, 1) or "snr+1"."""

    def __init__(self, teacher: nn.Module, schedule: Schedule, *, steps: int, factor: int = 2,
                 weighting: str = "truncated-snr", clip_x0: bool = True):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor (teacher steps per student step) must be a positive integer, got {factor!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; choose one of {WEIGHTINGS}")
        self.grid = torch.tensor(student_timesteps(len(schedule), steps))       # checks steps
        student_timesteps(len(schedule), steps * factor)                         # and the teacher's grid
        self.teacher = teacher.eval()                 # run under no_grad (`teacher_steps`): it never trains
        self.steps, self.factor, self.weighting, self.clip_x0 = steps, factor, weighting, clip_x0
        self.num_timesteps = len(schedule)

    def timesteps(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, dict]:
        """`fastdiff.train.train`'s ``timesteps`` hook: ``n`` positions uniform over the student's grid."""
        k = torch.randint(self.steps, (n,), device=device, generator=generator)
        return self.grid.to(device)[k], {}

    def describe(self) -> dict:
        """What a checkpoint records of this loss (resuming with another teacher or stage is a change)."""
        return {"method": "progressive distillation", "student_steps": self.steps, "factor": self.factor,
                "weighting": self.weighting, "clip_x0": self.clip_x0, "teacher_spec": model_spec(self.teacher),
                "teacher_weights": digest(self.teacher.state_dict())}

    def __call__(self, model, x0: torch.Tensor, schedule: Schedule, *, loss: str = "l2", cond: dict | None = None,
                 i: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if loss != "l2":
            raise ValueError(f"progressive distillation regresses x with a weighted L2 loss; got loss={loss!r}")
        T, device = len(schedule), x0.device
        if T != self.num_timesteps:
            raise ValueError(f"this loss was built for a schedule of {self.num_timesteps} steps, got {T}")
        self.teacher.to(device)
        grid = self.grid.to(device)
        i, k = grid_positions(schedule, grid, i, len(x0), device=device, generator=generator,
                              what=f"{self.steps}-step student")
        if noise is None:
            noise = torch.randn(x0.shape, device=device, dtype=x0.dtype, generator=generator)
        a = extract(schedule.alpha_bar, i, x0)
        alpha, sigma = a.sqrt(), (1 - a).sqrt()
        z = alpha * x0 + sigma * noise
        x_tilde = distillation_target(self.teacher, z, schedule, k, steps=self.steps, factor=self.factor, cond=cond,
                                      clip_x0=self.clip_x0)
        eps = model(z, schedule.timesteps.to(device)[i], **(cond or {}))
        x_hat = _x0(eps.float(), z.float(), alpha.float(), sigma.float())
        snr = (a / (1 - a)).float().flatten()
        w = snr.clamp(min=1) if self.weighting == "truncated-snr" else snr + 1
        per_image = F.mse_loss(x_hat, x_tilde.float(), reduction="none").flatten(1).mean(1)
        return (w * per_image).mean()
