"""iPNDM against diffusers' PNDMScheduler(skip_prk_steps=True) and against its closed form.

diffusers' PLMS without Runge-Kutta steps runs on N + 1 network calls: the first timestep twice (a DDIM step, then
the step redone with the mean of both eps), then the 2nd, 3rd and 4th order Adams-Bashforth combinations of the eps
it kept (the first one's and every later one's) with PNDM's transfer. iPNDM (Zhang & Chen 2023) takes N calls: the
same combinations with lower orders at the start and no re-evaluation. So, with diffusers' timesteps ('leading'
spacing, steps_offset=1) and its alphas in float64, each of diffusers' steps but the redone one equals ours given
the same x_t and eps within 1e-6 in float64 (in fact ~1e-15); and with the redone call fed the first eps again
instead of a new network call, diffusers' whole trajectory is iPNDM's. The warm-up orders are checked against the
explicit coefficient table; a model of constant eps, or order 1, gives DDIM bit for bit.
"""
from fractions import Fraction

import diffusers
import pytest
import torch

from fastdiff.diffusion import Schedule, make_schedule
from fastdiff.sampling import DDIM, IPNDM, get_sampler, sample_ddim, sample_ipndm, sampler_call
from fastdiff.solvers import ipndm_update

# the Adams-Bashforth coefficients of equal steps, newest eps first (Zhang & Chen 2023, iPNDM)
AB = {1: (Fraction(1),),
      2: (Fraction(3, 2), Fraction(-1, 2)),
      3: (Fraction(23, 12), Fraction(-16, 12), Fraction(5, 12)),
      4: (Fraction(55, 24), Fraction(-59, 24), Fraction(37, 24), Fraction(-9, 24))}


def _ddim_transfer(x, eps, abar, abar_next):
    """DDIM's step (eta = 0) with the noise eps, written as x_next = sqrt(a'/a) x + (sqrt(1-a') - sqrt(a'(1-a)/a)) eps,
    another arrangement than the solver's."""
    return (abar_next / abar) ** 0.5 * x + ((1 - abar_next) ** 0.5 - (abar_next * (1 - abar) / abar) ** 0.5) * eps


def test_the_coefficient_table_is_adams_bashforth():
    # order p integrates every polynomial of degree < p in the step index exactly over the next step:
    # sum_j c_j (-j)^q = int_0^1 s^q ds = 1 / (q + 1)
    for p, coefficients in AB.items():
        for q in range(p):
            assert sum(c * (-j) ** q for j, c in enumerate(coefficients)) == Fraction(1, q + 1), (p, q)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("abar, abar_next", [(0.3, 0.6), (0.9, 1.0)], ids=["step", "last step"])
def test_each_order_is_its_adams_bashforth_combination_with_ddim_transfer(order, abar, abar_next):
    gen = torch.Generator().manual_seed(order)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=gen)
    epss = [torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=gen) for _ in range(order)]   # oldest first
    combined = sum(float(c) * e for c, e in zip(AB[order], reversed(epss)))
    expected = _ddim_transfer(x, combined, abar, abar_next)
    torch.testing.assert_close(ipndm_update(x, epss, abar, abar_next), expected, atol=1e-12, rtol=0)


def test_orders_outside_one_to_four_are_refused():
    x = torch.zeros(3, dtype=torch.float64)
    for n in (0, 5):
        with pytest.raises(ValueError, match="iPNDM takes orders 1 to 4"):
            ipndm_update(x, [x] * n, 0.5, 0.7)


def _pndm_reference(steps):
    """diffusers' PNDMScheduler(skip_prk_steps=True), 'leading' spacing with steps_offset=1, alphas in float64 and
    a final alpha of 1 (ours: the last step lands on x_0); our schedule on its timesteps; a network whose x_0 is
    tanh(x_t); x_T."""
    ref = diffusers.PNDMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                  skip_prk_steps=True, steps_offset=1, set_alpha_to_one=True,
                                  timestep_spacing="leading")
    ref.set_timesteps(steps)
    ref.alphas_cumprod = ref.alphas_cumprod.double()
    ref.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    abar = ref.alphas_cumprod
    ts = sorted(set(ref.timesteps.tolist()))
    assert len(ts) == steps and len(ref.timesteps) == steps + 1        # the first timestep twice
    assert ts == [1 + k * (1000 // steps) for k in range(steps)]

    def model(x, t):     # the noise that makes x_0 = tanh(x_t)
        a = abar[t[0]]
        return (x - a.sqrt() * torch.tanh(x)) / (1 - a).sqrt()
    start = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return ref, Schedule(torch.tensor(ts), abar[ts], 1000), model, start


@pytest.mark.parametrize("steps", [5, 7, 10, 20])
def test_each_step_equals_diffusers_pndm_skip_prk(steps):
    ref, schedule, model, start = _pndm_reference(steps)
    abar = dict(zip(schedule.timesteps.tolist(), schedule.alpha_bar.tolist()))
    abar_next = dict(zip(schedule.timesteps.tolist(), schedule.alpha_bar_prev.tolist()))
    x, kept, worst, orders = start, [], 0.0, []
    with torch.no_grad():
        for j, t in enumerate(ref.timesteps.tolist()):
            eps = model(x, torch.full((2,), t))
            theirs = ref.step(eps, t, x).prev_sample
            if j != 1:                # diffusers' second call redoes the first step (Heun-like): not iPNDM's
                kept = (kept + [eps])[-4:]
                ours = ipndm_update(x, kept, abar[t], abar_next[t])
                worst = max(worst, (ours - theirs).abs().max().item())
                orders.append(len(kept))
            x = theirs
    assert orders == [1, 2, 3] + [4] * (steps - 3)
    assert worst < 1e-6


@pytest.mark.parametrize("steps", [5, 10])
def test_the_sampler_is_diffusers_pndm_with_the_first_eps_reused(steps):
    ref, schedule, model, start = _pndm_reference(steps)
    x, trajectory, first, calls = start, [], None, 0
    with torch.no_grad():
        for j, t in enumerate(ref.timesteps.tolist()):
            if j == 1:                # instead of a second network call at x_T's step: the first eps again
                again = ref.step(first, t, x).prev_sample
                torch.testing.assert_close(again, x, atol=1e-12, rtol=0)   # the same DDIM step, so nothing moves
                x = again
                continue
            eps = model(x, torch.full((2,), t))
            calls += 1
            first = eps if j == 0 else first
            x = ref.step(eps, t, x).prev_sample
            trajectory.append(x)
    seen, counted = [], []

    def counting(x_, t_):
        counted.append(int(t_[0]))
        return model(x_, t_)
    out = sample_ipndm(counting, start, schedule, clip_x0=False, progress=False,
                       callback=lambda d: seen.append(d["x"]))
    assert calls == len(counted) == len(seen) == steps == IPNDM.nfe(steps)
    assert max((a - b).abs().max().item() for a, b in zip(seen, trajectory)) < 1e-6
    torch.testing.assert_close(out, trajectory[-1], atol=1e-6, rtol=0)
    assert out.abs().max() <= 1               # lands on x_0 = tanh(.)


def test_a_constant_eps_and_order_one_are_ddim_bit_for_bit(tiny_model):
    schedule = make_schedule("linear")
    x_T = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    constant = lambda x, t: c           # noqa: E731
    for steps in (3, 10, 50):
        ddim, ours = [], []
        out = sample_ipndm(constant, x_T.clone(), schedule, steps=steps, clip_x0=False, progress=False,
                           callback=lambda d: ours.append(d["x"]))
        ref = sample_ddim(constant, x_T.clone(), schedule, steps=steps, clip_x0=False, progress=False,
                          callback=lambda d: ddim.append(d["x"]))
        assert torch.equal(out, ref) and all(torch.equal(a, b) for a, b in zip(ours, ddim)) and len(ours) == steps
    # order 1 on a real network: DDIM's step; bit for bit without clipping, to rounding with it (x_0 re-derived)
    x32 = x_T.float()
    first = sampler_call(tiny_model, schedule, IPNDM.with_options(order=1, clip_x0=False), 6, x32)()
    assert torch.equal(first, sampler_call(tiny_model, schedule, DDIM.with_options(clip_x0=False), 6, x32)())
    torch.testing.assert_close(sampler_call(tiny_model, schedule, IPNDM.with_options(order=1, clip_x0=True), 6, x32)(),
                               sampler_call(tiny_model, schedule, DDIM, 6, x32)(), atol=1e-5, rtol=0)
    # higher orders are not DDIM on a real network
    assert not torch.equal(sampler_call(tiny_model, schedule, IPNDM, 6, x32)(), first)


def test_the_sampler_by_name_and_its_options():
    assert get_sampler("ipndm") is IPNDM and IPNDM.label == "iPNDM" and IPNDM.nfe(10) == 10
    assert IPNDM.describe(10) == "iPNDM 10" and IPNDM.with_options(order=3).describe(10) == "iPNDM 10, order=3"
    with pytest.raises(ValueError, match=r"iPNDM has no option 'orderr'; its options: \['order', 'clip_x0'\]"):
        IPNDM.with_options(orderr=3)
    x_T = torch.randn(1, 1, 4, 4)
    for bad in (0, 5, 2.0, True, "4"):
        with pytest.raises(ValueError, match=r"order must be 1, 2, 3 or 4 .*got"):
            sampler_call(lambda x, t: x, make_schedule("linear"), IPNDM.with_options(order=bad), 3, x_T)()
