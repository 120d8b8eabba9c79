"""The SwinDiffuser (study 4; Ye's thesis, Ch. 2, Algorithms 2.1 and 2.2): patch-parallel diffusion SR with
rolling shifted windows.

``model(x_t, t, lr=..., shift=(dy, dx))`` rolls the HR state x_t by the shift, cuts it into d x d patches (a batch
of b d^2), denoises every patch with the same small U-Net, and puts the predictions back (unpatchify, unroll). Each
patch is conditioned on a *global* feature of the LR image: the whole LR image concatenated with a Gaussian mask
centred where the (rolled) patch lies, passed through a learned extractor (a conv stack, or ESRGAN's RRDB with the
dense blocks' outputs concatenated). ``local_lr`` (ours, not the thesis's) also hands the patch its own LR crop,
bicubically upsampled, rolled and cut like x_t.

Because the patch batch is a batch, it can be split over processes: ``parallel`` (a
`fastdiff.distributed.PatchShards`) makes each rank denoise its share of the patches and all-gathers the
predictions, so every rank holds the whole prediction after each step (see `fastdiff.swin_torchrun`). The same class with
d = 1, no shift and no mask, diffusing the residual HR - bicubic(LR), is the full-image SRDiff-like baseline
(``residual=True``; the study adds the bicubic image back). The residual's mean over a patch is known (zero), so a
residual model is sampled through `KnownResidualMean`, which sets the mean of the noise prediction over each patch
to what that implies instead of leaving it to the network (issue 27).

The SwinDiffuser changes the geometry, not the U-Net's level walk: it owns its patch denoiser (an SR U-Net at patch
size, `build_swin`) and calls it as a model. It is no `fastdiff.unet.UNetWrapper`, so the level-walk methods neither
wrap it nor sit inside it (both refused when built: the patches move with the shift at every step, and the
condition enters the denoiser as its ``lr``).

Shifts: training draws one per batch (`shift_sampler`, through `fastdiff.train`'s ``timesteps`` hook, so resume
stays exact); sampling reads them from ``shift_plan``, {timestep: shift} built once per call (`shift_plan`), so
the fixed pattern cycles (0,0), (0,s), (s,0), (s,s) over the steps in turn, as the thesis describes (its public
code draws one at random even in "fixed" mode).
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data import SRPairs
from ..devices import synchronize
from ..registry import build_model, model_spec, register_architecture
from ..unet import SuperResUNet, check_lr
from .patch_parallel import SHIFT_MODES, gaussian_position_mask, patchify, rolling_shift, shift_for_step, unpatchify, unroll

EXTRACTORS = ("conv", "rrdb")


# ----------------------------------------------------------------------------------------------- extractors

class ConvExtractor(nn.Module):
    """A plain stack of 3x3 convolutions (the thesis's first extractor): (n, in, h, w) -> (n, channels, h, w)."""

    def __init__(self, in_channels: int, channels: int, blocks: int):
        super().__init__()
        layers = [nn.Conv2d(in_channels, channels, 3, padding=1)]
        for _ in range(blocks):
            layers += [nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block (Wang et al. 2018, Fig. 4): five 3x3 convolutions, each seeing all earlier
    outputs, LeakyReLU(0.2), and the residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + k * gc, gc if k < 4 else nf, 3, padding=1) for k in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for k, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if k < 4:
                feats.append(F.leaky_relu(y, 0.2))
        return x + 0.2 * y


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, the whole residual scaled by 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*(DenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBExtractor(nn.Module):
    """RRDB as a feature extractor (as in SRDiff and the thesis): a first convolution, ``blocks`` RRDBs, and the
    outputs of all of them concatenated (the SR head is dropped): (n, in, h, w) -> (n, nf * blocks, h, w)."""

    def __init__(self, in_channels: int, nf: int, blocks: int, gc: int | None = None):
        super().__init__()
        self.first = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.rrdbs = nn.ModuleList(RRDB(nf, gc or max(nf // 2, 1)) for _ in range(blocks))
        self.out_channels = nf * blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, outs = self.first(x), []
        for block in self.rrdbs:
            h = block(h)
            outs.append(h)
        return torch.cat(outs, 1)


def make_extractor(kind: str, in_channels: int, channels: int, blocks: int) -> nn.Module:
    if kind == "conv":
        return ConvExtractor(in_channels, channels, blocks)
    if kind == "rrdb":
        return RRDBExtractor(in_channels, channels, blocks)
    raise ValueError(f"unknown condition extractor {kind!r}; choose one of {EXTRACTORS}")


# ----------------------------------------------------------------------------------------------- the model

@dataclass
class SwinConfig:
    inner: dict                      # the patch denoiser's spec (an "sr-unet" at patch size; cond = the condition)
    image_size: int = 64             # HR size
    scale: int = 2                   # HR / LR
    patches: int = 2                 # d: d x d patches of (image_size / d)^2 each
    shift_mode: str = "fixed"        # none | fixed | random (what `shift_plan` and `shift_sampler` use by default)
    step_size: int = 8               # s, HR pixels
    extractor: str = "conv"          # conv | rrdb
    feature_channels: int = 32       # conv: its width and output; rrdb: nf (output nf * extractor_blocks)
    extractor_blocks: int = 2
    position_mask: bool = True       # the Gaussian position mask beside the LR image
    mask_sigma: float | None = None  # LR pixels; None: a quarter of a patch
    local_lr: bool = False           # ours: also the patch's own LR crop (bicubic, rolled and cut like x_t)
    residual: bool = False           # diffuse HR - bicubic(LR) (the SRDiff-like baseline)
    lr_channels: int = 3

    def __post_init__(self):
        if self.shift_mode not in SHIFT_MODES:
            raise ValueError(f"unknown shift mode {self.shift_mode!r}; choose one of {SHIFT_MODES}")
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"unknown condition extractor {self.extractor!r}; choose one of {EXTRACTORS}")
        for name in ("image_size", "scale", "patches", "feature_channels", "lr_channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SwinConfig.{name} must be a positive integer, got {v!r}")
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, int) or self.step_size < 0:
            raise ValueError(f"SwinConfig.step_size must be an integer >= 0, got {self.step_size!r}")
        if self.image_size % self.patches or self.image_size % self.scale:
            raise ValueError(f"a {self.image_size}x{self.image_size} image splits neither into {self.patches}x"
                             f"{self.patches} patches or at scale {self.scale}")
        if self.step_size >= self.image_size:
            raise ValueError(f"step_size {self.step_size} must be smaller than the image ({self.image_size})")

    @property
    def patch_size(self) -> int:
        return self.image_size // self.patches

    def condition_channels(self, extractor_out: int) -> int:
        return extractor_out + (self.lr_channels if self.local_lr else 0)


@contextmanager
def _timed(timings: dict | None, key: str, device: torch.device):
    """Adds the seconds of the ``with`` body to ``timings[key]`` (synchronised; nothing when timings is None)."""
    if timings is None:
        yield
        return
    synchronize(device)
    began = time.perf_counter()
    try:
        yield
    finally:
        synchronize(device)
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - began


@register_architecture("swin-diffuser")
class SwinDiffuser(nn.Module):
    """``model(x_t, t, *, lr, shift=None, shift_plan=None, features=None, parallel=None, timings=None) -> eps``
    over the whole HR image; see the module docstring. ``inner`` denoises patches: a `SuperResUNet` of patch size
    whose ``cond_channels`` are the condition's (build it with `build_swin`)."""

    def __init__(self, inner: nn.Module, *, config: SwinConfig):
        super().__init__()
        if not isinstance(inner, SuperResUNet):
            raise TypeError(f"the SwinDiffuser's patch denoiser is an SR U-Net of patch size (build_swin), not "
                            f"{type(inner).__name__}: a level-walk method inside it would see patches that move with "
                            f"the shift at every step, and the denoiser's lr is the patch condition")
        self.inner = inner
        self.config = dataclasses.replace(config, inner=model_spec(inner))
        c = self.config
        self.extractor = make_extractor(c.extractor, c.lr_channels + int(c.position_mask), c.feature_channels,
                                        c.extractor_blocks)
        base = inner.config
        if base.image_size != c.patch_size:
            raise ValueError(f"the patch denoiser is {base.image_size}x{base.image_size}, the patches "
                             f"{c.patch_size}x{c.patch_size}")
        need = c.condition_channels(self.extractor.out_channels)
        if base.cond_channels != need:
            raise ValueError(f"the patch denoiser concatenates {base.cond_channels} condition channels, the "
                             f"condition has {need}")

    @classmethod
    def from_config(cls, config: dict) -> "SwinDiffuser":
        cfg = SwinConfig(**config)
        return cls(build_model(cfg.inner), config=cfg)

    # -- the condition (Alg. 2.1, generate_condition) ------------------------------------------------------------
    def condition(self, lr: torch.Tensor, shift: tuple[int, int], lo: int, hi: int) -> torch.Tensor:
        """The condition of patches lo..hi-1 of the patch batch (patch n d^2 + k is patch k of image n): the
        extractor's features of [LR, position mask of patch k under ``shift``], resized to the patch size, and
        (``local_lr``) the patch's own upsampled LR crop."""
        c, d = self.config, self.config.patches
        idx = torch.arange(lo, hi, device=lr.device)
        inputs = [lr[idx // (d * d)]]
        if c.position_mask:
            masks = gaussian_position_mask(lr.shape[-2:], d, shift=(shift[0] / c.scale, shift[1] / c.scale),
                                           sigma=c.mask_sigma, device=lr.device).to(lr.dtype)
            inputs.append(masks[idx % (d * d)])
        feats = self.extractor(torch.cat(inputs, 1))
        p = c.patch_size
        if feats.shape[-1] != p:
            feats = F.interpolate(feats, size=(p, p), mode="bilinear", align_corners=False,
                                  antialias=feats.shape[-1] > p)
        if c.local_lr:
            up = F.interpolate(lr, scale_factor=c.scale, mode="bicubic", align_corners=False)
            feats = torch.cat([feats, patchify(rolling_shift(up, shift), d)[lo:hi].to(feats.dtype)], 1)
        return feats

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """A fresh feature cache for one sampling call: the condition depends only on the LR image and the shift,
        so it is computed once per distinct shift (4 in the fixed pattern), not once per step."""
        return {**cond, "features": {}}

    # -- one step's network call (Alg. 2.2) ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, *, lr: torch.Tensor, shift=None,
                shift_plan: dict | None = None, features: dict | None = None, parallel=None,
                timings: dict | None = None) -> torch.Tensor:
        c, d = self.config, self.config.patches
        check_lr(x, lr, c.lr_channels)
        if x.shape[-1] != c.image_size or x.shape[-2] != c.image_size:
            raise ValueError(f"this SwinDiffuser denoises {c.image_size}x{c.image_size} images, got "
                             f"{tuple(x.shape[-2:])}")
        shift = step_shift(t, shift, shift_plan)
        n = x.shape[0] * d * d
        lo, hi = (0, n) if parallel is None else parallel.bounds(n)
        with _timed(timings, "pre/post-processing", x.device):
            patches = patchify(rolling_shift(x, shift), d)[lo:hi]
            tp = t.repeat_interleave(d * d)[lo:hi]
            key = (shift, lo, hi)
            if features is not None and key in features:
                cond = features[key]
            else:
                cond = self.condition(lr, shift, lo, hi)
                if features is not None:
                    features[key] = cond
        with _timed(timings, "denoiser", x.device):
            eps = self.inner(patches, tp, lr=cond)
        if parallel is not None:
            with _timed(timings, "communication", x.device):
                eps = parallel.gather(eps, n)
        with _timed(timings, "pre/post-processing", x.device):
            return unroll(unpatchify(eps, d), shift)

    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None, **kw):
        c = self.config
        x = torch.randn(batch_size, c.lr_channels, c.image_size, c.image_size, generator=generator)
        t = torch.randint(0, 1000, (batch_size,), generator=generator)
        lr = torch.rand(batch_size, c.lr_channels, c.image_size // c.scale, c.image_size // c.scale,
                        generator=generator) * 2 - 1
        return x, t, {"lr": lr}


def build_swin(config: SwinConfig, unet: dict) -> SwinDiffuser:
    """A SwinDiffuser whose patch denoiser is an SR U-Net with the given `fastdiff.unet.UNetConfig` fields
    (image_size and cond_channels are filled in from ``config``)."""
    from ..unet import UNetConfig, build_unet
    extractor_out = config.feature_channels * (config.extractor_blocks if config.extractor == "rrdb" else 1)
    inner = build_unet(UNetConfig(**{**unet, "image_size": config.patch_size,
                                     "cond_channels": config.condition_channels(extractor_out)}))
    return SwinDiffuser(inner, config=config)


def step_shift(t: torch.Tensor, shift=None, shift_plan: dict | None = None) -> tuple[int, int]:
    """The shift of a network call: ``shift`` when given (training), else the plan's for timestep t (sampling)."""
    if shift is None:
        shift = shift_plan[int(t[0])] if shift_plan else (0, 0)
    return int(shift[0]), int(shift[1])


class KnownResidualMean(nn.Module):
    """Sampling a ``residual`` SwinDiffuser (issue 27): the residual HR - bicubic(LR) has almost exactly zero mean
    over every patch and channel (antialiased downsampling keeps the HR image's mean, bicubic upsampling the LR
    image's; |mean| <= 0.006 on the photos' 32x32 patches, 0.015 on 16x16), so the mean of the noise prediction over
    each patch of the step's grid is not left to the network but set to what a zero-mean x_0 implies (x_t =
    sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps):  mean(eps) = mean(x_t) / sqrt(1 - abar_t).
    Our small patch denoisers predict little of that mean (23% of it at full image, about half with 2x2 patches; our
    reading: GroupNorm removes a feature map's mean and a zero-mean target gives little to learn it back from), and
    a sampler reads what they miss as
    signal, mean(x_0) = mean(x_t) / sqrt(abar_t): up to 156x the noise's mean at t = 999, clipped at +-1, which the
    steps after it keep: per-patch colour casts. ``schedule``: the training schedule (every timestep), whose
    alpha_bar is looked up by timestep, as k-diffusion's DiscreteEpsDDPMDenoiser does. All else is the model's."""

    def __init__(self, model: SwinDiffuser, schedule):
        super().__init__()
        if not getattr(model.config, "residual", False):
            raise ValueError("KnownResidualMean is for a SwinDiffuser that diffuses the residual (residual=True): "
                             "an HR image's mean is not known")
        if not torch.equal(schedule.timesteps.cpu(), torch.arange(schedule.num_train_timesteps)):
            raise ValueError("KnownResidualMean needs the training schedule with every timestep (the sampler "
                             "respaces it), not a respaced one")
        self.model, self.config = model, model.config
        self.register_buffer("alpha_bar", schedule.alpha_bar.detach().clone().float(), persistent=False)

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        prepare = getattr(self.model, "prepare_condition", None)
        return prepare(x, cond) if prepare is not None else cond

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        eps = self.model(x, t, **cond)
        shift, p = step_shift(t, cond.get("shift"), cond.get("shift_plan")), self.config.patch_size

        def patch_mean(v):                      # each pixel gets the mean of its patch on the step's (rolled) grid
            m = F.avg_pool2d(rolling_shift(v, shift), p)
            return unroll(m.repeat_interleave(p, -2).repeat_interleave(p, -1), shift)
        abar = self.alpha_bar.to(x.device)[t.long()].to(x.dtype).view(-1, 1, 1, 1)
        return eps - patch_mean(eps) + patch_mean(x) / (1 - abar).sqrt()


# ----------------------------------------------------------------------------------------------- shifts

def shift_plan(timesteps: list[int], mode: str, step_size: int, *, seed: int = 0) -> dict[int, tuple[int, int]]:
    """{timestep: shift} for one sampling call over ``timesteps`` (taken from the noisiest down): ``fixed``
    cycles (0,0), (0,s), (s,0), (s,s); ``random`` draws each offset in 0..s (seeded); ``none`` never shifts."""
    g = torch.Generator().manual_seed(seed)
    order = sorted(timesteps, reverse=True)
    return {t: shift_for_step(mode, step_size, i, generator=g) for i, t in enumerate(order)}


def shift_sampler(mode: str, step_size: int, num_timesteps: int):
    """The training hook of `fastdiff.train.train` (``timesteps=``): uniform timestep indices, and one shift per
    batch (``fixed``: one of the four patterns at random; ``random``: offsets in 0..s), drawn from the training
    run's generator so that a resumed run draws the same."""
    def draw(batch_size: int, generator: torch.Generator, device):
        i = torch.randint(num_timesteps, (batch_size,), device=device, generator=generator)
        k = torch.randint(4, (1,), device=device, generator=generator)
        offsets = torch.randint(step_size + 1, (2,), device=device, generator=generator)
        s = step_size
        if mode == "none" or s == 0:
            shift = (0, 0)
        elif mode == "fixed":
            shift = ((0, 0), (0, s), (s, 0), (s, s))[int(k)]
        else:
            shift = tuple(int(v) for v in offsets)
        return i, {"shift": shift}
    return draw


# ---- the training target

class ResidualPairs(torch.utils.data.Dataset):
    """SRDiff's target: {"x0": HR - bicubic(LR), "lr": LR} (what a ``residual`` model diffuses)."""

    def __init__(self, pairs, scale: int):
        self.pairs, self.scale = pairs, scale

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        item = self.pairs[i]
        up = F.interpolate(item["lr"][None], scale_factor=self.scale, mode="bicubic", align_corners=False)[0]
        return {"x0": item["x0"] - up, "lr": item["lr"]}


def training_data(config: SwinConfig, hr: torch.Tensor):
    """What a SwinDiffuser of ``config`` trains on from HR images: (HR, LR) pairs, or SRDiff's residual target."""
    pairs = SRPairs(hr, config.scale)
    return ResidualPairs(pairs, config.scale) if config.residual else pairs
