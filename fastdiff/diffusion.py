"""Noise schedules, the forward process and the training loss (Ho et al. 2020; Nichol & Dhariwal 2021).

Notation: T training steps; beta_t the noise variances; alpha_t = 1 - beta_t; alpha_bar_t = prod_{s<=t} alpha_s.
A `Schedule` is defined by alpha_bar at the timesteps it keeps, so a respaced schedule (a subset of
steps, as in guided-diffusion's respace.py) is the same object with fewer entries, and every sampler
works on either. `timesteps[i]` is the original step the network is told about at position i.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SCHEDULES = ("linear", "sr3", "cosine")


@dataclass(frozen=True)
class Schedule:
    timesteps: torch.Tensor   # (S,) long, ascending: the original steps kept
    alpha_bar: torch.Tensor   # (S,) float64: \bar\alpha at those steps
    num_train_timesteps: int  # T of the schedule the network was trained with

    def __post_init__(self):
        if self.timesteps.shape != self.alpha_bar.shape or self.timesteps.ndim != 1 or len(self.timesteps) == 0:
            raise ValueError("timesteps and alpha_bar must be non-empty 1-D tensors of the same length")
        if (self.timesteps[1:] <= self.timesteps[:-1]).any():
            raise ValueError("timesteps must be strictly increasing")

    def __len__(self) -> int:
        return len(self.timesteps)

    def to(self, device: torch.device | str) -> "Schedule":
        """The same schedule with its tensors on ``device`` (e.g. once before a training loop)."""
        return Schedule(self.timesteps.to(device), self.alpha_bar.to(device), self.num_train_timesteps)

    @property
    def alpha_bar_prev(self) -> torch.Tensor:
        # \bar\alpha_{t_{i-1}}, with \bar\alpha = 1 before the first kept step
        return torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])

    @property
    def betas(self) -> torch.Tensor:
        # \beta_i = 1 - \bar\alpha_{t_i} / \bar\alpha_{t_{i-1}}  (equals beta_t when no step is skipped)
        return 1.0 - self.alpha_bar / self.alpha_bar_prev

    @property
    def posterior_variance(self) -> torch.Tensor:
        # \tilde\beta_i = \beta_i (1 - \bar\alpha_{i-1}) / (1 - \bar\alpha_i)   (DDPM eq. 7)
        return self.betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)

    @property
    def posterior_mean_coef(self) -> tuple[torch.Tensor, torch.Tensor]:
        # \tilde\mu = c_0 x_0 + c_t x_t, c_0 = \sqrt{\bar\alpha_{i-1}} \beta_i / (1 - \bar\alpha_i),
        # c_t = \sqrt{\alpha_i} (1 - \bar\alpha_{i-1}) / (1 - \bar\alpha_i)   (DDPM eq. 7)
        a, a_prev = self.alpha_bar, self.alpha_bar_prev
        return a_prev.sqrt() * self.betas / (1.0 - a), (1.0 - self.betas).sqrt() * (1.0 - a_prev) / (1.0 - a)

    @property
    def snr(self) -> torch.Tensor:
        # signal-to-noise ratio \bar\alpha / (1 - \bar\alpha)
        return self.alpha_bar / (1.0 - self.alpha_bar)


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def cosine_alpha_bar(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) eq. 17: f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at 0.999."""
    f = lambda u: torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    u = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    betas = (1 - f(u[1:]) / f(u[:-1])).clamp(max=max_beta)
    return torch.cumprod(1 - betas, 0)


def make_schedule(name: str = "linear", num_timesteps: int | None = None) -> Schedule:
    """``linear``: DDPM, beta 1e-4..0.02 over 1000 steps; ``sr3``: SR3, beta 1e-6..1e-2 over 2000 steps;
    ``cosine``: improved DDPM, 1000 steps. ``num_timesteps`` overrides the length."""
    if num_timesteps is not None and (isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int)
                                      or num_timesteps < 2):
        raise ValueError(f"num_timesteps must be an integer >= 2, got {num_timesteps!r}")
    if name == "linear":
        T = num_timesteps or 1000
        alpha_bar = torch.cumprod(1 - linear_betas(T, 1e-4, 0.02), 0)
    elif name == "sr3":
        T = num_timesteps or 2000
        alpha_bar = torch.cumprod(1 - linear_betas(T, 1e-6, 1e-2), 0)
    elif name == "cosine":
        T = num_timesteps or 1000
        alpha_bar = cosine_alpha_bar(T)
    else:
        raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
    return Schedule(torch.arange(T), alpha_bar, T)


def space_timesteps(num_timesteps: int, spec: int | str | list[int]) -> list[int]:
    """Which of T steps to keep (guided-diffusion's respace.py).

    ``spec`` is an int n (n evenly spaced steps, first and last included), ``"ddimN"`` (the integer stride
    that gives exactly N steps, as in the DDIM paper), or section counts (a list or ``"10,15,20"``: the
    steps are split into equal sections and each keeps that many evenly spaced steps).
    """
    T = num_timesteps
    if isinstance(spec, bool) or not isinstance(spec, (int, str, list, tuple)):
        raise ValueError(f"bad timestep spec {spec!r}: use an int, 'ddimN' or comma-separated section counts")
    if isinstance(spec, str) and spec.startswith("ddim"):
        if not spec[4:].isdigit() or int(spec[4:]) < 1:
            raise ValueError(f"bad timestep spec {spec!r}: 'ddimN' needs a positive integer N, e.g. 'ddim50'")
        n = int(spec[4:])
        for stride in range(1, T):
            if len(range(0, T, stride)) == n:
                return list(range(0, T, stride))
        raise ValueError(f"no integer stride gives exactly {n} of {T} steps; use a plain count instead")
    if isinstance(spec, str):
        if not re.fullmatch(r"\d+(,\d+)*", spec):
            raise ValueError(f"bad timestep spec {spec!r}: use an int, 'ddimN' or comma-separated section counts")
        spec = [int(s) for s in spec.split(",")]
        if len(spec) == 1:
            spec = spec[0]
    if isinstance(spec, int):
        if not 1 <= spec <= T:
            raise ValueError(f"cannot keep {spec} of {T} steps")
        if spec == 1:
            return [T - 1]
        return sorted({round(i * (T - 1) / (spec - 1)) for i in range(spec)})
    # section counts
    if not spec or not all(isinstance(c, int) and not isinstance(c, bool) for c in spec):
        raise ValueError(f"bad timestep spec {spec!r}: section counts must be a non-empty list of integers")
    if len(spec) > T:
        raise ValueError(f"cannot split {T} steps into {len(spec)} sections")
    sizes = [T // len(spec) + (1 if i < T % len(spec) else 0) for i in range(len(spec))]
    kept, start = [], 0
    for size, count in zip(sizes, spec):
        if not 1 <= count <= size:
            raise ValueError(f"cannot keep {count} steps from a section of {size}")
        frac = 1 if count == 1 else (size - 1) / (count - 1)
        kept += [start + round(frac * j) for j in range(count)]
        start += size
    return kept


def respace(schedule: Schedule, timesteps: list[int] | torch.Tensor) -> Schedule:
    """The schedule restricted to the given original timesteps (a subset of ``schedule.timesteps``)."""
    timesteps = torch.as_tensor(sorted(set(int(t) for t in timesteps)), dtype=torch.long)
    if len(timesteps) == 0:
        raise ValueError("respace needs at least one timestep to keep")
    position = {int(t): i for i, t in enumerate(schedule.timesteps)}
    missing = [int(t) for t in timesteps if int(t) not in position]
    if missing:
        raise ValueError(f"timesteps {missing[:5]} are not in the schedule")
    idx = torch.tensor([position[int(t)] for t in timesteps])
    return Schedule(schedule.timesteps[idx], schedule.alpha_bar[idx], schedule.num_train_timesteps)


def extract(values: torch.Tensor, i: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """values[i] (one entry per batch element) in x's dtype and device, shaped to broadcast over x."""
    v = values.to(x.device)[i.to(x.device)].to(x.dtype)
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def check_positions(schedule: Schedule, i) -> None:
    """``i`` must hold positions in the schedule, integers in 0..len-1: a negative one would silently count from
    the end, one past the end would fail in an indexing kernel. The values are checked (one min/max) where that
    costs no device sync: on the CPU; on an accelerator only the dtype is (an index past the end then stops in the
    indexing kernel's own device-side check)."""
    last = len(schedule) - 1
    if not isinstance(i, torch.Tensor) or i.is_floating_point() or i.is_complex() or i.dtype == torch.bool:
        got = f"a {str(i.dtype)[6:]} tensor" if isinstance(i, torch.Tensor) else repr(i)
        raise ValueError(f"i must be an integer tensor of positions in the schedule (0..{last}), got {got}")
    if i.numel() == 0 or i.device.type != "cpu":
        return
    lo, hi = torch.stack(torch.aminmax(i)).tolist()
    if lo < 0 or hi > last:
        raise ValueError(f"timestep positions must be in 0..{last} (the schedule has {last + 1} steps; -1 is not "
                         f"the last one), got values in {lo}..{hi}")


def q_sample(schedule: Schedule, x0: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = \\sqrt{\\bar\\alpha_t} x_0 + \\sqrt{1 - \\bar\\alpha_t} eps  (DDPM eq. 4), i = position in schedule."""
    check_positions(schedule, i)
    return _q_sample(schedule, x0, i, noise)


def _q_sample(schedule: Schedule, x0: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    a = extract(schedule.alpha_bar, i, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_loss(model, x0: torch.Tensor, schedule: Schedule, *, loss: str = "l2", cond: dict | None = None,
               i: torch.Tensor | None = None, noise: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """|| eps - eps_theta(x_t, t) || with t uniform over the schedule (DDPM Alg. 1); L1 as in SR3 / VGG-SR."""
    if loss not in ("l1", "l2"):
        raise ValueError(f"unknown loss {loss!r}; choose 'l1' or 'l2'")
    if i is None:
        i = torch.randint(len(schedule), (x0.shape[0],), device=x0.device, generator=generator)
    else:
        check_positions(schedule, i)
    if noise is None:
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    t = schedule.timesteps.to(x0.device)[i]
    eps = model(_q_sample(schedule, x0, i, noise), t, **(cond or {}))
    return F.mse_loss(eps.float(), noise.float()) if loss == "l2" else F.l1_loss(eps.float(), noise.float())
