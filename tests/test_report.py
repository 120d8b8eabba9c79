"""The cross-study report reads the committed results: every study notebook's verdicts in one table, the Pareto
front and the headline of a speed/quality map, and `fastdiff report` writing the claims table."""
import json
import shutil
from pathlib import Path

import pytest

from fastdiff import verdicts
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
    assert sum(counts["05_performance"].values()) == 6      # its seventh row, "peer", is this project's own target
    assert "peer" in {r["key"] for r in rows if r["study"] == "05_performance"}


def test_pareto_front_and_headline():
    points = [{"label": "ddpm-1000", "ms": 100.0, "FD": 5.0}, {"label": "ddim-50", "ms": 5.0, "FD": 5.4},
              {"label": "ddim-10", "ms": 1.0, "FD": 9.0}, {"label": "worse", "ms": 6.0, "FD": 6.0},
              {"label": "no FD", "ms": 0.5, "FD": None}]
    assert [p["label"] for p in pareto_front(points, x="ms", y="FD")] == ["ddim-10", "ddim-50", "ddpm-1000"]
    best = headline(points, points[0], x="ms", y="FD", tolerance=0.10)
    assert best["label"] == "ddim-50" and best["speed-up"] == pytest.approx(20.0)
    assert headline(points, points[0], x="ms", y="FD", tolerance=0.0) is None      # only the reference qualifies
    slower = [{"label": "slow", "ms": 200.0, "FD": 4.0}]
    assert headline(slower, points[0], x="ms", y="FD") is None                   # better FD but no speed-up
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


def test_fastdiff_report_draws_the_maps_from_a_results_file(tmp_path, capsys):
    root = tmp_path / "results"
    (root / "cpu").mkdir(parents=True)
    shutil.copy(RESULTS / "cpu" / "05_performance-quick.json", root / "cpu")
    rows = [{"label": label, "family": family, "ms per image": ms, "FD (LeNet-MNIST)": fd}
            for label, family, ms, fd in (("DDPM 1000", "DDPM", 100.0, 5.0), ("DDIM 50", "DDIM", 5.0, 5.4),
                                          ("DDIM 10", "DDIM", 1.0, 9.0))]
    part = {"rows": rows, "reference": "DDPM 1000", "front": ["DDIM 10", "DDIM 50", "DDPM 1000"],
            "headline": {**rows[1], "speed-up": 20.0, "limit": 5.5}, "floor": 3.0, "n": 8, "batch": 4,
            "device": "CPU: test", "data": "digits", "utc": "2026-12-02T00:00:00+00:00"}
    sr = {"digits": {"n": 2, "batch": 2, "device": "CPU: test", "data": "digits 8 -> 32", "rows": [
        {"model": "bicubic (no model)", "steps": None, "ms per image": 0.1, "PSNR": 15.0, "SSIM": 0.4, "LR-PSNR": 28.0},
        {"model": "small", "steps": 10, "ms per image": 50.0, "PSNR": 23.0, "SSIM": 0.9, "LR-PSNR": 40.0}]}}
    (root / "cpu" / "report_map.json").write_text(json.dumps({"benchmark": "report_map", "digits": part, "sr": sr}))
    assert main(["report", "--results", str(root), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "DDIM 50, FD 5.40" in printed and "20x faster" in printed
    for name in ("claims.md", "map.png", "map.csv", "sr_map.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert (tmp_path / "out" / "map.csv").read_text().startswith("label,family")


# ----------------------------------------------------------------------------------------- damaged results files

def study_folder(tmp_path) -> Path:
    """A results folder holding one committed study file (4 verdicts)."""
    root = tmp_path / "results"
    (root / "cpu").mkdir(parents=True)
    shutil.copy(RESULTS / "cpu" / "00_diffusion_basics-quick.json", root / "cpu")
    return root


def report(root, capsys, *extra) -> tuple[int, str, str]:
    code = main(["report", "--results", str(root), "--out", str(root.parent / "out"), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_committed_report_is_what_fastdiff_report_writes_from_the_committed_results(tmp_path):
    from fastdiff.studies.report import write_claims
    for path in write_claims(gather_verdicts(RESULTS), tmp_path):
        assert path.read_text() == (RESULTS / "report" / path.name).read_text(), path.name


@pytest.mark.parametrize("copy", ["00_diffusion_basics-quick (copy).json", "00_diffusion_basics-quick.bak.json"])
def test_a_backup_copy_stops_the_report_or_is_counted_once_with_a_warning(tmp_path, capsys, copy):
    root = study_folder(tmp_path)
    shutil.copy(root / "cpu" / "00_diffusion_basics-quick.json", root / "cpu" / copy)
    code, out, err = report(root, capsys)
    assert code == 2 and not out
    assert f"cpu/{copy} and " in err and "00_diffusion_basics-quick.json are both study '00_diffusion_basics'" in err
    assert "--skip-damaged" in err and len(err.splitlines()) == 1
    code, out, err = report(root, capsys, "--skip-damaged")
    once = verdicts.summary(json.loads((root / "cpu" / "00_diffusion_basics-quick.json").read_text())["verdicts"])
    assert code == 0 and once.split(".")[0] in out                      # its 5 claims counted once, not 10
    assert f"fastdiff report: warning: skipped 1 duplicate results file: {root}/cpu/{copy}" in err
    assert (tmp_path / "out" / "claims.csv").read_text().count("\n00_diffusion_basics,") == 5


@pytest.mark.parametrize("broken, message", [
    (lambda text: text[:len(text) // 3], "is truncated (it ends before its last bracket"),
    (lambda text: text.replace('"fastdiff.results/1"', '"fastdiff.results/3"').replace('"fastdiff.results/2"',
                                                                                        '"fastdiff.results/3"'),
     "was written by a newer fastdiff (schema fastdiff.results/3"),
    (lambda text: text.replace('"claim":', '"claim_text":', 1),
     "verdicts[0] (claim 'half'): missing field 'claim'"),
    (lambda text: text.replace('"value": ', '"value": NaN, "x": ', 1), "rows[0].value is nan"),
    (lambda text: text.replace('"verdict": "reproduced"', '"verdict": 1', 1), ".verdict is int '1', not text")])
def test_a_damaged_results_file_stops_the_report_unless_asked_to_skip_it(tmp_path, capsys, broken, message):
    root = study_folder(tmp_path)
    good = root / "cpu" / "00_diffusion_basics-quick.json"
    shutil.copy(RESULTS / "cpu" / "05_performance-quick.json", root / "cpu")
    damaged = root / "cpu" / "05_performance-quick.json"
    damaged.write_text(broken(damaged.read_text()))
    code, out, err = report(root, capsys)
    assert code == 2 and err.startswith(f"fastdiff report: {damaged}") and message in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    code, out, err = report(root, capsys, "--skip-damaged")
    assert code == 0 and "00_diffusion_basics" in out and "05_performance" not in out
    assert f"warning: skipped 1 damaged results file: {damaged}" in err and message in err
    assert good.exists()


def test_an_unknown_json_file_among_the_results_is_named(tmp_path, capsys):
    root = study_folder(tmp_path)
    (root / "cpu" / "notes.json").write_text(json.dumps({"todo": "rerun 02"}))
    code, _, err = report(root, capsys)
    assert code == 2 and f"{root}/cpu/notes.json is not a fastdiff results file" in err and "move it out" in err


def test_a_damaged_map_file_stops_the_report_with_the_field_named(tmp_path, capsys):
    root = study_folder(tmp_path)
    part = json.loads((RESULTS / "cpu" / "report_map.json").read_text())
    part["digits"]["reference"] = "DDPM 9999"
    (root / "cpu" / "report_map.json").write_text(json.dumps(part))
    code, _, err = report(root, capsys)
    assert code == 2 and f"{root}/cpu/report_map.json: digits.reference 'DDPM 9999' is not the label" in err
    del part["sr"]["digits"]["rows"][0]["model"]
    part["digits"]["reference"] = "DDPM 1000"
    (root / "cpu" / "report_map.json").write_text(json.dumps(part))
    code, _, err = report(root, capsys)
    assert code == 2 and "sr.digits.rows[0]: missing field 'model'" in err and "benchmarks/report_map.py" in err


def test_the_vs_diffusers_result_reads_as_a_line_and_a_table(tmp_path):
    from fastdiff.studies import report
    row = lambda label, lib, ms: {"label": label, "library": lib, "FD [95%]": "2.0 [1.0, 3.0]",  # noqa: E731
                                  "ms per image": ms, "IQR (ms)": 0.1, "time / fastdiff best": ms / 4.0}
    data = {"benchmark": "vs_diffusers", "environment": {"device": "CPU: X (2 threads)", "utc": "2026-12-06T09:00"},
            "batch": 50, "rounds": 5, "reference": {"label": "DDPM 1000", "limit": 2.3, "FD [95%]": "1.4 [0.1, 2.3]"},
            "diffusers best": row("diffusers DEIS 15", "diffusers", 8.0), "fastdiff best": row("fd", "fastdiff", 4.0),
            "rows": [row("diffusers DEIS 15", "diffusers", 8.0), row("fd", "fastdiff", 4.0)],
            "speed-up": {"ratio": 2.0, "ratio range (IQRs)": [1.9, 2.1]}, "target": "2x", "target met": True}
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "vs_diffusers.json").write_text(json.dumps(data))
    line, table = report.vs_diffusers(tmp_path)
    assert line.startswith("CPU: X (2 threads), 2026-12-06") and "2.00x as fast [1.90, 2.10" in line \
        and line.endswith("is met")
    assert list(table.index) == ["diffusers DEIS 15", "fd"] and table.loc["fd", "time / fastdiff best"] == 1.0
    # no diffusers setting at equal quality: said, not a KeyError
    data.update({"diffusers best": None, "why": "no scheduler reaches FD <= 2.3", "fastdiff within limit": False})
    del data["speed-up"], data["target met"]
    (tmp_path / "cpu" / "vs_diffusers.json").write_text(json.dumps(data))
    line, _ = report.vs_diffusers(tmp_path)
    assert "above the limit" in line and line.endswith("diffusers: no setting at equal quality (no scheduler "
                                                       "reaches FD <= 2.3)")
