"""The cross-study report reads the committed results: every study notebook's verdicts in one table, the Pareto
front and the headline of a speed/quality map, and `fastdiff report` writing the claims table."""
import json
from pathlib import Path

import pytest

from fastdiff.cli import main
from fastdiff.studies.report import gather_verdicts, headline, pareto_front, verdict_counts

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_the_committed_results_hold_a_verdict_for_every_studys_claims():
    rows = gather_verdicts(RESULTS)
    studies = {r["study"] for r in rows}
    assert {"00_diffusion_basics", "02_adaptive_layer_skipping", "03_continuous_unet", "04_swindiffuser",
            "05_performance"} <= studies
    assert all(r["device"] and r["claim"] and r["verdict"] for r in rows)
    counts = verdict_counts(rows)
    assert sum(counts["05_performance"].values()) == 6


def test_pareto_front_and_headline():
    points = [{"label": "ddpm-1000", "ms": 100.0, "FD": 5.0}, {"label": "ddim-50", "ms": 5.0, "FD": 5.4},
              {"label": "ddim-10", "ms": 1.0, "FD": 9.0}, {"label": "worse", "ms": 6.0, "FD": 6.0},
              {"label": "no FD", "ms": 0.5, "FD": None}]
    assert [p["label"] for p in pareto_front(points, x="ms", y="FD")] == ["ddim-10", "ddim-50", "ddpm-1000"]
    best = headline(points, points[0], x="ms", y="FD", tolerance=0.10)
    assert best["label"] == "ddim-50" and best["speed-up"] == pytest.approx(20.0)
    assert headline(points, points[0], x="ms", y="FD", tolerance=0.0)["label"] == "ddpm-1000"
    assert headline(points[1:], {"ms": 1.0, "FD": 1.0}, x="ms", y="FD") is None


def test_fastdiff_report_writes_the_claims_table(tmp_path, capsys):
    assert main(["report", "--results", str(RESULTS), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "claims.md").read_text()
    assert "05_performance" in md and "**contradicted**" in md
    assert (tmp_path / "claims.csv").read_text().startswith("study,key,claim")
    bad = tmp_path / "bad" / "cpu"
    bad.mkdir(parents=True)
    (bad / "x.json").write_text(json.dumps({"schema": "fastdiff.results/1", "study": "x", "context": {}, "rows": [],
                                            "verdicts": [{"key": "a", "verdict": "maybe"}]}))
    assert main(["report", "--results", str(tmp_path / "bad")]) == 2
    assert "'maybe'" in capsys.readouterr().err
    assert main(["report", "--results", str(tmp_path / "missing")]) == 2
