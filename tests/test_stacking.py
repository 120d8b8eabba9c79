"""Every level-walk method over every other (in the spirit of diffusers' shared model tests).

The level-walk wrappers under `fastdiff.methods` (each a `fastdiff.unet.UNetWrapper`):

- ``skipping``: `LayerSkippingUNet`, k given per call (neutral k = 0, active k = 1);
- ``scheduled``: `ScheduledSkipping` over a `LayerSkippingUNet`, k = k(t) (neutral c = 0, active c = 2);
- ``cache``: `DeepCache` (neutral interval 1, active interval 2);
- ``vgg``: `VGGFeatureFusion` (neutral: zero features, active: the features of the LR image);
- ``fbcache``: `FirstBlockCache` (neutral threshold 0, active threshold 0.1: some calls cached, some full);
- ``encprop``: `EncoderPropagation` (neutral interval 1, active interval 2: half the calls decoder-only);
- ``blockcache``: `BlockCaching` (neutral: no schedule, every block at every call; active: every block computes at
  the even calls only, its cached output reused at the odd ones).

For every ordered pair (outer over inner, over a tiny SR U-Net), a supported pair at neutral settings samples
exactly what the U-Net alone samples, and at active settings each method keeps its own effect (DeepCache still
makes partial calls under VGG, VGG still runs once per sampling call under skipping and caching, k(t) still
varies, and switching either method to neutral changes the images). The unsupported pairs are refused when the
stack is built, with a message:

============  ==========================================  ==============================================
pair           refused with                                why
============  ==========================================  ==============================================
any two of     ValueError "both change the deep levels"    each replaces what the walk runs below a level
skipping,                                                  (its bottom): two of them would both cut the walk
scheduled,                                                 and one's fill or cache would stand in for the
cache,                                                     other's (a cache recorded under a cut walk, a
encprop,                                                   skip below a cached level; encprop records the
blockcache                                                 middle block's output as its bottom; blockcache
                                                           decides per call whether the middle block and
                                                           every level's blocks run, so a cut walk would
                                                           leave its schedule and caches stale)
vgg over vgg   ValueError "both change the 'vgg'           both read the ``vgg`` key that prepare_condition
               conditioning"                               fills: the outer would fuse the inner's features
vgg over       ValueError "... is a sampling-time          a VGG fusion is a trained model whose checkpoint
scheduled,     wrapper that no checkpoint holds; wrap      stores the spec of what it wraps; DeepCache and
cache,                                                     ScheduledSkipping are sampling-time wrappers (no
fbcache,                                                   spec), so they go over it, not under it
encprop,
blockcache
skipping or    as vgg over scheduled (and scheduled        the same: FirstBlockCache is a sampling-time
scheduled      drives a LayerSkippingUNet, refused over    wrapper; skipping under it is supported
over fbcache   it the same way)
fbcache over   ValueError "both change the steps the       two caches across steps: the outer one's cached
fbcache,       walk runs"                                  calls would leave the inner one's cache stale
fbcache over                                               (blockcache's schedule counts the calls of a run:
encprop,                                                   under fbcache it would not see the cached ones)
encprop over
fbcache, and
fbcache and
blockcache
either way
cache over     ValueError "FirstBlockCache goes            a cached call runs nothing past the first block,
fbcache        outermost", at the first call               so DeepCache's record would never be made; the
                                                           other order (fbcache over cache) is supported
============  ==========================================  ==============================================

Supported: vgg over skipping (a `LayerSkippingUNet`, stored in checkpoints), skipping / scheduled / cache / encprop
/ blockcache over vgg (encprop's key calls record the VGG-fused skip tensors, its decoder-only calls reuse them;
blockcache caches the raw block outputs, and the VGG features are added to a cached one as to a computed one), and
fbcache over any of skipping, scheduled, cache, vgg (its cached calls reach none of them: DeepCache counts and caches
over the full calls only).

`SwinDiffuser` changes the geometry (patches that move with the shift) and owns its patch denoiser (an SR U-Net):
it is no level-walk wrapper. Every wrapper over it is refused (TypeError: it has no level walk), and it refuses a
wrapped patch denoiser (TypeError: a cache or skip would see patches that move every step, and the denoiser's
``lr`` is the patch condition, not the LR image VGG expects).
"""
import copy
import dataclasses
import functools
import itertools

import pytest
import torch

from fastdiff.diffusion import make_schedule, respace, space_timesteps
from fastdiff.methods import vgg_features
from fastdiff.methods.block_caching import BlockCaching
from fastdiff.methods.deep_cache import DeepCache
from fastdiff.methods.encoder_propagation import EncoderPropagation
from fastdiff.methods.first_block_cache import FirstBlockCache
from fastdiff.methods.layer_skipping import LayerSkippingUNet, ScheduledSkipping
from fastdiff.methods.swin_diffuser import SwinConfig, SwinDiffuser, build_swin
from fastdiff.methods.vgg_features import VGGFeatureFusion
from fastdiff.sampling import prepare_condition, sample_ddim
from fastdiff.unet import NO_HOOKS, LevelHooks, UNetWrapper, build_unet

WRAPPERS = ("skipping", "scheduled", "cache", "vgg", "fbcache", "encprop", "blockcache")
DEEP = {"skipping", "scheduled", "cache", "encprop", "blockcache"}   # the methods that own the deep levels of the walk
PAIRS = list(itertools.product(WRAPPERS, repeat=2))
VGGFeatures = vgg_features.VGGFeatures
STEPS, T = 4, 1000


def refusal(outer: str, inner: str) -> str | None:
    """The message (a regular expression) a refused pair raises at build, None for a supported one."""
    if outer in DEEP and inner in DEEP:
        return "both change the deep levels"
    if outer == inner == "vgg":
        return "both change the 'vgg' conditioning"
    if outer in ("vgg", "skipping", "scheduled") and inner in ("scheduled", "cache", "fbcache", "encprop",
                                                              "blockcache"):
        return "is a sampling-time wrapper that no checkpoint holds; wrap the other way round"
    if {outer, inner} <= {"fbcache", "encprop", "blockcache"}:
        return "both change the steps the walk runs"
    if outer == "cache" and inner == "fbcache":
        return "FirstBlockCache goes outermost"
    return None


@functools.lru_cache(maxsize=None)
def _vgg_template(num_stages: int, seed: int):
    return VGGFeatures(num_stages, weights="random", seed=seed)


@pytest.fixture(autouse=True)
def one_vgg_build(monkeypatch):
    """torchvision's VGG-11 builds its 100M-parameter classifier before `VGGFeatures` drops it: seconds on a busy
    CPU. The matrix builds the random frozen feature network once and gives every stack its own copy."""
    def copied(num_stages, *, weights="imagenet", seed=0, **kw):
        assert weights == "random", "the matrix uses random VGG weights"
        features = copy.deepcopy(_vgg_template(num_stages, seed))
        features.calls = 0
        return features
    monkeypatch.setattr(vgg_features, "VGGFeatures", copied)


def wrap(name: str, inner, *, active: bool, lr_channels: int = 1):
    if name == "skipping":
        return LayerSkippingUNet(inner, skip_type="duplicate")
    if name == "scheduled":
        return ScheduledSkipping(LayerSkippingUNet(inner, skip_type="duplicate"), 2 if active else 0, T)
    if name == "cache":
        return DeepCache(inner, interval=2 if active else 1)
    if name == "fbcache":
        return FirstBlockCache(inner, threshold=0.1 if active else 0)
    if name == "encprop":
        return EncoderPropagation(inner, interval=2 if active else 1)
    if name == "blockcache":
        model = BlockCaching(inner)
        return BlockCaching(inner, schedule={block: range(0, STEPS, 2) for block in model.names}) if active else model
    return VGGFeatureFusion(inner, vgg_weights="random", lr_channels=lr_channels)


def build(outer: str, inner: str, *, active: dict | None = None):
    """outer(inner(SR U-Net)); ``active``: {wrapper name: bool}, default all active. Same weights at any settings."""
    active = active or {}
    torch.manual_seed(0)
    unet = build_unet("tiny", channel_mult=(1, 2, 2), cond_channels=1).eval()
    inside = wrap(inner, unet, active=active.get(inner, True))
    return wrap(outer, inside, active=active.get(outer, True)).eval()


def find(model, cls):
    while model is not None:
        if isinstance(model, cls):
            return model
        model = getattr(model, "inner", None)
    return None


def pairs(supported: bool):
    return [pytest.param(o, i, id=f"{o}-over-{i}") for o, i in PAIRS if (refusal(o, i) is None) == supported]


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, 8, 8, generator=g), torch.rand(2, 1, 4, 4, generator=g) * 2 - 1


def cond_for(model, names, lr, active: dict) -> dict:
    """The sampler's conditioning: the LR image, k = 1 for an active ``skipping``, zero VGG features for a
    neutral ``vgg`` (a sampler's prepare_condition then leaves them as they are)."""
    cond = {"lr": lr}
    if "skipping" in names and active.get("skipping", True):
        cond["k"] = 1
    if "vgg" in names and not active.get("vgg", True):
        channels = find(model, VGGFeatureFusion).vgg.channels
        cond["vgg"] = [torch.zeros(lr.shape[0], ch, 8 >> level, 8 >> level) for level, ch in enumerate(channels)]
    return cond


def sample(model, names, active=None):
    active = active or {}
    x_T, lr = inputs()
    sched = respace(make_schedule("linear"), space_timesteps(T, STEPS))
    return sample_ddim(model, x_T, sched, cond=cond_for(model, names, lr, active), progress=False)


@pytest.mark.parametrize("outer,inner", pairs(supported=False))
def test_an_unsupported_pair_is_refused_when_it_is_built(outer, inner):
    with pytest.raises(ValueError, match=refusal(outer, inner)):
        model = build(outer, inner)
        with torch.no_grad():        # cache over fbcache: refused at the first call, where the hooks meet
            sample(model, (outer, inner))


@pytest.mark.parametrize("outer,inner", pairs(supported=True))
def test_at_neutral_settings_a_stack_is_the_unet_alone(outer, inner):
    neutral = {outer: False, inner: False}
    model = build(outer, inner, active=neutral)
    with torch.no_grad():
        assert torch.equal(sample(model, (outer, inner), neutral), sample(model.base, ()))


@pytest.mark.parametrize("outer,inner", pairs(supported=True))
def test_at_active_settings_each_method_keeps_its_effect(outer, inner):
    names = (outer, inner)
    model = build(outer, inner)
    with torch.no_grad():
        out = sample(model, names)
    vgg, cache = find(model, VGGFeatureFusion), find(model, DeepCache)
    scheduled, fbcache = find(model, ScheduledSkipping), find(model, FirstBlockCache)
    encprop, blockcache = find(model, EncoderPropagation), find(model, BlockCaching)
    reached = STEPS if fbcache is None else fbcache.run_calls["full"]     # the calls below a FirstBlockCache
    if fbcache is not None:                                      # some calls cached, some full
        assert 0 < fbcache.run_calls["cached"] < STEPS and sum(fbcache.run_calls.values()) == STEPS
    if vgg is not None:
        assert vgg.vgg.calls == 1                                    # once per sampling call, under the other method
    if encprop is not None:                                      # a key call every 2 calls: 2 full, 2 decoder-only
        assert encprop.run_calls == {"full": (STEPS + 1) // 2, "partial": STEPS // 2}
    if blockcache is not None:                                   # every block at the even calls: 2 of 4 cached
        blocks = len(blockcache.names)
        assert blockcache.run_calls == {"full": blocks * ((STEPS + 1) // 2), "cached": blocks * (STEPS // 2)}
        assert all(calls == list(range(0, STEPS, 2)) for calls in blockcache.computed.values())
    if cache is not None:                                        # a full call every 2 calls: 2 full, 2 partial
        assert cache.calls == {"full": (reached + 1) // 2, "partial": reached // 2}
    if scheduled is not None:                                    # k(t) at c = 2 over 3 levels takes 0, 1 and 2
        assert set(scheduled.calls) <= {0, 1, 2} and sum(scheduled.calls.values()) == reached
        assert fbcache is not None or set(scheduled.calls) == {0, 1, 2}
    for name in names:                                           # each method changes the images on its own
        other = build(outer, inner, active={name: False})
        with torch.no_grad():
            assert not torch.equal(out, sample(other, names, {name: False})), f"{name} had no effect"
    if cache is not None:
        # a partial call given the deep features of the same inputs equals the full call (VGG features and all)
        x, lr = inputs(1)
        t = torch.full((2,), 500)
        with torch.no_grad():
            cond = prepare_condition(model, x, {"lr": lr})
            full, partial = model(x, t, **cond), model(x, t, **cond)
        # (under a FirstBlockCache the second call is a cached one, of the same inputs: DeepCache is not reached)
        assert cache.calls["partial"] == reached // 2 + (fbcache is None)
        torch.testing.assert_close(partial, full, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ the SwinDiffuser

SWIN = SwinConfig(inner={}, image_size=16, scale=2, patches=2, step_size=4, feature_channels=4, extractor_blocks=1)
SWIN_UNET = dict(in_channels=3, base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(),
                 middle_attention=False, dropout=0.0, norm_groups=4)


@pytest.mark.parametrize("name", WRAPPERS)
def test_no_level_walk_method_wraps_a_swin_diffuser(name):
    swin = build_swin(SWIN, SWIN_UNET)
    with pytest.raises(TypeError, match="SwinDiffuser has none"):
        wrap(name, swin, active=True, lr_channels=SWIN.lr_channels)


@pytest.mark.parametrize("name", WRAPPERS)
def test_a_swin_diffuser_owns_a_plain_patch_denoiser(name):
    swin = build_swin(SWIN, SWIN_UNET)
    wrapped = wrap(name, swin.inner, active=True, lr_channels=swin.inner.config.cond_channels)
    with pytest.raises(TypeError, match="patch denoiser is an SR U-Net"):
        SwinDiffuser(wrapped, config=swin.config)
    assert not isinstance(swin, UNetWrapper) and not hasattr(swin, "walk")


# ------------------------------------------------------------------------------------------ the hooks

def test_hooks_are_immutable_and_combine():
    def a(level, h, emb):
        return h + 1

    def b(level, h, emb):
        return h * 2
    hooks = NO_HOOKS.with_encoder_block(a)
    both = hooks.with_encoder_block(b).with_decoder_input(a)
    assert NO_HOOKS == LevelHooks() and hooks.encoder_block == (a,)          # the originals are unchanged
    assert both.encoder_block == (a, b) and both.decoder_input == (a,) and both.bottom is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        both.depth = 1
    cut = both.with_bottom(2, b)
    assert (cut.depth, cut.bottom, cut.encoder_block) == (2, b, (a, b))
    with pytest.raises(ValueError, match="replace the deep levels"):
        cut.with_bottom(1, a)
    assert LevelHooks(encoder_block=[a]).encoder_block == (a,)                # lists become tuples


def test_the_walk_runs_the_hooks_it_is_given_and_checks_only_its_own_geometry():
    torch.manual_seed(0)
    unet = build_unet("tiny", channel_mult=(1, 2, 2)).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    seen = []

    def record(level, h, emb):
        seen.append((level, h.shape[-1], emb.shape))
        return h
    with torch.no_grad():
        plain = unet(x, t)
        assert torch.equal(unet.walk(x, t, NO_HOOKS.with_encoder_block(record).with_decoder_input(record)), plain)
        # one block per encoder level (num_res_blocks = 1), then each decoder level's input, deepest first
        assert [s[:2] for s in seen] == [(0, 8), (1, 4), (2, 2), (2, 2), (1, 4), (0, 8)]
        assert all(s[2] == (2, 32) for s in seen)
        # a bottom at full depth replaces only the middle block
        assert torch.equal(unet.walk(x, t, NO_HOOKS.with_bottom(3, lambda level, h, emb: unet.middle(h, emb))), plain)
        with pytest.raises(ValueError, match="needs hooks.bottom"):
            unet.walk(x, t, LevelHooks(depth=2))
        with pytest.raises(ValueError, match=r"hooks.depth must be in 1..3"):
            unet.walk(x, t, NO_HOOKS.with_bottom(0, record))
