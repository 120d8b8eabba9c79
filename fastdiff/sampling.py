"""Samplers: plain functions over any ``model(x, t, **cond) -> eps`` and any (respaced) `Schedule`.

Shared signature: ``sample_x(model, x, schedule, *, steps=None, cond=None, generator=None, callback=None,
progress=True)``. ``x`` is the starting noise x_T; device and dtype follow it. ``steps`` places the sampler's own
timesteps on ``schedule`` (the training schedule): DDPM, DDIM, DPM-Solver++, UniPC, DEIS and iPNDM keep ``steps``
evenly spaced ones (`space_timesteps`), Heun ``steps`` Karras noise levels at fractional timesteps; None samples on
``schedule`` as it is (e.g. one respaced beforehand). Conditioning that is fixed for the call is prepared once
(`prepare_condition`). ``callback`` receives a dict per step (``i``, ``t``, ``x`` = x_{t-1}, ``x0`` = the predicted
x_0) for plots and per-step timing.

A `Sampler` (`DDPM`, `DDIM`, `DPMPP_2M`, `HEUN`, `UNIPC`, `DEIS`, `IPNDM`) is such a function with its options, label
and ``nfe(steps)``, called like the function; `SAMPLERS` names them for text parameters (`get_sampler`).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from .checks import check_image_dtype
from .devices import autocast
from .diffusion import Schedule, space_timesteps
from .progress import progress_bar
from .solvers import AB_GAMMA, deis_update, ipndm_update, unipc_bh2_update


def _check_steps(steps) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _respaced(schedule: Schedule, steps: int | None) -> Schedule:
    """``steps`` evenly spaced steps of ``schedule``, its first and last kept (`space_timesteps`; on the training
    schedule, the respacing of Nichol & Dhariwal 2021, Sec. 4); None: ``schedule`` as it is. Done at every call:
    it indexes the schedule's tensors once (tens of microseconds), so a timed call barely notices it."""
    if steps is None:
        return schedule
    _check_steps(steps)
    kept = space_timesteps(len(schedule), steps)            # positions in the schedule, ascending, distinct
    return Schedule(schedule.timesteps[kept], schedule.alpha_bar[kept], schedule.num_train_timesteps)


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
    image). Other models get ``cond`` unchanged. Every sampler calls it once, before its first step, so it also
    marks the start of a sampling run (deep-feature caching starts a fresh cache there)."""
    prepare = getattr(model, "prepare_condition", None)
    return prepare(x, cond or {}) if prepare is not None else cond


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _check_inputs(model, x, schedule) -> None:
    """Once per sampling call (nothing per step): x_T's type, shape and dtype (that of the model's weights, unless
    autocast is on), and the schedule."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        got = f"{str(x.dtype)[6:]} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x (the starting noise x_T) must be a float tensor (batch, ...), got {got}")
    weights = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    check_image_dtype("x", x, weights.dtype if weights is not None and weights.is_floating_point() else None)
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
def sample_ddpm(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None, cond: dict | None = None,
                clip_x0: bool = True, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Alg. 2), written with the posterior q(x_{t-1} | x_t, x_0) (eq. 7):
    x_{t-1} = c_0 x_0 + c_t x_t + sqrt(tilde beta_t) z, with z = 0 at the last step.
    On a respaced schedule the betas are the respaced ones (Nichol & Dhariwal 2021, Sec. 4)."""
    _check_inputs(model, x, schedule)
    schedule = _respaced(schedule, steps)
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
def sample_ddim(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None, eta: float = 0.0,
                cond: dict | None = None, clip_x0: bool = True, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12). eta = 0: deterministic; eta = 1: DDPM's variance."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1] (0: deterministic DDIM, 1: DDPM's variance), got {eta!r}")
    _check_inputs(model, x, schedule)
    schedule = _respaced(schedule, steps)
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


def _multistep_setup(model, x: torch.Tensor, schedule: Schedule, steps: int | None, cond: dict | None):
    """What every deterministic multistep solver on the discrete schedule starts with: the inputs checked, the
    (respaced) schedule, its timesteps, alpha_bar at each step and at the next, the condition prepared once."""
    _check_inputs(model, x, schedule)
    schedule = _respaced(schedule, steps)
    return (schedule, schedule.timesteps.tolist(), schedule.alpha_bar.tolist(), schedule.alpha_bar_prev.tolist(),
            prepare_condition(model, x, cond))


@torch.no_grad()
def sample_dpmpp_2m(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None,
                    cond: dict | None = None, clip_x0: bool = True, generator: torch.Generator | None = None,
                    callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), deterministic, on the (respaced) discrete schedule: first order
    at the first step, second order (multistep, `dpmpp_2m_update`) after it, the last step to sigma = 0; as
    diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2)`` (its step outputs are
    tested against ours)."""
    schedule, ts, alpha_bar, alpha_bar_next, cond = _multistep_setup(model, x, schedule, steps, cond)
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


def karras_sigmas(schedule: Schedule, steps: int, *, rho: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras et al. (2022, eq. 5) noise levels for a discrete schedule, as diffusers' ``use_karras_sigmas``:
    sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho between the schedule's
    own extremes (sigma = sqrt((1 - abar) / abar) at its first and last step), each mapped back to a fractional
    timestep by interpolating log sigma over the schedule's steps. Returns (sigmas with a final 0, shape (N+1,);
    timesteps, shape (N,)), float64, from the noisiest."""
    _check_steps(steps)
    abar = schedule.alpha_bar.double().cpu()
    train_t = schedule.timesteps.double().cpu()
    sig = ((1 - abar) / abar).sqrt()
    log_sig = sig.log()
    lo, hi = sig[0].item(), sig[-1].item()
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    sigmas = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    log_s = sigmas.clamp_min(1e-10).log()
    low = ((log_sig[None, :] <= log_s[:, None]).sum(1) - 1).clamp(0, len(sig) - 2)
    w = ((log_sig[low] - log_s) / (log_sig[low] - log_sig[low + 1])).clamp(0, 1)
    t = (1 - w) * train_t[low] + w * train_t[low + 1]
    return torch.cat([sigmas, sigmas.new_zeros(1)]), t


def heun_update(model, x: torch.Tensor, sigma: float, sigma_next: float, t: float, t_next: float, *,
                cond: dict | None, clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of Karras et al.'s Heun sampler (Alg. 1 with gamma = 0) in sigma space, x = x_t / sqrt(abar):
    the derivative d = (x - x0) / sigma, an Euler step to sigma_next, and (unless sigma_next = 0) the average
    with the derivative there. The network sees x / sqrt(sigma^2 + 1) (the DDPM x_t) at fractional timestep t.
    Returns (x at sigma_next, x0 at sigma)."""
    def x0_at(x_, s_, t_):
        eps = model(x_ / math.sqrt(s_ * s_ + 1), torch.full((x_.shape[0],), t_, device=x_.device,
                                                           dtype=torch.float64), **(cond or {})).to(x_.dtype)
        x0 = x_ - s_ * eps
        return x0.clamp(-1, 1) if clip else x0
    x0 = x0_at(x, sigma, t)
    d = (x - x0) / sigma
    x_euler = x + d * (sigma_next - sigma)
    if sigma_next == 0:
        return x_euler, x0
    d_next = (x_euler - x0_at(x_euler, sigma_next, t_next)) / sigma_next
    return x + (d + d_next) / 2 * (sigma_next - sigma), x0


@torch.no_grad()
def sample_heun_karras(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None,
                       cond: dict | None = None, clip_x0: bool = True, rho: float = 7.0,
                       generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                       progress: bool = True) -> torch.Tensor:
    """Heun's second-order sampler on Karras sigmas (Karras et al. 2022, Alg. 1, deterministic), as diffusers'
    ``HeunDiscreteScheduler(use_karras_sigmas=True)`` (its step outputs are tested against ours): ``steps`` noise
    levels (default: one per step of ``schedule``) between the schedule's extremes, 2 network evaluations per
    step except the last (an Euler step to sigma = 0), so 2 * steps - 1 in all. ``x`` is x_T ~ N(0, I); it starts
    at sigma_max in sigma space, as diffusers' pipelines start. Pass the training schedule itself (not respaced):
    the timesteps the network sees are fractional, interpolated on it."""
    _check_inputs(model, x, schedule)
    sigmas, ts = karras_sigmas(schedule, len(schedule) if steps is None else steps, rho=rho)
    sigmas, ts = sigmas.tolist(), ts.tolist()
    cond = prepare_condition(model, x, cond)
    finite = _Finite()
    x = x * sigmas[0]
    n = len(ts)
    bar = progress_bar(range(n), desc="Heun (Karras sigmas)") if progress else range(n)
    for i in bar:
        x, x0 = heun_update(model, x, sigmas[i], sigmas[i + 1], ts[i], ts[i + 1] if i + 1 < n else 0.0, cond=cond,
                            clip=clip_x0)
        finite.add(x0, int(round(ts[i])))
        if callback is not None:
            callback({"i": n - 1 - i, "t": ts[i], "x": x / math.sqrt(sigmas[i + 1] ** 2 + 1), "x0": x0})
    finite.check("Heun (Karras sigmas) sampling")
    return x


@torch.no_grad()
def sample_unipc(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None, cond: dict | None = None,
                 clip_x0: bool = True, generator: torch.Generator | None = None,
                 callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """UniPC with B(h) = e^h - 1 (Zhao et al. 2023, UniPC-2 with B_2, data prediction; `unipc_bh2_update`), one
    network evaluation per step, deterministic, on the (respaced) discrete schedule, as diffusers'
    ``UniPCMultistepScheduler()`` defaults (bh2, order 2, ``lower_order_final``; its step outputs are tested against
    ours): at each step the corrector UniC first refines x_t with the new prediction there (not at the first step),
    then the predictor UniP steps on, first order at the first and the last step (to sigma = 0, landing on x_0).
    Paper: CIFAR-10 FID 3.87 at 10 evaluations."""
    schedule, ts, alpha_bar, alpha_bar_next, cond = _multistep_setup(model, x, schedule, steps, cond)
    finite = _Finite()
    x0s, abars, x_last, order = [], [], None, 1
    for i in _steps(schedule, progress, "UniPC (bh2)"):
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        if x_last is not None:       # 1. UniC: x_t corrected from the last point, at the order of the step that came
            x = unipc_bh2_update(x_last, x0s[-order:], abars[-order:], alpha_bar[i], x0_next=x0)
        x0s, abars = (x0s + [x0])[-2:], (abars + [alpha_bar[i]])[-2:]
        order = 1 if len(x0s) == 1 or i == 0 else 2
        x_last = x                   # 2. UniP to the next timestep
        x = unipc_bh2_update(x, x0s[-order:], abars[-order:], alpha_bar_next[i])
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check("UniPC (bh2) sampling")
    return x


@torch.no_grad()
def sample_deis(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None, cond: dict | None = None,
                clip_x0: bool = True, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """DEIS (Zhang & Chen 2023, rhoAB-DEIS of order 2 with eps extrapolated in log rho; `deis_update`), one
    network evaluation per step, deterministic, on the (respaced) discrete schedule, as diffusers'
    ``DEISMultistepScheduler()`` defaults (order 2, "logrho", ``lower_order_final``; its step outputs are tested
    against ours): first order at the first step and, below 15 steps, at the last. The last step lands on sigma = 0
    (x_0), as our other samplers do; diffusers' own sigma table ends at sigma(t = 0) instead (its steps take log
    sigma), which leaves noise of that size in the samples. The multistep updates are in `fastdiff.solvers`."""
    schedule, ts, alpha_bar, alpha_bar_next, cond = _multistep_setup(model, x, schedule, steps, cond)
    finite = _Finite()
    epss, abars = [], []
    for i in _steps(schedule, progress, "DEIS"):
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        epss, abars = (epss + [eps])[-2:], (abars + [alpha_bar[i]])[-2:]
        order = 1 if len(epss) == 1 or (i == 0 and len(schedule) < 15) else 2
        x = deis_update(x, epss[-order:], abars[-order:], alpha_bar_next[i])
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check("DEIS sampling")
    return x


@torch.no_grad()
def sample_ipndm(model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None, order: int = 4,
                 cond: dict | None = None, clip_x0: bool = False, generator: torch.Generator | None = None,
                 callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
    """iPNDM (Zhang & Chen 2023, DEIS: PNDM's linear multistep on eps with DDIM's transfer, its Runge-Kutta warm-up
    replaced by lower-order Adams-Bashforth steps; `ipndm_update`), one network evaluation per step, deterministic:
    the k-th step takes order min(k, ``order``) to the end (``order=1``: DDIM). Its steps equal diffusers'
    ``PNDMScheduler(skip_prk_steps=True)`` given the same eps (diffusers' first step takes two evaluations). No
    x0 clipping by default, as diffusers' PNDM: with it, order 4 diverged at 10 steps here (FD 34 against 7.6)."""
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= len(AB_GAMMA):
        raise ValueError(f"order must be 1, 2, 3 or 4 (iPNDM's highest Adams-Bashforth order; 1: DDIM), got {order!r}")
    schedule, ts, alpha_bar, alpha_bar_next, cond = _multistep_setup(model, x, schedule, steps, cond)
    finite, epss = _Finite(), []
    for i in _steps(schedule, progress, "iPNDM"):
        eps, x0 = _predict(model, x, ts[i], alpha_bar[i], cond, clip_x0)
        finite.add(eps, ts[i])
        epss = (epss + [eps])[-order:]          # the warm start: as many as there are, up to the order
        x = ipndm_update(x, epss, alpha_bar[i], alpha_bar_next[i])
        if callback is not None:
            callback({"i": i, "t": ts[i], "x": x, "x0": x0})
    finite.check("iPNDM sampling")
    return x


def _one_per_step(steps: int) -> int:
    return steps


def _heun_evaluations(steps: int) -> int:    # two per step but the last, an Euler step to sigma = 0
    return 2 * steps - 1


SHARED_ARGUMENTS = ("steps", "cond", "generator", "callback", "progress")   # the shared signature, not options


@dataclass(frozen=True)
class Sampler:
    """A sampler chosen by function, k-diffusion style: calling it runs ``fn`` in the shared signature with its
    ``options`` (`with_options`: DDIM's eta). ``nfe(steps)``: network evaluations of one call with ``steps``;
    ``label`` names it in result rows, ``name`` in text parameters (`get_sampler`)."""
    name: str
    label: str
    fn: Callable[..., torch.Tensor] = field(repr=False)
    nfe: Callable[[int], int] = field(default=_one_per_step, repr=False)
    options: tuple[tuple[str, object], ...] = ()

    def __call__(self, model, x: torch.Tensor, schedule: Schedule, *, steps: int | None = None,
                 cond: dict | None = None, generator: torch.Generator | None = None,
                 callback: Callable[[dict], None] | None = None, progress: bool = True) -> torch.Tensor:
        return self.fn(model, x, schedule, steps=steps, cond=cond, generator=generator, callback=callback,
                       progress=progress, **dict(self.options))

    def with_options(self, **options) -> Sampler:
        """A copy with ``options`` set, e.g. ``DDIM.with_options(eta=1.0)``; a name ``fn`` does not take is refused."""
        known = list(self.effective_options())
        if unknown := sorted(set(options) - set(known)):
            raise ValueError(f"{self.label} has no option {', '.join(map(repr, unknown))}; its options: {known}")
        return replace(self, options=tuple(sorted({**dict(self.options), **options}.items())))

    def effective_options(self) -> dict:
        """Every option of ``fn`` with the value a call uses: its default unless set (what a cache must key on)."""
        return {**{p.name: p.default for p in inspect.signature(self.fn).parameters.values() if p.kind is
                   p.KEYWORD_ONLY and p.name not in SHARED_ARGUMENTS and p.default is not p.empty}, **dict(self.options)}

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    def describe(self, steps: int) -> str:
        """The label, the step count and the options, as a run is named in grids and rows: "DDIM 20, η=0"."""
        opts = [f"{ {'eta': 'η'}.get(k, k)}={v:g}" if type(v) in (int, float) else f"{k}={v}" for k, v in self.options]
        return ", ".join([f"{self.label} {steps}", *opts])


DDPM = Sampler("ddpm", "DDPM", sample_ddpm)
DDIM = Sampler("ddim", "DDIM", sample_ddim, options=(("eta", 0.0),))
DPMPP_2M = Sampler("dpmpp2m", "DPM-Solver++(2M)", sample_dpmpp_2m)
HEUN = Sampler("heun", "Heun (Karras)", sample_heun_karras, nfe=_heun_evaluations)
UNIPC = Sampler("unipc", "UniPC (bh2)", sample_unipc)
DEIS = Sampler("deis", "DEIS", sample_deis)
IPNDM = Sampler("ipndm", "iPNDM", sample_ipndm)
SAMPLERS = {s.name: s for s in (DDPM, DDIM, DPMPP_2M, HEUN, UNIPC, DEIS, IPNDM)}   # by name: for text parameters only


def get_sampler(name: str | Sampler) -> Sampler:
    """The sampler a text parameter names (a `Sampler` is returned as it is)."""
    if isinstance(name, Sampler):
        return name
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def sampler_call(model, schedule: Schedule, sampler: Sampler, steps: int, x_T: torch.Tensor, *,
                 dtype: torch.dtype = torch.float32, seed: int = 0, cond: dict | None = None):
    """A zero-argument function that draws one batch from ``x_T`` with ``sampler`` in ``steps`` steps placed on
    ``schedule``, the training schedule (conditioned on ``cond``, under autocast when ``dtype`` is not fp32).
    Every call reseeds, so repeated (timed) calls return the same images."""
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be a fastdiff.sampling.Sampler (DDPM, DDIM, DPMPP_2M, HEUN, UNIPC, DEIS, "
                        f"IPNDM, DDIM.with_options(eta=...), or get_sampler(name) for a name), got {sampler!r}")
    _check_steps(steps)

    def run() -> torch.Tensor:
        gen = torch.Generator(x_T.device).manual_seed(seed)
        with autocast(x_T.device, dtype):
            return sampler(model, x_T.clone(), schedule, steps=steps, cond=cond, generator=gen, progress=False)
    return run
