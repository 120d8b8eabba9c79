"""Study 1's method: frozen VGG-11 features of the low-res image, added to the U-Net's encoder (Klement, Makiš,
Zdravecký, "Improving the Speed of Image Super-Resolution Diffusion Models").

SR3 (Saharia et al. 2021) conditions its U-Net on the bicubically upsampled low-res (LR) image, concatenated
with x_t (`fastdiff.unet.SuperResUNet`). The paper gives a small such U-Net the features of an ImageNet VGG-11
run on the LR image. The LR image does not change while the sampler runs, so VGG runs once per sampling call
(`VGGFeatureFusion.prepare_condition`) and its features are reused at every step.

Notation: the U-Net's level l works at H / 2^l; VGG-11's stage l (the ReLU after the last convolution of the
stage, before its max-pool) gives 64, 128, 256, 512, 512 channels at H / 2^l when VGG sees the LR image upsampled
to H x H. At the paper's width (base 64, multipliers 1, 2, 4, 8, 8) these match the U-Net's level widths
exactly, so ``add`` adds them unchanged to the output of every encoder block of level l; at reduced widths a
1x1 convolution without bias projects them first. ``concat`` concatenates them and maps back with a 1x1
convolution (the paper's failed variant). Wrapping a plain `UNet` instead of a `SuperResUNet` gives "VGG only"
(no LR concatenation).

The feature network is VGG-11's layer layout; its weights are ImageNet's (``imagenet``, the paper), a random
initialisation (``random``, labelled as such), ``digits`` (the offline stand-in that ships with fastdiff: the
first three VGG-11 stages trained on the built-in digits' labels, `fastdiff.studies.digit_vgg`), or any other
trained VGG-11-style network passed in as a state dict (``trained``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import build_model, register_architecture, renamed
from ..unet import NO_HOOKS, LevelHooks, SuperResUNet, UNetWrapper, check_lr

FUSIONS = ("add", "concat")
VGG_WEIGHTS = ("imagenet", "random", "digits", "trained")
# VGG-11 `features`: index of the ReLU that ends each stage, and its channels (stage l is at 1 / 2^l)
VGG11_STAGES = ((1, 64), (4, 128), (9, 256), (14, 512), (19, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomVGGWarning(UserWarning):
    """A VGG-11 with random (not ImageNet) weights is in use."""


def vgg_input(image: torch.Tensor, size, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """What VGG sees: ``image`` in [-1, 1] (greyscale repeated to RGB) bicubically resized to ``size`` and
    normalised with ImageNet statistics."""
    x = F.interpolate(image, size=tuple(size), mode="bicubic", align_corners=False)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return ((x + 1) / 2 - mean.to(x.dtype)) / std.to(x.dtype)


def imagenet_statistics() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class VGGFeatures(nn.Module):
    """The first ``num_stages`` stages of torchvision's VGG-11 ``features``, frozen and always in eval mode.

    ``forward(lr, size)`` upsamples the LR image (in [-1, 1]; greyscale is repeated to RGB) bicubically to
    ``size``, normalises it with ImageNet statistics and returns the output of each stage. ``calls`` counts
    forward passes (the tests check that sampling runs VGG once).

    ``weights``: ``imagenet`` loads ``vgg11-8a719046.pth`` from ``$TORCH_HOME/hub/checkpoints`` (a
    `MissingWeightsError` names the file when it is absent); ``random`` is torchvision's initialisation seeded
    by ``seed``; ``trained`` takes ``state_dict`` (the ``features`` of a VGG-11-style network trained elsewhere).
    ``load=False`` only builds the layers (a checkpoint fills them).
    """

    def __init__(self, num_stages: int = 5, *, weights: str = "imagenet", seed: int = 0, load: bool = True,
                 state_dict: dict | None = None, label: str | None = None):
        super().__init__()
        if not 1 <= num_stages <= len(VGG11_STAGES):
            raise ValueError(f"VGG-11 has {len(VGG11_STAGES)} stages; cannot take {num_stages}")
        if weights not in VGG_WEIGHTS:
            raise ValueError(f"unknown VGG weights {weights!r}; choose one of {VGG_WEIGHTS}")
        import torchvision
        self.weights, self.num_stages, self.calls = weights, num_stages, 0
        self._label = label
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
            from ..weights import require
            state = torch.load(require("vgg11"), map_location="cpu", weights_only=True)
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            self._load_stages(state, last)
        elif load and weights == "digits":
            from ..weights import require
            state = torch.load(require("digit-vgg11"), map_location="cpu", weights_only=True)["state_dict"]
            try:
                self._load_stages(state, last)
            except RuntimeError as e:
                raise ValueError(f"the digit VGG-11 stand-in has fewer stages than a U-Net with {num_stages} levels "
                                 f"needs (it was trained with 3): {str(e).splitlines()[0]}") from e
        elif load and weights == "trained":
            if state_dict is None:
                raise ValueError("weights='trained' needs the trained network's state_dict")
            self._load_stages(state_dict, last)
        self.requires_grad_(False)
        mean, std = imagenet_statistics()
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        super().train(False)

    def _load_stages(self, state: dict, last: int) -> None:
        state = {k: v for k, v in state.items() if k.split(".")[0].isdigit() and int(k.split(".")[0]) <= last}
        self.layers.load_state_dict(state)

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # frozen: never in training mode (there is no dropout/BN here, but be exact)

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        return {"imagenet": "ImageNet VGG-11", "random": "RANDOM-init VGG-11 (not ImageNet)",
                "digits": "digit-trained VGG-11 stand-in (not ImageNet)",
                "trained": "VGG-11 layout trained by fastdiff (not ImageNet)"}[self.weights]

    @torch.no_grad()
    def forward(self, lr: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
        self.calls += 1
        x = vgg_input(lr, size, self.mean, self.std)
        out = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.stage_ends:
                out.append(x)
        return out


@dataclass
class VGGFusionConfig:
    inner: dict                      # the wrapped model's spec: SuperResUNet (LR concatenated) or UNet ("VGG only")
    fusion: str = "add"              # add | concat
    vgg_weights: str = "imagenet"    # imagenet | random | trained (provenance: what the VGG was built from)
    vgg_seed: int = 0
    lr_channels: int = 3
    vgg_label: str = ""              # how tables name the feature network ("": from vgg_weights)

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {FUSIONS}")
        if self.vgg_weights not in VGG_WEIGHTS:
            raise ValueError(f"unknown vgg_weights {self.vgg_weights!r}; choose one of {VGG_WEIGHTS}")


@register_architecture("vgg-fusion", legacy_class="VGGSuperResUNet")
class VGGFeatureFusion(UNetWrapper):
    """``model(x_t, t, lr=low_res, vgg=None, **cond) -> eps``: the wrapped model with VGG-11 features of ``lr``
    fused into every encoder block output. ``vgg`` takes precomputed features; when it is None they are computed
    from ``lr`` (training: a new LR batch every step). Samplers call `prepare_condition` once per call, which
    computes them once for all steps. ``vgg_state`` fills a ``trained`` feature network. Its features enter the
    walk as an encoder-block hook (`LevelHooks.with_encoder_block`), so layer skipping and deep-feature caching
    stack over it, and it over a `LayerSkippingUNet` (not over the sampling-time wrappers, which no checkpoint
    holds); it owns the ``vgg`` conditioning (one VGG fusion per stack)."""

    owns = ("the 'vgg' conditioning (the VGG features of one sampling call)",)

    def __init__(self, inner: nn.Module, *, fusion: str = "add", vgg_weights: str = "imagenet", vgg_seed: int = 0,
                 lr_channels: int = 3, load_vgg: bool = True, vgg_state: dict | None = None, vgg_label: str = ""):
        super().__init__(inner)
        self.config = VGGFusionConfig(self.inner_spec(), fusion, vgg_weights, vgg_seed, lr_channels, vgg_label)
        c = self.base.config
        if c.num_levels > len(VGG11_STAGES):
            raise ValueError(f"VGG-11 has {len(VGG11_STAGES)} stages for {c.num_levels} U-Net levels")
        if isinstance(self.base, SuperResUNet) and c.cond_channels != lr_channels:
            raise ValueError(f"the wrapped SR U-Net concatenates {c.cond_channels} LR channels, not {lr_channels}")
        self.vgg = VGGFeatures(c.num_levels, weights=vgg_weights, seed=vgg_seed, load=load_vgg, state_dict=vgg_state,
                               label=vgg_label or None)
        fuse = []
        for level, vgg_ch in enumerate(self.vgg.channels):
            ch = c.level_channels(level)
            if fusion == "concat":
                fuse.append(nn.Conv2d(ch + vgg_ch, ch, 1))
            else:  # add: unchanged where the widths match (the paper), else a linear projection
                fuse.append(nn.Identity() if ch == vgg_ch else nn.Conv2d(vgg_ch, ch, 1, bias=False))
        self.fuse = nn.ModuleList(fuse)

    @classmethod
    def from_config(cls, config: dict) -> "VGGFeatureFusion":
        """Rebuild from the stored config; the VGG weights come from the checkpoint's state dict."""
        cfg = VGGFusionConfig(**config)
        return cls(build_model(cfg.inner), fusion=cfg.fusion, vgg_weights=cfg.vgg_weights, vgg_seed=cfg.vgg_seed,
                   lr_channels=cfg.lr_channels, load_vgg=False, vgg_label=cfg.vgg_label)

    @staticmethod
    def from_legacy(config: dict, state_dict: dict) -> tuple[dict, dict]:
        """Checkpoints of ``fastdiff.vggsr.VGGSuperResUNet`` (before the registry). Its ``fusion='none'`` was
        SR3's U-Net, now `SuperResUNet` itself; the others wrap one (or a plain UNet for "VGG only")."""
        unet = config["unet"]
        if config["fusion"] == "none":
            return {"arch": "sr-unet", "config": unet}, renamed(state_dict, "unet.", "")
        inner = {"arch": "sr-unet" if unet.get("cond_channels") else "unet", "config": unet}
        new = {"inner": inner, **{k: config[k] for k in ("fusion", "vgg_weights", "vgg_seed", "lr_channels")}}
        return {"arch": "vgg-fusion", "config": new}, renamed(state_dict, "unet.", "inner.")

    @property
    def uses_lr_concat(self) -> bool:
        return isinstance(self.base, SuperResUNet)

    @property
    def label(self) -> str:
        """What the model is, VGG provenance included (goes into every table and plot title)."""
        return (f"SR3 U-Net + {self.vgg.label} ({self.config.fusion})"
                + ("" if self.uses_lr_concat else ", no LR concatenation"))

    def vgg_features(self, lr: torch.Tensor, size) -> list[torch.Tensor]:
        return self.vgg(lr, size)

    def prepare_condition(self, x: torch.Tensor, cond: dict) -> dict:
        """Called once by the samplers: the VGG features of ``cond['lr']`` at x's size, added to ``cond``."""
        cond = super().prepare_condition(x, cond)
        if cond.get("vgg") is not None:
            return cond
        if "lr" not in cond:
            raise ValueError("a VGG-conditioned model needs cond={'lr': low-res images}")
        return {**cond, "vgg": self.vgg_features(cond["lr"], x.shape[-2:])}

    def _check_vgg(self, x: torch.Tensor, vgg) -> None:
        expected = [(x.shape[0], ch, x.shape[-2] >> l, x.shape[-1] >> l) for l, ch in enumerate(self.vgg.channels)]
        got = [tuple(f.shape) for f in vgg] if isinstance(vgg, (list, tuple)) else type(vgg).__name__
        if got != expected:
            raise ValueError(f"precomputed VGG features have shapes {got}; expected {expected}")

    def _fuse(self, vgg: list[torch.Tensor]):
        def fuse(level: int, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            f = vgg[level].to(h.dtype)
            if self.config.fusion == "concat":
                return self.fuse[level](torch.cat([h, f], dim=1))
            return h + self.fuse[level](f)
        return fuse

    def walk(self, x: torch.Tensor, t: torch.Tensor, hooks: LevelHooks | None = None, *, lr: torch.Tensor,
             vgg: list[torch.Tensor] | None = None, **cond) -> torch.Tensor:
        check_lr(x, lr, self.config.lr_channels)
        if vgg is None:
            vgg = self.vgg_features(lr, x.shape[-2:])
        else:
            self._check_vgg(x, vgg)
        hooks = (hooks or NO_HOOKS).with_encoder_block(self._fuse(vgg))
        if self.uses_lr_concat:
            cond["lr"] = lr
        return self.inner.walk(x, t, hooks, **cond)

    def example_inputs(self, batch_size: int, *, generator: torch.Generator | None = None, sr_scale: int = 8):
        x, t, cond = self.inner.example_inputs(batch_size, generator=generator, sr_scale=sr_scale)
        if "lr" not in cond:
            size = self.base.config.image_size // sr_scale
            lr = torch.rand(batch_size, self.config.lr_channels, size, size, generator=generator) * 2 - 1
            cond = {**cond, "lr": lr.to(x.device)}
        return x, t, cond


def resolve_vgg_weights(requested: str, if_missing: str = "error") -> tuple[str, str]:
    """(weights to build with, a sentence saying what they are). ``requested`` is ``imagenet`` or ``random``.
    When ImageNet weights are asked for and absent: ``if_missing='error'`` raises the `MissingWeightsError`
    that names the file; ``if_missing='random'`` (the caller's explicit choice) falls back to a random frozen
    VGG-11 and says so loudly."""
    from ..weights import MissingWeightsError, is_available, missing_message, weight_path
    if requested not in ("imagenet", "random"):
        raise ValueError(f"unknown vgg_weights {requested!r}; choose 'imagenet' or 'random'")
    if if_missing not in ("error", "random"):
        raise ValueError(f"if_missing must be 'error' or 'random', got {if_missing!r}")
    if requested == "imagenet" and is_available("vgg11"):
        return "imagenet", f"ImageNet VGG-11 ({weight_path('vgg11').name} in $TORCH_HOME/hub/checkpoints)"
    if requested == "imagenet" and if_missing == "error":
        raise MissingWeightsError(missing_message("vgg11") + " Or pass vgg_if_missing='random' to run with a "
                                  "random frozen VGG-11, labelled as such.")
    note = ("RANDOM-init frozen VGG-11, NOT ImageNet: the ImageNet weights are missing "
            f"({weight_path('vgg11').name}) and a random VGG was asked for" if requested == "imagenet"
            else "RANDOM-init frozen VGG-11, NOT ImageNet (asked for explicitly)")
    warnings.warn(note + ". The '+ VGG' results measure random features, not the paper's method.",
                  RandomVGGWarning, stacklevel=2)
    return "random", note
