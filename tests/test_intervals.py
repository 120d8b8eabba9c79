"""The interval machinery where the truth is known: FD from features equals torch-fidelity's; the batched bootstrap
equals resampling by hand; on Gaussians with a closed-form Fréchet distance the bias-corrected interval covers it at
about its nominal rate (the percentile one does not); KID equals torch-fidelity's on the same features; the Wilson
interval is the fool-rate game's; a paired bootstrap of equal sets sits on zero."""
import math

import numpy as np
import pytest
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from fastdiff.measure import foolrate, intervals
from fastdiff.measure.intervals import (Estimate, fd_interval, frechet_distance_features, kid, mean_interval,
                                        paired_difference_interval, paired_fd_difference_interval,
                                        paired_fd_ratio_interval, proportion_interval)


def relu_features(n, d, seed, shift=0.0):
    """LeNet-like features: non-negative, some units often zero."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) + shift).relu()


def torch_fidelity_fd(f, ref):
    return fid_statistics_to_metric(fid_features_to_statistics(f.double()), fid_features_to_statistics(ref.double()),
                                    False)["frechet_inception_distance"]


def gaussians(d, seed):
    """Two Gaussians with covariances sharing eigenvectors Q, so FD = |mu1 - mu2|^2 + sum_i (sqrt a_i - sqrt b_i)^2
    in closed form. Returns (mu1, Sigma1^1/2, reference statistics {mu, sigma} of the second, true FD)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a = 0.5 + 1.5 * torch.rand(d, generator=g, dtype=torch.float64)
    b = 0.5 + 1.5 * torch.rand(d, generator=g, dtype=torch.float64)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), 0.5 * torch.randn(d, generator=g, dtype=torch.float64)
    root1 = q @ torch.diag(a.sqrt()) @ q.T
    sigma2 = q @ torch.diag(b) @ q.T
    true = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    return mu1, root1, {"mu": mu2.numpy(), "sigma": sigma2.numpy()}, true


def test_fd_from_features_equals_torch_fidelity():
    f, ref = relu_features(300, 16, 0), relu_features(400, 16, 1, shift=0.3)
    assert frechet_distance_features(f, ref) == pytest.approx(torch_fidelity_fd(f, ref), rel=1e-9)
    stats = fid_features_to_statistics(ref.double())          # the reference as statistics, as LeNetFD keeps it
    assert frechet_distance_features(f, stats) == pytest.approx(torch_fidelity_fd(f, ref), rel=1e-9)
    assert abs(frechet_distance_features(f, f)) < 1e-9
    assert frechet_distance_features(f.float(), ref.float()) == pytest.approx(torch_fidelity_fd(f, ref), rel=1e-5)


def test_the_batched_bootstrap_equals_resampling_by_hand():
    """The fast path (counts, one product for every resample's covariance, one batched eigensolve; split into chunks
    when large) against torch-fidelity on each resampled set."""
    f, ref = relu_features(120, 10, 2), relu_features(200, 10, 3, shift=0.2)
    idx = torch.randint(len(f), (6, len(f)), generator=torch.Generator().manual_seed(0))
    by_hand = [torch_fidelity_fd(f[i], ref) for i in idx]
    reference = intervals._reference(ref)
    fast = intervals._fd(f, reference, idx)
    chunked = intervals._fd(f, reference, idx, chunk_elements=200)                # 1 resample, 3 rows a chunk
    wide = intervals._fd(f, reference, idx, triangles=False)                      # the path for wide features
    for got in (fast, chunked, wide):
        assert got.tolist() == pytest.approx(by_hand, rel=1e-9)


def test_fewer_samples_than_dimensions_take_the_small_gram_path_to_the_same_distance():
    """n < d (a smoke run on Inception's 2048 dimensions): the n x n Gram twin gives torch-fidelity's FD of every
    resampled set, in one chunk and in several."""
    f, ref = relu_features(9, 30, 2), relu_features(200, 30, 3, shift=0.2)
    idx = torch.randint(len(f), (5, len(f)), generator=torch.Generator().manual_seed(0))
    by_hand = [torch_fidelity_fd(f[i], ref) for i in idx]
    reference = intervals._reference(ref)
    for got in (intervals._fd(f, reference, idx, triangles=False),
                intervals._fd(f, reference, idx, triangles=False, chunk_elements=300)):
        assert got.tolist() == pytest.approx(by_hand, rel=1e-8)
    assert intervals._fd(f, reference, idx, triangles=True).tolist() == pytest.approx(by_hand, rel=1e-8)


def test_fd_interval_covers_the_closed_form_distance_at_about_its_nominal_rate():
    """40 samples of n = 200 from a Gaussian in d = 8, each with a 95% interval of 300 resamples, against the
    closed-form FD to the reference Gaussian. The bias-corrected (basic) interval covers it at about its nominal
    rate (39 of 40 when written; 389 of 400 with another seed; 94% at n = 100 and 98% at d = 84, n = 1000 over
    more repetitions); the percentile interval, which sits about two biases above the truth, less often (33 of 40
    when written; 280 of 400; 71% at n = 100, never at d = 84, n = 1000)."""
    mu1, root1, ref, true = gaussians(8, 0)
    g = torch.Generator().manual_seed(1)
    covered = {"basic": 0, "percentile": 0}
    plain, corrected = [], []
    for _ in range(40):
        f = torch.randn(200, 8, generator=g, dtype=torch.float64) @ root1 + mu1
        for method in covered:
            e = fd_interval(f, ref, n_boot=300, method=method, generator=g)
            covered[method] += e.contains(true)
        plain.append(e.value)
        corrected.append(fd_interval(f, ref, n_boot=300, generator=g).value)
    assert covered["basic"] / 40 >= 0.85
    assert covered["percentile"] <= covered["basic"]
    assert abs(np.mean(corrected) - true) < abs(np.mean(plain) - true)   # the plug-in FD is biased upwards


def test_lenet_fd_interval_keeps_the_plain_fd_beside_the_bias_corrected_one():
    """LeNetFD.interval: the uncorrected value is the FD the studies report (`LeNetFD.__call__`), the bias-corrected
    one lower. Blurred noise stands in for digits: this checks the plumbing, not LeNet."""
    from fastdiff.measure.metrics import LeNetFD
    g = torch.Generator().manual_seed(0)
    blobs = lambda n: torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, 3, 1, 1) * 3
    fd = LeNetFD(blobs(400).clamp(-1, 1))
    sample = blobs(300).clamp(-1, 1)
    assert fd.features(sample).shape == (300, 84)
    e = fd.interval(sample, n_boot=200)
    assert e.uncorrected == pytest.approx(fd(sample), rel=1e-6)
    assert 0 <= e.low <= e.value <= e.high and e.value < e.uncorrected and e.n == 300
    assert str(e).endswith(f"(n=300, bias-corrected bootstrap 95%; uncorrected {e.uncorrected:.4g})")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kid_equals_torch_fidelity_on_the_same_features(dtype):
    f1, f2 = relu_features(150, 12, 4).to(dtype), relu_features(130, 12, 5, shift=0.2).to(dtype)
    theirs = kid_features_to_metric(f1, f2, kid_subsets=7, kid_subset_size=100, rng_seed=2020, verbose=False,
                                    kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                                    kid_kernel_poly_coef0=1)
    mean, std = kid(f1, f2, subsets=7, subset_size=100, seed=2020)
    rel = 1e-9 if dtype == torch.float64 else 1e-4      # torch-fidelity computes in the features' dtype
    assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=rel)
    assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=rel)
    same, _ = kid(f1, f1, subsets=3, subset_size=150)   # whole sets: the unbiased MMD^2 of a set with itself
    assert same < 0                                     # ... is slightly negative, as it may be
    with pytest.raises(ValueError, match="subset_size"):
        kid(f1, f2, subset_size=200)


def test_mean_interval_covers_a_known_mean():
    g = torch.Generator().manual_seed(0)
    hits = sum(mean_interval(25 + 3 * torch.randn(100, generator=g), n_boot=500, generator=g).contains(25)
               for _ in range(40))
    assert hits / 40 >= 0.85
    e = mean_interval(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert e.value == 2.5 and e.low >= 1 and e.high <= 4 and e.method == "bootstrap 95%"
    assert mean_interval(torch.arange(10.0)) == mean_interval(torch.arange(10.0))   # seeded by default


def test_a_paired_bootstrap_of_equal_sets_is_zero_and_pairing_narrows_the_interval():
    g = torch.Generator().manual_seed(0)
    per_image = 28 + 2 * torch.randn(200, generator=g)           # e.g. PSNR of 200 LR images, which vary a lot
    e = paired_difference_interval(per_image, per_image)
    assert (e.value, e.low, e.high) == (0, 0, 0) and "paired" in e.method
    better = per_image + 0.1 + 0.05 * torch.randn(200, generator=g)   # a setting 0.1 dB better on every image
    paired = paired_difference_interval(better, per_image)
    assert paired.low > 0 and paired.contains(0.1)
    unpaired = [mean_interval(x) for x in (better, per_image)]
    assert unpaired[0].low < unpaired[1].high                     # as two separate means: no difference seen

    f, ref = relu_features(300, 16, 6), relu_features(300, 16, 7, shift=0.3)
    same = paired_fd_difference_interval(f, f, ref, n_boot=200)
    assert (same.value, same.low, same.high) == (0, 0, 0)
    near = f + 0.01 * relu_features(300, 16, 8)                    # the same x_T, a slightly different sampler
    diff = paired_fd_difference_interval(near, f, ref, n_boot=200)
    assert diff.low <= 0 <= diff.high or abs(diff.value) < 0.05
    assert diff.high - diff.low < 0.2 * (fd_interval(f, ref, n_boot=200).high - fd_interval(f, ref, n_boot=200).low)
    ratio = paired_fd_ratio_interval(f, f, ref, n_boot=200)
    assert (ratio.value, ratio.low, ratio.high) == (1, 1, 1)
    with pytest.raises(ValueError, match="same x_T"):
        paired_fd_difference_interval(f, f[:-1], ref)


def test_proportions_use_the_fool_rate_games_wilson_interval():
    assert intervals.wilson_interval is foolrate.wilson_interval
    e = proportion_interval(37, 100)
    assert (e.value, e.low, e.high) == (0.37, *foolrate.wilson_interval(37, 100))
    assert str(e) == "0.37 [0.28, 0.47] (n=100, Wilson 95%)"
    assert math.isnan(proportion_interval(0, 0).value)
    with pytest.raises(ValueError):
        proportion_interval(5, 4)


def test_estimate_reads_as_a_number_with_its_interval():
    assert str(Estimate(4.1234, 3.9, 4.41, 1000, "bootstrap 95%")) == "4.12 [3.90, 4.41] (n=1000, bootstrap 95%)"
    assert Estimate(0.00123, 0.0010, 0.0015, 50, "x").format() == "0.00123 [0.00100, 0.00150]"
    assert Estimate(2.0, 2.0, 2.0, 1, "x").format() == "2 [2, 2]"
    assert Estimate(1.0, 0.5, 2.0, 3, "x").row("FD") == {"FD": 1.0, "FD low": 0.5, "FD high": 2.0}


def test_bad_inputs_say_what_is_wrong():
    f = relu_features(20, 4, 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        mean_interval(torch.tensor([1.0, float("inf")]))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        fd_interval(torch.zeros(5), f)
    with pytest.raises(ValueError, match="unknown bootstrap interval"):
        fd_interval(f, f, method="bca")
    with pytest.raises(ValueError, match="one value per image"):
        paired_difference_interval(torch.zeros(3), torch.zeros(4))


def test_an_interval_narrower_than_the_values_precision_prints_five_significant_digits():
    """Two FDs that only reorder sums have a ratio of 1 within 1e-5: shown as 1.0000, not to seven decimals."""
    assert Estimate(1.0, 0.999992, 1.000011, 1000, "x").format() == "1.0000 [1.0000, 1.0000]"
    assert Estimate(0.00123, 0.0010, 0.0015, 50, "x").format() == "0.00123 [0.00100, 0.00150]"
