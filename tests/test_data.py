import urllib.error

import numpy as np
import pytest
import torch

from fastdiff.data import (DatasetUnavailableError, ImageFolder, SRPairs, downsample, get_batch, load_dataset,
                           mnist_digits, photo_patches, train_val_split)


def test_builtin_mnist_digits_are_real_and_padded():
    x, y = mnist_digits(32)
    assert x.shape == (5000, 1, 32, 32) and y.shape == (5000,)
    assert x.min() == -1 and x.max() == 1
    assert (x[:, :, :2] == -1).all()  # the 2-pixel pad is background
    assert sorted(y.unique().tolist()) == list(range(10))
    assert mnist_digits(16)[0].shape == (5000, 1, 16, 16)


def test_photo_patches_are_deterministic_and_disjoint():
    a, b = photo_patches(64), photo_patches(64)
    assert torch.equal(a, b)
    assert a.shape[1:] == (3, 64, 64) and len(a) > 100
    assert a.min() >= -1 and a.max() <= 1
    assert len(torch.unique(a.flatten(1), dim=0)) == len(a)


def test_sr_pairs_and_downsampling():
    hr = photo_patches(64)[:4]
    pairs = SRPairs(hr, 4)
    item = pairs[0]
    assert item["x0"].shape == (3, 64, 64) and item["lr"].shape == (3, 16, 16)
    batch = get_batch(pairs, torch.tensor([0, 1, 2]))
    assert batch["lr"].shape == (3, 3, 16, 16)
    # antialiased bicubic keeps a constant image constant
    flat = torch.full((1, 3, 8, 8), 0.25)
    torch.testing.assert_close(downsample(flat, 2), torch.full((1, 3, 4, 4), 0.25))
    with pytest.raises(ValueError, match="not divisible by the SR scale 3"):
        SRPairs(hr, 3)


def test_split_is_deterministic_and_disjoint():
    tr, va = train_val_split(100, 0.2, seed=1)
    tr2, va2 = train_val_split(100, 0.2, seed=1)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert len(va) == 20 and set(tr.tolist()).isdisjoint(va.tolist())
    train = load_dataset("mnist-builtin", image_size=32)
    val = load_dataset("mnist-builtin", image_size=32, split="val")
    assert len(train) == 4500 and len(val) == 500


def test_image_folder(tmp_path):
    from PIL import Image
    for i in range(3):
        Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = ImageFolder(tmp_path, 16)
    assert len(ds) == 3 and ds[2].shape == (3, 16, 16)
    assert len(load_dataset(f"folder:{tmp_path}", image_size=16, split="val", val_fraction=0.34)) == 1


def test_data_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        ImageFolder(tmp_path / "missing", 32)
    with pytest.raises(DatasetUnavailableError, match="contains no images"):
        ImageFolder(tmp_path, 32)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetUnavailableError, match="cannot read image .*broken.png"):
        ImageFolder(tmp_path, 32)[0]
    with pytest.raises(DatasetUnavailableError, match="download=True"):
        load_dataset("cifar10", image_size=32, root=tmp_path / "none")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", image_size=32)

    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):
        load_dataset("cifar10", image_size=32, root=tmp_path, download=True)
