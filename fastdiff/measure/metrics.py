"""Image-quality metrics. Images are float tensors (B, C, H, W) in [-1, 1], the models' range; every metric
checks that they are (finite, within [-1, 1]) and says what is wrong when they are not.

Pixel metrics follow the SR literature's convention (SR3, SRDiff, BasicSR): images are mapped to [0, 1] and, by
default, rounded to 8-bit levels as a saved PNG would be, then PSNR = 10 log10(1 / MSE) and SSIM (Wang et al.
2004: an 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, channels averaged), so our numbers
stand beside published ones. SSIM on [-1, 1] would not: its luminance term is not shift-invariant.

Intervals on all of these (bootstrap, paired bootstrap, Wilson), FD and KID from features: `fastdiff.measure.intervals`.

Pixel metrics (PSNR, SSIM, LR-PSNR) need nothing. LPIPS needs ImageNet AlexNet weights and FID/KID/IS
need torch-fidelity's Inception-v3 weights; offline, `fastdiff.weights.require` raises a
`MissingWeightsError` naming the file and folder. The digit studies use "FD (LeNet-MNIST)" instead,
a Fréchet distance in the features of a classifier that ships with fastdiff (see `fastdiff.measure.lenet`).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..data import downsample, to_uint8
from ..weights import require


RANGE_TOLERANCE = 1e-3   # samplers clip x_0 to [-1, 1]; resampling may overshoot by rounding


def check_images(x, name: str = "images", *, min_batch: int = 1) -> torch.Tensor:
    """``x`` as a (B, C, H, W) tensor of finite values in [-1, 1], or a ValueError that says what is wrong."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor (B, C, H, W) in [-1, 1], got {type(x).__name__}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if len(x) < min_batch:
        raise ValueError(f"{name}: need at least {min_batch} images, got {len(x)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} are {x.dtype}; fastdiff metrics take float images in [-1, 1] "
                         f"(uint8 images: x.float() / 127.5 - 1)")
    bad = (~torch.isfinite(x)).flatten(1).any(1)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {len(x)} images contain NaN or inf (first: image "
                         f"{int(bad.nonzero()[0])}); a model that diverged, or a failed conversion?")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        hint = (" - this looks like [0, 255] (uint8-range) images: use x / 127.5 - 1" if hi > 2 and lo >= 0
                else " - map them to [-1, 1] first")
        raise ValueError(f"{name} must be in [-1, 1] (the models' range); got values in [{lo:.4g}, {hi:.4g}]{hint}")
    return x


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = check_images(x, "first images"), check_images(y, "second images")
    if x.shape != y.shape:
        raise ValueError(f"images to compare must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return x.double(), y.double()


def to_unit_range(x: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """[-1, 1] -> [0, 1]; with ``quantize`` rounded to the 256 levels of an 8-bit image (what papers score)."""
    u = ((x.double() + 1) / 2).clamp(0, 1)
    return (u * 255).round() / 255 if quantize else u


def psnr(x: torch.Tensor, y: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio per image on [0, 1] (8-bit levels by default): 10 log10(1 / MSE), in dB
    (inf where the images are equal). The same number as 8-bit images with a peak of 255."""
    x, y = _pair(x, y)
    mse = (to_unit_range(x, quantize=quantize) - to_unit_range(y, quantize=quantize)).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse)).float()


def lr_psnr(sr: torch.Tensor, lr: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
    """LR-PSNR (SRFlow; the SwinDiffuser thesis): downsample the SR output with the degradation that made
    the LR input (antialiased bicubic) and compare with that input. High LR-PSNR means the SR image is
    consistent with what was observed, whatever detail it invented."""
    sr, lr = check_images(sr, "SR images"), check_images(lr, "LR images")
    scale = sr.shape[-1] // lr.shape[-1]
    if scale < 1 or sr.shape[-1] != lr.shape[-1] * scale or sr.shape[-2] != lr.shape[-2] * scale:
        raise ValueError(f"SR size {tuple(sr.shape[-2:])} is not an integer multiple of LR size {tuple(lr.shape[-2:])}")
    return psnr(downsample(sr.float(), scale), lr, quantize=quantize)


def _window(gaussian_weights: bool, sigma: float, win_size: int | None) -> torch.Tensor:
    """The 1-D filter skimage uses: scipy's Gaussian (truncate=3.5, normalised) or a uniform box."""
    if gaussian_weights:
        radius = int(3.5 * sigma + 0.5)
        w = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
        return w / w.sum()
    win_size = 7 if win_size is None else win_size
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
    return torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)


def ssim(x: torch.Tensor, y: torch.Tensor, *, quantize: bool = True, gaussian_weights: bool = True,
         sigma: float = 1.5, win_size: int | None = None, use_sample_covariance: bool = False) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, averaged over channels, on images mapped to [0, 1]
    (8-bit levels by default) with data range 1.

    Defaults are the paper's and the SR literature's: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03, population covariances. The keyword arguments mean what they mean in
    ``skimage.metrics.structural_similarity(..., data_range=1)``, which this agrees with to 1e-6 (the SSIM map is
    averaged over the pixels whose window lies inside the image, as skimage does)."""
    x, y = _pair(x, y)
    x, y = to_unit_range(x, quantize=quantize), to_unit_range(y, quantize=quantize)
    data_range = 1.0
    w = _window(gaussian_weights, sigma, win_size)
    n = len(w)
    if min(x.shape[-2:]) < n:
        raise ValueError(f"SSIM's {n}x{n} window does not fit images of size {tuple(x.shape[-2:])}")
    b, c, h, wd = x.shape

    def filt(img):  # separable valid filtering of every channel
        img = img.reshape(b * c, 1, *img.shape[-2:])
        img = F.conv2d(img, w.view(1, 1, n, 1))
        return F.conv2d(img, w.view(1, 1, 1, n))

    cov_norm = n * n / (n * n - 1) if use_sample_covariance else 1.0
    mu_x, mu_y = filt(x), filt(y)
    var_x = cov_norm * (filt(x * x) - mu_x**2)
    var_y = cov_norm * (filt(y * y) - mu_y**2)
    cov_xy = cov_norm * (filt(x * y) - mu_x * mu_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.reshape(b, -1).mean(1).float()


# ---- LPIPS --------------------------------------------------------------------------------------------

_lpips_models: dict = {}


def lpips_model(*, device: torch.device | str = "cpu", random_backbone: bool = False):
    """The ``lpips`` package's LPIPS v0.1 with AlexNet (Zhang et al. 2018). ``random_backbone=True`` keeps
    the calibrated linear heads but leaves AlexNet randomly initialised: only for testing the plumbing
    offline, and never a perceptual metric."""
    key = (str(device), random_backbone)
    if key not in _lpips_models:
        if not random_backbone:
            require("alexnet")
        import lpips
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore", UserWarning)   # torchvision's 'pretrained=' deprecation inside lpips
            torch.manual_seed(0)                           # a random backbone is the same one every time
            model = lpips.LPIPS(net="alex", pnet_rand=random_backbone, verbose=False)
        _lpips_models[key] = model.eval().requires_grad_(False).to(device)
    return _lpips_models[key]


def lpips_distance(x: torch.Tensor, y: torch.Tensor, *, device: torch.device | str = "cpu",
                   random_backbone: bool = False, batch_size: int = 32) -> torch.Tensor:
    """LPIPS (AlexNet) per image pair; inputs in [-1, 1], greyscale repeated to RGB. Lower is closer."""
    x, y = _pair(x, y)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"LPIPS takes 1- or 3-channel images, got {x.shape[1]} channels")
    model = lpips_model(device=device, random_backbone=random_backbone)
    out = []
    for i in range(0, len(x), batch_size):
        a, b = (t[i:i + batch_size].float().expand(-1, 3, -1, -1).to(device) for t in (x, y))
        with torch.no_grad():
            out.append(model(a, b).flatten().float().cpu())
    return torch.cat(out)


# ---- Fréchet distance, KID, IS, precision/recall through torch-fidelity -------------------------------

# what each torch-fidelity result is called here, per feature extractor: never "FID" for LeNet features
_NAMES = {
    "inception-v3-compat": {"frechet_inception_distance": "FID", "kernel_inception_distance_mean": "KID",
                            "kernel_inception_distance_std": "KID std", "inception_score_mean": "IS",
                            "inception_score_std": "IS std", "precision": "precision", "recall": "recall",
                            "f_score": "F-score"},
    "lenet-mnist": {"frechet_inception_distance": "FD (LeNet-MNIST)",
                    "kernel_inception_distance_mean": "KD (LeNet-MNIST)",
                    "kernel_inception_distance_std": "KD (LeNet-MNIST) std",
                    "inception_score_mean": "IS (LeNet-MNIST)", "inception_score_std": "IS (LeNet-MNIST) std",
                    "precision": "precision (LeNet-MNIST)", "recall": "recall (LeNet-MNIST)",
                    "f_score": "F-score (LeNet-MNIST)"},
}


class Uint8Images(Dataset):
    """Images in [-1, 1] as the uint8 (C, H, W) tensors torch-fidelity reads; greyscale repeated to RGB
    when ``rgb``."""

    def __init__(self, images: torch.Tensor, *, rgb: bool, name: str = "images"):
        u8 = to_uint8(check_images(images, name))
        self.images = u8.expand(-1, 3, -1, -1).contiguous() if rgb and u8.shape[1] == 1 else u8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def fidelity(generated: torch.Tensor, reference: torch.Tensor, *, fid: bool = True, kid: bool = False,
             isc: bool = False, prc: bool = False, feature_extractor: str = "inception-v3-compat",
             device: torch.device | str = "cpu", batch_size: int = 64, kid_subset_size: int = 1000,
             seed: int = 2020) -> dict[str, float]:
    """FID / KID / IS / precision-recall of ``generated`` against ``reference`` (both (N, C, H, W) in
    [-1, 1], in memory) with torch-fidelity. ``feature_extractor`` is ``inception-v3-compat`` (real FID;
    needs its weights file) or ``lenet-mnist`` (32x32 digits; bundled). Keys name the extractor, e.g.
    "FID" or "FD (LeNet-MNIST)". KID uses subsets of min(kid_subset_size, N) samples."""
    import torch_fidelity
    if feature_extractor not in _NAMES:
        raise ValueError(f"unknown feature extractor {feature_extractor!r}; choose one of {sorted(_NAMES)}")
    if feature_extractor == "lenet-mnist":
        from . import lenet  # noqa: F401  (registers the extractor)
    weights = require(feature_extractor)
    if min(len(generated), len(reference)) < 2:
        raise ValueError("FD/KID need at least 2 images in each set")
    rgb = feature_extractor == "inception-v3-compat"
    metrics = torch_fidelity.calculate_metrics(
        input1=Uint8Images(generated, rgb=rgb, name="generated images"),
        input2=Uint8Images(reference, rgb=rgb, name="reference images"), fid=fid, kid=kid,
        isc=isc, prc=prc, feature_extractor=feature_extractor, feature_extractor_weights_path=str(weights),
        cuda=torch.device(device).type == "cuda", batch_size=batch_size, cache=False, save_cpu_ram=True,
        verbose=False, rng_seed=seed, kid_subset_size=min(kid_subset_size, len(generated), len(reference)))
    return {_NAMES[feature_extractor][k]: float(v) for k, v in metrics.items()}


def frechet_distance_lenet(generated: torch.Tensor, reference: torch.Tensor, *,
                           device: torch.device | str = "cpu") -> float:
    """FD (LeNet-MNIST) of 32x32 digit images: the offline Fréchet distance of the digit studies."""
    return LeNetFD(reference, device=device)(generated)


class LeNetFD:
    """FD (LeNet-MNIST) against one fixed reference set, whose feature statistics are computed once: for studies
    that score many sets of samples against the same digits. Same features (fc2) and the same uint8 rounding as
    `fidelity(..., feature_extractor="lenet-mnist")`, which recomputes the reference on every call."""

    def __init__(self, reference: torch.Tensor, *, device: torch.device | str = "cpu", batch_size: int = 500):
        from .lenet import load_lenet
        self.device, self.batch_size = torch.device(device), batch_size
        self.lenet = load_lenet()[0].to(self.device)
        self.reference_stats = self._statistics(reference)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The (N, 84) fc2 features FD is computed from, of (N, 1 or 3, 32, 32) digits rounded to uint8 as
        torch-fidelity rounds them: for `fastdiff.measure.intervals` (bootstrap intervals, KID, paired FD)."""
        images = check_images(images, "digit images", min_batch=2)
        if images.shape[-2:] != (32, 32) or images.shape[1] not in (1, 3):
            raise ValueError(f"LeNet-MNIST takes (N, 1 or 3, 32, 32) digits, got {tuple(images.shape)}; resize "
                             f"other sizes with as_lenet_digits")
        u8 = to_uint8(images)
        feats = [self.lenet.uint8_features(u8[i:i + self.batch_size].to(self.device))["fc2"].cpu()
                 for i in range(0, len(u8), self.batch_size)]
        return torch.cat(feats)

    def _statistics(self, images: torch.Tensor) -> dict:
        from torch_fidelity.metric_fid import fid_features_to_statistics
        return fid_features_to_statistics(self.features(images))

    def interval(self, images: torch.Tensor, *, n_boot: int = 1000, confidence: float = 0.95,
                 generator: torch.Generator | None = None):
        """FD (LeNet-MNIST) of ``images`` with a bias-corrected bootstrap interval over them, the reference
        statistics fixed (`fastdiff.measure.intervals.fd_interval`); ``.uncorrected`` is the number `__call__`
        gives."""
        from .intervals import fd_interval
        return fd_interval(self.features(images), self.reference_stats, n_boot=n_boot, confidence=confidence,
                           generator=generator)

    def __call__(self, images: torch.Tensor) -> float:
        from torch_fidelity.metric_fid import fid_statistics_to_metric
        stats = self._statistics(images)
        return float(fid_statistics_to_metric(self.reference_stats, stats, False)["frechet_inception_distance"])


def as_lenet_digits(images: torch.Tensor) -> torch.Tensor:
    """Digits of any size as LeNet-MNIST was trained on them: 28x28 (bilinear) padded with black to 32x32."""
    if images.shape[-1] == 32:
        return images
    return F.pad(F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).clamp(-1, 1),
                 (2, 2, 2, 2), value=-1.0)


def sample_scorer(reference: torch.Tensor, *, dataset: str, device):
    """``score(images) -> dict`` against ``reference``: FD (LeNet-MNIST) on digits (reference statistics computed
    once; digits of other sizes resized as `as_lenet_digits`), FID and KID (Inception, torch-fidelity) otherwise,
    when the weights are on disk (None and a printed note when not)."""
    from ..weights import is_available, missing_message
    if dataset.startswith("mnist"):
        fd = LeNetFD(as_lenet_digits(reference), device=device)
        return lambda images: {"FD (LeNet-MNIST)": fd(as_lenet_digits(images))}
    if not is_available("inception-v3-compat"):
        print("FID/KID skipped: " + missing_message("inception-v3-compat"))
        return lambda images: {"FID (Inception)": None, "KID (Inception)": None}

    def score(images):
        out = fidelity(images, reference, kid=True, device=device)
        return {"FID (Inception)": out["FID"], "KID (Inception)": out["KID"]}
    return score
