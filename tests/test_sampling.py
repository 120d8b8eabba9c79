import pytest
import torch

from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.sampling import (DDIM, DDPM, DPMPP_2M, HEUN, SAMPLERS, ddim_sigma, get_sampler, sample_ddim,
                               sample_ddpm, sample_dpmpp_2m, sample_heun_karras, sampler_call)


def noise(seed=0, shape=(2, 1, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_ddim_eta1_variance_is_ddpm_posterior_variance():
    for name in ("linear", "cosine"):
        s = make_schedule(name)
        torch.testing.assert_close(ddim_sigma(s, 1.0) ** 2, s.posterior_variance, rtol=1e-9, atol=1e-15)
        r = respace(s, space_timesteps(1000, "ddim50"))
        torch.testing.assert_close(ddim_sigma(r, 1.0) ** 2, r.posterior_variance, rtol=1e-9, atol=1e-15)


def test_ddim_eta1_follows_ddpm_trajectory(tiny_model):
    # with the same noise draws, DDIM(eta=1) and DDPM take the same steps (eq. 16 of the DDIM paper)
    s = respace(make_schedule("linear"), space_timesteps(1000, 20))
    a = sample_ddpm(tiny_model, noise(), s, generator=torch.Generator().manual_seed(1), progress=False)
    b = sample_ddim(tiny_model, noise(), s, eta=1.0, generator=torch.Generator().manual_seed(1), progress=False)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_respacing_all_steps_equals_plain_sampler_bit_for_bit(tiny_model):
    s = make_schedule("linear", 50)
    full = respace(s, space_timesteps(50, 50))
    for sampler, kw in ((sample_ddpm, {}), (sample_ddim, {"eta": 0.5})):
        a = sampler(tiny_model, noise(), s, generator=torch.Generator().manual_seed(3), progress=False, **kw)
        b = sampler(tiny_model, noise(), full, generator=torch.Generator().manual_seed(3), progress=False, **kw)
        assert torch.equal(a, b)


def test_fixed_generator_reproduces_a_sample(tiny_model):
    s = respace(make_schedule("linear"), space_timesteps(1000, 10))
    a = sample_ddpm(tiny_model, noise(), s, generator=torch.Generator().manual_seed(7), progress=False)
    b = sample_ddpm(tiny_model, noise(), s, generator=torch.Generator().manual_seed(7), progress=False)
    c = sample_ddpm(tiny_model, noise(), s, generator=torch.Generator().manual_seed(8), progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_eta0_is_deterministic_and_callback_sees_every_step(tiny_model):
    s = respace(make_schedule("linear"), space_timesteps(1000, "ddim10"))
    steps = []
    a = sample_ddim(tiny_model, noise(), s, callback=lambda d: steps.append(d["t"]), progress=False)
    b = sample_ddim(tiny_model, noise(), s, generator=torch.Generator().manual_seed(99), progress=False)
    assert torch.equal(a, b)
    assert steps == list(range(900, -1, -100))


def test_samplers_take_any_model_and_pass_conditioning():
    calls = []

    def model(x, t, *, lr):  # a plain function, not a U-Net
        calls.append((t[0].item(), lr.shape))
        return torch.zeros_like(x)

    s = respace(make_schedule("linear"), [0, 499, 999])
    lr = torch.zeros(2, 3, 4, 4)
    out = sample_ddim(model, torch.randn(2, 3, 8, 8), s, cond={"lr": lr}, progress=False)
    assert out.shape == (2, 3, 8, 8)
    assert [c[0] for c in calls] == [999, 499, 0]
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler")


def test_perfect_denoiser_recovers_x0():
    # a model that knows x0 predicts eps exactly; both samplers then end at x0
    x0 = torch.rand(1, 1, 4, 4) * 2 - 1
    s = make_schedule("linear")

    def oracle(x, t):
        a = s.alpha_bar[t[0]].float()
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    r = respace(s, space_timesteps(1000, 25))
    for out in (sample_ddim(oracle, noise(shape=(1, 1, 4, 4)), r, progress=False),
                sample_ddpm(oracle, noise(shape=(1, 1, 4, 4)), r, generator=torch.Generator().manual_seed(0),
                            progress=False)):
        torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


# ------------------------------------------------------------------------- samplers chosen by function

def counting_model(calls: list):
    def model(x, t, **cond):
        calls.append(t[0].item())
        return torch.zeros_like(x) + 0.1 * x
    return model


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_every_sampler_makes_nfe_network_evaluations(name, steps):
    sampler, calls = SAMPLERS[name], []
    sampler_call(counting_model(calls), make_schedule("linear", 50), sampler, steps, noise(shape=(1, 1, 4, 4)))()
    assert len(calls) == sampler.nfe(steps)


def test_every_sampler_takes_the_same_arguments():
    """One signature for all: the training schedule and a step count, conditioning, a generator, a callback."""
    lr = torch.zeros(2, 3, 4, 4)
    for name, sampler in SAMPLERS.items():
        seen, steps = [], []

        def model(x, t, *, lr):
            seen.append(lr.shape)
            return torch.zeros_like(x)
        out = sampler(model, noise(shape=(2, 3, 8, 8)), make_schedule("linear"), steps=5, cond={"lr": lr},
                      generator=torch.Generator().manual_seed(0), callback=lambda d: steps.append(d["t"]),
                      progress=False)
        assert out.shape == (2, 3, 8, 8) and len(steps) == 5, name
        assert len(seen) == sampler.nfe(5) and set(seen) == {lr.shape}, name
        assert sampler_call(model, make_schedule("linear"), sampler, 5, noise(shape=(2, 3, 8, 8)),
                            cond={"lr": lr})().shape == (2, 3, 8, 8)


@pytest.mark.parametrize("sampler, reference", [
    (DDPM, lambda model, x, s, steps, gen: sample_ddpm(model, x, respace(s, space_timesteps(len(s), steps)),
                                                       generator=gen, progress=False)),
    (DDIM.with_options(eta=0.5), lambda model, x, s, steps, gen: sample_ddim(
        model, x, respace(s, space_timesteps(len(s), steps)), eta=0.5, generator=gen, progress=False)),
    (DDIM, lambda model, x, s, steps, gen: sample_ddim(model, x, respace(s, space_timesteps(len(s), steps)),
                                                       progress=False)),
    (DPMPP_2M, lambda model, x, s, steps, gen: sample_dpmpp_2m(model, x, respace(s, space_timesteps(len(s), steps)),
                                                               progress=False)),
    (HEUN, lambda model, x, s, steps, gen: sample_heun_karras(model, x, s, steps=steps, progress=False)),
], ids=["ddpm", "ddim-eta0.5", "ddim", "dpmpp2m", "heun"])
def test_a_sampler_object_gives_the_samples_of_its_function(tiny_model, sampler, reference):
    """The Sampler path (steps placed by the sampler) is bit for bit the function on a schedule respaced beforehand,
    as sampler_call did it before samplers were objects."""
    s = make_schedule("linear", 100)
    for steps in (3, 10):
        ours = sampler_call(tiny_model, s, sampler, steps, noise(), seed=4)()
        assert torch.equal(ours, reference(tiny_model, noise(), s, steps, torch.Generator().manual_seed(4)))


def test_options_labels_and_bad_names():
    assert DDIM.option("eta") == 0.0 and DDPM.option("eta") is None
    half = DDIM.with_options(eta=0.5)
    assert half.option("eta") == 0.5 and DDIM.option("eta") == 0.0 and half.nfe(10) == 10
    assert half.describe(20) == "DDIM 20, η=0.5" and DDPM.describe(1000) == "DDPM 1000"
    # what a call really uses, defaults included (a cache keyed on options alone misses a changed default)
    assert half.effective_options() == {"eta": 0.5, "clip_x0": True} and DDPM.effective_options() == {"clip_x0": True}
    assert get_sampler("ipndm").effective_options() == {"order": 4, "clip_x0": False}
    assert [s.label for s in SAMPLERS.values()] == ["DDPM", "DDIM", "DPM-Solver++(2M)", "Heun (Karras)",
                                                        "UniPC (bh2)", "DEIS", "iPNDM"]
    assert get_sampler("heun") is HEUN and get_sampler(half) is half
    with pytest.raises(ValueError, match=r"unknown sampler 'euler'; choose one of \['ddim', 'ddpm', 'deis', "
                                         r"'dpmpp2m', 'heun', 'ipndm', 'unipc'\]"):
        get_sampler("euler")
    with pytest.raises(ValueError, match=r"DDIM has no option 'etta'; its options: \['eta', 'clip_x0'\]"):
        DDIM.with_options(etta=1)
    with pytest.raises(TypeError, match="must be a fastdiff.sampling.Sampler .*get_sampler"):
        sampler_call(lambda x, t: x, make_schedule("linear"), "ddim", 10, noise())
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        sampler_call(lambda x, t: x, make_schedule("linear"), DDIM, 0, noise())
