"""The papers' numbers as data in one shape (`fastdiff.papers`): every number is complete and unique, lookups fail
with a message naming what is there, and the studies' constants and claims read them instead of typing them."""
import pytest

from fastdiff import papers
from fastdiff.studies import diffusion_basics, fool_rate_game, vgg_conditioned_sr


def test_every_number_has_the_same_fields_and_no_number_is_given_twice():
    keys = [(p.study, p.table, p.variant, p.metric) for p in papers.NUMBERS]
    assert len(keys) == len(set(keys))
    for p in papers.NUMBERS:
        assert all(isinstance(getattr(p, f), str) and getattr(p, f) for f in ("study", "table", "variant", "metric",
                                                                               "source"))
        assert isinstance(p.value, float) and p.value > 0 and isinstance(p.unit, str)


def test_lookups_name_what_is_there():
    assert papers.value("00_diffusion_basics", "DDIM 50, eta 0", "FID") == 4.67
    with pytest.raises(KeyError, match="DDIM 50, eta 0 / FID"):
        papers.value("00_diffusion_basics", "DDIM 51, eta 0", "FID")
    with pytest.raises(ValueError, match="unknown field"):
        papers.numbers("00_diffusion_basics", colour="red")
    assert papers.cite("00_diffusion_basics", "DDIM 20, eta 0", "DDIM 20, eta 1", metric="FID").startswith(
        "FID 6.84 (DDIM 20, eta 0) vs 18.36 (DDIM 20, eta 1); DDIM paper")
    assert list(papers.table("01_vgg_conditioned_sr").columns) == ["table", "variant", "metric", "value", "unit",
                                                                   "source"]


def test_the_studies_read_their_paper_numbers_from_the_data():
    assert vgg_conditioned_sr.PAPER_PARAMETERS["small"] == 9e6
    assert vgg_conditioned_sr.PAPER_SPEEDUP_SMALL_VS_ORIGINAL == papers.value("01_vgg_conditioned_sr",
                                                                              "small vs original", "speed-up")
    assert fool_rate_game.PAPER_FOOL_RATES["original (66M)"] == pytest.approx(0.40)
    claim = {c.key: c for c in diffusion_basics.CLAIMS}
    assert "4.67 (DDIM 50, eta 0)" in claim["ddim50-quality"].paper and "3.17 (DDPM 1000)" in claim["ddim50-quality"].paper
    assert "41.07 (DDIM 10, eta 1)" in claim["eta-10"].paper
