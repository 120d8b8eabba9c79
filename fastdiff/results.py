"""The one results schema every notebook writes, and the reader that gathers all of ``results/``.

A *row* is one measured number with everything needed to set it beside another: study, method, variant,
metric (one name per quantity, `METRICS`), value, unit, n (samples or repeats behind it), device, dtype,
dataset, sampling steps, weights provenance, and the paper's value and its source where the paper has one.
``setting`` holds the rest of a cell's coordinates (c, eta, batch size ...).

A results file is ``{"schema": SCHEMA, "study": ..., "context": {...}, "rows": [...], "verdicts": [...],
"details": {...}}``: ``context`` is what every row shares (profile, seed, the environment), ``details`` the
notebook's full tables for people who want more than the rows. `read_results` reads one file, `read_all`
every results file under a folder into one table.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = "fastdiff.results/1"

# One name per quantity, with its unit. "FD (LeNet-MNIST)" is a Fréchet distance in the features of the LeNet we
# ship, never "FID"; "FID (Inception)" is the real one.
METRICS: dict[str, str] = {
    "FD (LeNet-MNIST)": "",
    "FID (Inception)": "",
    "KID (Inception)": "",
    "PSNR": "dB",
    "SSIM": "",
    "LPIPS": "",
    "LR-PSNR": "dB",
    "val PSNR": "dB",
    "denoise PSNR": "dB",
    "time per image": "ms",
    "time per call": "ms",
    "time per sampling call": "ms",
    "speed-up": "x",
    "time saved": "%",
    "FLOPs saved": "%",
    "share of sampling time": "%",
    "parameters": "M",
    "GFLOPs per call": "GFLOP",
    "parameter ratio": "x",
    "fool rate": "",
    "training time": "s",
    "final training loss": "",
    "border deviation": "",
    "seam score": "",          # study 4: mean |jump| across patch boundaries / inside patches (1: none)
}


def unit_of(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of the names in fastdiff.results.METRICS "
                         f"({', '.join(METRICS)}), so one quantity has one name across studies")
    return METRICS[metric]


@dataclass
class Row:
    study: str
    method: str
    variant: str
    metric: str
    value: float | None
    unit: str = ""
    n: int | None = None
    device: str = ""
    dtype: str = ""
    dataset: str = ""
    steps: int | None = None
    weights: str = ""
    paper_value: float | None = None
    paper_source: str = ""
    setting: dict = field(default_factory=dict)

    def __post_init__(self):
        expected = unit_of(self.metric)
        if self.unit and self.unit != expected:
            raise ValueError(f"{self.metric} is measured in {expected!r}, not {self.unit!r}")
        self.unit = expected
        if self.value is not None:
            value = float(self.value)
            self.value = None if math.isnan(value) else value


class Results:
    """The rows of one notebook run. Context that every row shares (device, dtype, dataset, weights) is given
    once; `add` and `add_table` take the rest."""

    def __init__(self, study: str, *, device: str, dtype: str, dataset: str, weights: str, **context):
        self.study = study
        self.defaults = {"device": device, "dtype": dtype, "dataset": dataset, "weights": weights}
        self.context = {**self.defaults, **context}
        self.rows: list[Row] = []
        self.verdicts: list[dict] = []

    def add(self, method: str, variant: str, metric: str, value, **kw) -> Row:
        """One row; keywords are `Row` fields (n, steps, paper_value, ...) or go into ``setting``."""
        fields = {f.name for f in dataclasses.fields(Row)}
        row_kw = {k: v for k, v in kw.items() if k in fields}
        setting = {**row_kw.pop("setting", {}), **{k: v for k, v in kw.items() if k not in fields}}
        row = Row(self.study, method, variant, metric, value, **{**self.defaults, **row_kw}, setting=setting)
        self.rows.append(row)
        return row

    def add_table(self, table: list[dict], *, method, variant, metrics: dict[str, str], **kw) -> None:
        """A row per (table row, metric): ``metrics`` maps a column of ``table`` to its metric name;
        ``method`` and ``variant`` are column names or functions of the table row; other keywords are fixed
        values or functions of the table row."""
        pick = lambda spec, r: spec(r) if callable(spec) else r.get(spec, spec)  # noqa: E731
        for r in table:
            for column, metric in metrics.items():
                if column in r:
                    extra = {k: (v(r) if callable(v) else v) for k, v in kw.items()}
                    self.add(pick(method, r), pick(variant, r), metric, r[column], **extra)

    def save(self, output_dir: str | Path, *, details: dict | None = None) -> Path:
        from .utils import save_results
        return save_results(output_dir, self.study, {
            "schema": SCHEMA, "study": self.study, "context": self.context,
            "rows": [dataclasses.asdict(r) for r in self.rows], "verdicts": self.verdicts,
            "details": details or {}})


def read_results(path: str | Path) -> dict:
    """One results file, checked against the schema."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read results file {path}: {e}") from e
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a fastdiff results file (schema {SCHEMA})")
    return data


def iter_results(root: str | Path = "results"):
    """(path, contents) of every results file under ``root`` (recursively, sorted); other JSON files (benchmarks'
    own formats, summaries) are skipped."""
    for path in sorted(Path(root).rglob("*.json")):
        try:
            yield path, read_results(path)
        except ValueError:
            continue


def read_all(root: str | Path = "results"):
    """Every row of every results file under ``root`` (recursively) as one pandas DataFrame, with the file
    each came from. Other JSON files (benchmarks' own formats, summaries) are skipped."""
    import pandas as pd
    root = Path(root)
    frames = []
    for path, data in iter_results(root):
        rows = pd.DataFrame(data["rows"], columns=[f.name for f in dataclasses.fields(Row)])
        frames.append(rows.assign(file=str(path.relative_to(root))))
    columns = [f.name for f in dataclasses.fields(Row)] + ["file"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def read_benchmark(name: str, device_type: str = "cpu", *, root: str | Path = "results") -> dict:
    """A benchmark's own result file, ``<root>/<device_type>/<name>.json`` (written by ``benchmarks/<name>.py``),
    with a clear error that says how to produce it when it is missing or unreadable."""
    path = Path(root) / device_type / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark result {path}: run `python benchmarks/{name}.py` on this "
                                f"{device_type} device first (from the repository root)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read benchmark result {path} ({e}); rerun `python benchmarks/{name}.py`") from e
    if data.get("benchmark") != name:
        raise ValueError(f"{path} is not the result of benchmarks/{name}.py")
    return data
