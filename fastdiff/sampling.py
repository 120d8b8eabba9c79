"""Samplers: plain functions over any ``model(x, t, **cond) -> eps`` and any (respaced) `Schedule`.

Shared signature: ``sample_x(model, x, schedule, *, cond=None, generator=None, callback=None, progress=True)``.
``x`` is the starting noise x_T; device and dtype follow it. Conditioning that is fixed for the call is
prepared once (`prepare_condition`). ``callback`` receives a dict per step
(``i``, ``t``, ``x`` = x_{t-1}, ``x0`` = the predicted x_0) for plots and per-step timing.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .diffusion import Schedule, respace, space_timesteps
from .utils import autocast, progress_bar


def _steps(schedule: Schedule, progress: bool, desc: str):
    steps = range(len(schedule) - 1, -1, -1)
    return progress_bar(steps, desc=desc) if progress else steps


def _predict(model, x: torch.Tensor, t: int, a: float, cond: dict | None, clip: bool):
    """eps_theta(x_t, t) and x_0 = (x_t - sqrt(1 - a) eps) / sqrt(a), a = abar_t, optionally clipped to
    [-1, 1]; eps is then re-derived from the clipped x_0 so that both stay consistent (guided-diffusion).
    Per-step scalars are Python floats: the loop makes no host-device copies."""
    eps = model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), **(cond or {})).to(x.dtype)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    return eps, x0


def prepare_condition(model, x: torch.Tensor, cond: dict | None) -> dict | None:
    """Conditioning that stays the same for the whole sampling call is computed once, here, not at every step:
    a model may define ``prepare_condition(x_T, cond) -> cond`` (study 1 adds the VGG-11 features of the LR
    image). Other models get ``cond`` unchanged."""
    prepare = getattr(model, "prepare_condition", None)
    return prepare(x, cond or {}) if prepare is not None else cond


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _check_inputs(x, schedule) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x (the starting noise x_T) must be a float tensor (batch, ...), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a fastdiff.diffusion.Schedule (make_schedule / respace), got "
                         f"{type(schedule).__name__}")


class _Finite:
    """Records, without a host sync per step, whether each step's prediction was finite; `check` raises at the
    end of a sampling call with the first step whose network output held NaN or inf (instead of returning
    all-NaN images without a word)."""

    def __init__(self):
        self.flags, self.steps = [], []

    def add(self, eps: torch.Tensor, t: int) -> None:
        self.flags.append(torch.isfinite(eps).all())
        self.steps.append(t)

    def check(self, name: str) -> None:
        ok = torch.stack(self.flags).cpu()
        if not bool(ok.all()):
            first = int((~ok).nonzero()[0])
            raise FloatingPointError(f"{name}: the model returned NaN or inf at timestep t={self.steps[first]} "
                                     f"(step {first + 1} of {len(self.steps)}), so the samples are not numbers; "
                                     f"check the model's weights (a diverged training?) and its inputs")


@torch.no_grad()
def sample_ddpm(model, x: torch.Tensor, schedule: Schedule, *, cond: dict | None = None, clip_x0: bool = True,
                generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                progress: bool = True) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Alg. 2), written with the posterior q(x_{t-1} | x_t, x_0) (eq. 7):
    x_{t-1} = c_0 x_0 + c_t x_t + sqrt(tilde beta_t) z, with z = 0 at the last step.
    On a respaced schedule the betas are the respaced ones (Nichol & Dhariwal 2021, Sec. 4)."""
    _check_inputs(x, schedule)
    ts, alpha_bar = schedule.timesteps.tolist(), schedule.alpha_bar.tolist()
    c0, ct = (c.tolist() for c in schedule.posterior_mean_coef)
    std = schedule.posterior_variance.sqrt().tolist()
    cond = prepare_condition(model, x, cond)
    finite = _Finite()
    for i in _steps(schedule, progress, "DDPM"):
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        mean = c0[i] * x0 + ct[i] * x
        x = mean + std[i] * _noise(x, generator) if i > 0 else mean
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check("DDPM sampling")
    return x


def ddim_sigma(schedule: Schedule, eta: float) -> torch.Tensor:
    """sigma_i = eta sqrt((1 - abar_{i-1}) / (1 - abar_i)) sqrt(1 - abar_i / abar_{i-1})  (DDIM eq. 16).
    At eta = 1 this is DDPM's posterior standard deviation."""
    a, a_prev = schedule.alpha_bar, schedule.alpha_bar_prev
    return eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()


@torch.no_grad()
def sample_ddim(model, x: torch.Tensor, schedule: Schedule, *, eta: float = 0.0, cond: dict | None = None,
                clip_x0: bool = True, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12). eta = 0: deterministic; eta = 1: DDPM's variance."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1] (0: deterministic DDIM, 1: DDPM's variance), got {eta!r}")
    _check_inputs(x, schedule)
    ts, alpha_bar = schedule.timesteps.tolist(), schedule.alpha_bar.tolist()
    sigma, alpha_bar_prev = ddim_sigma(schedule, eta).tolist(), schedule.alpha_bar_prev.tolist()
    cond = prepare_condition(model, x, cond)
    finite = _Finite()
    for i in _steps(schedule, progress, f"DDIM eta={eta:g}"):
        # 1. predict the noise and x_0 from x_t
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        # 2. the "direction pointing to x_t": sqrt(1 - abar_{i-1} - sigma_i^2) eps
        a_prev, s = alpha_bar_prev[i], sigma[i]
        direction = math.sqrt(max(0.0, 1 - a_prev - s**2)) * eps
        # 3. x_{t-1} = sqrt(abar_{i-1}) x_0 + direction + sigma_i z
        x = math.sqrt(a_prev) * x0 + direction
        if i > 0 and eta > 0:
            x = x + s * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check(f"DDIM sampling (eta={eta:g})")
    return x


def dpmpp_2m_update(x: torch.Tensor, x0: torch.Tensor, abar: float, abar_next: float, *,
                    x0_prev: torch.Tensor | None = None, h_prev: float | None = None):
    """One DPM-Solver++(2M) step from x_t (with the data prediction x0 there) to the next timestep; returns
    (x_next, h). alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma), h = lambda_next - lambda:
    x_next = (sigma_next / sigma) x - alpha_next (e^{-h} - 1) D, D = x0 (first order: no previous step) or
    (1 + 1/(2r)) x0 - 1/(2r) x0_prev with r = h_prev / h; at sigma_next = 0 the step lands on x0 itself."""
    a, s = math.sqrt(abar), math.sqrt(1 - abar)
    a_n, s_n = math.sqrt(abar_next), math.sqrt(max(0.0, 1 - abar_next))
    if s_n == 0:
        return x0, math.inf
    h = math.log(a_n / s_n) - math.log(a / s)
    d = x0
    if x0_prev is not None:
        r = h_prev / h
        d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
    return (s_n / s) * x - a_n * math.expm1(-h) * d, h


@torch.no_grad()
def sample_dpmpp_2m(model, x: torch.Tensor, schedule: Schedule, *, cond: dict | None = None, clip_x0: bool = True,
                    generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                    progress: bool = True) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), deterministic, on the (respaced) discrete schedule: first order
    at the first step, second order (multistep, `dpmpp_2m_update`) after it, the last step to sigma = 0; as
    diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` (its step outputs are
    tested against ours)."""
    _check_inputs(x, schedule)
    ts, alpha_bar = schedule.timesteps.tolist(), schedule.alpha_bar.tolist()
    alpha_bar_next = schedule.alpha_bar_prev.tolist()
    cond = prepare_condition(model, x, cond)
    finite = _Finite()
    x0_prev, h_prev = None, None
    for i in _steps(schedule, progress, "DPM-Solver++(2M)"):
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        x, h_prev = dpmpp_2m_update(x, x0, alpha_bar[i], alpha_bar_next[i], x0_prev=x0_prev, h_prev=h_prev)
        x0_prev = x0
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check("DPM-Solver++(2M) sampling")
    return x


SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "dpmpp2m": sample_dpmpp_2m}


def get_sampler(name: str):
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def sampler_call(model, schedule: Schedule, name: str, steps: int, eta: float | None, x_T: torch.Tensor, *,
                 dtype: torch.dtype = torch.float32, seed: int = 0, cond: dict | None = None):
    """A zero-argument function that draws one batch from ``x_T`` with the named sampler on ``steps`` respaced
    steps of ``schedule`` (conditioned on ``cond``, under autocast when ``dtype`` is not fp32). Every call
    reseeds, so repeated (timed) calls return the same images."""
    sched = respace(schedule, space_timesteps(schedule.num_train_timesteps, steps))
    sampler, kw = get_sampler(name.lower()), ({} if eta is None else {"eta": eta})

    def run() -> torch.Tensor:
        gen = torch.Generator(x_T.device).manual_seed(seed)
        with autocast(x_T.device, dtype):
            return sampler(model, x_T.clone(), sched, cond=cond, generator=gen, progress=False, **kw)
    return run
