"""One results schema: one name per metric with its unit, rows that carry their labels, files without absolute
paths, and one reader for all of results/."""
import dataclasses
import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from fastdiff.portable_json import portable, save_results
from fastdiff.results import (METRICS, ROW_FIELDS, ROW_OPTIONAL, SCHEMA, Results, ResultsFileError, ResultsWarning, Row,
                              iter_results, read_all, read_benchmark, read_results)


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


# ----------------------------------------------------------------------------------------- files are checked

RESULTS = Path(__file__).resolve().parents[1] / "results"
VERDICT = {"key": "a", "claim": "x is fast", "paper": "2x", "ours": "2.1x", "threshold": ">= 1.5x",
           "verdict": "reproduced", "why": "as measured"}


def results_file(folder, name="99_test", *, profile="quick", value=12.5, verdicts=None) -> Path:
    res = Results(name, device="CPU: x", dtype="fp32", dataset="digits", weights="zoo: basics/x", profile=profile)
    res.add("DDIM", "DDIM 10", "FD (LeNet-MNIST)", value, n=500, steps=10)
    res.verdicts = [dict(VERDICT)] if verdicts is None else verdicts
    return res.save(folder)


def test_the_row_fields_checked_on_reading_are_the_rows_fields():
    assert list(ROW_FIELDS) + list(ROW_OPTIONAL) == [f.name for f in dataclasses.fields(Row)]


def test_a_row_carries_an_estimates_interval_and_schema_1_files_still_read(tmp_path):
    from fastdiff.measure.intervals import mean_interval
    res = Results("x", device="cpu", dtype="fp32", dataset="d", weights="w", profile="quick")
    est = mean_interval([30.0, 31.0, 33.0, 29.5])
    row = res.add("m", "v", "PSNR", est)
    assert (row.value, row.low, row.high, row.n) == (est.value, est.low, est.high, 4) and "bootstrap" in row.interval
    with pytest.raises(ValueError, match="low <= high"):
        res.add("m", "v", "PSNR", 1.0, low=2.0, high=1.0)
    with pytest.raises(ValueError, match="low <= high"):
        res.add("m", "v", "PSNR", 1.0, low=0.5)
    path = res.save(tmp_path / "new")
    assert read_results(path)["rows"][0]["low"] == est.low
    old = json.loads(path.read_text())
    old["schema"] = "fastdiff.results/1"
    for r in old["rows"]:
        for k in ROW_OPTIONAL:
            r.pop(k)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x.json").write_text(json.dumps(old))
    assert read_results(tmp_path / "old" / "x.json")["rows"][0]["value"] == est.value
    old["rows"][0]["low"] = 1.0                     # schema 1 had no interval fields
    (tmp_path / "old" / "x.json").write_text(json.dumps(old))
    with pytest.raises(ResultsFileError, match="unknown field 'low'"):
        read_results(tmp_path / "old" / "x.json")


def test_non_finite_numbers_are_written_as_null_and_the_file_says_so(tmp_path):
    res = Results("99_test", device="CPU: x", dtype="fp32", dataset="digits", weights="w")
    res.add("DDIM", "DDIM 10", "FD (LeNet-MNIST)", float("nan"), paper_value=float("inf"))
    res.add("DDIM", "DDIM 20", "speed-up", float("-inf"))
    with pytest.warns(UserWarning, match=r"1 non-finite number\(s\) written as null: details.fd\[1\].FD \(nan\)"):
        path = res.save(tmp_path, details={"fd": [{"FD": 1.0}, {"FD": float("nan")}]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard token {token}"))
    data = read_results(path)
    assert [r["value"] for r in data["rows"]] == [None, None] and data["rows"][0]["paper_value"] is None
    assert data["rows"][0]["setting"] == {"value was": "nan", "paper_value was": "inf"}
    assert data["rows"][1]["setting"] == {"value was": "-inf"}
    assert data["details"]["fd"][1]["FD"] is None and data["non-finite"] == {"details.fd[1].FD": "nan"}
    with pytest.raises(ValueError, match="time per image .DDIM, x.: value must be a number or None, got 'fast'"):
        Row("s", "DDIM", "x", "time per image", "fast")
    assert Row("s", "m", "v", "PSNR", 1.0, n=500.0, steps=torch.tensor(20)).n == 500
    with pytest.raises(ValueError, match=r"PSNR \(m, v\): n must be an integer or None, got 2.5"):
        Row("s", "m", "v", "PSNR", 1.0, n=2.5)


@pytest.mark.parametrize("verdict, message", [
    ({**VERDICT, "ours": "nan dB"}, r"verdicts\[0\] \(claim 'a'\) is 'reproduced' from a non-finite measurement"),
    ({**VERDICT, "ours": "inf x", "verdict": "contradicted"}, "must raise NotMeasured"),
    ({**VERDICT, "ours": float("nan")}, r"verdicts\[0\] \(claim 'a'\)\.ours is float 'nan', not text"),
    ({**VERDICT, "verdict": "maybe"}, "verdict 'maybe' is not one of"),
    ({k: v for k, v in VERDICT.items() if k != "why"}, "missing field 'why'")])
def test_a_verdict_row_that_is_invalid_or_judged_from_a_nan_is_never_written(tmp_path, verdict, message):
    with pytest.raises(ValueError, match="cannot write the results of 99_test: " + ".*" + message):
        results_file(tmp_path, verdicts=[verdict])
    assert not list(tmp_path.iterdir())                                  # nothing written
    results_file(tmp_path, verdicts=[{**VERDICT, "ours": "nan dB", "verdict": "not testable here"}])


def damage(path: Path, how: str) -> None:
    """Turn a valid results file into a damaged one."""
    text = path.read_text()
    data = json.loads(text)
    if how in ("truncated", "empty", "not json", "binary"):
        path.write_bytes({"truncated": text[:len(text) // 2].encode(), "empty": b"", "not json": b"rows: 1",
                          "binary": b"\x89PNG\r\n\x1a\n\xff"}[how])
        return
    if how == "nan token":
        data["rows"][0]["value"] = float("nan")
    elif how == "newer schema":
        data["schema"] = "fastdiff.results/3"
    elif how == "unknown schema":
        data["schema"] = "fastdiff.results/beta"
    elif how == "missing row field":
        del data["rows"][0]["value"]
    elif how == "wrong type":
        data["rows"][0]["n"] = "500"
    elif how == "unknown field":
        data["rows"][0]["extra"] = 1
    elif how == "unknown metric":
        data["rows"][0]["metric"] = "FID"
    elif how == "missing verdict field":
        del data["verdicts"][0]["claim"]
    elif how == "nan verdict":
        data["verdicts"][0]["ours"] = "NaN ms"
    elif how == "rows not a list":
        data["rows"] = {"0": data["rows"][0]}
    elif how == "unknown json":
        data = {"anything": 1}
    elif how == "a list":
        data = [data]
    path.write_text(json.dumps(data))


DAMAGE = {
    "truncated": r"is truncated \(it ends before its last bracket",
    "empty": "is empty",
    "not json": "is not valid JSON: Expecting value at line 1 column 1",
    "binary": "is not a text file, so not JSON",
    "nan token": r"rows\[0\]\.value is nan \(non-standard JSON tokens NaN/Infinity",
    "newer schema": r"was written by a newer fastdiff \(schema fastdiff.results/3; this one reads fastdiff.results/2\)",
    "unknown schema": "has an unknown schema 'fastdiff.results/beta'",
    "missing row field": r"rows\[0\]: missing field 'value'",
    "wrong type": r"rows\[0\]\.n is str '500', not an integer or null",
    "unknown field": r"rows\[0\]: unknown field 'extra'",
    "unknown metric": r"rows\[0\]: unknown metric 'FID' \(written by a newer fastdiff\?\)",
    "missing verdict field": r"verdicts\[0\] \(claim 'a'\): missing field 'claim'",
    "nan verdict": r"'reproduced' from a non-finite measurement \(ours: 'NaN ms'\)",
    "rows not a list": r": rows is dict .*, not a list",
    "unknown json": "is not a fastdiff results file .schema fastdiff.results/2., nor a benchmark's result",
    "a list": "is not a fastdiff results file",
}


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_results_file_is_an_error_that_names_it(tmp_path, how):
    path = results_file(tmp_path / "cpu")
    damage(path, how)
    for read in (lambda: read_results(path), lambda: iter_results(tmp_path), lambda: read_all(tmp_path)):
        with pytest.raises(ResultsFileError, match=re.escape(str(path)) + ".*" + DAMAGE[how]):
            read()


def test_on_error_warn_skips_damaged_files_loudly_and_counts_them(tmp_path):
    results_file(tmp_path / "cpu", "01_good")
    damage(results_file(tmp_path / "cpu", "02_truncated"), "truncated")
    damage(results_file(tmp_path / "cuda", "03_newer"), "newer schema")
    with pytest.warns(ResultsWarning, match=r"skipped 2 damaged results files: .*02_truncated.json is truncated.* \| "
                                            r".*03_newer.json was written by a newer fastdiff"):
        table = read_all(tmp_path, on_error="warn")
    assert set(table["file"]) == {"cpu/01_good.json"}
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'warn', got 'ignore'"):
        iter_results(tmp_path, on_error="ignore")


@pytest.mark.parametrize("copy", ["99_test-quick (copy).json", "99_test-quick.bak.json", "old/99_test-quick.json"])
def test_a_backup_copy_is_never_counted_twice(tmp_path, copy):
    original = results_file(tmp_path / "cpu", "99_test")
    original = original.rename(original.with_name("99_test-quick.json"))
    (tmp_path / "cpu" / copy).parent.mkdir(exist_ok=True)
    (tmp_path / "cpu" / copy).write_text(original.read_text())
    with pytest.raises(ResultsFileError, match=rf"{re.escape(copy)} and .*99_test-quick.json are both study "
                                               r"'99_test', profile 'quick' on 'CPU: x' and identical "
                                               r"\(a backup copy\?\), so the study would be counted twice"):
        read_all(tmp_path)
    with pytest.warns(ResultsWarning, match=rf"skipped 1 duplicate results file: .*{re.escape(copy)} \(counted "
                                            rf".*cpu/99_test-quick.json instead"):
        table = read_all(tmp_path, on_error="warn")
    assert table["file"].tolist() == ["cpu/99_test-quick.json"]


def test_two_runs_of_one_study_profile_and_device_are_an_error_but_other_profiles_are_not(tmp_path):
    results_file(tmp_path / "a", value=1.0)
    results_file(tmp_path / "b", value=2.0)
    results_file(tmp_path / "c", profile="full")
    with pytest.raises(ResultsFileError, match=r"b/99_test.json and .*a/99_test.json are both study '99_test', "
                                               r"profile 'quick' on 'CPU: x', so"):
        iter_results(tmp_path)
    (tmp_path / "b" / "99_test.json").unlink()
    assert len(iter_results(tmp_path)) == 2


def test_other_fastdiff_files_and_hidden_folders_are_passed_over(tmp_path):
    results_file(tmp_path / "cpu")
    (tmp_path / "cpu" / "bench.json").write_text(json.dumps({"benchmark": "bench", "rows": []}))
    (tmp_path / "summary.json").write_text(json.dumps({"parameters": {}, "notebooks": []}))
    hidden = tmp_path / "cpu" / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "99_test-checkpoint.json").write_text("{damaged")
    assert [p.name for p, _ in iter_results(tmp_path)] == ["99_test.json"]
    with pytest.raises(ResultsFileError, match="bench.json is not a fastdiff results file .* but a benchmark's own"):
        read_results(tmp_path / "cpu" / "bench.json")


def test_every_committed_results_file_reads_without_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = iter_results(RESULTS)
    assert len(found) >= 7 and len(read_all(RESULTS)) > 100


def test_a_damaged_benchmark_file_says_how_to_produce_it_again(tmp_path):
    path = tmp_path / "cpu" / "bench.json"
    path.parent.mkdir()
    for text, message in (('{"benchmark": "bench", "rows": [', "is truncated"),
                          ('{"benchmark": "bench", "ms": NaN}', "ms is nan"),
                          ('["benchmark"]', "is not the result of benchmarks/bench.py .its \"benchmark\" field is "
                                            "None.")):
        path.write_text(text)
        with pytest.raises(ResultsFileError, match=f"{re.escape(str(path))}.*{message}.*rerun `python "
                                                   f"benchmarks/bench.py` on this cpu device"):
            read_benchmark("bench", root=tmp_path)
