"""Layer skipping: k = 0 is the U-Net, every k equals a hand-written reference walk, k(t) follows eq. (1), every
skip type and k gives the right shape, scheme-2 batches keep k consistent with t, and a skipping model trains,
checkpoints and resumes."""
import math

import pytest
import torch
import torch.nn.functional as F

from fastdiff.diffusion import make_schedule
from fastdiff.methods.layer_skipping import (SKIP_TYPES, LayerSkippingUNet, ScheduledSkipping, k_intervals, k_of_t,
                                             k_table, predicted_time_fraction, timestep_sampler)
from fastdiff.studies.adaptive_layer_skipping import flops_by_k
from fastdiff.train import TrainConfig, load_model, train
from fastdiff.unet import build_unet


def unet3():
    torch.manual_seed(0)
    return build_unet("tiny", channel_mult=(1, 2, 2)).eval()  # 3 levels: 8x8, 4x4, 2x2


def reference_forward(unet, x, t, k=0, fill=None):
    """The DDPM U-Net forward pass written out block by block, without the library's level walk: encoder levels
    0..N-k-1 (no downsample at the last active one), the middle block or ``fill``, the mirrored decoder."""
    n = unet.config.num_levels
    active = n - k
    emb = unet.time_embed(F.pad(torch.cat([torch.sin(t[:, None].float() * _freqs(unet)),
                                           torch.cos(t[:, None].float() * _freqs(unet))], 1), (0, 0)))
    h = unet.stem(x)
    skips = [h]
    for level in range(active):
        for block in unet.encoder[level].blocks:
            h = block(h, emb)
            skips.append(h)
        if level < active - 1:
            h = unet.encoder[level].down(h)
            skips.append(h)
    h = unet.middle.block2(unet.middle.block1(h, emb), emb) if k == 0 else fill(h, active - 1)
    for level in reversed(range(active)):
        for block in unet.decoder[level].blocks:
            h = block(torch.cat([h, skips.pop()], 1), emb)
        if unet.decoder[level].up is not None:
            h = unet.decoder[level].up(h)
    assert not skips
    return unet.head(h)


def _freqs(unet):
    half = unet.config.base_channels // 2
    return torch.exp(-math.log(10000.0) * torch.arange(half) / (half - 1))[None]


@pytest.mark.parametrize("skip_type", SKIP_TYPES)
def test_k_zero_is_the_unet_and_every_k_is_the_reference_walk(skip_type):
    unet = unet3()
    model = LayerSkippingUNet(unet, skip_type=skip_type).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 500, 999])
    with torch.no_grad():
        assert torch.equal(model(x, t, k=0), unet(x, t))
        torch.testing.assert_close(model(x, t, k=0), reference_forward(unet, x, t), rtol=1e-5, atol=1e-6)
        if skip_type == "zero":  # the missing decoder input is zeros of the deeper level's width
            for k in (1, 2):
                width = unet.config.level_channels(3 - k)
                ref = reference_forward(unet, x, t, k, lambda h, level: h.new_zeros(h.shape[0], width, *h.shape[-2:]))
                torch.testing.assert_close(model(x, t, k=k), ref, rtol=1e-5, atol=1e-6)
        if skip_type == "duplicate":  # level 1 (16 channels) feeds both inputs of decoder level 1 at k=1
            ref = reference_forward(unet, x, t, 1, lambda h, level: h)
            torch.testing.assert_close(model(x, t, k=1), ref, rtol=1e-5, atol=1e-6)


def test_k_of_t_follows_equation_1():
    # k(t) = min(N-1, floor(N - N (1-t)^c)), worked by hand for N = 4
    cases = {(0.0, 1): 0, (0.3, 1): 1, (0.6, 1): 2, (0.9, 1): 3, (1.0, 1): 3,
             (0.1, 2): 0, (0.3, 2): 2, (0.5, 2): 3, (0.05, 5): 0, (0.1, 5): 1, (0.2, 5): 2}
    for (t, c), k in cases.items():
        assert k_of_t(t, 4, c) == k, (t, c)
        assert k == min(3, math.floor(4 - 4 * (1 - t) ** c))
    assert all(k_of_t(t / 10, 4, 0) == 0 for t in range(11))  # c = 0: the plain network
    table = k_table(1000, 4, 2)
    assert table[0] == 0 and table[-1] == 3 and table == sorted(table)
    intervals = k_intervals(1000, 4, 2)
    assert intervals[0][0] == 0 and intervals[3][1] == 999
    assert all(intervals[k][1] + 1 == intervals[k + 1][0] for k in range(3))
    with pytest.raises(ValueError, match="normalised"):
        k_of_t(1.5, 4, 1)


@pytest.mark.parametrize("skip_type", SKIP_TYPES)
def test_every_skip_type_and_k_gives_the_output_shape(skip_type):
    model = LayerSkippingUNet(unet3(), skip_type=skip_type)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 20])
    for k in range(3):
        out = model(x, t, k=k)
        assert out.shape == x.shape and torch.isfinite(out).all()
        out.sum().backward()  # gradients flow through every path
    with pytest.raises(ValueError, match=r"k must be in 0..2"):
        model(x, t, k=3)


def test_skipped_levels_are_not_computed():
    model = LayerSkippingUNet(unet3(), skip_type="zero")
    flops = flops_by_k(model)
    assert flops[0] > flops[1] > flops[2] > 0
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    model(x, t, k=1).sum().backward()
    deepest = [p.grad for p in model.base.encoder[2].parameters()] + [p.grad for p in model.base.middle.parameters()]
    assert all(g is None for g in deepest)
    assert predicted_time_fraction(flops, list(range(1000)), 1000, 0) == 1.0
    assert predicted_time_fraction(flops, list(range(1000)), 1000, 2) < 1.0


def test_interpolate_starts_as_zero_and_duplicate_matches_channels():
    unet = unet3()
    zero, interp = LayerSkippingUNet(unet, skip_type="zero"), LayerSkippingUNet(unet, skip_type="interpolate")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 4])
    for k in (1, 2):
        assert torch.equal(zero(x, t, k=k), interp(x, t, k=k))
    dup = LayerSkippingUNet(unet, skip_type="duplicate")
    assert not torch.equal(dup(x, t, k=2), zero(x, t, k=2))  # level 0 (8 ch) fills a 16-channel input


def test_scheduled_skipping_picks_k_per_step():
    model = LayerSkippingUNet(unet3(), skip_type="zero")
    scheduled = ScheduledSkipping(model, c=2, num_train_timesteps=1000)
    x = torch.randn(2, 1, 8, 8)
    for t in (999, 250, 0):  # k = 2, 1, 0 for N = 3, c = 2
        assert torch.equal(scheduled(x, torch.full((2,), t)), model(x, torch.full((2,), t), k=k_table(1000, 3, 2)[t]))
    assert scheduled.calls == {2: 1, 1: 1, 0: 1}
    with pytest.raises(ValueError, match="one timestep per batch"):
        scheduled(x, torch.tensor([0, 999]))


def test_consistent_batches_keep_k_of_every_t_and_uniform_covers_all_k():
    schedule = make_schedule("linear")
    g = torch.Generator().manual_seed(0)
    draw = timestep_sampler("consistent", schedule, 4, c=2)
    table = k_table(1000, 4, 2)
    seen = set()
    for _ in range(200):
        i, kw = draw(16, g, torch.device("cpu"))
        assert {table[t] for t in i.tolist()} == {kw["k"]}
        seen.add(kw["k"])
    assert seen == {0, 1, 2, 3}
    uniform = timestep_sampler("uniform", schedule, 4)
    assert {uniform(4, g, torch.device("cpu"))[1]["k"] for _ in range(100)} == {0, 1, 2, 3}
    assert timestep_sampler("plain", schedule, 4)(4, g, torch.device("cpu"))[1] == {}
    with pytest.raises(ValueError, match="unknown training scheme"):
        timestep_sampler("random", schedule, 4)


def test_skipping_model_trains_checkpoints_and_resumes_exactly(tmp_path):
    data = torch.rand(32, 1, 8, 8) * 2 - 1
    schedule = make_schedule("linear")
    cfg = TrainConfig(steps=4, batch_size=4, log_every=1)

    def run(steps, path, resume):
        torch.manual_seed(0)
        model = LayerSkippingUNet(build_unet("tiny", channel_mult=(1, 2, 2)), skip_type="interpolate")
        draw = timestep_sampler("consistent", schedule, model.num_levels, c=2)
        return train(model, data, schedule, TrainConfig(**{**cfg.__dict__, "steps": steps}), checkpoint=path,
                     resume=resume, progress=False, timesteps=draw)

    straight = run(4, tmp_path / "a.pt", False)
    run(2, tmp_path / "b.pt", False)
    resumed = run(4, tmp_path / "b.pt", True)
    for p, q in zip(straight["model"].parameters(), resumed["model"].parameters()):
        assert torch.equal(p, q)
    loaded = load_model(tmp_path / "b.pt")
    assert isinstance(loaded, LayerSkippingUNet) and loaded.skip_type == "interpolate"
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([900, 900])
    assert torch.equal(loaded(x, t, k=2), resumed["ema"].eval()(x, t, k=2))


def test_study_sampling_and_timing_table_on_a_tiny_model():
    from fastdiff.measure.seed_spread import fixed_noise
    from fastdiff.studies.adaptive_layer_skipping import SkippingProfile, sample_from, sample_many, speed_table
    schedule = make_schedule("linear")
    model = LayerSkippingUNet(unet3(), skip_type="zero").eval()
    p = SkippingProfile(image_size=8, cs=(0, 2), quality_steps=3, speed_steps=3, speed_batch=2)
    many = sample_many(model, schedule, c=2, n=5, steps=3, eta=1.0, image_shape=(1, 8, 8), device="cpu", batch_size=2)
    # the same x_T as the FD measurement draws (fixed_noise), batch by batch with the same sampler seeds
    assert torch.equal(many, sample_from(model, schedule, fixed_noise(5, (1, 8, 8)), c=2, steps=3, eta=1.0,
                                         device="cpu", batch_size=2))
    assert many.shape == (5, 1, 8, 8) and torch.isfinite(many).all()
    s = speed_table({"zero": model}, schedule, p, image_shape=(1, 8, 8), device=torch.device("cpu"), repeats=1,
                    progress=False)
    assert s[0]["time saved %"] == 0 and s[0]["FLOPs saved %"] == 0 and 0 < s[1]["FLOPs saved %"] < 100
