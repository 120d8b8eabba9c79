"""The fast solvers against the reference implementation (HuggingFace diffusers, a test dependency).

DPM-Solver++(2M): every step of diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2), fed the same x_t and
the same network output, gives our step's output within 1e-6 in float64 (diffusers does its update in float32
inside, which bounds the agreement, so the test network keeps x_0 in [-1, 1] as a trained one does: x_0 =
tanh(x_t)); the whole sampler follows the same trajectory. Heun on Karras sigmas: our sigmas and fractional
timesteps equal diffusers' HeunDiscreteScheduler(use_karras_sigmas=True) to its float32 precision, and given the
same noise levels every step and the whole sampler agree within 1e-6 in float64. UniPC (bh2) and DEIS: given
diffusers' UniPCMultistepScheduler / DEISMultistepScheduler (defaults) our timesteps and a float64 sigma table,
every step from the same x_t, and every step of the whole sampler's trajectory, agree within 1e-6 in float64; both,
and iPNDM (tested against diffusers' PNDMScheduler in test_ipndm.py), stack on deep-feature caching and layer
skipping."""
import diffusers
import pytest
import torch

from fastdiff.diffusion import Schedule, make_schedule, respace, space_timesteps
from fastdiff.methods.deep_cache import DeepCache
from fastdiff.methods.layer_skipping import LayerSkippingUNet, ScheduledSkipping
from fastdiff.sampling import (DEIS, HEUN, IPNDM, UNIPC, dpmpp_2m_update, heun_update, karras_sigmas, sample_deis,
                               sample_dpmpp_2m, sample_heun_karras, sample_unipc, sampler_call)
from fastdiff.solvers import deis_update, unipc_bh2_update


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


def _heun_reference(steps):
    ref = diffusers.HeunDiscreteScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                                          beta_end=0.02, use_karras_sigmas=True, clip_sample=False)
    ref.set_timesteps(steps)
    abar = ref.alphas_cumprod.double()
    log_sig = ((1 - abar) / abar).sqrt().log()

    def model(x_in, t):    # the noise for which x_0 = tanh(x_in), whatever the (fractional) timestep
        t = t.double()[0]
        lo = int(min(t.floor().item(), 998))
        sigma = (log_sig[lo] + (t - lo) * (log_sig[lo + 1] - log_sig[lo])).exp()
        return (x_in * (sigma ** 2 + 1).sqrt() - torch.tanh(x_in)) / sigma
    return ref, Schedule(torch.arange(1000), abar, 1000), model


@pytest.mark.parametrize("steps", [5, 18])
def test_heun_karras_equals_diffusers_heun_discrete_scheduler(steps):
    ref, schedule, model = _heun_reference(steps)
    sigmas, ts = karras_sigmas(schedule, steps)
    # the noise levels and timesteps: diffusers keeps them in float32
    torch.testing.assert_close(sigmas, torch.cat([ref.sigmas[::2], ref.sigmas[-1:]]).double(), rtol=1e-6, atol=0)
    torch.testing.assert_close(ts, torch.cat([ref.timesteps[:1], ref.timesteps[1::2]]).double(), rtol=1e-6,
                               atol=1e-4)
    # every step, given the same noise levels, within 1e-6 in float64
    ref.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    ref.timesteps = torch.cat([ts[:1], ts[1:].repeat_interleave(2)])
    start = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x, worst, evals = start * sigmas[0].item(), 0.0, 0
    with torch.no_grad():
        for i in range(steps):
            ours, _ = heun_update(model, x, sigmas[i].item(), sigmas[i + 1].item(), ts[i].item(),
                                  ts[i + 1].item() if i + 1 < steps else 0.0, cond=None, clip=False)
            theirs = x
            for _ in range(1 if i == steps - 1 else 2):        # diffusers: one call per network evaluation
                t = ref.timesteps[evals]
                theirs = ref.step(model(ref.scale_model_input(theirs, t), t[None]), t, theirs).prev_sample
                evals += 1
            worst = max(worst, (ours - theirs).abs().max().item())
            x = theirs
    assert evals == 2 * steps - 1 and worst < 1e-6
    # the sampler: the same trajectory from the same x_T, landing on x_0 = tanh(.) in [-1, 1]
    out = sample_heun_karras(model, start, schedule, steps=steps, clip_x0=False, progress=False)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    assert out.abs().max() <= 1


def test_heun_through_sampler_call_uses_the_training_schedule():
    torch.manual_seed(0)
    calls = []

    def model(x, t):
        calls.append(t[0].item())
        return torch.zeros_like(x)
    run = sampler_call(model, make_schedule("linear"), HEUN, 4, torch.randn(2, 1, 4, 4))
    out = run()
    assert len(calls) == 7 and calls[0] == pytest.approx(999, abs=1e-6) and calls[-1] < 5   # 2N - 1 evaluations
    assert out.shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="positive integer"):
        karras_sigmas(make_schedule("linear"), 0)


# ------------------------------------------------------------------------------------ UniPC (bh2) and DEIS

def _multistep_reference(scheduler_class, steps, final_sigma):
    """diffusers' scheduler (its defaults) on our respaced timesteps with a float64 sigma table ending at
    ``final_sigma``, the respaced schedule, a network whose x_0 is tanh(x_t), and x_T."""
    ts = space_timesteps(1000, steps)
    ref = scheduler_class(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    ref.set_timesteps(steps)
    abar = ref.alphas_cumprod.double()
    order = sorted(ts, reverse=True)
    ref.timesteps = torch.tensor(order)
    ref.sigmas = torch.cat([((1 - abar[order]) / abar[order]).sqrt(), torch.tensor([final_sigma], dtype=torch.float64)])

    def model(x, t):     # the noise that makes x_0 = tanh(x_t)
        a = abar[t[0]]
        return (x - a.sqrt() * torch.tanh(x)) / (1 - a).sqrt()
    start = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return ref, Schedule(torch.tensor(ts), abar[ts], 1000), model, start


def _step_differences(ref, schedule, model, start, our_step):
    """Every step of ``ref`` and ``our_step(state, x_t, eps, i)`` from the same x_t (diffusers' trajectory), and
    that trajectory: (the largest step difference, [x after each step])."""
    x, state, worst, trajectory = start, {}, 0.0, []
    with torch.no_grad():
        for i in range(len(schedule) - 1, -1, -1):
            t = int(schedule.timesteps[i])
            eps = model(x, torch.full((2,), t))
            ours = our_step(state, x, eps, i)
            theirs = ref.step(eps, t, x).prev_sample
            worst = max(worst, (ours - theirs).abs().max().item())
            x = theirs
            trajectory.append(x)
    return worst, trajectory


def _sampler_trajectory(sampler, model, start, schedule):
    seen = []
    out = sampler(model, start, schedule, clip_x0=False, progress=False, callback=lambda d: seen.append(d["x"]))
    return out, seen


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_each_step_equals_diffusers_unipc_bh2(steps):
    # diffusers' default final sigma is 0 (final_sigmas_type="zero"), as ours
    ref, schedule, model, start = _multistep_reference(diffusers.UniPCMultistepScheduler, steps, 0.0)
    abar, abar_next = schedule.alpha_bar.tolist(), schedule.alpha_bar_prev.tolist()

    def step(state, x, eps, i):       # the loop of sample_unipc, from diffusers' x_t
        a = abar[i]
        x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
        x0s, abars, order = state.get("x0s", []), state.get("abars", []), state.get("order", 1)
        if x0s:                       # UniC at x_t, from the last (corrected) point
            x = unipc_bh2_update(state["x_last"], x0s[-order:], abars[-order:], a, x0_next=x0)
        x0s, abars = (x0s + [x0])[-2:], (abars + [a])[-2:]
        order = 1 if len(x0s) == 1 or i == 0 else 2
        state.update(x0s=x0s, abars=abars, order=order, x_last=x)
        return unipc_bh2_update(x, x0s[-order:], abars[-order:], abar_next[i])
    worst, trajectory = _step_differences(ref, schedule, model, start, step)
    assert worst < 1e-6
    out, seen = _sampler_trajectory(sample_unipc, model, start, schedule)
    assert max((a - b).abs().max().item() for a, b in zip(seen, trajectory)) < 1e-6 and len(seen) == steps
    torch.testing.assert_close(out, trajectory[-1], atol=1e-6, rtol=0)
    assert out.abs().max() <= 1                # lands on x_0 = tanh(.)


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_each_step_equals_diffusers_deis(steps):
    # diffusers' DEIS cannot step to sigma = 0 (log 0); its last step goes to sigma = 1e-12 instead of our 0, a
    # difference of about 1e-11 in x. 20 steps: second order to the end (diffusers lowers it only below 15)
    ref, schedule, model, start = _multistep_reference(diffusers.DEISMultistepScheduler, steps, 1e-12)
    abar, abar_next = schedule.alpha_bar.tolist(), schedule.alpha_bar_prev.tolist()

    def step(state, x, eps, i):       # the loop of sample_deis
        epss, abars = (state.get("epss", []) + [eps])[-2:], (state.get("abars", []) + [abar[i]])[-2:]
        state.update(epss=epss, abars=abars)
        order = 1 if len(epss) == 1 or (i == 0 and steps < 15) else 2
        return deis_update(x, epss[-order:], abars[-order:], abar_next[i])
    worst, trajectory = _step_differences(ref, schedule, model, start, step)
    assert worst < 1e-6
    out, seen = _sampler_trajectory(sample_deis, model, start, schedule)
    assert max((a - b).abs().max().item() for a, b in zip(seen, trajectory)) < 1e-6 and len(seen) == steps
    assert out.abs().max() <= 1


def test_unipc_and_deis_first_order_steps_are_ddim_and_land_on_x0():
    x, x0 = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    eps = (x - 0.2 ** 0.5 * x0) / 0.8 ** 0.5
    ddim = 0.5 ** 0.5 * x0 + 0.5 ** 0.5 * eps
    torch.testing.assert_close(unipc_bh2_update(x, [x0], [0.2], 0.5), ddim, atol=1e-12, rtol=0)
    torch.testing.assert_close(deis_update(x, [eps], [0.2], 0.5), ddim, atol=1e-12, rtol=0)
    assert torch.equal(unipc_bh2_update(x, [x0], [0.2], 1.0), x0)
    torch.testing.assert_close(deis_update(x, [eps], [0.2], 1.0), x0, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="orders 1 and 2"):
        deis_update(x, [eps] * 3, [0.1, 0.2, 0.3], 0.5)


@pytest.mark.parametrize("sampler", [UNIPC, DEIS, IPNDM], ids=["unipc", "deis", "ipndm"])
def test_unipc_deis_and_ipndm_through_sampler_call_and_on_method_stacks(tiny_model, sampler):
    s, steps = make_schedule("linear"), 6
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = sampler_call(tiny_model, s, sampler, steps, x_T)()
    # the Sampler places its steps on the training schedule: the function on the respaced schedule, bit for bit
    assert torch.equal(plain, sampler.fn(tiny_model, x_T.clone(), respace(s, space_timesteps(1000, steps)),
                                         progress=False))
    assert sampler.nfe(steps) == steps
    # stacked on deep-feature caching and on scheduled layer skipping: neutral settings are the U-Net alone,
    # active ones keep their effect (partial calls, k(t) that varies) and change the images
    for neutral, active in ((DeepCache(tiny_model, interval=1), DeepCache(tiny_model, interval=2)),
                            (ScheduledSkipping(LayerSkippingUNet(tiny_model, skip_type="zero"), 0, 1000),
                             ScheduledSkipping(LayerSkippingUNet(tiny_model, skip_type="zero"), 2, 1000))):
        assert torch.equal(sampler_call(neutral, s, sampler, steps, x_T)(), plain)
        out = sampler_call(active, s, sampler, steps, x_T)()
        assert torch.isfinite(out).all() and not torch.equal(out, plain)
        if isinstance(active, DeepCache):
            assert active.calls == {"full": steps // 2, "partial": steps // 2}
        else:
            assert len(active.calls) > 1 and sum(active.calls.values()) == steps
