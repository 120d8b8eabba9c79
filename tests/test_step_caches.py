"""The step caches over the level walk, each a sampling-time wrapper that runs part of the U-Net at some calls:

- `FirstBlockCache` (adaptive first-block caching): threshold 0 is the plain U-Net under every solver; a large
  threshold caches every call after the first (counters, finite and different images); a cached call of the same
  inputs reuses the residual of the rest exactly; a sampling run starts afresh; a batch of another size is a full
  call; bad settings are refused.
- `EncoderPropagation` (Faster Diffusion): interval 1 is the plain U-Net under every solver; at interval 2 half the
  calls are full (counters) and the images are finite and different; a non-key call of the same inputs equals the
  full call but for the timestep, and costs less; two runs are identical; a call of another batch size runs in
  full; bad settings are refused.
- `BlockCaching` (Cache Me if You Can): no schedule, and the schedule calibrated at threshold 0, are the plain U-Net
  under every solver; the schedule computes a block where its accumulated change reaches the threshold; a calibrated
  schedule at 0.3 caches some block calls (counted), the images are finite and different, two runs are identical, a
  longer run is refused; a cached block reuses its last output and costs less; a batch of another size or dtype
  computes every block; the blocks are restored after every call; bad settings and other step caches are refused.

Over and under the other methods: tests/test_stacking.py."""
import pytest
import torch

from fastdiff.diffusion import make_schedule
from fastdiff.measure.bench import count_flops
from fastdiff.methods import block_caching
from fastdiff.methods.block_caching import BlockCaching, block_names, cache_schedule, calibrate
from fastdiff.methods.deep_cache import DeepCache
from fastdiff.methods.encoder_propagation import EncoderPropagation
from fastdiff.methods.first_block_cache import FirstBlockCache
from fastdiff.methods.layer_skipping import LayerSkippingUNet, ScheduledSkipping
from fastdiff.sampling import DDIM, DPMPP_2M, SAMPLERS, UNIPC, prepare_condition, sampler_call
from fastdiff.unet import build_unet

STEPS = 6


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return build_unet("tiny", channel_mult=(1, 2, 2)).eval()


def x_T(batch=2, seed=1):
    return torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


# each cache at its neutral setting, and the name of its counter of calls that did not run the whole network
NEUTRAL = {"first-block cache, threshold 0": (lambda m: FirstBlockCache(m, threshold=0), "cached"),
           "encoder propagation, interval 1": (lambda m: EncoderPropagation(m, interval=1), "partial")}


@pytest.mark.parametrize("cache", NEUTRAL)
@pytest.mark.parametrize("sampler", [DDIM, DPMPP_2M, UNIPC], ids=lambda s: s.name)
def test_each_cache_at_its_neutral_setting_is_the_plain_unet_under_every_solver(unet, sampler, cache):
    assert SAMPLERS[sampler.name] is sampler
    schedule = make_schedule("linear")
    plain = sampler_call(unet, schedule, sampler, STEPS, x_T())()
    build, skipped = NEUTRAL[cache]
    model = build(unet)
    assert torch.equal(sampler_call(model, schedule, sampler, STEPS, x_T())(), plain)
    assert model.run_calls == {"full": STEPS, skipped: 0} and model.nfe_share() == 1.0
    if isinstance(model, FirstBlockCache):
        assert model.deltas[0] is None and all(d > 0 for d in model.deltas[1:])


def test_a_large_threshold_caches_every_call_after_the_first(unet):
    schedule = make_schedule("linear")
    plain = sampler_call(unet, schedule, DDIM, STEPS, x_T())()
    model = FirstBlockCache(unet, threshold=float("inf"))
    out = sampler_call(model, schedule, DDIM, STEPS, x_T())()
    assert model.calls == model.run_calls == {"full": 1, "cached": STEPS - 1}
    assert model.nfe_share() == pytest.approx(1 / STEPS)
    assert torch.isfinite(out).all() and not torch.allclose(out, plain, atol=1e-3)


def test_a_cached_call_reuses_the_residual_of_the_rest_and_costs_less(unet):
    x, t = x_T(), torch.tensor([500, 500])
    model = FirstBlockCache(unet, threshold=0.5)
    with torch.no_grad():
        ref = unet(x, t)
        assert torch.equal(model(x, t), ref)                      # full: the wrapped model's walk
        again = model(x, t)                                       # delta 0: cached, head(e0 + d0 - e0)
        assert model.calls == {"full": 1, "cached": 1} and model.deltas == [None, 0.0]
        torch.testing.assert_close(again, ref, rtol=1e-5, atol=1e-6)
        near = model(x + 1e-3 * torch.randn_like(x), t)           # a small change: still cached, not the same
        assert model.calls["cached"] == 2 and not torch.equal(near, again)
        far = model(torch.randn_like(x), torch.tensor([10, 10]))  # a large change: full
        assert model.calls["full"] == 2 and model.deltas[-1] > 0.5
        model.reset()
        flops_full = count_flops(lambda: model(x, t))
        flops_cached = count_flops(lambda: model(x, t))
    assert far.shape == x.shape and flops_cached < 0.3 * flops_full


def test_a_new_run_starts_afresh_and_another_batch_size_is_a_full_call(unet):
    model = FirstBlockCache(unet, threshold=0.2)
    schedule = make_schedule("linear")
    run = sampler_call(model, schedule, DDIM, 10, x_T())
    first = run()
    counts = dict(model.run_calls)
    assert counts["full"] >= 2 and counts["cached"] >= 1
    assert torch.equal(run(), first)                          # prepare_condition: nothing of the first run's cache
    assert model.run_calls == counts and model.calls == {k: 2 * v for k, v in counts.items()}
    x, t = x_T(3, seed=2), torch.tensor([90, 90, 90])
    with torch.no_grad():
        model(x, t)                                           # the cache of a batch of 2, no new run marked: full
        assert model.run_calls["full"] == counts["full"] + 1 and model.deltas[-1] is None
        assert model._first.shape[0] == 3
    assert prepare_condition(model, x, {}) == {} and model.run_calls == {"full": 0, "cached": 0}
    assert model._first is None and model.deltas == []


def test_another_dtype_is_a_full_call(unet):
    model = FirstBlockCache(unet.double(), threshold=float("inf"))
    x, t = x_T().double(), torch.tensor([500, 500])
    with torch.no_grad():
        model(x, t)
        model.base.float()
        out = model(x.float(), t)
    assert model.calls == {"full": 2, "cached": 0} and out.dtype == torch.float32


def test_under_grad_the_cache_holds_no_graph(unet):
    model = FirstBlockCache(unet, threshold=float("inf"))
    x, t = x_T(), torch.tensor([500, 500])
    model(x, t).sum().backward()
    assert not model._first.requires_grad and not model._residual.requires_grad
    model(x, t).sum().backward()                              # cached: gradients reach the first block and head
    assert model.calls == {"full": 1, "cached": 1} and unet.head[-1].weight.grad is not None


def test_neutral_stacks_with_deep_cache_and_scheduled_skipping_are_the_plain_unet(unet):
    schedule = make_schedule("linear")
    plain = sampler_call(unet, schedule, DPMPP_2M, STEPS, x_T())()
    stacks = [FirstBlockCache(DeepCache(unet, interval=1), threshold=0),
              FirstBlockCache(ScheduledSkipping(LayerSkippingUNet(unet, skip_type="duplicate"), 0, 1000), threshold=0)]
    for model in stacks:
        assert torch.equal(sampler_call(model, schedule, DPMPP_2M, STEPS, x_T())(), plain)
    assert stacks[0].inner.calls == {"full": STEPS, "partial": 0}
    # active: DeepCache counts only the calls that reach it, the full ones
    model = FirstBlockCache(DeepCache(unet, interval=2), threshold=0.2)
    sampler_call(model, schedule, DDIM, 10, x_T())()
    full = model.run_calls["full"]
    assert model.run_calls["cached"] >= 1 and model.inner.calls == {"full": (full + 1) // 2, "partial": full // 2}


def test_cache_in_cache_and_bad_settings_are_refused(unet):
    with pytest.raises(ValueError, match="FirstBlockCache goes outermost"):
        sampler_call(DeepCache(FirstBlockCache(unet, threshold=0), interval=1), make_schedule("linear"), DDIM, 2,
                     x_T())()
    with pytest.raises(ValueError, match="both change the steps the walk runs"):
        FirstBlockCache(FirstBlockCache(unet, threshold=0), threshold=0)
    with pytest.raises(ValueError, match=">= 0"):
        FirstBlockCache(unet, threshold=-0.1)
    with pytest.raises(ValueError, match=">= 0"):
        FirstBlockCache(unet, threshold=float("nan"))
    for bad in ("0.1", None, True):
        with pytest.raises(TypeError, match="threshold must be a number"):
            FirstBlockCache(unet, threshold=bad)
    with pytest.raises(TypeError, match="has none"):
        FirstBlockCache(torch.nn.Linear(2, 2), threshold=0)


# ---- encoder propagation


@pytest.mark.parametrize("sampler", [DDIM, DPMPP_2M, UNIPC], ids=lambda s: s.name)
def test_interval_two_halves_the_full_calls(unet, sampler):
    schedule = make_schedule("linear")
    plain = sampler_call(unet, schedule, sampler, STEPS, x_T())()
    model = EncoderPropagation(unet, interval=2)
    run = sampler_call(model, schedule, sampler, STEPS, x_T())
    out = run()
    assert model.run_calls == {"full": STEPS // 2, "partial": STEPS // 2} and model.nfe_share() == 0.5
    assert torch.isfinite(out).all() and not torch.allclose(out, plain, atol=1e-3)
    assert torch.equal(run(), out)                            # a second run: the same images, counted afresh
    assert model.run_calls == {"full": STEPS // 2, "partial": STEPS // 2}
    assert model.calls == {"full": STEPS, "partial": STEPS}


def test_key_calls_choose_the_full_calls(unet):
    model = EncoderPropagation(unet, key_calls=[2, 3])       # call 0 is always a key call
    sampler_call(model, make_schedule("linear"), DDIM, STEPS, x_T())()
    assert [model.is_key(i) for i in range(STEPS)] == [True, False, True, True, False, False]
    assert model.run_calls == {"full": 3, "partial": 3}


def test_a_non_key_call_decodes_the_recorded_encoder_features_and_costs_less(unet):
    x, t = x_T(), torch.tensor([500, 500])
    model = EncoderPropagation(unet, interval=2)
    with torch.no_grad():
        assert torch.equal(model(x, t), unet(x, t))          # key: the wrapped walk
        torch.testing.assert_close(model(x, t), unet(x, t), rtol=1e-5, atol=1e-6)   # same inputs: the same
        model(x, t)
        other = model(torch.randn_like(x), torch.tensor([400, 400]))    # x_t is not read, the timestep is
        model(x, t)
        assert torch.equal(model(x, torch.tensor([400, 400])), other)
        assert not torch.allclose(other, unet(x, t), atol=1e-4)
        model.reset()
        flops_full = count_flops(lambda: model(x, t))
        flops_partial = count_flops(lambda: model(x, t))
    assert model.calls == {"full": 4, "partial": 4} and flops_partial < 0.8 * flops_full


def test_another_batch_size_or_dtype_runs_in_full(unet):
    model = EncoderPropagation(unet, interval=100)
    with torch.no_grad():
        model(x_T(), torch.tensor([90, 90]))
        out = model(x_T(3, seed=2), torch.tensor([80, 80, 80]))          # features of a batch of 2: full
        assert model.run_calls == {"full": 2, "partial": 0} and model._middle.shape[0] == 3
        assert torch.equal(out, unet(x_T(3, seed=2), torch.tensor([80, 80, 80])))
        model.double()
        model(x_T(3, seed=2).double(), torch.tensor([70, 70, 70]))       # another dtype: full
        assert model.run_calls == {"full": 3, "partial": 0}
    assert prepare_condition(model, x_T(), {}) == {} and model.run_calls == {"full": 0, "partial": 0}
    assert model._middle is None and model._skips is None


def test_under_grad_the_features_hold_no_graph(unet):
    model = EncoderPropagation(unet, interval=2)
    x, t = x_T(), torch.tensor([500, 500])
    model(x, t).sum().backward()
    assert not model._middle.requires_grad and not any(s.requires_grad for s in model._skips)
    model(x, t).sum().backward()                              # partial: gradients reach the decoder and head
    assert model.calls == {"full": 1, "partial": 1} and unet.head[-1].weight.grad is not None


def test_bad_settings_and_other_step_caches_are_refused(unet):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="interval must be a positive integer"):
            EncoderPropagation(unet, interval=bad)
    with pytest.raises(ValueError, match="either interval or key_calls"):
        EncoderPropagation(unet, interval=2, key_calls=[0, 3])
    with pytest.raises(TypeError, match="key_calls must be an iterable"):
        EncoderPropagation(unet, key_calls=3)
    with pytest.raises(ValueError, match="call indices >= 0"):
        EncoderPropagation(unet, key_calls=[0, -2])
    with pytest.raises(TypeError, match="has none"):
        EncoderPropagation(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="both change the deep levels"):
        EncoderPropagation(DeepCache(unet, interval=1))
    with pytest.raises(ValueError, match="both change the steps the walk runs"):
        FirstBlockCache(EncoderPropagation(unet), threshold=0)


# ---- block caching


def run_with(sampler, steps=STEPS, batch=2):
    """A sampling run of ``sampler`` as `calibrate` takes it: ``run(model)`` samples once."""
    return lambda model: sampler_call(model, make_schedule("linear"), sampler, steps, x_T(batch))()


@pytest.mark.parametrize("neutral", ["no schedule", "threshold 0"])
@pytest.mark.parametrize("sampler", [DDIM, DPMPP_2M, UNIPC], ids=lambda s: s.name)
def test_block_caching_computing_every_block_is_the_plain_unet_under_every_solver(unet, sampler, neutral):
    plain = run_with(sampler)(unet)
    if neutral == "no schedule":
        model = BlockCaching(unet)
    else:
        model = BlockCaching.calibrated(unet, run_with(sampler), threshold=0)
        assert all(series[0] is None and all(c > 0 for c in series[1:]) and len(series) == STEPS
                   for series in model.changes.values())
        assert model.schedule == {name: frozenset(range(STEPS)) for name in model.names}
    assert torch.equal(run_with(sampler)(model), plain)
    blocks = len(model.names)
    assert model.run_calls == {"full": STEPS * blocks, "cached": 0} and model.compute_share() == 1.0
    assert model.computed == {name: list(range(STEPS)) for name in model.names}


def test_block_names_are_the_blocks_of_the_walk_in_order(unet):
    assert block_names(unet) == ["encoder.0.blocks.0", "encoder.1.blocks.0", "encoder.2.blocks.0", "middle",
                                 "decoder.2.blocks.0", "decoder.2.blocks.1", "decoder.1.blocks.0",
                                 "decoder.1.blocks.1", "decoder.0.blocks.0", "decoder.0.blocks.1"]
    modules = dict(unet.named_modules())
    assert all(modules[name] is block for name, block in block_caching.blocks(unet).items())


def test_the_schedule_computes_where_the_accumulated_change_reaches_the_threshold():
    changes = {"middle": [None, 0.25, 0.25, 0.75, 0.125, 0.125, 0.25],
               "encoder.0.blocks.0": [None, 0.0, 0.0, 0.0, None, 0.0, 1.0]}   # None: nothing compared, computes
    assert cache_schedule(changes, 0.5) == {"middle": {0, 2, 3, 6}, "encoder.0.blocks.0": {0, 4, 6}}
    assert cache_schedule(changes, 0) == {name: set(range(7)) for name in changes}
    assert cache_schedule(changes, float("inf")) == {"middle": {0}, "encoder.0.blocks.0": {0, 4}}


@pytest.mark.parametrize("sampler", [DDIM, DPMPP_2M], ids=lambda s: s.name)
def test_a_calibrated_schedule_caches_the_blocks_that_change_little(unet, sampler):
    plain = run_with(sampler, 10)(unet)
    model = BlockCaching.calibrated(unet, run_with(sampler, 10), threshold=0.3)
    assert model.num_calls == 10 and model.schedule == cache_schedule(model.changes, 0.3)
    out = run_with(sampler, 10)(model)
    assert model.computed == {name: sorted(model.schedule[name]) for name in model.names}
    full = sum(len(s) for s in model.schedule.values())
    assert model.run_calls == {"full": full, "cached": 10 * len(model.names) - full} and 0 < full < 5 * 10
    assert torch.isfinite(out).all() and not torch.allclose(out, plain, atol=1e-3)
    assert torch.equal(run_with(sampler, 10)(model), out)       # a second run: the same images, counted afresh
    assert model.run_calls["full"] == full and model.calls["full"] == 2 * full
    with pytest.raises(ValueError, match="covers 10 calls of a sampling run and this is call 11"):
        run_with(sampler, 12)(model)


def test_a_cached_block_reuses_its_last_output_and_costs_less(unet):
    x, t = x_T(), torch.tensor([500, 500])
    names = block_names(unet)
    with torch.no_grad():
        ref = unet(x, t)
        # the middle block computes at call 0 only: the same inputs give the same output
        model = BlockCaching(unet, schedule={"middle": {0}})
        assert torch.equal(model(x, t), ref)
        torch.testing.assert_close(model(x, t), ref, rtol=1e-5, atol=1e-6)
        assert model.run_calls == {"full": 2 * len(names) - 1, "cached": 1}
        assert not torch.allclose(model(torch.randn_like(x), torch.tensor([10, 10])),
                                  unet(torch.randn_like(x), torch.tensor([10, 10])), atol=1e-3)
        # every block computes at call 0 only: the stem and head run, on the cached blocks' outputs
        model = BlockCaching(unet, schedule={name: [0] for name in names})
        flops_full = count_flops(lambda: model(x, t))
        other = model(torch.randn_like(x), torch.tensor([10, 10]))
        flops_cached = count_flops(lambda: model(x, t))
        assert torch.equal(other, ref) and model.run_calls == {"full": len(names), "cached": 2 * len(names)}
    assert flops_cached < 0.3 * flops_full                    # the stem, down- and upsamplings, head
    assert all("forward" not in block.__dict__ for block in block_caching.blocks(unet).values())   # restored


def test_block_caching_starts_afresh_and_never_reuses_another_shape_or_dtype(unet):
    names = block_names(unet)
    model = BlockCaching(unet, schedule={name: [0] for name in names})
    with torch.no_grad():
        model(x_T(), torch.tensor([90, 90]))
        x3, t3 = x_T(3, seed=2), torch.tensor([80, 80, 80])
        out = model(x3, t3)                                   # outputs of a batch of 2: every block computes
        assert model.run_calls == {"full": 2 * len(names), "cached": 0} and torch.equal(out, unet(x3, t3))
        model(x3, t3)                                         # now cached
        assert model.run_calls["cached"] == len(names)
        model.double()
        out = model(x3.double(), t3)                          # another dtype: every block computes
        assert model.run_calls == {"full": 3 * len(names), "cached": len(names)} and out.dtype == torch.float64
    assert prepare_condition(model, x3, {}) == {} and model.run_calls == {"full": 0, "cached": 0}
    assert model.index == 0 and model._cache == {} and model.runs == 1


def test_block_caching_restores_the_blocks_when_the_walk_fails(unet):
    model = BlockCaching(unet)
    with pytest.raises(ValueError, match="U-Net expects"):
        model(torch.randn(2, 1, 6, 6), torch.tensor([1, 1]))
    assert all("forward" not in block.__dict__ for block in block_caching.blocks(unet).values())
    assert torch.equal(unet(x_T(), torch.tensor([5, 5])), model(x_T(), torch.tensor([5, 5])))


def test_under_grad_the_block_caches_hold_no_graph(unet):
    model = BlockCaching(unet, schedule={"middle": [0], "decoder.0.blocks.1": [0]})
    x, t = x_T(), torch.tensor([500, 500])
    model(x, t).sum().backward()
    assert not any(out.requires_grad for _, out in model._cache.values())
    model(x, t).sum().backward()                              # cached: gradients still reach the head
    assert model.run_calls["cached"] == 2 and unet.head[-1].weight.grad is not None


def test_block_caching_refuses_bad_settings_and_other_step_caches(unet):
    for bad in (-0.1, float("nan"), "0.1", None, True):
        with pytest.raises(ValueError, match="threshold must be a number >= 0"):
            BlockCaching.calibrated(unet, run_with(DDIM), threshold=bad)
        with pytest.raises(ValueError, match="threshold must be a number >= 0"):
            cache_schedule({"middle": [None, 0.1]}, bad)
    with pytest.raises(ValueError, match="schedule must be a dict"):
        BlockCaching(unet, schedule=[0, 1])
    with pytest.raises(ValueError, match="'decoder.3.blocks.0', no block of this U-Net; its blocks are encoder.0"):
        BlockCaching(unet, schedule={"decoder.3.blocks.0": {0}})
    with pytest.raises(ValueError, match="must be a set of call indices"):
        BlockCaching(unet, schedule={"middle": 3})
    for bad in ([0, -1], [1.5], ["0"], [True]):
        with pytest.raises(ValueError, match="must hold call indices >= 0"):
            BlockCaching(unet, schedule={"middle": bad})
    with pytest.raises(ValueError, match="call indices >= 0 and < num_calls = 4"):
        BlockCaching(unet, schedule={"middle": [0, 4]}, num_calls=4)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="num_calls must be a positive integer"):
            BlockCaching(unet, num_calls=bad)
    for bad in ({}, [None, 0.1], {"middle": [None], "encoder.0.blocks.0": [None, 0.1]}, {"middle": 0.1}):
        with pytest.raises(ValueError, match="changes must"):
            cache_schedule(bad, 0.1)
    with pytest.raises(ValueError, match="numbers >= 0"):
        cache_schedule({"middle": [None, -0.1]}, 0.1)
    with pytest.raises(ValueError, match="one sampling run, it made 2"):
        calibrate(unet, lambda m: (run_with(DDIM, 2)(m), run_with(DDIM, 2)(m)))
    with pytest.raises(ValueError, match="made no call"):
        calibrate(unet, lambda m: None)
    with pytest.raises(TypeError, match="has none"):
        BlockCaching(torch.nn.Linear(2, 2))
    for stack in (lambda: BlockCaching(DeepCache(unet, interval=1)), lambda: DeepCache(BlockCaching(unet), interval=1),
                  lambda: BlockCaching(EncoderPropagation(unet)), lambda: BlockCaching(BlockCaching(unet)),
                  lambda: LayerSkippingUNet(BlockCaching(unet), skip_type="duplicate")):
        with pytest.raises(ValueError, match="both change the deep levels"):
            stack()
    for stack in (lambda: FirstBlockCache(BlockCaching(unet), threshold=0),
                  lambda: BlockCaching(FirstBlockCache(unet, threshold=0))):
        with pytest.raises(ValueError, match="both change the steps the walk runs"):
            stack()
