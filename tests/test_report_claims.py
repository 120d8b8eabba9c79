"""Notebook 07's own claims (DeepCache, DPM-Solver++, Heun on Karras sigmas): the papers' numbers reproduce, a
partly keeps the quality bound, and an interval across a bound is inconclusive."""
import pytest

from fastdiff import papers
from fastdiff.measure.intervals import Estimate
from fastdiff.studies import report_claims
from fastdiff.verdicts import judge


def verdict(key, m):
    return next(r for r in judge(report_claims.CLAIMS, m) if r["key"] == key)["verdict"]


def test_deepcaches_own_numbers_reproduce_and_a_faster_run_that_ruins_quality_is_never_partly():
    speedup, fid, ddim = (papers.value("07_report", v, m) for v, m in (("DeepCache N=5, DDIM 100", "speed-up"),
                                                                        ("DeepCache N=5, DDIM 100", "FID"),
                                                                        ("DDIM 100", "FID")))
    paper = {"deepcache speed-up": speedup, "deepcache FD": fid, "ddim100 FD": ddim, "deepcache FD ratio": fid / ddim}
    assert verdict("deepcache", paper) == "reproduced"
    assert verdict("deepcache", {**paper, "deepcache speed-up": 1.3}) == "partly"
    assert verdict("deepcache", {**paper, "deepcache speed-up": 1.3, "deepcache FD ratio": 3.0}) == "contradicted"
    assert verdict("deepcache", {**paper, "deepcache FD ratio": Estimate(1.4, 1.2, 1.7, 1000, "b")}) == "inconclusive"


@pytest.mark.parametrize("fd, verdict_expected", [(3.5, "reproduced"), (4.0, "partly"), (5.0, "contradicted"),
                                                  (Estimate(3.7, 3.4, 4.0, 1000, "b"), "inconclusive")])
def test_a_solver_within_10_percent_of_ddpm_1000_reproduces(fd, verdict_expected):
    m = {"reference FD": 3.41, "dpm20 FD": fd, "dpm20 speed-up": 50.0}
    assert verdict("dpm-solver", m) == verdict_expected
