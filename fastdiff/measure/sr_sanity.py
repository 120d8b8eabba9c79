"""SR sanity bars (issue 27): what every super-resolution model of studies 1 and 4 must pass before a notebook
judges the paper with it. A model that fails them is reported as failed, and every verdict that reads its numbers
is "not testable here" (`FAILED`): its numbers describe a broken model, not the paper's method.

The bars, each against bicubic upsampling of the same LR images (bicubic is what a residual model that predicts
nothing returns):

1. LR consistency: the samples, downsampled with the degradation that made the LR input, match it: mean LR-PSNR
   (SRFlow) at least bicubic's minus ``lr_psnr_margin_db`` (3 dB). An SR model may invent detail, not change
   what the LR image fixes.
2. PSNR: the mean of ``samples`` (8) samples per LR image, an estimate of the posterior mean E[HR | LR] (which
   minimises the expected squared error), is at least as close to HR as bicubic: mean PSNR >= bicubic's.
3. No colour cast: in every sample, the mean colour of every patch (each channel's mean over the patch, on the
   models' [-1, 1] scale) is within ``colour_tol`` (0.03, about 4 of 255 8-bit levels) of the HR patch's; bicubic
   stays within 0.002 on the photos' held-out patches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .metrics import lr_psnr, psnr
from .sr_eval import bicubic

FAILED = "model failed the SR sanity checks"


@dataclass(frozen=True)
class SanityBars:
    lr_psnr_margin_db: float = 3.0   # bar 1: mean LR-PSNR >= bicubic's - this
    samples: int = 8                 # bar 2: PSNR of the mean of this many samples >= bicubic's
    colour_tol: float = 0.03         # bar 3: |patch mean colour - HR's| <= this, every channel, patch and sample


BARS = SanityBars()


def colour_shift(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Per image, the largest |mean of a channel of the SR image - that of the HR image| over the channels:
    (..., n, C, H, W) and (n, C, H, W) -> (..., n)."""
    return (sr.float().mean((-2, -1)) - hr.float().mean((-2, -1))).abs().amax(-1)


def sanity_check(model: str, samples: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor, *,
                 bars: SanityBars = BARS) -> dict:
    """One model's record: ``samples`` (k, n, C, H, W) are k >= 1 SR samples of each of the n LR images ``lr``
    (all of them are used: bar 2 averages them, bars 1 and 3 look at each). Returns {"model", "passed", the numbers
    of the three bars beside bicubic's, "n", "samples", "reason"} (reason: one line, the failed bars first)."""
    if samples.ndim != 5 or samples.shape[1:] != hr.shape:
        raise ValueError(f"samples must be (k, n, C, H, W) with (n, C, H, W) = {tuple(hr.shape)} (the HR images), "
                         f"got {tuple(samples.shape)}")
    k, scale = samples.shape[0], hr.shape[-1] // lr.shape[-1]
    base = bicubic(lr, scale)
    b_lr, b_psnr = lr_psnr(base, lr).mean().item(), psnr(base, hr).mean().item()
    s_lr = torch.stack([lr_psnr(s, lr) for s in samples]).mean().item()
    s_psnr = psnr(samples.float().mean(0).clamp(-1, 1), hr).mean().item()
    shifts = colour_shift(samples, hr)                              # (k, n)
    worst = shifts.max().item()
    bad = [("LR-PSNR", s_lr >= b_lr - bars.lr_psnr_margin_db,
            f"LR-PSNR {s_lr:.2f} dB vs bicubic's {b_lr:.2f} (bar: within {bars.lr_psnr_margin_db:g} dB)"),
           ("PSNR", s_psnr >= b_psnr, f"PSNR of the mean of {k} samples {s_psnr:.2f} dB vs bicubic's {b_psnr:.2f}"),
           ("colour", worst <= bars.colour_tol,
            f"largest patch colour shift {worst:.3f} (bar: {bars.colour_tol:g}; "
            f"{int((shifts > bars.colour_tol).any(0).sum())} of {shifts.shape[1]} patches over it)")]
    failed = [text for _, ok, text in bad if not ok]
    reason = ("fails: " + "; ".join(failed)) if failed else "passes: " + "; ".join(text for _, _, text in bad)
    return {"model": model, "passed": not failed, "LR-PSNR": s_lr, "bicubic LR-PSNR": b_lr,
            "PSNR of the sample mean": s_psnr, "bicubic PSNR": b_psnr, "largest colour shift": worst,
            "n": hr.shape[0], "samples": k, "reason": reason}


def check_models(samplers: dict[str, Callable[[int], torch.Tensor]], hr: torch.Tensor, lr: torch.Tensor, *,
                 bars: SanityBars = BARS) -> list[dict]:
    """Every model's record (`sanity_check`): ``samplers`` maps a model's name to ``sample(k) -> SR images of lr``,
    its k-th independent sample (k = 0 .. bars.samples - 1)."""
    return [sanity_check(name, torch.stack([sample(k) for k in range(bars.samples)]), hr, lr, bars=bars)
            for name, sample in samplers.items()]


def failed_models(records: list[dict]) -> dict[str, str]:
    """{model: reason} of the models that failed."""
    return {r["model"]: r["reason"] for r in records if not r["passed"]}


def not_testable(claim_models: dict[str, tuple[str, ...]], records: list[dict]) -> dict[str, str]:
    """For `fastdiff.verdicts.judge`'s ``not_testable``: every claim (key -> the models its rule reads) that reads a
    model that failed, with why ("model failed the SR sanity checks: ..."). Models without a record are left to
    the rule (a missing number is not testable by itself)."""
    failed = failed_models(records)
    out = {}
    for key, models in claim_models.items():
        names = [m for m in models if m in failed]
        if names:
            out[key] = f"{FAILED}: " + ", ".join(names)
    return out


def record_line(record: dict) -> str:
    """The record as one line for a notebook: "fixed s8: PASS (passes: ...)"."""
    return f"{record['model']}: {'PASS' if record['passed'] else 'FAIL'} ({record['reason']})"
