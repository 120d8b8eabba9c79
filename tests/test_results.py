"""One results schema: one name per metric with its unit, rows that carry their labels, files without absolute
paths, and one reader for all of results/."""
import json

import pytest

from fastdiff.results import METRICS, SCHEMA, Results, Row, read_all, read_results
from fastdiff.utils import portable, save_results


def test_a_metric_has_one_name_and_one_unit():
    assert Row("s", "m", "v", "PSNR", 31.0).unit == "dB"
    with pytest.raises(ValueError, match="unknown metric 'FID'"):
        Row("s", "m", "v", "FID", 3.0)                  # "FID (Inception)" or "FD (LeNet-MNIST)", never bare "FID"
    with pytest.raises(ValueError, match="measured in 'ms'"):
        Row("s", "m", "v", "time per image", 3.0, unit="s")
    assert Row("s", "m", "v", "SSIM", float("nan")).value is None
    assert "FD (LeNet-MNIST)" in METRICS and "FID (Inception)" in METRICS


def test_results_write_rows_with_shared_context_and_read_back(tmp_path):
    res = Results("99_test", device="CPU: x", dtype="fp32", dataset="digits", weights="zoo: basics/x", profile="quick")
    res.add("DDIM", "DDIM 10", "FD (LeNet-MNIST)", 12.5, n=500, steps=10, eta=0.0)
    res.add_table([{"model": "a", "PSNR": 20.0, "SSIM": 0.5}, {"model": "b", "PSNR": 21.0}], method="SR",
                  variant="model", metrics={"PSNR": "PSNR", "SSIM": "SSIM"}, n=8)
    path = res.save(tmp_path / "cpu", details={"table": [1, 2]})
    data = read_results(path)
    assert data["schema"] == SCHEMA and data["context"]["profile"] == "quick" and data["details"] == {"table": [1, 2]}
    first = data["rows"][0]
    assert first["setting"] == {"eta": 0.0} and first["steps"] == 10 and first["device"] == "CPU: x"
    assert [(r["variant"], r["metric"]) for r in data["rows"][1:]] == [("a", "PSNR"), ("a", "SSIM"), ("b", "PSNR")]
    (tmp_path / "cpu" / "other.json").write_text(json.dumps({"benchmark": "x"}))   # not a results file: skipped
    table = read_all(tmp_path)
    assert len(table) == 4 and set(table["file"]) == {"cpu/99_test.json"} and table["n"].tolist()[1:] == [8, 8, 8]
    with pytest.raises(ValueError, match="not a fastdiff results file"):
        read_results(tmp_path / "cpu" / "other.json")


def test_results_files_carry_no_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    out = {"path": str(tmp_path / "runs" / "x.jsonl"), "note": f"weights missing in {tmp_path}/cache/file.pth",
           "nested": [str(tmp_path / "notebooks" / "a.png")], "number": 3}
    fixed = portable(out)
    assert fixed["path"] == "../runs/x.jsonl" and fixed["nested"] == ["a.png"] and fixed["number"] == 3
    assert fixed["note"] == "weights missing in <repo>/cache/file.pth"
    text = save_results(tmp_path / "r", "x", out).read_text()
    assert str(tmp_path) not in text
