"""Study 3's method: the continuous U-Net (cU-Net) of "Beyond U: Making Diffusion Models Faster & Lighter",
whose blocks integrate a learned second-order ODE instead of stacking discrete ResNet blocks.

A *dynamic block* integrates, over the neural-ODE time t~ in [0, 1], the second-order system of eq. (3):

    x'' = f(x, x', t, t~; theta_f),    x(t~_0) = X_0 (the block's input),    x'(t~_0) = g(X_0; theta_g),

written as the first-order system x' = v, v' = f(x, v, t, t~) on the pair (x, v), so that f really is an
acceleration. Here f is GroupNorm -> scale and shift by an MLP of the diffusion time embedding (so t is used) ->
SiLU -> a 3x3 convolution, minus a learned per-channel damping of the velocity, plus a learned per-channel term in
t~; g (the initial velocity) is GroupNorm -> SiLU -> a 1x1 convolution, initialised at zero. The block's output is
x(1). The paper's Table 2 ablates its "resblocks" (R) and attention (A): a cU-Net block here is an optional ResNet
block (R; also what changes the width, else a 1x1 projection), then the dynamic block, then optional attention.

The solver is explicit and reported: ``solver`` euler | rk4 (fixed steps of ``step_size``; RK4 in Kutta's 3/8 form, as torchdiffeq's) | dopri5 (adaptive,
``rtol`` / ``atol``), ``backend`` ``loop`` (a hand-rolled fixed-step loop) or ``torchdiffeq`` (``odeint``, or
``odeint_adjoint`` with ``adjoint``). Every evaluation of f is counted (`nfe`), so FLOPs and time can be stated per
solve, not per evaluation of f.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import AttentionBlock, ResBlock, group_norm, register_block

SOLVERS = ("euler", "rk4", "dopri5")
BACKENDS = ("loop", "torchdiffeq")
DEFAULTS = {"solver": "rk4", "step_size": 1.0, "rtol": 1e-3, "atol": 1e-4, "backend": "loop", "resblock": True,
            "adjoint": False}


def check_options(options: dict) -> dict:
    """The ODE options of a cU-Net block, completed with `DEFAULTS`, or a ValueError saying what is wrong."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown ODE block options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    if o["solver"] not in SOLVERS:
        raise ValueError(f"unknown ODE solver {o['solver']!r}; choose one of {SOLVERS}")
    if o["backend"] not in BACKENDS:
        raise ValueError(f"unknown ODE backend {o['backend']!r}; choose one of {BACKENDS}")
    if o["solver"] == "dopri5" and o["backend"] == "loop":
        raise ValueError("the adaptive dopri5 solver needs backend='torchdiffeq' (the loop backend is fixed-step)")
    steps = 1.0 / o["step_size"] if isinstance(o["step_size"], (int, float)) and o["step_size"] > 0 else 0
    if o["solver"] != "dopri5" and (steps < 1 or abs(steps - round(steps)) > 1e-9):
        raise ValueError(f"step_size must divide [0, 1] into a whole number of steps (1, 0.5, 0.25 ...), "
                         f"got {o['step_size']!r}")
    for key in ("rtol", "atol"):
        if not isinstance(o[key], (int, float)) or o[key] <= 0:
            raise ValueError(f"{key} must be a positive number, got {o[key]!r}")
    if o["adjoint"] and o["backend"] != "torchdiffeq":
        raise ValueError("adjoint=True needs backend='torchdiffeq' (odeint_adjoint)")
    return o


class Acceleration(nn.Module):
    """f(x, v, t~) = conv3x3(SiLU(GN(x) * (1 + s) + b)) - softplus(gamma) * v + t~ * w, where (s, b) come from the
    diffusion time embedding (set once per block call by `condition`). ``nfe`` counts evaluations."""

    def __init__(self, channels: int, *, emb_dim: int, norm_groups: int):
        super().__init__()
        self.norm = group_norm(channels, norm_groups)
        self.emb_proj = nn.Linear(emb_dim, 2 * channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.damping = nn.Parameter(torch.zeros(channels))     # softplus(0) = 0.69: some damping to start with
        self.t_weight = nn.Parameter(torch.zeros(channels))    # the dependence on t~
        self.nfe = 0
        self._scale = self._shift = None

    def condition(self, emb: torch.Tensor) -> None:
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        self._scale, self._shift = scale, shift

    def forward(self, t_ode, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        h = F.silu(self.norm(x) * (1 + self._scale) + self._shift)
        gamma = F.softplus(self.damping)[None, :, None, None].to(x.dtype)
        t_ode = t_ode if isinstance(t_ode, torch.Tensor) else torch.tensor(t_ode)
        return self.conv(h) - gamma * v + t_ode.to(x.dtype) * self.t_weight[None, :, None, None].to(x.dtype)


class _Vector(nn.Module):
    """(x, v) -> (v, f(x, v)): the first-order form that torchdiffeq integrates (a module, for the adjoint)."""

    def __init__(self, f: Acceleration):
        super().__init__()
        self.f = f

    def forward(self, t, state):
        x, v = state
        return v, self.f(t, x, v)


def fixed_step(f, x: torch.Tensor, v: torch.Tensor, *, solver: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The hand-rolled fixed-step integration of x' = v, v' = f(t, x, v) over [0, 1]: explicit Euler, or RK4 in
    Kutta's 3/8 form, the variant torchdiffeq's ``rk4`` uses, so that both backends are one solver (tested)."""
    h = 1.0 / steps
    for i in range(steps):
        t = i * h
        if solver == "euler":
            x, v = x + h * v, v + h * f(t, x, v)
            continue
        k1x, k1v = v, f(t, x, v)
        x2, v2 = x + h * k1x / 3, v + h * k1v / 3
        k2x, k2v = v2, f(t + h / 3, x2, v2)
        x3, v3 = x + h * (k2x - k1x / 3), v + h * (k2v - k1v / 3)
        k3x, k3v = v3, f(t + 2 * h / 3, x3, v3)
        x4, v4 = x + h * (k1x - k2x + k3x), v + h * (k1v - k2v + k3v)
        k4x, k4v = v4, f(t + h, x4, v4)
        x = x + h / 8 * (k1x + 3 * (k2x + k3x) + k4x)
        v = v + h / 8 * (k1v + 3 * (k2v + k3v) + k4v)
    return x, v


class ODEBlock(nn.Module):
    """The dynamic block: x(1) of the second-order system started at x(0) = X_0, x'(0) = g(X_0)."""

    def __init__(self, channels: int, *, emb_dim: int, norm_groups: int, options: dict):
        super().__init__()
        self.options = check_options(options)
        self.f = Acceleration(channels, emb_dim=emb_dim, norm_groups=norm_groups)
        self.g = nn.Sequential(group_norm(channels, norm_groups), nn.SiLU(), nn.Conv2d(channels, channels, 1))
        nn.init.zeros_(self.g[-1].weight)
        nn.init.zeros_(self.g[-1].bias)

    def forward(self, x0: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        o = self.options
        self.f.condition(emb)
        v0 = self.g(x0)
        if o["backend"] == "loop":
            return fixed_step(self.f, x0, v0, solver=o["solver"], steps=round(1 / o["step_size"]))[0]
        import torchdiffeq
        odeint = torchdiffeq.odeint_adjoint if o["adjoint"] else torchdiffeq.odeint
        t = torch.tensor([0.0, 1.0], device=x0.device, dtype=torch.float32)
        kwargs = {"rtol": o["rtol"], "atol": o["atol"]} if o["solver"] == "dopri5" else \
            {"options": {"step_size": o["step_size"]}}
        if o["adjoint"]:
            kwargs["adjoint_params"] = tuple(self.f.parameters())
        xs, _ = odeint(_Vector(self.f), (x0, v0), t, method=o["solver"], **kwargs)
        return xs[-1]


class ODEResAttnBlock(nn.Module):
    """A cU-Net block for the U-Net's block factory: [ResNet block (R) | 1x1 projection] -> dynamic block ->
    [attention (A)]."""

    def __init__(self, in_ch: int, out_ch: int, *, emb_dim: int, dropout: float, norm_groups: int,
                 attention: bool, num_heads: int = 1, **options):
        super().__init__()
        o = check_options(options)
        if o["resblock"]:
            self.res = ResBlock(in_ch, out_ch, emb_dim=emb_dim, dropout=dropout, norm_groups=norm_groups)
        else:
            self.res = None
            self.proj = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.ode = ODEBlock(out_ch, emb_dim=emb_dim, norm_groups=norm_groups, options=o)
        self.attn = AttentionBlock(out_ch, num_heads=num_heads, norm_groups=norm_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.res(x, emb) if self.res is not None else self.proj(x)
        h = self.ode(h, emb)
        return self.attn(h) if self.attn is not None else h


register_block("ode")(ODEResAttnBlock)


def ode_blocks(model: nn.Module) -> list[ODEBlock]:
    return [m for m in model.modules() if isinstance(m, ODEBlock)]


def reset_nfe(model: nn.Module) -> None:
    for block in ode_blocks(model):
        block.f.nfe = 0


def nfe(model: nn.Module) -> int:
    """Evaluations of f since the last `reset_nfe`, summed over the model's dynamic blocks."""
    return sum(block.f.nfe for block in ode_blocks(model))


def set_solver(model: nn.Module, **options) -> nn.Module:
    """Change the solver options of every dynamic block in place (the weights do not depend on them), e.g. to
    sample a model trained with RK4 by Euler or dopri5."""
    if "resblock" in options:
        raise ValueError("resblock changes the architecture; build another model instead")
    for block in ode_blocks(model):
        block.options = check_options({**block.options, **options})
    return model
