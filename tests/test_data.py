import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

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
    with pytest.raises(DatasetUnavailableError, match="1 of 1 images in .* cannot be read: broken.png .not an image"):
        ImageFolder(tmp_path, 32)
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


def test_a_folder_is_scanned_when_opened_and_bad_files_can_be_skipped(tmp_path):
    """A corrupt file is found when the folder is opened (not at the training step that first draws it); with
    on_bad='skip' it is left out and counted."""
    for i in range(4):
        Image.fromarray(np.full((20, 20, 3), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    whole = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes(whole[: len(whole) // 2])          # truncated mid-file
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DatasetUnavailableError, match=r"2 of 5 images in .* cannot be read: 1.png \(truncated or "
                                                      r"corrupt.*notes.png \(not an image.*on_bad='skip'"):
        ImageFolder(tmp_path, 16)
    ds = ImageFolder(tmp_path, 16, on_bad="skip")
    assert len(ds) == 3 and sorted(p.name for p in ds.skipped) == ["1.png", "notes.png"]
    assert len(load_dataset(f"folder:{tmp_path}", image_size=16, on_bad="skip", val_fraction=0.0)) == 3
    with pytest.raises(ValueError, match="on_bad must be"):
        ImageFolder(tmp_path, 16, on_bad="ignore")


def test_images_of_other_bit_depths_and_modes_are_converted_correctly(tmp_path):
    """16-bit greyscale (PIL itself clips it to 255), 1-bit, palette, transparency (on white), CMYK, float."""
    ramp16 = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "a_grey16.png")
    Image.fromarray(np.eye(16, dtype=bool)).save(tmp_path / "b_bits.png")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        tmp_path / "c_palette.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0], rgba[:8, :, 3] = 255, 255                              # top half opaque red, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "d_rgba.png")
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).convert("CMYK").save(tmp_path / "e_cmyk.jpg")
    Image.fromarray(np.full((16, 16), 0.5, np.float32), "F").save(tmp_path / "f_float.tif")
    ds = ImageFolder(tmp_path, 16)
    to8 = lambda t: ((t + 1) * 127.5).round()  # noqa: E731
    grey16 = to8(ds[0])
    assert grey16[0, 0, 0] == 0 and grey16[0, -1, -1] == 255
    assert abs(grey16[0, 8, 0] - ramp16[8, 0] / 65535 * 255) <= 1        # a mid value, not clipped to 255
    assert to8(ds[1])[0].diagonal().eq(255).all() and to8(ds[1])[0, 0, 1] == 0
    assert to8(ds[2]).sub(200).abs().max() <= 2
    rgba_out = to8(ds[3])
    assert rgba_out[:, 2, 2].tolist() == [255, 0, 0] and rgba_out[:, 13, 2].tolist() == [255, 255, 255]
    assert to8(ds[4]).sub(100).abs().max() <= 6                          # CMYK JPEG round trip
    assert to8(ds[5]).sub(128).abs().max() <= 1
