"""Study 1: smaller SR3 U-Nets plus frozen VGG-11 features of the low-res image (Klement, Makiš, Zdravecký,
"Improving the Speed of Image Super-Resolution Diffusion Models").

SR3 (Saharia et al. 2021) conditions its U-Net on the bicubically upsampled low-res (LR) image, concatenated
with x_t. The paper shrinks that U-Net (66M -> 33M -> 9M parameters by dropping its deepest levels) and gives
the small one the features of an ImageNet VGG-11 run on the LR image. The LR image does not change while the
sampler runs, so VGG runs once per sampling call and its features are reused at every step.

Notation: the U-Net's level l works at H / 2^l; VGG-11's stage l (the ReLU after the last convolution of the
stage, before its max-pool) gives 64, 128, 256, 512, 512 channels at H / 2^l when VGG sees the LR image upsampled
to H x H. At the paper's width (base 64, multipliers 1, 2, 4, 8, 8) these match the U-Net's level widths
exactly, so ``add`` adds them unchanged to the output of every encoder ResNet block of level l; at reduced
widths (the CPU profile) a 1x1 convolution without bias projects them first. ``concat`` concatenates them and
maps back with a 1x1 convolution (the paper's failed variant). "VGG only" drops the concatenated LR image.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .diffusion import Schedule
from .nn import count_parameters
from .train import TrainConfig, train
from .unet import UNet, UNetConfig
from .utils import autocast, progress_bar, slug

FUSIONS = ("none", "add", "concat")
VGG_WEIGHTS = ("imagenet", "random")
# VGG-11 `features`: index of the ReLU that ends each stage, and its channels (stage l is at 1 / 2^l)
VGG11_STAGES = ((1, 64), (4, 128), (9, 256), (14, 512), (19, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The paper's figures (text of Secs. 3.1, 4.5, 4.6; Figs. 3 and 10 have no numbers we could read off).
PAPER_PARAMETERS = {"original": 66e6, "half": 33e6, "small": 9e6}
PAPER_SPEEDUP_SMALL_VS_ORIGINAL = 1.77      # average single forward pass, Fig. 9 (GPU not named beyond A100 training)
PAPER_STEPS = (50, 100, 200, 500, 1000, 2000)  # Fig. 10 columns
PAPER_SETUP = "FFHQ 32->128, 55k training images, 500k iterations at batch 128 on one A100, L1 noise loss"


class RandomVGGWarning(UserWarning):
    """A VGG-11 with random (not ImageNet) weights is in use."""


# --------------------------------------------------------------------------------------------------- VGG-11

class VGGFeatures(nn.Module):
    """The first ``num_stages`` stages of torchvision's VGG-11 ``features``, frozen and always in eval mode.

    ``forward(lr, size)`` upsamples the LR image (in [-1, 1]; greyscale is repeated to RGB) bicubically to
    ``size``, normalises it with ImageNet statistics and returns the output of each stage. ``calls`` counts
    forward passes (the tests check that sampling runs VGG once).

    ``weights``: ``imagenet`` loads ``vgg11-8a719046.pth`` from ``$TORCH_HOME/hub/checkpoints`` (a
    `MissingWeightsError` names the file when it is absent); ``random`` is torchvision's initialisation seeded
    by ``seed``, for offline runs that ask for it, and is never a stand-in for the paper's features.
    ``load=False`` only builds the layers (a checkpoint fills them).
    """

    def __init__(self, num_stages: int = 5, *, weights: str = "imagenet", seed: int = 0, load: bool = True):
        super().__init__()
        if not 1 <= num_stages <= len(VGG11_STAGES):
            raise ValueError(f"VGG-11 has {len(VGG11_STAGES)} stages; cannot take {num_stages}")
        if weights not in VGG_WEIGHTS:
            raise ValueError(f"unknown VGG weights {weights!r}; choose one of {VGG_WEIGHTS}")
        import torchvision
        self.weights, self.num_stages, self.calls = weights, num_stages, 0
        self.stage_ends = [i for i, _ in VGG11_STAGES[:num_stages]]
        self.channels = [c for _, c in VGG11_STAGES[:num_stages]]
        last = self.stage_ends[-1]
        with torch.random.fork_rng(devices=[]):   # building VGG leaves the caller's RNG (U-Net init) alone
            torch.manual_seed(seed)
            self.layers = torchvision.models.vgg11(weights=None).features[: last + 1]
        for m in self.layers:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        if load and weights == "imagenet":
            from .weights import require
            state = torch.load(require("vgg11"), map_location="cpu", weights_only=True)
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            state = {k: v for k, v in state.items() if int(k.split(".")[0]) <= last}
            self.layers.load_state_dict(state)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        super().train(False)

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # frozen: never in training mode (there is no dropout/BN here, but be exact)

    @property
    def label(self) -> str:
        return "ImageNet VGG-11" if self.weights == "imagenet" else "RANDOM-init VGG-11 (not ImageNet)"

    @torch.no_grad()
    def forward(self, lr: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
        self.calls += 1
        x = F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=False)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.stage_ends:
                out.append(x)
        return out


# --------------------------------------------------------------------------------------------------- the model

@dataclass
class VGGSRConfig:
    unet: UNetConfig                 # cond_channels > 0: the LR image is concatenated (SR3); 0: "VGG only"
    fusion: str = "add"              # none | add | concat
    vgg_weights: str = "imagenet"    # imagenet | random (provenance: what the VGG was built from)
    vgg_seed: int = 0
    lr_channels: int = 3

    def __post_init__(self):
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**self.unet)
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {FUSIONS}")
        if self.vgg_weights not in VGG_WEIGHTS:
            raise ValueError(f"unknown vgg_weights {self.vgg_weights!r}; choose one of {VGG_WEIGHTS}")
        if self.unet.cond_channels not in (0, self.lr_channels):
            raise ValueError(f"cond_channels must be 0 (VGG only) or lr_channels={self.lr_channels}, "
                             f"got {self.unet.cond_channels}")
        if self.fusion == "none" and self.unet.cond_channels == 0:
            raise ValueError("with fusion='none' the U-Net needs the LR image concatenated (cond_channels > 0)")
        if self.fusion != "none" and self.unet.num_levels > len(VGG11_STAGES):
            raise ValueError(f"VGG-11 has {len(VGG11_STAGES)} stages for {self.unet.num_levels} U-Net levels")

    def to_dict(self) -> dict:
        return {"unet": self.unet.to_dict(), "fusion": self.fusion, "vgg_weights": self.vgg_weights,
                "vgg_seed": self.vgg_seed, "lr_channels": self.lr_channels}


class VGGSuperResUNet(nn.Module):
    """``model(x_t, t, lr=low_res, vgg=None) -> eps``. With ``fusion='none'`` this is SR3's U-Net (the same
    function as `fastdiff.unet.SuperResUNet` with the same weights). ``vgg`` takes precomputed VGG features;
    when it is None they are computed from ``lr`` (training: a new LR batch every step). Samplers call
    `prepare_condition` once per call, which computes them once for all steps."""

    def __init__(self, config: VGGSRConfig, *, load_vgg: bool = True):
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet)       # built first: same seed, same U-Net weights with or without VGG
        c = config.unet
        self.vgg = None
        self.fuse = None
        if config.fusion != "none":
            self.vgg = VGGFeatures(c.num_levels, weights=config.vgg_weights, seed=config.vgg_seed, load=load_vgg)
            fuse = []
            for level, vgg_ch in enumerate(self.vgg.channels):
                ch = c.level_channels(level)
                if config.fusion == "concat":
                    fuse.append(nn.Conv2d(ch + vgg_ch, ch, 1))
                else:  # add: unchanged where the widths match (the paper), else a linear projection
                    fuse.append(nn.Identity() if ch == vgg_ch else nn.Conv2d(vgg_ch, ch, 1, bias=False))
            self.fuse = nn.ModuleList(fuse)

    @classmethod
    def from_config(cls, config: dict) -> "VGGSuperResUNet":
        """Rebuild from ``config.to_dict()``; the VGG weights come from the checkpoint's state dict."""
        return cls(VGGSRConfig(**config), load_vgg=False)

    @property
    def uses_lr_concat(self) -> bool:
        return self.config.unet.cond_channels > 0

    @property
    def label(self) -> str:
        """What the model is, VGG provenance included (goes into every table and plot title)."""
        if self.vgg is None:
            return "SR3 U-Net"
        return (f"SR3 U-Net + {self.vgg.label} ({self.config.fusion})"
                + ("" if self.uses_lr_concat else ", no LR concatenation"))

    def unet_parameters(self) -> int:
        """Trainable parameters (the U-Net and the fusion convolutions; the frozen VGG is not counted)."""
        return count_parameters(self, trainable_only=True)

    def vgg_features(self, lr: torch.Tensor, size) -> list[torch.Tensor]:
        return self.vgg(lr, size)

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """Called once by the samplers: the VGG features of ``cond['lr']`` at x's size, added to ``cond``."""
        if self.vgg is None or cond.get("vgg") is not None:
            return cond
        return {**cond, "vgg": self.vgg_features(cond["lr"], x.shape[-2:])}

    def _check(self, x: torch.Tensor, lr: torch.Tensor, vgg) -> None:
        c = self.config
        if lr.ndim != 4 or lr.shape[1] != c.lr_channels or lr.shape[0] != x.shape[0]:
            raise ValueError(f"lr must be ({x.shape[0]}, {c.lr_channels}, h, w) for x of shape {tuple(x.shape)}, "
                             f"got {tuple(lr.shape)}")
        if x.shape[-1] % lr.shape[-1] or x.shape[-2] % lr.shape[-2]:
            raise ValueError(f"LR size {tuple(lr.shape[-2:])} does not divide the output size {tuple(x.shape[-2:])}")
        if vgg is not None:
            expected = [(x.shape[0], ch, x.shape[-2] >> l, x.shape[-1] >> l) for l, ch in enumerate(self.vgg.channels)]
            got = [tuple(f.shape) for f in vgg]
            if got != expected:
                raise ValueError(f"precomputed VGG features have shapes {got}; expected {expected}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, *, lr: torch.Tensor,
                vgg: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.vgg is None and vgg is not None:
            raise ValueError("this model has no VGG fusion (fusion='none'); do not pass vgg features")
        self._check(x, lr, vgg)
        unet = self.unet
        if self.uses_lr_concat:
            x = torch.cat([x, F.interpolate(lr, size=x.shape[-2:], mode="bicubic", align_corners=False)], dim=1)
        unet.check_input(x)
        if self.vgg is not None and vgg is None:
            vgg = self.vgg_features(lr, x.shape[-2:])
        emb = unet.embed(t)
        h = unet.stem(x)
        skips = [h]
        for level, enc in enumerate(unet.encoder):
            fuse = None if vgg is None else (lambda h, l=level: self._fuse(l, h, vgg[l]))
            h = enc(h, emb, skips, fuse=fuse)
        h = unet.middle(h, emb)
        for dec in reversed(unet.decoder):
            h = dec(h, emb, skips)
        return unet.head(h)

    def _fuse(self, level: int, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        f = f.to(h.dtype)
        if self.config.fusion == "concat":
            return self.fuse[level](torch.cat([h, f], dim=1))
        return h + self.fuse[level](f)


# --------------------------------------------------------------------------------------------------- variants

# The paper's U-Nets (Sec. 3.1), by what is kept of SR3's: channel multipliers, attention on the 1/8-size level,
# attention in the middle (bottleneck) block.
ARCHITECTURES = {
    "original": ((1, 2, 4, 8, 8), True, True),
    "half": ((1, 2, 4, 8), False, False),        # last level and the attention dropped
    "small": ((1, 2, 4), False, False),          # last two levels dropped
    "small+attn": ((1, 2, 4), False, True),      # ... with attention on the bottleneck
}
# The models the study compares: name -> (architecture, fusion, LR image concatenated)
VARIANTS = {
    "original": ("original", "none", True),
    "half": ("half", "none", True),
    "small": ("small", "none", True),
    "small + attention": ("small+attn", "none", True),
    "small + VGG (add)": ("small", "add", True),
    "small + VGG (concat)": ("small", "concat", True),
    "small, VGG only": ("small", "add", False),
}
PAPER_VARIANT = {"original": "original", "half": "half", "small": "small"}


@dataclass
class Widths:
    """The U-Net sizes a profile builds its variants at. The paper's: base 64, one ResNet block per level (which
    gives SR3's 66M at multipliers 1, 2, 4, 8, 8; two blocks per level would give 99M), dropout 0.2."""
    image_size: int = 128
    base_channels: int = 64
    num_res_blocks: int = 1
    norm_groups: int = 32
    dropout: float = 0.2
    channels: int = 3


PAPER_WIDTHS = Widths()


def variant_config(name: str, widths: Widths = PAPER_WIDTHS, *, vgg_weights: str = "imagenet",
                   vgg_seed: int = 0) -> VGGSRConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {list(VARIANTS)}")
    arch, fusion, lr_concat = VARIANTS[name]
    mult, level_attn, middle_attn = ARCHITECTURES[arch]
    w = widths
    unet = UNetConfig(image_size=w.image_size, in_channels=w.channels, base_channels=w.base_channels,
                      channel_mult=mult, num_res_blocks=w.num_res_blocks,
                      attention_resolutions=(w.image_size // 8,) if level_attn else (),
                      middle_attention=middle_attn, dropout=w.dropout, cond_channels=w.channels if lr_concat else 0,
                      norm_groups=w.norm_groups)
    return VGGSRConfig(unet, fusion=fusion, vgg_weights=vgg_weights, vgg_seed=vgg_seed, lr_channels=w.channels)


def build_variant(name: str, widths: Widths = PAPER_WIDTHS, *, vgg_weights: str = "imagenet", vgg_seed: int = 0,
                  load_vgg: bool = True) -> VGGSuperResUNet:
    """One of `VARIANTS` at the given widths. ``load_vgg=False`` builds without reading VGG weights (for
    parameter counts and timing, where the weights do not matter)."""
    return VGGSuperResUNet(variant_config(name, widths, vgg_weights=vgg_weights, vgg_seed=vgg_seed),
                           load_vgg=load_vgg)


def parameter_table(widths: Widths = PAPER_WIDTHS, variants=tuple(VARIANTS)) -> list[dict]:
    """Trainable and frozen (VGG) parameters of every variant; at the paper's widths, beside its counts."""
    rows = []
    for name in variants:
        m = build_variant(name, widths, vgg_weights="random", load_vgg=False)
        n = m.unet_parameters()
        row = {"variant": name, "trainable (M)": round(n / 1e6, 2),
               "frozen VGG-11 (M)": round(count_parameters(m.vgg) / 1e6, 2) if m.vgg is not None else 0.0}
        if widths == PAPER_WIDTHS:  # the paper's counts only beside models of the paper's size
            paper = PAPER_PARAMETERS.get(PAPER_VARIANT.get(name, ""))
            row.update({"paper (M)": None if paper is None else paper / 1e6,
                        "ours / paper": None if paper is None else round(n / paper, 2)})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------- weights

def resolve_vgg_weights(requested: str, if_missing: str = "error") -> tuple[str, str]:
    """(weights to build with, a sentence saying what they are). ``requested`` is ``imagenet`` or ``random``.
    When ImageNet weights are asked for and absent: ``if_missing='error'`` raises the `MissingWeightsError`
    that names the file; ``if_missing='random'`` (the caller's explicit choice) falls back to a random frozen
    VGG-11 and says so loudly."""
    import warnings
    from .weights import is_available, missing_message, weight_path
    if requested not in VGG_WEIGHTS:
        raise ValueError(f"unknown vgg_weights {requested!r}; choose one of {VGG_WEIGHTS}")
    if if_missing not in ("error", "random"):
        raise ValueError(f"if_missing must be 'error' or 'random', got {if_missing!r}")
    if requested == "imagenet" and is_available("vgg11"):
        return "imagenet", f"ImageNet VGG-11 ({weight_path('vgg11')})"
    if requested == "imagenet" and if_missing == "error":
        from .weights import MissingWeightsError
        raise MissingWeightsError(missing_message("vgg11") + " Or pass vgg_if_missing='random' to run with a "
                                  "random frozen VGG-11, labelled as such.")
    note = ("RANDOM-init frozen VGG-11, NOT ImageNet: the ImageNet weights are missing "
            f"({weight_path('vgg11')}) and a random VGG was asked for" if requested == "imagenet"
            else "RANDOM-init frozen VGG-11, NOT ImageNet (asked for explicitly)")
    warnings.warn(note + ". The '+ VGG' results measure random features, not the paper's method.",
                  RandomVGGWarning, stacklevel=2)
    return "random", note


# --------------------------------------------------------------------------------------------------- the study

@dataclass
class SRProfile:
    dataset: str = "photos"        # photos (scikit-image patches, offline) | folder:<path> (FFHQ, CelebA-HQ)
    widths: Widths = dataclasses.field(default_factory=Widths)
    scale: int = 4
    schedule: str = "sr3"          # SR3's: 2000 steps, beta 1e-6..1e-2
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(loss="l1"))
    val_n: int = 8                 # validation images for the PSNR curve
    val_every: int = 50
    val_steps: int = 50            # ancestral steps (respaced) for each validation sampling
    eval_n: int = 32               # images for the metrics table
    eval_steps: int = 100
    grid_steps: tuple[int, ...] = (50, 100, 200, 500)
    timing_batch: int = 1          # forward timing at the paper's widths and 128x128
    timing_repeats: int = 5
    game_n: int = 24               # images written for the fool-rate game (a third of them per model per session)

    @property
    def hr_size(self) -> int:
        return self.widths.image_size


PROFILES = {
    # 2 CPU cores: 8->32 on 32x32 patches of the bundled photos, U-Nets at a quarter of the paper's width
    # (base 16), 200 steps per variant: a demonstration of the pipeline, far too short for good samples.
    # Timing (forward passes) is still done at the paper's widths and 128x128.
    "quick": SRProfile(
        widths=Widths(image_size=32, base_channels=16, num_res_blocks=1, norm_groups=8, dropout=0.0),
        train=TrainConfig(steps=200, batch_size=16, lr=1e-3, warmup_steps=20, ema_decay=0.995, loss="l1",
                          log_every=10),
        val_n=8, val_every=50, val_steps=50, eval_n=24, eval_steps=50, grid_steps=(50, 100, 200),
        timing_batch=1, timing_repeats=7, game_n=24),
    # one GPU: the paper's 32->128 and widths (66M / 38M / 10M) on a face folder (or the photos at 128x128)
    "full": SRProfile(
        widths=PAPER_WIDTHS,
        train=TrainConfig(steps=20_000, batch_size=32, lr=1e-4, warmup_steps=500, ema_decay=0.9999, loss="l1",
                          amp="bf16", checkpoint_every=2000, log_every=50),
        val_n=16, val_every=1000, val_steps=100, eval_n=256, eval_steps=500, grid_steps=PAPER_STEPS,
        timing_batch=8, timing_repeats=10, game_n=48),
}


def get_profile(name: str, **overrides) -> SRProfile:
    """A profile by name; ``train_<field>=`` reaches into its TrainConfig, other keywords replace fields (None
    keeps the profile's value)."""
    from .utils import profile_by_name
    return profile_by_name(PROFILES, name, **overrides)


def load_sr_data(profile: SRProfile, *, face_dir: str = "", split: str = "train", seed: int = 0):
    """The HR images of a split: ``face_dir`` (a folder of face photos) when given, else the profile's dataset."""
    from .data import load_dataset
    name = f"folder:{face_dir}" if face_dir else profile.dataset
    return name, load_dataset(name, image_size=profile.hr_size, split=split, seed=seed)


def take(data, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` images (all of them when the split is smaller) of a tensor or dataset, chosen by a seeded
    permutation (the photo patches come in order)."""
    n = min(n, len(data))
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data[idx] if isinstance(data, torch.Tensor) else torch.stack([data[int(i)] for i in idx])


@torch.no_grad()
def super_resolve(model: nn.Module, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
                  dtype: torch.dtype = torch.float32, seed: int = 0, batch_size: int = 64, eta: float = 1.0,
                  size: int | None = None, progress: bool = False) -> torch.Tensor:
    """SR outputs (``size`` x ``size``, default the model's image size) for the LR images ``lr``, with
    ``steps`` respaced steps of DDIM(eta); eta = 1 is SR3's ancestral sampling. The starting noise of image i
    does not depend on the batch size (so deterministic DDIM, eta = 0, gives the same image in any batch; the
    ancestral noise of later steps is drawn per batch). Returns float32 images on the CPU."""
    from .basics import sample_fn
    device = torch.device(device)
    size = size or model.config.unet.image_size
    x_T = torch.randn((len(lr), model.config.unet.in_channels, size, size),
                      generator=torch.Generator().manual_seed(seed))
    model = model.to(device).eval()
    outs = []
    chunks = range(0, len(lr), batch_size)
    for i in progress_bar(chunks, desc=f"SR {steps} steps", disable=not progress or len(chunks) == 1):
        x = x_T[i:i + batch_size].to(device)
        run = sample_fn(model, schedule, "DDIM", steps, eta, x, device, dtype, seed + 1 + i,
                        cond={"lr": lr[i:i + batch_size].to(device)})
        outs.append(run().float().clamp(-1, 1).cpu())
    return torch.cat(outs)


def val_psnr(hr: torch.Tensor, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
             dtype: torch.dtype = torch.float32, seed: int = 0, denoise_fractions=(0.25, 0.5, 0.75)):
    """``evaluate(model) -> dict`` for `fastdiff.train.train`, always on the same images and noise:

    - ``val PSNR``: mean PSNR of SR outputs sampled with ``steps`` ancestral steps (the paper's Fig. 3 curve);
    - ``denoise PSNR``: mean PSNR of the one-step x_0 prediction from x_t = q(x_t | x_0) at the timesteps
      ``fraction * T``. It tells how well the network has learnt each noise level, without the sampler
      compounding its errors, and is cheap (one forward per timestep).
    """
    from .diffusion import q_sample
    from .metrics import psnr
    from .sampling import prepare_condition
    T = schedule.num_train_timesteps
    ts = [min(T - 1, round(f * T)) for f in denoise_fractions]
    noise = torch.randn(hr.shape, generator=torch.Generator().manual_seed(seed + 7))

    @torch.no_grad()
    def evaluate(model) -> dict:
        sr = super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, seed=seed, size=hr.shape[-1])
        model = model.to(device).eval()
        x0, eps = hr.to(device), noise.to(device)
        cond = prepare_condition(model, x0, {"lr": lr.to(device)})
        den = []
        for t in ts:
            i = torch.full((len(hr),), t, device=device, dtype=torch.long)
            a = schedule.alpha_bar[t].item()
            xt = q_sample(schedule, x0, i, eps)
            with autocast(device, dtype):
                pred = model(xt, schedule.timesteps.to(device)[i], **cond).float()
            den.append(psnr(((xt - (1 - a) ** 0.5 * pred) / a ** 0.5).clamp(-1, 1).cpu(), hr).mean().item())
        return {"val PSNR": psnr(sr, hr).mean().item(), "denoise PSNR": sum(den) / len(den)}
    return evaluate


def checkpoint_name(variant: str) -> str:
    return f"01_{slug(variant)}.pt"


def train_variants(profile: SRProfile, train_hr, val_hr: torch.Tensor, schedule: Schedule, *, out_dir,
                   device: torch.device, vgg_weights: str, variants=tuple(VARIANTS), resume: bool = True,
                   dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, dict]:
    """Train each variant (L1 noise loss) from the same seed and data order, logging validation PSNR every
    ``profile.val_every`` steps; checkpoints go to ``out_dir/01_<variant>.pt`` and a re-run resumes or reuses
    them. ``vgg_weights`` comes from `resolve_vgg_weights`. Returns {variant: train() result}."""
    from .data import SRPairs, downsample
    pairs = SRPairs(train_hr, profile.scale)
    val_lr = downsample(val_hr, profile.scale)
    evaluate = val_psnr(val_hr, val_lr, schedule, profile.val_steps, device=device, dtype=dtype, seed=seed)
    results = {}
    for name in variants:
        torch.manual_seed(profile.train.seed)
        model = build_variant(name, profile.widths, vgg_weights=vgg_weights, vgg_seed=seed)
        print(f"training {name}: {model.unet_parameters() / 1e6:.2f}M trainable parameters · {model.label}")
        results[name] = train(model, pairs, schedule, profile.train, checkpoint=Path(out_dir) / checkpoint_name(name),
                              resume=resume, device=device, evaluate=evaluate, evaluate_every=profile.val_every)
    return results


def sr_metrics(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, *, device="cpu") -> dict:
    """Mean PSNR, SSIM, LR-PSNR (dB / unitless) and LPIPS (AlexNet; None when its weights are missing)."""
    from .metrics import lpips_distance, lr_psnr, psnr, ssim
    from .weights import is_available
    row = {"PSNR": psnr(sr, hr).mean().item(), "SSIM": ssim(sr, hr).mean().item(),
           "LPIPS": lpips_distance(sr, hr, device=device).mean().item() if is_available("alexnet") else None,
           "LR-PSNR": lr_psnr(sr, lr).mean().item()}
    return row


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The interpolation baseline every SR model must beat."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)


def metrics_table(models: dict[str, nn.Module], hr: torch.Tensor, schedule: Schedule, profile: SRProfile, *,
                  device, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[list[dict], dict]:
    """PSNR, SSIM, LPIPS and LR-PSNR of every model's outputs on ``hr``'s LR images (``profile.eval_steps``
    ancestral steps, the same noise for all), with bicubic upsampling as the first row. Returns (rows,
    {name: SR images})."""
    from .data import downsample
    lr = downsample(hr, profile.scale)
    outputs = {"bicubic (no model)": bicubic(lr, profile.scale)}
    for name, model in progress_bar(models.items(), desc="SR metrics", total=len(models)):
        outputs[name] = super_resolve(model, lr, schedule, profile.eval_steps, device=device, dtype=dtype,
                                      seed=seed, size=hr.shape[-1])
    rows = [{"model": name, **sr_metrics(sr, hr, lr, device=device)} for name, sr in outputs.items()]
    return rows, outputs


def steps_grid(models: dict[str, nn.Module], lr: torch.Tensor, schedule: Schedule, steps=PAPER_STEPS, *, device,
               dtype: torch.dtype = torch.float32, seed: int = 0, size: int | None = None) -> dict[str, dict[int, torch.Tensor]]:
    """{model: {steps: SR images}} from the same noise (the paper's Fig. 10)."""
    cells = [(name, n) for name in models for n in steps]
    grid: dict[str, dict[int, torch.Tensor]] = {name: {} for name in models}
    for name, n in progress_bar(cells, desc="steps grid"):
        grid[name][n] = super_resolve(models[name], lr, schedule, n, device=device, dtype=dtype, seed=seed,
                                      size=size)
    return grid


# --------------------------------------------------------------------------------------------------- timing

def forward_times(variants=("original", "half", "small", "small + attention", "small + VGG (add)"), *,
                  widths: Widths = PAPER_WIDTHS, scale: int = 4, batch_size: int = 1, device, dtype=torch.float32,
                  repeats: int = 5, progress: bool = True) -> list[dict]:
    """One denoising step (a forward pass) of each variant, with the LR upsampling and concatenation included and
    VGG precomputed as during sampling; plus one VGG-11 pass (what sampling pays once per image). Weights are
    untrained and VGG random: time does not depend on them.

    Timed side by side in one run: after one warm-up call each, ``repeats`` rounds each time one call of every
    variant in turn (harness `measure`, one repeat), so a slow spell of a shared machine lands on all variants
    rather than on one; each row gives the median and IQR over the rounds. Speedup is relative to ``original``."""
    import statistics
    from .bench import count_flops, measure
    s = widths.image_size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, widths.channels, s, s, generator=gen).to(device)
    lr = torch.randn(batch_size, widths.channels, s // scale, s // scale, generator=gen).clamp(-1, 1).to(device)
    t = torch.full((batch_size,), 500, dtype=torch.long, device=device)
    calls, info = {}, {}
    with torch.no_grad(), autocast(device, dtype):
        for name in variants:
            model = build_variant(name, widths, vgg_weights="random", load_vgg=False).to(device).eval()
            cond = model.prepare_condition(x, {"lr": lr})
            calls[name] = lambda model=model, cond=cond: model(x, t, **cond)
            info[name] = (model.unet_parameters(), count_flops(calls[name]))
            if model.vgg is not None and not any(k.startswith("VGG-11") for k in calls):
                key = f"VGG-11 features, {model.vgg.num_stages} stages (once per image)"
                calls[key] = lambda model=model: model.vgg_features(lr, x.shape[-2:])
                info[key] = (0, count_flops(calls[key]))
        times = {name: [] for name in calls}
        for name, fn in calls.items():
            measure(fn, device=device, warmup=1, repeats=1)
        for _ in progress_bar(range(repeats), desc="forward timing (rounds)", disable=not progress):
            for name, fn in calls.items():
                times[name].append(measure(fn, device=device, warmup=0, repeats=1)["median_s"])
    rows = []
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4, method="inclusive") if len(ts) > 1 else [ts[0]] * 3
        rows.append({"variant": name, "trainable (M)": round(info[name][0] / 1e6, 2),
                     "GFLOPs": round(info[name][1] / 1e9, 2), "ms": 1e3 * statistics.median(ts),
                     "ms IQR": 1e3 * (q[2] - q[0]), "repeats": len(ts)})
    base = next((r for r in rows if r["variant"] == "original"), None)
    for r in rows:
        r["speedup vs original"] = None if base is None or r["variant"].startswith("VGG") else base["ms"] / r["ms"]
        r["params ratio"] = (None if base is None or not r["trainable (M)"]
                             else base["trainable (M)"] / r["trainable (M)"])
    return rows


def vgg_share(model: VGGSuperResUNet, lr: torch.Tensor, schedule: Schedule, steps: int, *, device,
              dtype: torch.dtype = torch.float32, repeats: int = 3) -> dict:
    """How much of one sampling call (``steps`` ancestral steps, VGG computed once inside it) the VGG-11 pass
    takes: both timed by the harness in the same run."""
    from .bench import measure
    size = model.config.unet.image_size
    model = model.to(device).eval()
    lr = lr.to(device)
    with torch.no_grad(), autocast(device, dtype):
        v = measure(lambda: model.vgg_features(lr, (size, size)), device=device, warmup=1, repeats=max(repeats, 5))
    calls = model.vgg.calls
    s = measure(lambda: super_resolve(model, lr, schedule, steps, device=device, dtype=dtype, size=size),
                device=device, warmup=0, repeats=repeats)
    vgg_calls = (model.vgg.calls - calls) / s["repeats"]
    return {"steps": steps, "batch": len(lr), "vgg_ms": 1e3 * v["median_s"], "sampling_s": s["median_s"],
            "vgg_share_percent": 100 * v["median_s"] / s["median_s"], "vgg_calls_per_sampling": vgg_calls}
