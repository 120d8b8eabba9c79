"""The pretrained files the studies use: where each belongs, whether it is here, and how to get it.

ImageNet-trained networks (Inception for FID, AlexNet for LPIPS, VGG-11 for study 1) are downloaded
by torch into ``$TORCH_HOME/hub/checkpoints/``. Offline, nothing can fetch them, so every metric that
needs one calls `require` first and gets a `MissingWeightsError` that names the file and the folder.
The LeNet-MNIST digit classifier is trained by ``scripts/train_lenet_mnist.py`` and ships inside the
package, so it is always present.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PretrainedFile:
    key: str
    filename: str
    url: str | None          # None: bundled with fastdiff
    used_for: str


_TV = "https://download.pytorch.org/models/"
FILES = {
    "inception-v3-compat": PretrainedFile(
        "inception-v3-compat", "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        "FID, KID, IS and precision/recall (torch-fidelity's Inception-v3)"),
    "alexnet": PretrainedFile("alexnet", "alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth",
                              "LPIPS (AlexNet backbone; the linear heads ship with the lpips package)"),
    "vgg11": PretrainedFile("vgg11", "vgg11-8a719046.pth", _TV + "vgg11-8a719046.pth",
                            "study 1: frozen VGG-11 features of the low-res image"),
    "lenet-mnist": PretrainedFile("lenet-mnist", "lenet_mnist.pt", None,
                                  "FD (LeNet-MNIST) on the digit studies (trained by scripts/train_lenet_mnist.py)"),
    "digit-vgg11": PretrainedFile("digit-vgg11", "digit_vgg11.pt", None,
                                  "study 1 offline: VGG-11's first three stages trained on the built-in digits "
                                  "(the stand-in for ImageNet VGG-11; scripts/train_digit_vgg.py)"),
}


class MissingWeightsError(FileNotFoundError):
    """A pretrained file is not on disk; the message names the file, the folder and how to get it."""


class WeightsDownloadError(OSError):
    """A download was asked for and failed."""


def checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def assets_dir() -> Path:
    return Path(__file__).parent / "assets"


def _file(key: str) -> PretrainedFile:
    if key not in FILES:
        raise ValueError(f"unknown pretrained file {key!r}; known: {sorted(FILES)}")
    return FILES[key]


def weight_path(key: str) -> Path:
    f = _file(key)
    return (assets_dir() if f.url is None else checkpoints_dir()) / f.filename


def is_available(key: str) -> bool:
    return weight_path(key).is_file()


def missing_message(key: str) -> str:
    f, path = _file(key), weight_path(key)
    if f.url is None:
        script = {"lenet-mnist": "train_lenet_mnist.py", "digit-vgg11": "train_digit_vgg.py"}.get(key, "")
        return (f"{f.used_for} needs {path}, which ships with fastdiff; reinstall the package, or recreate it "
                f"with `python scripts/{script}`.")
    torch_home = os.environ.get("TORCH_HOME", "unset, so ~/.cache/torch")
    return (f"{f.used_for} needs the pretrained file {f.filename}, which is not in {path.parent}/ "
            f"($TORCH_HOME/hub/checkpoints/; TORCH_HOME is {torch_home}). On a machine with a network run "
            f"`fastdiff weights`, or download {f.url} and put the file in that folder.")


def require(key: str) -> Path:
    """The path of a pretrained file, or a `MissingWeightsError` saying where it belongs."""
    path = weight_path(key)
    if not path.is_file():
        raise MissingWeightsError(missing_message(key))
    return path


def download(key: str, *, progress: bool = True) -> Path:
    """Fetch one file into the checkpoints folder (torch writes a temporary file and renames it, so an
    interrupted download leaves no partial file under the final name)."""
    f, path = _file(key), weight_path(key)
    if path.is_file() or f.url is None:
        return require(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(f.url, str(path), progress=progress)
    except Exception as e:  # URLError, HTTPError, OSError, timeouts: all mean "not fetched"
        raise WeightsDownloadError(f"could not download {f.url} ({type(e).__name__}: {e}). "
                                   f"{missing_message(key)}") from e
    return path


def status() -> list[dict]:
    """One row per pretrained file: key, file, present, path, size, what it is for."""
    rows = []
    for key, f in FILES.items():
        path = weight_path(key)
        rows.append({"key": key, "file": f.filename, "present": path.is_file(), "path": str(path),
                     "megabytes": round(path.stat().st_size / 2**20, 2) if path.is_file() else None,
                     "source": "bundled" if f.url is None else f.url, "used_for": f.used_for})
    return rows
