"""Deep-feature caching (DeepCache) over the level walk: interval 1 is the plain U-Net; a partial call given the
cache of the same inputs equals the full call; a 10-step run at N = 5 makes 2 full and 8 partial calls, and a
partial call costs fewer FLOPs; a sampling run starts at prepare_condition, and a cache that does not fit the call
is an error, not a silent full call. (Over other methods: tests/test_stacking.py.)"""
import pytest
import torch

from fastdiff.diffusion import make_schedule
from fastdiff.measure.bench import count_flops
from fastdiff.methods.deep_cache import DeepCache
from fastdiff.sampling import DDIM, prepare_condition, sampler_call
from fastdiff.unet import build_unet


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return build_unet("tiny", channel_mult=(1, 2, 2)).eval()


def test_interval_one_is_the_plain_unet(unet):
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    schedule = make_schedule("linear")
    plain = sampler_call(unet, schedule, DDIM, 10, x_T)()
    cached = DeepCache(unet, interval=1)
    assert torch.equal(sampler_call(cached, schedule, DDIM, 10, x_T)(), plain)
    assert cached.calls == {"full": 10, "partial": 0}


def test_a_partial_call_uses_the_cache_and_costs_less(unet):
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([500, 500])
    model = DeepCache(unet, interval=3, level=0)
    with torch.no_grad():
        ref = unet(x, t)
        full = model(x, t)
        partial = model(x, t)                  # same inputs: the cached deep features are the right ones
        assert model.calls == {"full": 1, "partial": 1}
        torch.testing.assert_close(partial, ref, rtol=1e-6, atol=1e-6)
        assert torch.equal(full, ref)
        other = model(x, torch.tensor([400, 400]))      # the second partial call, another step: stale features
        assert model.calls == {"full": 1, "partial": 2}
        assert not torch.allclose(other, unet(x, torch.tensor([400, 400])))
        model.reset()
        flops_full = count_flops(lambda: model(x, t))
        flops_partial = count_flops(lambda: model(x, t))
    assert flops_partial < 0.6 * flops_full


def test_a_run_at_interval_five_and_a_new_run_start_afresh(unet):
    model = DeepCache(unet, interval=5)
    schedule = make_schedule("linear")
    x_T = torch.randn(2, 1, 8, 8)
    run = sampler_call(model, schedule, DDIM, 10, x_T)
    first = run()
    assert model.calls == {"full": 2, "partial": 8}
    assert torch.equal(run(), first)          # prepare_condition started a new run: nothing of the first's cache
    assert model.calls == {"full": 4, "partial": 16} and model.nfe_share() == pytest.approx(0.2)


def test_bad_settings_are_refused(unet):
    with pytest.raises(ValueError, match="positive integer"):
        DeepCache(unet, interval=0)
    with pytest.raises(ValueError, match="level must be in 0..1"):
        DeepCache(unet, interval=2, level=2)


def test_a_run_starts_at_prepare_condition_and_a_cache_that_does_not_fit_is_an_error(unet):
    model = DeepCache(unet, interval=2)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([500, 500])
    with torch.no_grad():
        model(x, t)
        assert prepare_condition(model, x, {}) == {}    # what every sampler calls before its first step
        model(x, torch.tensor([100, 100]))              # t fell, yet a new run: a full call
        assert model.calls == {"full": 2, "partial": 0}
        with pytest.raises(ValueError, match="partial call found features of shape"):
            model(torch.randn(3, 1, 8, 8), torch.tensor([90, 90, 90]))   # another batch, no new run marked
        model.reset()
        assert model(torch.randn(3, 1, 8, 8), torch.tensor([90, 90, 90])).shape == (3, 1, 8, 8)
    assert model.calls == {"full": 3, "partial": 0}
