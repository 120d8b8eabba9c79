"""Multistep update rules of the fast ODE solvers: one step of UniPC (bh2), of DEIS and of iPNDM, on tensors and
Python floats.

The sampling loops that call them (`fastdiff.sampling.sample_unipc`, `sample_deis`, `sample_ipndm`) evaluate the
network; these functions only combine its outputs. Notation, per point of the (respaced) discrete schedule,
abar = alpha_bar_t: alpha = sqrt(abar), sigma = sqrt(1 - abar) (x_t = alpha x_0 + sigma eps), lambda =
log(alpha / sigma) (half the log-SNR, increasing towards the data), rho = sigma / alpha (DEIS's time variable).
Histories are lists, oldest first: ``x0s`` / ``epss`` the network's predictions at the last points visited,
``abars`` those points' abar; the last entry is the current point, and the length of the list is the order of the
step. ``abar_next = 1`` is the end of sampling (sigma = 0).
"""
from __future__ import annotations

import math

import torch


def _alpha_sigma(abar: float) -> tuple[float, float]:
    return math.sqrt(abar), math.sqrt(max(0.0, 1 - abar))


def _lambda(abar: float) -> float:
    a, s = _alpha_sigma(abar)
    return math.log(a / s)


def unipc_bh2_update(x: torch.Tensor, x0s: list[torch.Tensor], abars: list[float], abar_next: float, *,
                     x0_next: torch.Tensor | None = None) -> torch.Tensor:
    """One UniPC step with data prediction and B(h) = B_2(h) = e^h - 1 (Zhao et al. 2023, UniPC, Sec. 3: the
    predictor UniP-p and the corrector UniC-p in their data-prediction form), as diffusers'
    ``UniPCMultistepScheduler(solver_type="bh2", predict_x0=True)``.

    From x at the current point s_0 (abar = abars[-1], data prediction m_0 = x0s[-1]) to the point abar_next, with
    h = lambda_next - lambda_0 and the earlier points s_k at r_k = (lambda_k - lambda_0) / h, D_k = (m_k - m_0) / r_k:

        x_next = (sigma_next / sigma_0) x - alpha_next (e^{-h} - 1) m_0 - alpha_next B(-h) sum_k rho_k D_k.

    Predictor (``x0_next`` None): the D_k of the earlier points; order 1 is DDIM, order 2 has rho_1 = 1/2.
    Corrector (``x0_next`` = the data prediction at the point abar_next, where x_next was predicted): the D_k above
    plus D = x0_next - m_0 at r = 1, rho solving sum_k rho_k r_k^(i-1) = b_i (i = 1..p) with
    b_i = i! phi_{i+1}(-h) / B(-h) in diffusers' recursion (phi_1(z) = (e^z - 1) / z, phi_{i+1}(z) =
    (phi_i(z) - 1/i!) / z); order 1 takes rho = 1/2. No network evaluation: the corrector reuses the one the next
    predictor needs. To sigma = 0 only the first order is defined (the sampler lowers the final order, as diffusers'
    ``lower_order_final``): the step lands on m_0. Orders 1 and 2 only (diffusers' default ``solver_order=2``)."""
    order = len(x0s)
    if order not in (1, 2) or len(abars) != order:
        raise ValueError(f"UniPC (bh2) takes orders 1 and 2 with one abar per prediction, got {order} predictions "
                         f"and {len(abars)} abars")
    m0 = x0s[-1]
    s0 = _alpha_sigma(abars[-1])[1]
    a_n, s_n = _alpha_sigma(abar_next)
    if s_n == 0:
        if order != 1 or x0_next is not None:
            raise ValueError("the step to sigma = 0 is the first-order predictor (lower_order_final)")
        return m0
    h = math.log(a_n / s_n) - _lambda(abars[-1])
    hh = -h                                       # data prediction: the exponential integrator runs in -h
    phi1 = math.expm1(hh)                         # h phi_1(h) = e^{-h} - 1
    b_h = phi1                                    # B_2(h) = e^h - 1, in -h
    x_next = (s_n / s0) * x - a_n * phi1 * m0
    if order == 2:
        r1 = (_lambda(abars[0]) - _lambda(abars[-1])) / h
        d1 = (x0s[0] - m0) / r1
    if x0_next is None:                           # 1. UniP: extrapolate with the earlier predictions
        return x_next if order == 1 else x_next - a_n * b_h * 0.5 * d1
    d_next = x0_next - m0                         # 2. UniC: the prediction at the new point, r = 1
    if order == 1:
        return x_next - a_n * b_h * 0.5 * d_next
    g1 = phi1 / hh - 1                            # phi_2(-h) (times 1!): b_1 = g1 / B
    g2 = g1 / hh - 0.5                            # phi_3(-h): b_2 = 2! g2 / B
    b1, b2 = g1 / b_h, 2 * g2 / b_h
    rho1 = (b1 - b2) / (1 - r1)                   # [[1, 1], [r_1, 1]] (rho_1, rho_next) = (b_1, b_2)
    rho_next = b1 - rho1
    return x_next - a_n * b_h * (rho1 * d1 + rho_next * d_next)


def _lagrange_integral(t: float, b: float, c: float) -> float:
    """An antiderivative in rho of the Lagrange basis (log rho - log c) / (log b - log c) (1 at b, 0 at c):
    rho (log rho - log c - 1) / (log b - log c); at rho = 0 its limit, 0."""
    if t == 0:
        return 0.0
    return t * (math.log(t) - math.log(c) - 1) / (math.log(b) - math.log(c))


def deis_update(x: torch.Tensor, epss: list[torch.Tensor], abars: list[float], abar_next: float) -> torch.Tensor:
    """One step of multistep DEIS in rho = sigma / alpha (Zhang & Chen 2023, DEIS: the exponential integrator
    x_t / alpha_t = x_s / alpha_s + int_{rho_s}^{rho_t} eps d rho, with eps extrapolated from the last points by a
    polynomial in log rho, their rhoAB-DEIS), as diffusers' ``DEISMultistepScheduler(algorithm_type="deis",
    solver_type="logrho")``:

        x_next = alpha_next (x / alpha_0 + sum_k C_k eps_k),  C_k = int_{rho_0}^{rho_next} l_k(log rho) d rho,

    l_k the Lagrange basis on the points' log rho. Order 1 (one prediction): C_0 = rho_next - rho_0, DDIM. At
    abar_next = 1 (rho = 0) the integrals take their limits, so the step lands on the data. Orders 1 and 2 only
    (diffusers' default ``solver_order=2``)."""
    order = len(epss)
    if order not in (1, 2) or len(abars) != order:
        raise ValueError(f"DEIS takes orders 1 and 2 with one abar per prediction, got {order} predictions and "
                         f"{len(abars)} abars")
    rho = [math.sqrt((1 - a) / a) for a in abars]
    a0, a_n = math.sqrt(abars[-1]), math.sqrt(abar_next)
    rho_n = math.sqrt(max(0.0, 1 - abar_next) / abar_next)
    if order == 1:
        return a_n * (x / a0 + (rho_n - rho[0]) * epss[0])
    (rho1, rho0), (eps1, eps0) = rho, epss
    c0 = _lagrange_integral(rho_n, rho0, rho1) - _lagrange_integral(rho0, rho0, rho1)
    c1 = _lagrange_integral(rho_n, rho1, rho0) - _lagrange_integral(rho0, rho1, rho0)
    return a_n * (x / a0 + c0 * eps0 + c1 * eps1)


# Adams-Bashforth in backward differences (Hairer, Norsett & Wanner, Sec. III.1): the order-p combination is
# sum_{j<p} gamma_j nabla^j eps_n, nabla^j the j-th backward difference at the newest point. Expanded: order 1: 1;
# 2: (3, -1) / 2; 3: (23, -16, 5) / 12; 4: (55, -59, 37, -9) / 24 (newest first). In this form a constant eps is
# kept bit for bit (every difference is 0), so a step on it is DDIM's step exactly.
AB_GAMMA = (1.0, 1 / 2, 5 / 12, 3 / 8)


def ipndm_update(x: torch.Tensor, epss: list[torch.Tensor], abar: float, abar_next: float) -> torch.Tensor:
    """One iPNDM step (Zhang & Chen 2023, DEIS, their improved PNDM): PNDM's linear multistep on the noise
    prediction (Liu et al. 2022, PLMS: the Adams-Bashforth combination of the last ``len(epss)`` eps, with the
    coefficients of equal steps, whatever the spacing) moved by DDIM's transfer from x at the current point
    (abar) to abar_next:

        eps' = sum_{j<p} gamma_j nabla^j eps_n,  x0' = (x - sigma_0 eps') / alpha_0,
        x_next = alpha_next x0' + sigma_next eps',

    p = len(epss) in 1..4 (oldest first, the last at the current point); order 1 is DDIM (eta = 0); at
    abar_next = 1 the step lands on x0'. Given the same 2, 3 or 4 eps, the same as diffusers'
    ``PNDMScheduler(skip_prk_steps=True).step_plms`` (whose transfer, PNDM's eq. 9, is DDIM's rearranged)."""
    order = len(epss)
    if not 1 <= order <= len(AB_GAMMA):
        raise ValueError(f"iPNDM takes orders 1 to {len(AB_GAMMA)} (one eps per order), got {order} predictions")
    # 1. the Adams-Bashforth extrapolation of eps over the step
    eps, diffs = epss[-1], list(epss)
    for gamma in AB_GAMMA[1:order]:
        diffs = [new - old for old, new in zip(diffs, diffs[1:])]     # the next backward differences, oldest first
        eps = eps + gamma * diffs[-1]
    # 2. DDIM's transfer with it: x_0 predicted from x, then noised to abar_next
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    return math.sqrt(abar_next) * x0 + math.sqrt(max(0.0, 1 - abar_next)) * eps
