"""Verdicts are computed by the claims' rules from measured numbers only; a missing number is "not testable here"
with the reason, a contradiction is said plainly, and every study's claims are complete."""
import pytest

from fastdiff import verdicts
from fastdiff.studies import (adaptive_layer_skipping_claims, continuous_unet, diffusion_basics, performance_claims,
                              patch_parallel_sr, vgg_sr_evaluation)
from fastdiff.verdicts import Claim, judge, need


def rule(m):
    x = need(m, "x")
    return ("reproduced" if x > 1 else "contradicted"), f"x = {x}", "because"


CLAIMS = [Claim("a", "x exceeds one", "x = 2", "x", "x > 1", rule)]


def test_verdicts_follow_the_rule_and_say_why_a_claim_is_not_testable():
    assert judge(CLAIMS, {"x": 3})[0]["verdict"] == "reproduced"
    row = judge(CLAIMS, {"x": 0.5})[0]
    assert row["verdict"] == "contradicted" and row["ours"] == "x = 0.5"
    missing = judge(CLAIMS, {})[0]
    assert missing["verdict"] == "not testable here" and missing["why"] == "x was not measured in this run"
    assert judge(CLAIMS, {"x": float("nan")})[0]["verdict"] == "not testable here"
    told = judge(CLAIMS, {"x": 3}, not_testable={"a": "no GPU"})[0]
    assert told["verdict"] == "not testable here" and told["why"] == "no GPU"
    bad = [Claim("b", "c", "p", "m", "t", lambda m: ("maybe", "", ""))]
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        judge(bad, {})
    assert verdicts.summary(judge(CLAIMS, {"x": 0})) == "1 contradicted. Contradicted: a."
    table = verdicts.claims_table(CLAIMS)
    assert list(table.columns) == ["claim", "paper", "we measure", "reproduced if"]


@pytest.mark.parametrize("study", [diffusion_basics, adaptive_layer_skipping_claims, vgg_sr_evaluation, continuous_unet,
                                   patch_parallel_sr, performance_claims])
def test_every_study_states_its_claims_fully_and_an_empty_run_tests_none(study):
    keys = [c.key for c in study.CLAIMS]
    assert len(keys) == len(set(keys)) >= 4
    for c in study.CLAIMS:
        assert c.claim and c.paper and c.measure and c.threshold
    rows = judge(study.CLAIMS, {})
    assert {r["verdict"] for r in rows} == {"not testable here"}
