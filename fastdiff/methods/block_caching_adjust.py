"""Learning Block Caching's scale-shift adjustment (Wimbauer et al. 2024, "Cache Me if You Can", section "Scale-Shift
Adjustment") in a student-teacher setup: the teacher is the U-Net without caching, the student the same U-Net under
its cache schedule with the adjustment (`fastdiff.methods.block_caching.AdjustedBlockCaching`), s and h its only
trainable weights.

Notation: x_T the starting noise, x_t the student's sample before its call c (c = 0..n-1, n = num_calls), eps_S(c)
and eps_T(c) the student's and the teacher's outputs at the same input (x_t, t). The student samples its own
trajectory with the sampler and steps its schedule was calibrated for, from fresh noise; the loss of a run is

    L = (1/n) sum_c ||eps_S(c) - eps_T(c)||^2     (mean over the batch and pixels),

and each x_t is detached (no backpropagation through the trajectory), so call c's term reaches only the s and h of
the blocks reused at call c (a cached output is stored detached and adjusted where it is reused). `ScaleShiftLoss`
is `fastdiff.train.train`'s ``loss_fn``: it draws x_T from the training generator, so training resumes exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import digest
from ..diffusion import Schedule
from ..registry import model_spec
from ..sampling import DDIM, Sampler, get_sampler, prepare_condition, sampler_call
from .block_caching import AdjustedBlockCaching


class _StudentRun:
    """What the sampler calls during one training run: the student's output with grad (its return detached, so the
    trajectory is the student's own and carries no graph), the teacher's at the same input without, and the
    squared distance of each call in ``terms``."""

    def __init__(self, student: AdjustedBlockCaching, teacher: nn.Module):
        self.student, self.teacher = student, teacher
        self.terms: list[torch.Tensor] = []
        self.teacher_cond: dict | None = None

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """The start of the run: a fresh cache for the student (`BlockCaching.prepare_condition`), and the teacher's
        own prepared conditioning."""
        self.teacher_cond = prepare_condition(self.teacher, x, cond)
        return prepare_condition(self.student, x, cond)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x, t, **(self.teacher_cond or {}))
        with torch.enable_grad():
            eps = self.student(x.detach(), t, **cond)
            self.terms.append(F.mse_loss(eps.float(), target.float()))
        return eps.detach()


class ScaleShiftLoss:
    """The student-teacher loss of the scale-shift, called like `fastdiff.diffusion.noise_loss` (so
    `fastdiff.train.train` takes it as ``loss_fn``): ``loss(model, x0, schedule, *, loss="l2", cond=None, i=None,
    noise=None, generator=None)``. ``model`` is an `AdjustedBlockCaching` calibrated for ``sampler`` in ``steps``
    steps on ``schedule``; the student samples one batch of x0's shape from x_T drawn from ``generator`` (``noise``
    when given), x0's values unused, and the loss is L of the module docstring. ``terms`` holds the last run's
    per-call terms."""

    def __init__(self, teacher: nn.Module, schedule: Schedule, *, sampler: Sampler = DDIM, steps: int = 50):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.teacher = teacher.eval()               # run under no_grad: it never trains
        self.sampler, self.steps = get_sampler(sampler), steps
        self.num_timesteps = len(schedule)
        self.terms: list[torch.Tensor] = []

    def describe(self) -> dict:
        """What a checkpoint records of this loss (resuming with another teacher or sampler is a change)."""
        return {"method": "block caching scale-shift", "sampler": self.sampler.name, "steps": self.steps,
                "sampler_options": self.sampler.effective_options(), "teacher_spec": model_spec(self.teacher),
                "teacher_weights": digest(self.teacher.state_dict())}

    def check_student(self, student) -> None:
        """A clear error unless ``student`` is an `AdjustedBlockCaching` calibrated for this loss's run."""
        if not isinstance(student, AdjustedBlockCaching):
            raise ValueError(f"the scale-shift loss trains an AdjustedBlockCaching (its adjustment the only weights "
                             f"that train), got {type(student).__name__}")
        if not student.calibrated_for(self.sampler, self.steps):
            raise ValueError(f"the student's schedule was calibrated on {student.sampler.describe(student.steps)} "
                             f"and this loss samples {self.sampler.describe(self.steps)}: the student's run must be "
                             f"the run its schedule was calibrated on")
        if not student.adjust.pairs():
            raise ValueError("the student's schedule reuses no cached output: there is no scale-shift to train")

    def __call__(self, model, x0: torch.Tensor, schedule: Schedule, *, loss: str = "l2", cond: dict | None = None,
                 i: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if loss != "l2":
            raise ValueError(f"the scale-shift is learned with the L2 distance to the teacher; got loss={loss!r}")
        if len(schedule) != self.num_timesteps:
            raise ValueError(f"this loss was built for a schedule of {self.num_timesteps} steps, got {len(schedule)}")
        if model is not getattr(model, "module", model):
            raise ValueError("the scale-shift loss trains in one process: it runs the student a whole sampling run "
                             "before one backward pass, which DistributedDataParallel does not allow (no torchrun)")
        self.check_student(model)
        self.teacher.to(x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)    # x_T
        run = _StudentRun(model, self.teacher)
        self.sampler(run, noise, schedule, steps=self.steps, cond=cond, generator=generator, progress=False)
        if model.index != model.num_calls:
            raise ValueError(f"the student's run made {model.index} calls, its schedule covers {model.num_calls}")
        self.terms = run.terms
        return torch.stack(run.terms).mean()


@torch.no_grad()
def sample_error(model: nn.Module, teacher: nn.Module, schedule: Schedule, x_T: torch.Tensor, *,
                 sampler: Sampler = DDIM, steps: int = 50, seed: int = 0) -> float:
    """The mean squared distance of ``model``'s samples to ``teacher``'s from the same ``x_T`` (sampler noise seeded
    by ``seed``): how far the cache moves the final image."""
    sampler = get_sampler(sampler)
    ours, theirs = (sampler_call(m, schedule, sampler, steps, x_T, seed=seed)() for m in (model, teacher))
    return F.mse_loss(ours.float(), theirs.float()).item()
