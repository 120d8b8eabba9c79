"""Block Caching's learned scale-shift (`AdjustedBlockCaching`, `ScaleShiftLoss`): with zero s and h it samples what
`BlockCaching` samples, bit for bit; s and h exist for exactly the (block, call) pairs the schedule reuses and act
only there; the U-Net stays frozen (bit for bit through training); each call's loss term reaches only that call's
s and h; training lowers the loss; training in two pieces equals one go; a checkpoint and a zoo entry rebuild the
model through the registry; the zoo recipe's schedule is the speed/quality map's; bad inputs are refused clearly."""
import dataclasses

import pytest
import torch
from torch import nn

from fastdiff import zoo
from fastdiff.checkpoint import digest
from fastdiff.diffusion import make_schedule
from fastdiff.methods.block_caching import AdjustedBlockCaching, BlockCaching, ScaleShift, block_names
from fastdiff.methods.block_caching_adjust import ScaleShiftLoss, sample_error
from fastdiff.registry import build_model, model_spec
from fastdiff.sampling import DDIM, DDPM, DPMPP_2M, prepare_condition, sampler_call
from fastdiff.train import TrainConfig, load_checkpoint, load_model, train
from fastdiff.unet import build_unet

STEPS = 6
SCHEDULE = make_schedule("linear")


def tiny_unet(image_size=8):
    torch.manual_seed(0)
    return build_unet("tiny", channel_mult=(1, 2, 2), image_size=image_size).eval()


def x_T(batch=2, seed=1, size=8):
    return torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def cache():
    """The tiny U-Net under a schedule calibrated on DDIM in STEPS steps at threshold 0.3 (some blocks reused)."""
    model = BlockCaching.calibrated(tiny_unet(), lambda m: sampler_call(m, SCHEDULE, DDIM, STEPS, x_T())(),
                                    threshold=0.3)
    assert model.reused_calls()
    return model


@pytest.fixture
def student(cache):
    return AdjustedBlockCaching.from_cache(cache, steps=STEPS)


def randomize(model, scale=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.adjust.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))


def run_calls(model, n, x, t=500):
    """n calls of ``model`` on the same input after a fresh run starts: {call: output}."""
    prepare_condition(model, x, {})
    return [model(x, torch.full((len(x),), t)) for _ in range(n)]


def tiny_training(student, tmp_path=None, steps=6, until=None, lr=1e-2, batch_size=2):
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, ema_decay=0.0, grad_clip=None, log_every=1,
                      checkpoint_every=0)
    loss = ScaleShiftLoss(tiny_unet(), SCHEDULE, steps=STEPS)
    return train(student, torch.zeros(8, 1, 8, 8), SCHEDULE, cfg, loss_fn=loss, progress=False, until=until,
                 checkpoint=None if tmp_path is None else tmp_path / "ss.pt")


# ---- the adjustment


@pytest.mark.parametrize("sampler", [DDIM, DPMPP_2M], ids=lambda s: s.name)
def test_zero_scale_shift_is_plain_block_caching_bit_for_bit(cache, sampler):
    model = AdjustedBlockCaching.from_cache(cache, sampler=sampler, steps=STEPS)
    assert all(torch.count_nonzero(p) == 0 for p in model.adjust.parameters())
    plain = sampler_call(cache, SCHEDULE, sampler, STEPS, x_T())()
    assert torch.equal(sampler_call(model, SCHEDULE, sampler, STEPS, x_T())(), plain)
    assert model.run_calls == cache.run_calls and model.computed == cache.computed


def test_scale_shift_exists_and_acts_exactly_where_the_cache_is_reused(cache, student, monkeypatch):
    reused = {(name, c) for name in student.names for c in range(STEPS)
              if c not in cache.schedule.get(name, range(STEPS))}
    assert set(student.adjust.pairs()) == reused and len(reused) == len(student.adjust.pairs())
    seen = []
    forward = ScaleShift.forward
    monkeypatch.setattr(ScaleShift, "forward", lambda self, name, index, y: seen.append((name, index, y.shape[1]))
                        or forward(self, name, index, y))
    sampler_call(student, SCHEDULE, DDIM, STEPS, x_T())()
    assert sorted(s[:2] for s in seen) == sorted(reused)             # each reused pair once per run, nothing else
    for name, index, channels in seen:                               # s and h: a row per reused call, C wide
        rows = student.adjust.rows[name]
        assert student.adjust.scale[name.replace(".", "_")].shape == (len(rows), channels) and index in rows
    # one pair's s and h change the output at its call and at no other: the pair of the last block in walk order that
    # is reused (every block after it computes at that call, so its output reaches the head)
    name, call = max(reused, key=lambda p: (student.names.index(p[0]), p[1]))
    with torch.no_grad():
        row = student.adjust.rows[name][call]
        student.adjust.scale[name.replace(".", "_")][row] += 0.5
        student.adjust.shift[name.replace(".", "_")][row] += 0.5
    x = x_T()
    plain, adjusted = run_calls(cache, STEPS, x), run_calls(student, STEPS, x)
    assert [c for c in range(STEPS) if not torch.equal(plain[c], adjusted[c])] == [call]


def test_the_unet_is_frozen_and_stays_bit_for_bit_through_training(student):
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in student.adjust.named_parameters(prefix="adjust")}
    before = digest(student.inner.state_dict())
    student.train()
    assert not any(m.training for m in student.inner.modules())     # no dropout in the frozen U-Net
    out = tiny_training(student)
    assert digest(out["model"].inner.state_dict()) == before == digest(out["ema"].inner.state_dict())
    assert any(torch.count_nonzero(p) > 0 for p in out["model"].adjust.parameters())


def test_each_calls_loss_reaches_only_that_calls_scale_shift(student):
    loss = ScaleShiftLoss(tiny_unet(), SCHEDULE, steps=STEPS)
    total = loss(student.train(), torch.zeros(2, 1, 8, 8), SCHEDULE, generator=torch.Generator().manual_seed(0))
    assert len(loss.terms) == STEPS and total.requires_grad
    params = dict(student.adjust.named_parameters())
    reached = set()
    for call, term in enumerate(loss.terms):
        if not term.requires_grad:                              # call 0 computes every block: nothing adjusted
            assert call == 0
            continue
        grads = torch.autograd.grad(term, list(params.values()), retain_graph=True, allow_unused=True)
        for (key, p), g in zip(params.items(), grads):
            name = next(n for n in student.adjust.rows if n.replace(".", "_") == key.split(".", 1)[1])
            for c, row in student.adjust.rows[name].items():
                hit = g is not None and bool(g[row].ne(0).any())
                assert not hit or c == call, f"call {call}'s term reaches {key} of call {c}"
                if hit:
                    reached.add((name, c))
    assert reached                                              # the adjustments that reach the output train


def test_training_lowers_the_loss_on_a_tiny_model(student):
    loss = ScaleShiftLoss(tiny_unet(), SCHEDULE, steps=STEPS)

    def held_out():
        with torch.no_grad():
            return loss(student.eval(), torch.zeros(16, 1, 8, 8), SCHEDULE,
                        generator=torch.Generator().manual_seed(123)).item()
    teacher, x = tiny_unet(), x_T(16, seed=7)
    before, error_before = held_out(), sample_error(student, teacher, SCHEDULE, x, steps=STEPS)
    tiny_training(student, steps=40, batch_size=8)
    assert held_out() < 0.95 * before                               # measured: 0.00223 -> 0.00203
    assert sample_error(student, teacher, SCHEDULE, x, steps=STEPS) < 0.75 * error_before   # 0.0084 -> 0.0044


def test_training_in_two_pieces_equals_one_go(cache, tmp_path):
    straight = tiny_training(AdjustedBlockCaching.from_cache(cache, steps=STEPS))
    (tmp_path / "a").mkdir()
    tiny_training(AdjustedBlockCaching.from_cache(cache, steps=STEPS), tmp_path / "a", until=3)
    resumed = tiny_training(AdjustedBlockCaching.from_cache(cache, steps=STEPS), tmp_path / "a")
    assert resumed["resumed_from"] == 3
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in straight["history"]] == [h["loss"] for h in resumed["history"]]


def test_a_checkpoint_and_a_zoo_entry_rebuild_the_trained_model(student, tmp_path):
    out = tiny_training(student, tmp_path)
    ckpt = load_checkpoint(tmp_path / "ss.pt")
    assert ckpt["model_spec"]["arch"] == "block-caching-scale-shift"
    objective = ckpt["objective"]
    assert (objective["method"], objective["sampler"], objective["steps"]) == ("block caching scale-shift", "ddim", 6)
    rebuilt = load_model(tmp_path / "ss.pt")
    assert isinstance(rebuilt, AdjustedBlockCaching) and model_spec(rebuilt) == model_spec(out["ema"])
    assert (rebuilt.schedule, rebuilt.num_calls, rebuilt.steps) == (student.schedule, STEPS, STEPS)
    assert rebuilt.calibrated_for(DDIM, STEPS) and rebuilt.sampler.effective_options() == DDIM.effective_options()
    expected = sampler_call(out["ema"].eval(), SCHEDULE, DDIM, STEPS, x_T())()
    assert torch.equal(sampler_call(rebuilt, SCHEDULE, DDIM, STEPS, x_T())(), expected)
    zoo.export("test/ss", ckpt, data="none", device="cpu", zoo_dir=tmp_path / "zoo")
    model, entry = zoo.load("test/ss", zoo_dir=tmp_path / "zoo", verbose=False)
    assert entry.parameters == sum(p.numel() for p in student.adjust.parameters())    # s and h only
    halved = build_model(model_spec(out["ema"]))                 # the zoo stores fp16 weights
    halved.load_state_dict({k: v.half().float() for k, v in out["ema"].state_dict().items()})
    assert torch.equal(sampler_call(model, SCHEDULE, DDIM, STEPS, x_T())(),
                       sampler_call(halved.eval(), SCHEDULE, DDIM, STEPS, x_T())())


def test_bad_inputs_are_refused_clearly(cache, student):
    unet = cache.inner
    with pytest.raises(ValueError, match="the scale-shift names 'decoder.7.blocks.0', no block"):
        ScaleShift({"decoder.7.blocks.0": [1]}, {"middle": 8})
    with pytest.raises(ValueError, match="must be call indices >= 0"):
        ScaleShift({"middle": [-1]}, {"middle": 8})
    with pytest.raises(ValueError, match="the schedule names 'bogus', no block"):
        AdjustedBlockCaching(unet, schedule={"bogus": [0]}, num_calls=STEPS, steps=STEPS)
    with pytest.raises(ValueError, match="covers 6 calls, and DDIM 5, η=0 makes 5"):
        AdjustedBlockCaching.from_cache(cache, steps=5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        AdjustedBlockCaching.from_cache(cache, steps=0)
    with pytest.raises(RuntimeError, match="Unexpected key"):                  # a state dict of other names
        student.load_state_dict({**student.state_dict(), "adjust.scale.bogus": torch.zeros(1, 8)})
    with torch.no_grad():
        next(student.adjust.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match="hold NaN or inf"):
        sampler_call(student, SCHEDULE, DDIM, STEPS, x_T())()
    fresh = AdjustedBlockCaching.from_cache(cache, steps=STEPS)
    z, g = torch.zeros(2, 1, 8, 8), torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="calibrated on DDIM 6, η=0 and this loss samples DDIM 8, η=0"):
        ScaleShiftLoss(unet, SCHEDULE, steps=8)(fresh, z, SCHEDULE, generator=g)
    with pytest.raises(ValueError, match="calibrated on DDIM 6, η=0 and this loss samples DDIM 6, η=1"):
        ScaleShiftLoss(unet, SCHEDULE, sampler=DDIM.with_options(eta=1.0), steps=STEPS)(fresh, z, SCHEDULE, generator=g)
    with pytest.raises(ValueError, match="calibrated on DDIM 6, η=0 and this loss samples DDPM 6"):
        ScaleShiftLoss(unet, SCHEDULE, sampler=DDPM, steps=STEPS)(fresh, z, SCHEDULE, generator=g)
    with pytest.raises(ValueError, match="trains an AdjustedBlockCaching"):
        ScaleShiftLoss(unet, SCHEDULE, steps=STEPS)(cache, z, SCHEDULE, generator=g)
    with pytest.raises(ValueError, match="reuses no cached output"):
        ScaleShiftLoss(unet, SCHEDULE, steps=STEPS)(
            AdjustedBlockCaching(unet, schedule={}, num_calls=STEPS, steps=STEPS), z, SCHEDULE, generator=g)
    with pytest.raises(ValueError, match="with the L2 distance"):
        ScaleShiftLoss(unet, SCHEDULE, steps=STEPS)(fresh, z, SCHEDULE, loss="l1", generator=g)
    with pytest.raises(ValueError, match="built for a schedule of 1000 steps, got 100"):
        ScaleShiftLoss(unet, SCHEDULE, steps=STEPS)(fresh, z, make_schedule("linear", 100), generator=g)

    class Wrapped(nn.Module):                     # what DistributedDataParallel hands the loss: the model as .module
        def __init__(self, module):
            super().__init__()
            self.module = module
    with pytest.raises(ValueError, match="trains in one process"):
        ScaleShiftLoss(unet, SCHEDULE, steps=STEPS)(Wrapped(fresh), z, SCHEDULE, generator=g)


# ---- the zoo recipe


def test_the_recipe_adjusts_the_maps_block_caching_point():
    from fastdiff.studies import speed_quality_map as sqm
    from fastdiff.studies import zoo_recipes
    recipe = zoo_recipes.recipes()[zoo_recipes.BLOCKCACHE_NAME]
    assert recipe.name == "blockcache/ddim50-0.2-ss" and recipe.train.ema_decay == 0.0
    point = zoo_recipes.blockcache_point()
    assert (point.sampler, point.steps, point.block_threshold, point.rung) == (DDIM, 50, 0.2, "fp32")
    # the schedule is the one the map's point calibrates, as the map calibrates it (its CALIBRATION noise, point_call)
    unet = tiny_unet(image_size=16)
    student = zoo_recipes.blockcache_student(unet)
    x_cal = torch.randn((sqm.CALIBRATION["n"], *sqm.CALIBRATION["shape"]),
                        generator=torch.Generator().manual_seed(sqm.CALIBRATION["seed"]))
    by_hand = BlockCaching.calibrated(unet, lambda m: sqm.point_call(point, m, SCHEDULE, x_cal, seed=0)(),
                                      threshold=0.2)
    mapped = sqm.build_point(point, {"U-Net": unet}, SCHEDULE, device="cpu", batch_size=2)
    assert student.schedule == by_hand.schedule == mapped.schedule and student.num_calls == mapped.num_calls == 50
    assert student.calibrated_for(DDIM, 50) and not student.calibrated_for(DDIM.with_options(eta=1.0), 50)
    assert block_names(student) == block_names(unet)
    assert not any(p.requires_grad for p in student.inner.parameters())           # a frozen copy of the U-Net
    assert all(torch.equal(a, b) for a, b in zip(student.inner.state_dict().values(), unet.state_dict().values()))


def test_the_recipe_calibrates_the_zoo_unet_as_the_map_does():
    from fastdiff.studies import speed_quality_map as sqm
    from fastdiff.studies import zoo_recipes
    if zoo_recipes.DISTILL_TEACHER not in zoo.entries():
        pytest.skip("the digits U-Net is not in the zoo")
    models, _ = sqm.load_models(["U-Net"])
    mapped = sqm.build_point(zoo_recipes.blockcache_point(), models, SCHEDULE, device="cpu", batch_size=16)
    recipe = zoo_recipes.recipes()[zoo_recipes.BLOCKCACHE_NAME]
    student = recipe.build()
    assert student.schedule == mapped.schedule and student.num_calls == mapped.num_calls
    assert digest(student.inner.state_dict()) == digest(models["U-Net"].state_dict())
    loss = recipe.loss(student, SCHEDULE)
    assert loss.describe()["teacher_weights"] == digest(models["U-Net"].state_dict())
    assert dataclasses.asdict(recipe.train)["batch_size"] == 16
