"""Intervals on quality numbers, so that a verdict can tell a difference from noise.

- FD: the Fréchet distance of feature sets (Heusel et al. 2017), with a bootstrap interval over the generated
  samples; the reference statistics stay fixed (the reference set is the yardstick, not a sample under test).
- KID: the kernel distance of Bińkowski et al. 2018 (unbiased MMD^2, cubic polynomial kernel), its mean and
  standard deviation over random subsets, computed as torch-fidelity computes them.
- Per-image metrics (PSNR, SSIM, LR-PSNR, seam score): the mean with a bootstrap interval.
- Accuracies and fool rates: the Wilson interval (`fastdiff.measure.foolrate.wilson_interval`).
- Two settings run on the same x_T or the same LR images: a *paired* bootstrap that resamples the same indices
  of both, so that what the two share (the noise, the image) cancels in their difference.

Notation: f (n, d) are the features of n generated images, mu and Sigma their mean and covariance (ddof 1, as
``np.cov``); mu_r and Sigma_r the reference's. FD = |mu - mu_r|^2 + tr Sigma + tr Sigma_r - 2 tr (Sigma Sigma_r)^1/2.

Bootstrap intervals (Efron & Tibshirani 1993) come in two kinds here, from the replicates theta*_b of an
estimate theta_hat and their quantiles q_a:
- ``percentile``: [q_(alpha/2), q_(1-alpha/2)]; right for an unbiased estimate such as a mean (the default there);
- ``basic`` (reverse percentile; Davison & Hinkley 1997, eq. 5.6): [2 theta_hat - q_(1-alpha/2),
  2 theta_hat - q_(alpha/2)], with the bias-corrected value 2 theta_hat - mean(theta*). The plug-in FD is biased
  upwards at finite n (by about the noise in Sigma's eigenvalues, ~ d/n) and a replicate is biased once more, so
  the percentile interval sits about two biases above the true FD; the basic interval removes the bias to first
  order. It is the default for FD. Measured on Gaussians with a closed-form FD (400 repetitions at d = 8, 100 at
  d = 84): at d = 8, n = 100 the 95% basic interval covered the true FD 94% of the time, the percentile one 71%;
  at d = 84, n = 1000 (LeNet's size) the plug-in FD was 2.3 above the truth with a spread of 0.3, the basic
  interval covered it 98% of the time and the percentile one never.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .foolrate import wilson_interval

__all__ = ["Estimate", "frechet_distance_features", "fd_interval", "paired_fd_difference_interval",
           "paired_fd_ratio_interval", "kid", "mean_interval", "paired_difference_interval", "proportion_interval",
           "wilson_interval", "bootstrap_interval"]

METHODS = ("basic", "percentile")


@dataclass(frozen=True)
class Estimate:
    """A measured number and its interval: ``value`` (the estimate), ``low``/``high`` (the interval at the confidence
    ``method`` names), ``n`` (the samples it rests on), ``method`` (how the interval was made) and, for a
    bias-corrected estimate, the ``uncorrected`` plug-in value (the FD every other FD table reports)."""
    value: float
    low: float
    high: float
    n: int
    method: str
    uncorrected: float | None = None

    def format(self, decimals: int | None = None) -> str:
        """"4.12 [3.90, 4.41]": by default with as many decimals as show the interval's width to two digits, but
        never the value past five significant digits (a ratio of two FDs that only reordered sums is 1.0000)."""
        if decimals is None:
            width, size = self.high - self.low, abs(self.value)
            decimals = (max(0, 1 - math.floor(math.log10(width))) if math.isfinite(width) and width > 0 else None)
            if decimals is not None and math.isfinite(size) and size > 0:
                decimals = min(decimals, max(0, 4 - math.floor(math.log10(size))))
        if decimals is None:
            return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"
        return f"{self.value:.{decimals}f} [{self.low:.{decimals}f}, {self.high:.{decimals}f}]"

    def __str__(self) -> str:
        plain = "" if self.uncorrected is None else f"; uncorrected {self.uncorrected:.4g}"
        return f"{self.format()} (n={self.n}, {self.method}{plain})"

    def row(self, name: str) -> dict[str, float]:
        """The estimate as table columns: {name, "name low", "name high"}."""
        return {name: self.value, f"{name} low": self.low, f"{name} high": self.high}

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


# ---- checks and the bootstrap itself -------------------------------------------------------------------------

def _features(f, name: str, *, min_n: int = 2) -> torch.Tensor:
    """Features as a finite float64 (n, d) tensor, or a ValueError that says what is wrong."""
    f = torch.as_tensor(f)
    if f.ndim != 2:
        raise ValueError(f"{name} must be (n, d) features, got shape {tuple(f.shape)}")
    if len(f) < min_n:
        raise ValueError(f"{name}: need at least {min_n} samples, got {len(f)}")
    f = f.detach().to(torch.float64)
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} contain NaN or inf")
    return f


def _values(values, name: str) -> torch.Tensor:
    """Per-sample values as a finite float64 vector, or a ValueError (a PSNR of identical images is inf)."""
    v = torch.as_tensor(values).detach().to(torch.float64).flatten()
    if len(v) < 2:
        raise ValueError(f"{name}: need at least 2 values for an interval, got {len(v)}")
    bad = ~torch.isfinite(v)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {len(v)} values are NaN or inf (first: index "
                         f"{int(bad.nonzero()[0])}); a PSNR of identical images is inf - drop or cap those first")
    return v


def _check(confidence: float, n_boot: int, method: str) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not isinstance(n_boot, int) or n_boot < 10:
        raise ValueError(f"n_boot must be an int >= 10, got {n_boot!r}")
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap interval {method!r}; choose one of {METHODS}")


def _resamples(n: int, n_boot: int, generator: torch.Generator | None) -> torch.Tensor:
    """(n_boot, n) indices drawn with replacement, on the generator's device; without a generator, seed 0 on the
    CPU (the same interval every run)."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return torch.randint(n, (n_boot, n), generator=generator, device=generator.device)


def bootstrap_interval(value: float, replicates: torch.Tensor, *, confidence: float = 0.95,
                       method: str = "percentile") -> tuple[float, float]:
    """The ``percentile`` or ``basic`` interval of an estimate ``value`` from its bootstrap ``replicates``."""
    _check(confidence, 10, method)
    alpha = (1 - confidence) / 2
    q_lo, q_hi = torch.quantile(replicates.double(), torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    if method == "percentile":
        return q_lo, q_hi
    return 2 * value - q_hi, 2 * value - q_lo


def _estimate(value: float, replicates: torch.Tensor, n: int, *, confidence: float, method: str, paired: bool = False,
              floor: float | None = None) -> Estimate:
    """An `Estimate` from an estimate and its replicates. With ``basic`` the value is bias-corrected too,
    2 theta_hat - mean(theta*) (Efron & Tibshirani 1993, eq. 10.7), so that the interval is about it, and the plain
    value is kept as ``uncorrected``. ``floor``: a bound the true value cannot cross (0 for a distance)."""
    low, high = bootstrap_interval(value, replicates, confidence=confidence, method=method)
    kind = "bias-corrected bootstrap" if method == "basic" else "bootstrap"
    label = f"{kind}{' paired' if paired else ''} {100 * confidence:g}%"
    corrected = 2 * value - float(replicates.double().mean()) if method == "basic" else value
    if floor is not None:
        corrected, low, high = max(corrected, floor), max(low, floor), max(high, floor)
    return Estimate(corrected, low, high, n, label, value if method == "basic" else None)


# ---- Fréchet distance --------------------------------------------------------------------------------------

@contextmanager
def _single_thread(device: torch.device):
    """The bootstrap runs on one CPU thread: MKL's threaded symmetric eigensolver is ~10x slower on a batch of small
    (84 x 84) matrices than its single-threaded one, the small element-wise steps gain nothing from threads, and
    when the cores are busy (a test run beside) thread synchronisation costs more than the work: 1000 resamples of
    1000 x 84 features took 4-5 s on one busy thread and 6-46 s on two."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class _Reference:
    mu: torch.Tensor        # mu_r (d,)
    root: torch.Tensor      # Sigma_r^1/2 (d, d), symmetric
    trace: float            # tr Sigma_r


def _reference(ref) -> _Reference:
    """The reference's statistics, computed once: from features (m, d), or given as torch-fidelity's
    ``{"mu", "sigma"}`` (e.g. `fastdiff.measure.metrics.LeNetFD.reference_stats`)."""
    if isinstance(ref, _Reference):
        return ref
    if isinstance(ref, dict):
        mu = torch.as_tensor(np.asarray(ref["mu"])).to(torch.float64)
        sigma = torch.as_tensor(np.asarray(ref["sigma"])).to(torch.float64)
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise ValueError(f"reference statistics need mu (d,) and sigma (d, d), got {tuple(mu.shape)} and "
                             f"{tuple(sigma.shape)}")
    else:
        f = _features(ref, "reference features")
        mu, sigma = f.mean(0), torch.cov(f.T)
    evals, evecs = torch.linalg.eigh((sigma + sigma.T) / 2)
    root = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
    return _Reference(mu, root, float(sigma.diagonal().sum()))


def _fd(f: torch.Tensor, ref: _Reference, idx: torch.Tensor, *, chunk_elements: int = 2**22,
        triangles: bool | None = None) -> torch.Tensor:
    """FD of the resamples ``f[idx[b]]`` (idx (B, n), indices into the n rows of f) against ``ref``, all at once.

    A resample is a vector of counts w (w_k: how often row k was drawn), so its statistics are weighted sums of
    per-row terms computed once; with x = f - mean(f) and g = x Sigma_r^1/2:
        mu_b - mu_r   = w.x / n + mean(f) - mu_r
        tr Sigma_b    = (w.|x|^2 - n |w.x / n|^2) / (n - 1)
        M_b           = Sigma_r^1/2 Sigma_b Sigma_r^1/2
                      = (sum_k w_k g_k g_k^T - n gbar gbar^T) / (n - 1),    gbar = w.g / n
        tr (Sigma_b Sigma_r)^1/2 = sum_i sqrt(lambda_i(M_b))   (similar matrices)
    Every resample's sum_k w_k g_k g_k^T comes from one product of the counts with the rows' outer products (their
    upper triangles; ``triangles``, the default up to d = 256) or, for wide features, from a weighted Gram
    product per resample; then one batched symmetric eigensolve. Fewer samples than dimensions (n < d: a smoke run
    on Inception's 2048) take the n x n twin instead: M_b = Y^T Y / (n - 1) with Y_k = sqrt(w_k) (g_k - gbar), whose
    nonzero eigenvalues are those of Y Y^T / (n - 1). Chunks hold about ``chunk_elements`` numbers."""
    n, d = f.shape
    if ref.mu.shape != (d,):
        raise ValueError(f"generated features have {d} dimensions, the reference {len(ref.mu)}")
    if triangles is None:
        triangles = d <= 256
    if n < d and not triangles:
        with _single_thread(f.device):
            return torch.cat([_fd_chunk_few(f, ref, batch) for batch in
                              idx.to(f.device).split(max(1, chunk_elements // (n * d)))])
    with _single_thread(f.device):
        return torch.cat([_fd_chunk(f, ref, batch, triangles, chunk_elements) for batch in
                          idx.to(f.device).split(max(1, chunk_elements // (max(n, d * d) if triangles else n * d)))])


def _fd_chunk_few(f: torch.Tensor, ref: _Reference, batch: torch.Tensor) -> torch.Tensor:
    """`_fd_chunk` for n < d, through the n x n Gram matrix of each resample (see `_fd`)."""
    n, _ = f.shape
    mean = f.mean(0)
    x = f - mean
    g = x @ ref.root.to(f.device)
    w = torch.zeros(len(batch), n, dtype=f.dtype, device=f.device)
    w.scatter_add_(1, batch, torch.ones(batch.shape, dtype=f.dtype, device=f.device))
    mx = w @ x / n
    trace = (w @ x.pow(2).sum(1) - n * mx.pow(2).sum(1)) / (n - 1)
    y = w.sqrt()[:, :, None] * (g[None] - (w @ g / n)[:, None, :])          # (B, n, d)
    tr_sqrt = torch.linalg.eigvalsh(y @ y.transpose(1, 2) / (n - 1)).clamp_min(0).sqrt().sum(-1)
    return (mx + mean - ref.mu.to(f.device)).pow(2).sum(1) + trace + ref.trace - 2 * tr_sqrt


def _fd_chunk(f: torch.Tensor, ref: _Reference, batch: torch.Tensor, triangles: bool,
              chunk_elements: int) -> torch.Tensor:
    n, d = f.shape
    mean = f.mean(0)
    x = f - mean
    g = x @ ref.root.to(f.device)                                   # g_k = x_k Sigma_r^1/2
    w = torch.zeros(len(batch), n, dtype=f.dtype, device=f.device)
    w.scatter_add_(1, batch, torch.ones(batch.shape, dtype=f.dtype, device=f.device))
    mx = w @ x / n                                                  # mu_b - mean(f)
    trace = (w @ x.pow(2).sum(1) - n * mx.pow(2).sum(1)) / (n - 1)  # tr Sigma_b
    gbar = w @ g / n
    if triangles:
        i, j = torch.triu_indices(d, d, device=f.device)
        rows = torch.arange(n, device=f.device).split(max(1, chunk_elements // len(i)))
        wgg = sum(w[:, r] @ (g[r][:, i] * g[r][:, j]) for r in rows)   # sum_k w_k g_k g_k^T, upper triangle
        m = torch.zeros(len(batch), d, d, dtype=f.dtype, device=f.device)
        m[:, i, j] = (wgg - n * gbar[:, i] * gbar[:, j]) / (n - 1)
    else:
        m = ((g.T[None] * w[:, None, :]) @ g - n * gbar[:, :, None] * gbar[:, None, :]) / (n - 1)
    tr_sqrt = torch.linalg.eigvalsh(m, UPLO="U").clamp_min(0).sqrt().sum(-1)
    return (mx + mean - ref.mu.to(f.device)).pow(2).sum(1) + trace + ref.trace - 2 * tr_sqrt


def frechet_distance_features(f_gen, f_ref) -> float:
    """FD between generated features (n, d) and reference features (m, d) or statistics ``{"mu", "sigma"}``; the
    number torch-fidelity's ``fid_statistics_to_metric`` gives (to ~1e-8 relative)."""
    f = _features(f_gen, "generated features")
    return float(_fd(f, _reference(f_ref), torch.arange(len(f))[None])[0])


def fd_interval(f_gen, f_ref, *, n_boot: int = 1000, confidence: float = 0.95, method: str = "basic",
                generator: torch.Generator | None = None) -> Estimate:
    """FD with a bootstrap interval over the generated samples (the reference statistics fixed: the reference set
    is the yardstick; its own sampling noise is not in the interval).

    The plug-in FD is biased upwards at finite n, by about the noise in Sigma's eigenvalues (~ d / n), and a
    bootstrap replicate is biased once more: the ``percentile`` interval sits about two biases above the true FD.
    The default ``basic`` interval subtracts the bias to first order, and the value is then the bias-corrected FD
    2 FD - mean(FD*), with the plain FD (what every FD table reports, comparable only at equal n) kept as
    ``uncorrected``. On Gaussians with a closed-form FD the basic interval covers the true distance at close to its
    nominal rate; the percentile interval does not (tests/test_intervals.py). 1000 resamples of 1000 x 84
    features take a few seconds on two CPU cores."""
    _check(confidence, n_boot, method)
    f, ref = _features(f_gen, "generated features"), _reference(f_ref)
    value = float(_fd(f, ref, torch.arange(len(f))[None])[0])
    reps = _fd(f, ref, _resamples(len(f), n_boot, generator))
    return _estimate(value, reps, len(f), confidence=confidence, method=method, floor=0.0)


def _paired_fd(f_a, f_b, f_ref, n_boot, confidence, method, generator):
    _check(confidence, n_boot, method)
    a, b = _features(f_a, "features of the first setting"), _features(f_b, "features of the second setting")
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs the same samples (the same x_T) in both settings: got {len(a)} "
                         f"and {len(b)} feature rows")
    ref = _reference(f_ref)
    whole = torch.arange(len(a))[None]
    idx = _resamples(len(a), n_boot, generator)                 # the same indices for both: they share x_T
    return (float(_fd(a, ref, whole)[0]), float(_fd(b, ref, whole)[0]), _fd(a, ref, idx), _fd(b, ref, idx))


def paired_fd_difference_interval(f_a, f_b, f_ref, *, n_boot: int = 1000, confidence: float = 0.95,
                                  method: str = "basic", generator: torch.Generator | None = None) -> Estimate:
    """FD(a) - FD(b), with a paired bootstrap: row i of ``f_a`` and of ``f_b`` come from the same x_T (or LR image),
    and each resample takes the same rows of both. Below zero: setting a is closer to the reference."""
    fa, fb, ra, rb = _paired_fd(f_a, f_b, f_ref, n_boot, confidence, method, generator)
    return _estimate(fa - fb, ra - rb, len(torch.as_tensor(f_a)), confidence=confidence,
                     method=method, paired=True)


def paired_fd_ratio_interval(f_a, f_b, f_ref, *, n_boot: int = 1000, confidence: float = 0.95,
                             method: str = "basic", generator: torch.Generator | None = None) -> Estimate:
    """FD(a) / FD(b) with the paired bootstrap of `paired_fd_difference_interval`: for thresholds such as "FD at
    most 1.5x the plain run's" or "within 10% of DDPM 1000's"."""
    fa, fb, ra, rb = _paired_fd(f_a, f_b, f_ref, n_boot, confidence, method, generator)
    return _estimate(fa / fb, ra / rb, len(torch.as_tensor(f_a)), confidence=confidence, method=method, paired=True,
                     floor=0.0)


# ---- KID ---------------------------------------------------------------------------------------------------

def _mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 (Bińkowski et al. 2018, eq. 2; torch-fidelity's ``mmd2``) of batches x, y (b, m, d) with
    the kernel k(x, y) = (x.y / d + 1)^3: means over i != j of k(x_i, x_j) and k(y_i, y_j), less twice the mean
    over all i, j of k(x_i, y_j)."""
    m, d = x.shape[1], x.shape[2]

    def kernel(p, q):
        return (p @ q.mT / d + 1) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    off = lambda k: k.sum((1, 2)) - k.diagonal(dim1=1, dim2=2).sum(-1)   # noqa: E731  (sum over i != j)
    return (off(k_xx) + off(k_yy)) / (m * (m - 1)) - 2 * k_xy.sum((1, 2)) / (m * m)


def kid(f_gen, f_ref, *, subsets: int = 100, subset_size: int = 1000, seed: int = 2020) -> tuple[float, float]:
    """KID: the mean and standard deviation over ``subsets`` random subsets of ``subset_size`` samples of each set
    (drawn without replacement) of the unbiased MMD^2 with the kernel (x.y / d + 1)^3. The subsets are drawn as
    torch-fidelity draws them (``np.random.RandomState(seed)``, first set then second, per subset), so with the
    same ``seed`` (the default is `fastdiff.measure.metrics.fidelity`'s) this equals torch-fidelity's
    ``kid_features_to_metric``; the arithmetic here is float64. The std is the spread over subsets, not a
    confidence interval of the distance."""
    f1, f2 = _features(f_gen, "generated features"), _features(f_ref, "reference features")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    if not (isinstance(subset_size, int) and 2 <= subset_size <= min(len(f1), len(f2))):
        raise ValueError(f"subset_size must be an int in [2, {min(len(f1), len(f2))}] (the smaller set), "
                         f"got {subset_size!r}")
    if not (isinstance(subsets, int) and subsets >= 1):
        raise ValueError(f"subsets must be an int >= 1, got {subsets!r}")
    rng = np.random.RandomState(seed)
    picks = [(rng.choice(len(f1), subset_size, replace=False), rng.choice(len(f2), subset_size, replace=False))
             for _ in range(subsets)]
    i1 = torch.as_tensor(np.stack([p[0] for p in picks]))
    i2 = torch.as_tensor(np.stack([p[1] for p in picks]))
    per_batch = max(1, 2**23 // (subset_size * subset_size))    # three (b, m, m) kernels in float64
    mmd = torch.cat([_mmd2_unbiased(f1[a], f2[b]) for a, b in zip(i1.split(per_batch), i2.split(per_batch))])
    return float(mmd.mean()), float(mmd.std(correction=0))      # np.std: population std, as torch-fidelity


# ---- means, paired differences and proportions -----------------------------------------------------------

def mean_interval(values, *, n_boot: int = 2000, confidence: float = 0.95, method: str = "percentile",
                  generator: torch.Generator | None = None) -> Estimate:
    """The mean of a per-image metric (PSNR, SSIM, LR-PSNR, seam score ...) with a bootstrap interval."""
    _check(confidence, n_boot, method)
    v = _values(values, "values")
    value = float(v.mean())
    with _single_thread(v.device):
        reps = v[_resamples(len(v), n_boot, generator).to(v.device)].mean(1)
    return _estimate(value, reps, len(v), confidence=confidence, method=method)


def paired_difference_interval(a, b, *, n_boot: int = 2000, confidence: float = 0.95, method: str = "percentile",
                               generator: torch.Generator | None = None) -> Estimate:
    """mean(a - b) with a paired bootstrap: a[i] and b[i] are the same image's metric (same x_T, same LR input)
    in two settings, and each resample keeps the pairs together."""
    a, b = _values(a, "first values"), _values(b, "second values")
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs one value per image in both settings: got {len(a)} and {len(b)}")
    _check(confidence, n_boot, method)
    diff = a - b
    with _single_thread(diff.device):
        reps = diff[_resamples(len(diff), n_boot, generator).to(diff.device)].mean(1)
    return _estimate(float(diff.mean()), reps, len(diff), confidence=confidence, method=method, paired=True)


def proportion_interval(k: int, n: int, *, confidence: float = 0.95) -> Estimate:
    """k/n (an accuracy, a fool rate) with its Wilson score interval (`wilson_interval`)."""
    if not (0 <= k <= n):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low, high = wilson_interval(k, n, confidence)
    return Estimate(k / n if n else math.nan, low, high, n, f"Wilson {100 * confidence:g}%")

