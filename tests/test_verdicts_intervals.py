"""Interval-aware verdicts: an interval wholly on the good side of a threshold reproduces a claim, wholly on the bad
side contradicts it, across it is "inconclusive"; the paper's own numbers (no interval) still reproduce its claims;
"by construction" is a verdict of its own, never counted as a reproduction."""
import itertools

import pytest
import torch

from fastdiff import papers, verdicts
from fastdiff.measure.intervals import Estimate, paired_fd_ratio_interval
from fastdiff.results import SCHEMA, results_problems
from fastdiff.studies.report import verdict_counts
from fastdiff.verdicts import (VERDICTS, Claim, all_of, any_of, compare, grade, grade_interval, holds, judge, need)


def estimate(value, low, high, n=1000):
    return Estimate(value, low, high, n, "bias-corrected bootstrap paired 95%")


# "DeepCache: >= 1.5x faster with FD at most 1.5x the plain run's (the paper's FID rose 1.37x); partly: >= 1.2x or
# the FD bound met" - a rule as the studies write them, with the FD ratio an interval. The paper's numbers: DeepCache's
# CIFAR-10 row (notebook 07's claim, `fastdiff.papers`).
PAPER_SPEEDUP = papers.value("07_report", "DeepCache N=5, DDIM 100", "speed-up")
PAPER_FIDS = (papers.value("07_report", "DDIM 100", "FID"), papers.value("07_report", "DeepCache N=5, DDIM 100", "FID"))


def deepcache(m):
    speed, ratio = need(m, "speed-up", "FD ratio")
    fast, fd_ok = speed >= 1.5, holds(ratio, 1.5, better="lower")
    verdict = grade_interval(all_of(fast, fd_ok), any_of(speed >= 1.2, fd_ok))
    return verdict, f"{speed:.2f}x, FD ratio {ratio}", "FD ratio interval across 1.5x" if fd_ok is None else ""


CLAIMS = [Claim("deepcache", "DeepCache is faster at little cost in FD",
                f"{PAPER_SPEEDUP:g}x, FID {PAPER_FIDS[0]:.2f} -> {PAPER_FIDS[1]:.2f} "
                f"({PAPER_FIDS[1] / PAPER_FIDS[0]:.2f}x)",
                "speed-up; paired FD ratio", "reproduced: >= 1.5x with FD <= 1.5x the plain run's", deepcache)]


def verdict_of(measured):
    return judge(CLAIMS, measured)[0]["verdict"]


def test_the_papers_own_numbers_reproduce_the_claim():
    ratio = PAPER_FIDS[1] / PAPER_FIDS[0]
    assert verdict_of({"speed-up": PAPER_SPEEDUP, "FD ratio": ratio}) == "reproduced"          # plain numbers
    assert verdict_of({"speed-up": PAPER_SPEEDUP, "FD ratio": estimate(ratio, ratio, ratio)}) == "reproduced"
    assert verdict_of({"speed-up": PAPER_SPEEDUP, "FD ratio": estimate(ratio, 1.3, 1.6)}) == "inconclusive"


def test_an_interval_across_the_threshold_is_inconclusive_and_one_beyond_it_contradicts():
    assert verdict_of({"speed-up": 2.3, "FD ratio": estimate(1.45, 1.30, 1.62)}) == "inconclusive"
    assert verdict_of({"speed-up": 2.3, "FD ratio": estimate(1.41, 1.30, 1.49)}) == "reproduced"
    assert verdict_of({"speed-up": 2.3, "FD ratio": estimate(1.80, 1.62, 1.95)}) == "partly"      # fast, worse FD
    assert verdict_of({"speed-up": 1.1, "FD ratio": estimate(1.80, 1.62, 1.95)}) == "contradicted"
    assert verdict_of({"speed-up": 1.1, "FD ratio": estimate(1.45, 1.30, 1.62)}) == "inconclusive"  # partly or not
    assert verdict_of({"speed-up": 1.1, "FD ratio": estimate(1.20, 1.10, 1.30)}) == "partly"


def test_a_measured_paired_ratio_feeds_the_rule():
    g = torch.Generator().manual_seed(0)
    plain = torch.randn(400, 12, generator=g, dtype=torch.float64).relu()
    ref = torch.randn(500, 12, generator=g, dtype=torch.float64).relu() + 0.05
    cached = plain + 0.02 * torch.randn(400, 12, generator=g, dtype=torch.float64)    # the same x_T, a little off
    ratio = paired_fd_ratio_interval(cached, plain, ref, n_boot=200)
    row = judge(CLAIMS, {"speed-up": 2.0, "FD ratio": ratio})[0]
    assert row["verdict"] == "reproduced" and "[" in row["ours"] and "n=400" in row["ours"]


def test_compare_and_holds_on_both_sides():
    assert compare(estimate(2, 1, 3), 4) == "reproduced"
    assert compare(estimate(5, 4.5, 6), 4) == "contradicted"
    assert compare(estimate(4, 3, 5), 4) == "inconclusive"
    assert compare(estimate(4, 3, 4), 4) == "reproduced"                       # a threshold is inclusive
    assert compare(estimate(30, 29, 31), 28, better="higher") == "reproduced"  # e.g. PSNR at least 28 dB
    assert compare(estimate(27, 26, 27.5), 28, better="higher") == "contradicted"
    assert compare(estimate(28, 27, 29), 28, better="higher") == "inconclusive"
    assert compare(3.0, 4) == "reproduced" and compare(5, 4) == "contradicted"  # a number: no interval
    assert holds(estimate(4, 3, 5), 4) is None
    with pytest.raises(ValueError, match="better"):
        holds(1.0, 2.0, better="smaller")
    with pytest.raises(TypeError):
        holds("1.3x", 2.0)
    with pytest.raises(ValueError, match="NaN"):
        compare(estimate(float("nan"), float("nan"), float("nan")), 1.0)


def test_three_valued_logic_and_grade():
    values = (True, False, None)
    for a, b in itertools.product(values, values):
        assert all_of(a, b) == (False if False in (a, b) else None if None in (a, b) else True)
        assert any_of(a, b) == (True if True in (a, b) else None if None in (a, b) else False)
    for reproduced, partly in itertools.product((True, False), (True, False)):   # decided: the same as grade
        assert grade_interval(reproduced, partly) == grade(reproduced, partly)
    assert grade_interval(None, True) == "inconclusive"
    assert grade_interval(False, None) == "inconclusive"


def test_new_verdicts_are_valid_everywhere_verdicts_are_read():
    assert {"inconclusive", "by construction"} <= set(VERDICTS)
    assert VERDICTS[:3] == ("reproduced", "partly", "contradicted")
    rows = judge([Claim("same", "skipping no level is the full U-Net", "-", "max |diff|", "0",
                        lambda m: ("by construction", "0.0 max |diff|", "an equivalence the code guarantees"))], {})
    rows += judge(CLAIMS, {"speed-up": 2.3, "FD ratio": estimate(1.45, 1.30, 1.62)})
    assert [r["verdict"] for r in rows] == ["by construction", "inconclusive"]
    assert verdicts.summary(rows) == "1 inconclusive, 1 by construction."
    assert results_problems({"schema": SCHEMA, "study": "x", "context": {}, "rows": [], "verdicts": rows}) == []
    counts = verdict_counts([{**r, "study": "x"} for r in rows])["x"]
    assert counts["reproduced"] == 0 and counts["by construction"] == 1 and counts["inconclusive"] == 1


def test_an_estimate_with_a_nan_part_is_not_measured():
    row = judge(CLAIMS, {"speed-up": 2.0, "FD ratio": estimate(float("nan"), 1.0, 2.0)})[0]
    assert row["verdict"] == "not testable here" and row["why"] == "FD ratio was not measured in this run"
