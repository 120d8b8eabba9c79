import math

import pytest
import torch

from fastdiff.diffusion import (Schedule, cosine_alpha_bar, make_schedule, noise_loss, q_sample, respace,
                                space_timesteps)


def test_linear_schedule_closed_form():
    s = make_schedule("linear")
    assert len(s) == 1000 and s.num_train_timesteps == 1000
    beta = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(s.betas, beta, rtol=0, atol=1e-12)
    # \bar\alpha_t = prod (1 - beta_s): check two entries by hand
    assert s.alpha_bar[0].item() == pytest.approx(1 - 1e-4, abs=1e-15)
    assert s.alpha_bar[1].item() == pytest.approx((1 - 1e-4) * (1 - (1e-4 + (0.02 - 1e-4) / 999)), rel=1e-12)
    # DDPM: the last step is almost pure noise, sqrt(abar_T) ~ 0.0064
    assert math.sqrt(s.alpha_bar[-1]) == pytest.approx(0.00635, rel=0.01)
    # posterior variance: tilde beta_1 = 0 (abar_0 = 1), and tilde beta_t < beta_t
    assert s.posterior_variance[0] == 0
    assert (s.posterior_variance[1:] < s.betas[1:]).all()


def test_sr3_and_cosine_schedules():
    s = make_schedule("sr3")
    assert len(s) == 2000
    torch.testing.assert_close(s.betas[[0, -1]], torch.tensor([1e-6, 1e-2], dtype=torch.float64), rtol=0, atol=1e-12)
    c = make_schedule("cosine")
    t = torch.tensor([0, 250, 500, 999])
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = torch.tensor([f((int(i) + 1) / 1000) / f(0) for i in t], dtype=torch.float64)
    torch.testing.assert_close(c.alpha_bar[t][:3], expected[:3], rtol=1e-9, atol=0)
    assert (c.betas <= 0.999 + 1e-12).all()
    assert torch.allclose(cosine_alpha_bar(10), make_schedule("cosine", 10).alpha_bar)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'"):
        make_schedule("quadratic")


def test_space_timesteps():
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    assert space_timesteps(1000, 1000) == list(range(1000))
    kept = space_timesteps(1000, 10)
    assert len(kept) == 10 and kept[0] == 0 and kept[-1] == 999
    assert space_timesteps(100, "10,5") == sorted(space_timesteps(100, [10, 5]))
    assert len(space_timesteps(100, [10, 5])) == 15
    with pytest.raises(ValueError):
        space_timesteps(10, 11)
    with pytest.raises(ValueError):
        space_timesteps(1000, "fast")


def test_respace_keeps_alpha_bar_and_recomputes_betas():
    s = make_schedule("linear")
    kept = space_timesteps(1000, "ddim10")
    r = respace(s, kept)
    assert r.timesteps.tolist() == kept
    torch.testing.assert_close(r.alpha_bar, s.alpha_bar[kept])
    # respaced betas: 1 - abar_i / abar_{i-1}, larger than any single original beta
    torch.testing.assert_close(r.betas[1], 1 - s.alpha_bar[kept[1]] / s.alpha_bar[kept[0]])
    assert r.betas[1] > s.betas[kept[1]]
    with pytest.raises(ValueError, match="not in the schedule"):
        respace(r, [5])


def test_schedule_validation():
    with pytest.raises(ValueError):
        Schedule(torch.tensor([2, 1]), torch.tensor([0.9, 0.8], dtype=torch.float64), 3)


def test_q_sample_and_loss():
    s = make_schedule("linear")
    x0 = torch.ones(2, 1, 4, 4)
    noise = torch.zeros_like(x0)
    xt = q_sample(s, x0, torch.tensor([0, 999]), noise)
    assert xt[0].mean().item() == pytest.approx(math.sqrt(s.alpha_bar[0]), rel=1e-6)
    assert xt[1].mean().item() == pytest.approx(math.sqrt(s.alpha_bar[999]), rel=1e-5)
    # an oracle that returns the true noise has zero loss, in both norms
    noise = torch.randn(2, 1, 4, 4)
    oracle = lambda x, t: noise  # noqa: E731
    for kind in ("l1", "l2"):
        assert noise_loss(oracle, x0, s, noise=noise, loss=kind).item() == 0
    assert noise_loss(lambda x, t: torch.zeros_like(x), x0, s, noise=noise, loss="l1").item() == \
        pytest.approx(noise.abs().mean().item())
    with pytest.raises(ValueError, match="unknown loss"):
        noise_loss(oracle, x0, s, loss="huber")


def test_model_sees_original_timesteps():
    s = respace(make_schedule("linear"), [0, 500, 999])
    seen = []
    model = lambda x, t: (seen.append(t.tolist()), torch.zeros_like(x))[1]  # noqa: E731
    noise_loss(model, torch.zeros(3, 1, 2, 2), s, i=torch.tensor([0, 1, 2]))
    assert seen == [[0, 500, 999]]
