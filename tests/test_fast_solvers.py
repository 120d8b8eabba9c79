"""DPM-Solver++(2M) against the reference implementation: every step of diffusers' DPMSolverMultistepScheduler
(dpmsolver++, order 2), fed the same x_t and the same network output, gives our step's output within 1e-6 in
float64 (diffusers does its update in float32 inside, which bounds the agreement, so the test network keeps x_0
in [-1, 1] as a trained one does: x_0 = tanh(x_t)); the whole sampler follows the same trajectory."""
import pytest
import torch

from fastdiff.diffusion import Schedule, space_timesteps
from fastdiff.sampling import dpmpp_2m_update, sample_dpmpp_2m

diffusers = pytest.importorskip("diffusers")


@pytest.mark.parametrize("steps", [10, 25])
def test_each_step_equals_diffusers_dpm_solver_pp_2m(steps):
    ts = space_timesteps(1000, steps)
    ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                                                beta_end=0.02, algorithm_type="dpmsolver++", solver_order=2)
    ref.set_timesteps(timesteps=sorted(ts, reverse=True))
    abar = ref.alphas_cumprod.double()

    def model(x, t):     # the noise that makes x_0 = tanh(x_t)
        a = abar[t[0]]
        return (x - a.sqrt() * torch.tanh(x)) / (1 - a).sqrt()
    order = sorted(ts, reverse=True)
    nxt = {t: (abar[n].item() if n is not None else 1.0) for t, n in zip(order, order[1:] + [None])}
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0_prev, h_prev, worst = None, None, 0.0
    with torch.no_grad():
        for t in ref.timesteps:
            t = int(t)
            eps = model(x, torch.full((2,), t))
            a = abar[t].item()
            x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
            ours, h = dpmpp_2m_update(x, x0, a, nxt[t], x0_prev=x0_prev, h_prev=h_prev)
            theirs = ref.step(eps, t, x).prev_sample
            worst = max(worst, (ours - theirs).abs().max().item())
            x, x0_prev, h_prev = theirs, x0, h
    assert worst < 1e-6
    # the sampler itself: the same trajectory from the same start (drift bounded by diffusers' float32)
    sched = Schedule(torch.tensor(ts), abar[ts], 1000)
    start = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = sample_dpmpp_2m(model, start, sched, clip_x0=False, progress=False)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_the_last_step_lands_on_x0_and_one_step_is_first_order():
    x, x0 = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    assert torch.equal(dpmpp_2m_update(x, x0, 0.5, 1.0)[0], x0)
    first, h = dpmpp_2m_update(x, x0, 0.2, 0.5)
    # first order is DDIM with eta = 0 (Lu et al. 2022, Sec. 4): x_next = sqrt(abar') x0 + sqrt(1 - abar') eps
    eps = (x - 0.2 ** 0.5 * x0) / 0.8 ** 0.5
    torch.testing.assert_close(first, 0.5 ** 0.5 * x0 + 0.5 ** 0.5 * eps, atol=1e-12, rtol=0)
