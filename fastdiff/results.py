"""The one results schema every notebook writes, and the reader that gathers all of ``results/``.

A *row* is one measured number with everything needed to set it beside another: study, method, variant,
metric (one name per quantity, `METRICS`), value, unit, n (samples or repeats behind it), device, dtype,
dataset, sampling steps, weights provenance, and the paper's value and its source where the paper has one.
``setting`` holds the rest of a cell's coordinates (c, eta, batch size ...).

A results file is ``{"schema": SCHEMA, "study": ..., "context": {...}, "rows": [...], "verdicts": [...],
"details": {...}}``: ``context`` is what every row shares (profile, seed, the environment), ``details`` the
notebook's full tables for people who want more than the rows. `read_results` reads one file, `read_all`
every results file under a folder into one table.

Files are standard JSON: a row's value that is NaN or infinite is written as null and its ``setting`` says what it
was (``"value was": "nan"``); any other non-finite number (in ``details``) is written as null and listed under the
file's ``"non-finite"`` ({where: "nan"}). A verdict is never judged from a NaN: such a row is an error on writing.
Reading checks every file: a damaged one (unreadable, truncated, not JSON, NaN tokens, missing, unknown or wrongly
typed fields), a newer schema, an unknown JSON file among the results, or a second file of the same (study, profile,
device) (a backup copy) is a `ResultsFileError` naming the file(s); ``on_error="warn"`` skips them with one loud
`ResultsWarning` that counts and names them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .portable_json import finite_or_null, save_results

SCHEMA = "fastdiff.results/2"      # 2: rows may carry an interval (low, high, interval); 1 is still read

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
    "digit accuracy": "",
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
    low: float | None = None        # the value's interval (`fastdiff.measure.intervals.Estimate`), when measured
    high: float | None = None
    interval: str = ""              # how the interval was made ("bootstrap 95%", "Wilson 95%", ...)

    def __post_init__(self):
        expected = unit_of(self.metric)
        if self.unit and self.unit != expected:
            raise ValueError(f"{self.metric} is measured in {expected!r}, not {self.unit!r}")
        self.unit = expected
        self.value, self.paper_value = self._finite("value"), self._finite("paper_value")
        self.low, self.high = self._finite("low"), self._finite("high")
        if (self.low is None) != (self.high is None) or (self.low is not None and self.low > self.high):
            raise ValueError(f"{self.metric} ({self.method}, {self.variant}): an interval needs low <= high, got "
                             f"[{self.low}, {self.high}]")
        self.n, self.steps = self._count("n"), self._count("steps")

    def _count(self, name: str) -> int | None:
        """Field ``name`` as an int or None (500.0 and numpy integers become 500; 2.5 is an error)."""
        value = getattr(self, name)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            if float(value).is_integer():
                return int(value)
        except (TypeError, ValueError):
            pass
        raise ValueError(f"{self.metric} ({self.method}, {self.variant}): {name} must be an integer or None, got "
                         f"{value!r}")

    def _finite(self, name: str) -> float | None:
        """Field ``name`` as a finite float or None: NaN and +-inf become None, and ``setting`` says what it was
        (``"value was": "nan"``), so a missing number is never mistaken for a measured one."""
        value = getattr(self, name)
        if value is None:
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.metric} ({self.method}, {self.variant}): {name} must be a number or None, got "
                             f"{value!r}") from None
        if math.isfinite(value):
            return value
        self.setting = {**self.setting, f"{name} was": str(value)}
        return None


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
        """One row; keywords are `Row` fields (n, steps, paper_value, ...) or go into ``setting``. ``value`` may be
        an `Estimate` (value, low, high, n, method): the row then carries its interval and n."""
        if hasattr(value, "low") and hasattr(value, "high"):
            kw = {"low": value.low, "high": value.high, "n": value.n, "interval": value.method, **kw}
            value = value.value
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
        """Write ``<output_dir>/<study>.json`` (`fastdiff.portable_json.save_results`), checked first as a reader will check
        it: an invalid verdict row, or one judged from a NaN, is a ValueError and nothing is written."""
        data = {"schema": SCHEMA, "study": self.study, "context": self.context,
                "rows": [dataclasses.asdict(r) for r in self.rows], "verdicts": self.verdicts, "details": details or {}}
        problems = results_problems(data)
        if problems:
            raise ValueError(f"cannot write the results of {self.study}: {_summarise(problems)}; fix what is named "
                             f"(verdict rows come from fastdiff.verdicts.judge)")
        return save_results(output_dir, self.study, data)


class ResultsFileError(ValueError):
    """A results (or benchmark) file is damaged, newer than this fastdiff, unknown, or a second copy of a study;
    the message names the file(s), says what is wrong and what to do."""


class ResultsWarning(UserWarning):
    """Results files skipped because the reader was asked to (``on_error="warn"``, ``fastdiff report
    --skip-damaged``): the message counts and names them."""


# What each field of a file must hold. A conforming writer (`Results.save`) writes every field, so a missing or an
# unknown one means a damaged file or another writer: schema 1 is a contract, a change of fields is schema 2.
TEXT, NUMBER, COUNT, OBJECT, LIST = "text", "a finite number or null", "an integer or null", "an object", "a list"
TOP_FIELDS = {"schema": TEXT, "study": TEXT, "context": OBJECT, "rows": LIST, "verdicts": LIST}
TOP_OPTIONAL = {"details": OBJECT, "non-finite": OBJECT}   # non-finite: {where: "nan"}, numbers written as null
ROW_FIELDS = {"study": TEXT, "method": TEXT, "variant": TEXT, "metric": TEXT, "value": NUMBER, "unit": TEXT,
              "n": COUNT, "device": TEXT, "dtype": TEXT, "dataset": TEXT, "steps": COUNT, "weights": TEXT,
              "paper_value": NUMBER, "paper_source": TEXT, "setting": OBJECT}
ROW_OPTIONAL = {"low": NUMBER, "high": NUMBER, "interval": TEXT}     # schema 2 (written always, read if present)
VERDICT_FIELDS = {k: TEXT for k in ("key", "claim", "paper", "ours", "threshold", "verdict", "why")}
CONTEXT_TEXT = ("device", "dtype", "dataset", "weights", "profile")     # text where present
MAX_PROBLEMS = 5                  # a message names this many problems of a file, then counts the rest


def _field_problem(value, kind: str) -> str | None:
    """What is wrong with ``value`` as a field of ``kind`` (None: nothing)."""
    if kind == TEXT:
        ok = isinstance(value, str)
    elif kind in (NUMBER, COUNT):
        ok = value is None or (isinstance(value, (int, float) if kind == NUMBER else int) and not isinstance(
            value, bool) and math.isfinite(value))
    else:
        ok = isinstance(value, dict if kind == OBJECT else list)
    return None if ok else f"is {type(value).__name__} {str(value)[:40]!r}, not {kind}"


def _fields_problems(obj, spec: dict, where: str, optional: dict | None = None) -> list[str]:
    """Missing, unknown and wrongly typed fields of ``obj`` against ``spec`` (required) and ``optional``."""
    if not isinstance(obj, dict):
        return [f"{where or 'the file'} is {type(obj).__name__}, not an object"]
    known = {**spec, **(optional or {})}
    head, at = (f"{where}: ", f"{where}.") if where else ("", "")
    problems = [f"{head}missing field {k!r}" for k in spec if k not in obj]
    problems += [f"{head}unknown field {k!r}" for k in obj if k not in known]
    problems += [f"{at}{k} {why}" for k, kind in known.items() if k in obj for why in [_field_problem(obj[k], kind)]
                 if why]
    return problems


def _row_problems(row, i: int, study: str, schema: str = SCHEMA) -> list[str]:
    where = f"rows[{i}]"
    problems = _fields_problems(row, ROW_FIELDS, where, ROW_OPTIONAL if schema != READABLE[0] else None)
    if problems:
        return problems
    if row["metric"] not in METRICS:
        return [f"{where}: unknown metric {row['metric']!r} (written by a newer fastdiff?)"]
    if row["unit"] != METRICS[row["metric"]]:
        problems.append(f"{where}: {row['metric']} is measured in {METRICS[row['metric']]!r}, not {row['unit']!r}")
    if row["study"] != study:
        problems.append(f"{where} belongs to study {row['study']!r}, not the file's {study!r}")
    return problems


NON_FINITE_WORD = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _verdict_problems(v, i: int) -> list[str]:
    from .verdicts import VERDICTS
    where = f"verdicts[{i}]" + (f" (claim {v.get('key')!r})" if isinstance(v, dict) and "key" in v else "")
    problems = []
    if isinstance(v, dict) and "verdict" in v and v["verdict"] not in VERDICTS:
        problems.append(f"{where}: verdict {v['verdict']!r} is not one of {VERDICTS}")
    problems += _fields_problems(v, VERDICT_FIELDS, where)
    if not problems and v["verdict"] != "not testable here" and NON_FINITE_WORD.search(v["ours"]):
        problems.append(f"{where} is {v['verdict']!r} from a non-finite measurement (ours: {v['ours']!r}): a NaN or "
                        f"infinite number cannot be judged; its rule must raise NotMeasured (fastdiff.verdicts.need) "
                        f"so that the claim is 'not testable here'")
    return problems


def results_problems(data: dict) -> list[str]:
    """Everything that makes ``data`` not a valid results file of this schema (empty: valid)."""
    problems = _fields_problems(data, TOP_FIELDS, "", TOP_OPTIONAL)
    if problems:
        return problems
    context = data["context"]
    problems += [f"context.{k} {why}" for k in CONTEXT_TEXT if k in context
                 for why in [_field_problem(context[k], TEXT)] if why]
    problems += [p for i, row in enumerate(data["rows"])
                 for p in _row_problems(row, i, data["study"], data.get("schema", SCHEMA))]
    problems += [p for i, v in enumerate(data["verdicts"]) for p in _verdict_problems(v, i)]
    return problems


def _summarise(problems: list[str]) -> str:
    more = len(problems) - MAX_PROBLEMS
    return "; ".join(problems[:MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")


def load_json(path: Path, fix: str):
    """The contents of the JSON file ``path``, or a `ResultsFileError` that names it, says what is wrong (unreadable,
    empty, truncated, not JSON, NaN/Infinity tokens) and ends with ``fix``."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as e:
        raise ResultsFileError(f"cannot read {path} ({e.strerror or e}); {fix}") from e
    except UnicodeDecodeError as e:
        raise ResultsFileError(f"{path} is not a text file, so not JSON; {fix}") from e
    except json.JSONDecodeError as e:
        body = text.strip()
        cut = body[:1] in ("{", "[") and body[-1] not in "}]"      # JSON that stops before its closing bracket
        state = ("is empty" if not body else "is truncated (it ends before its last bracket: an interrupted write "
                 "or copy, or a full disk)" if cut else "is not valid JSON")
        raise ResultsFileError(f"{path} {state}: {e.msg} at line {e.lineno} column {e.colno}; {fix}") from e
    _, found = finite_or_null(data)
    if found:
        where = ", ".join(f"{at} is {v}" for at, v in list(found.items())[:MAX_PROBLEMS])
        raise ResultsFileError(f"{path}: {where} (non-standard JSON tokens NaN/Infinity, written by an older "
                               f"fastdiff); replace them with null, or {fix}")
    return data


SCHEMA_VERSION = re.compile(r"fastdiff\.results/(\d+)")
READABLE = ("fastdiff.results/1", SCHEMA)          # schema 1: rows without an interval
FIX = "restore it from git, or execute its notebook again"


def _read(path: Path) -> dict | None:
    """A results file's checked contents; None for the other fastdiff files that live among results (a benchmark's
    own file, a `fastdiff reproduce` summary). Anything else is a `ResultsFileError`."""
    data = load_json(path, FIX)
    if isinstance(data, dict) and "schema" in data:
        found = SCHEMA_VERSION.fullmatch(str(data["schema"]))
        if found and int(found.group(1)) > int(SCHEMA.rsplit("/", 1)[1]):
            raise ResultsFileError(f"{path} was written by a newer fastdiff (schema {data['schema']}; this one reads "
                                   f"{SCHEMA}): upgrade fastdiff to read it")
        if data["schema"] not in READABLE:
            raise ResultsFileError(f"{path} has an unknown schema {data['schema']!r} (this fastdiff reads {SCHEMA}); "
                                   f"{FIX}")
        problems = results_problems(data)
        if problems:
            raise ResultsFileError(f"{path}: {_summarise(problems)}; {FIX}")
        return data
    if isinstance(data, dict) and isinstance(data.get("benchmark"), str):
        return None                                   # read by read_benchmark
    if isinstance(data, dict) and {"parameters", "notebooks"} <= set(data):
        return None                                   # written by fastdiff reproduce (runner.reproduce)
    raise ResultsFileError(f"{path} is not a fastdiff results file (schema {SCHEMA}), nor a benchmark's result or a "
                           f"`fastdiff reproduce` summary: move it out of the results folder")


def read_results(path: str | Path) -> dict:
    """One results file, checked against the schema: a `ResultsFileError` (a ValueError) names the file and what is
    wrong with it (unreadable, truncated, not JSON, NaN tokens, a newer or unknown schema, missing, unknown or
    wrongly typed fields, a verdict that is not one of `fastdiff.verdicts.VERDICTS`)."""
    path = Path(path)
    data = _read(path)
    if data is None:
        raise ResultsFileError(f"{path} is not a fastdiff results file (schema {SCHEMA}) but a benchmark's own result "
                               f"or a `fastdiff reproduce` summary: read it with read_benchmark or json")
    return data


def _json_files(root: Path) -> list[Path]:
    """The JSON files under ``root``, sorted; hidden files and folders (.ipynb_checkpoints, temporaries) left out."""
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder {root}: run from the repository root or pass the folder")
    return sorted(p for p in root.rglob("*.json") if not any(s.startswith(".") for s in p.relative_to(root).parts))


def _key(data: dict) -> tuple[str, str, str]:
    context = data["context"]
    return data["study"], context.get("profile", ""), context.get("device", "")


def _duplicates(found: list[tuple[Path, dict]]) -> list[tuple[Path, Path, str]]:
    """(kept, copy, what they share) for every file of ``found`` that is the same (study, profile, device) as
    another; the one with the shortest name is kept (``x.json`` over ``x (copy).json`` and ``x.bak.json``)."""
    groups: dict[tuple, list] = {}
    for path, data in found:
        groups.setdefault(_key(data), []).append((path, data))
    out = []
    for (study, profile, device), group in groups.items():
        (kept, data), *copies = sorted(group, key=lambda pd: (len(pd[0].name), str(pd[0])))
        for path, other in copies:
            same = " and identical (a backup copy?)" if other == data else ""
            out.append((kept, path, f"study {study!r}, profile {profile!r} on {device!r}{same}"))
    return out


def iter_results(root: str | Path = "results", *, on_error: str = "raise") -> list[tuple[Path, dict]]:
    """(path, contents) of every results file under ``root`` (recursively, sorted). Benchmarks' own files and
    `fastdiff reproduce` summaries are passed over. A damaged, newer-schema or unknown JSON file, or two files of
    the same (study, profile, device) (a backup copy beside the original), is a `ResultsFileError` naming the
    file(s); ``on_error="warn"`` skips damaged files and counts each study once instead, with one `ResultsWarning`
    that counts and names every file skipped."""
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    root = Path(root)
    found, damaged = [], []
    for path in _json_files(root):
        try:
            data = _read(path)
        except ResultsFileError as e:
            if on_error == "raise":
                raise
            damaged.append(str(e))
            continue
        if data is not None:
            found.append((path, data))
    copies = _duplicates(found)
    if copies and on_error == "raise":
        kept, copy, what = copies[0]
        raise ResultsFileError(f"{copy} and {kept} are both {what}, so the study would be counted twice: move one of "
                               f"them out of {root} (or read with on_error='warn' / `fastdiff report --skip-damaged` "
                               f"to count only {kept.name})")
    _warn_skipped(damaged, copies)
    skipped = {copy for _, copy, _ in copies}
    return [(path, data) for path, data in found if path not in skipped]


def _warn_skipped(damaged: list[str], copies: list[tuple[Path, Path, str]]) -> None:
    if damaged:
        warnings.warn(f"skipped {len(damaged)} damaged results file{'s' * (len(damaged) > 1)}: "
                      + " | ".join(damaged), ResultsWarning, stacklevel=3)
    if copies:
        warnings.warn(f"skipped {len(copies)} duplicate results file{'s' * (len(copies) > 1)}: "
                      + " | ".join(f"{copy} (counted {kept} instead; both {what})" for kept, copy, what in copies),
                      ResultsWarning, stacklevel=3)


def read_all(root: str | Path = "results", *, on_error: str = "raise"):
    """Every row of every results file under ``root`` (recursively) as one pandas DataFrame, with the file each came
    from. Benchmarks' own files are passed over; damaged files and copies are errors unless ``on_error="warn"``
    (`iter_results`)."""
    import pandas as pd
    root = Path(root)
    frames = []
    for path, data in iter_results(root, on_error=on_error):
        rows = pd.DataFrame(data["rows"], columns=[f.name for f in dataclasses.fields(Row)])
        frames.append(rows.assign(file=str(path.relative_to(root))))
    columns = [f.name for f in dataclasses.fields(Row)] + ["file"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def read_benchmark(name: str, device_type: str = "cpu", *, root: str | Path = "results") -> dict:
    """A benchmark's own result file, ``<root>/<device_type>/<name>.json`` (written by ``benchmarks/<name>.py``),
    with a clear error that says how to produce it when it is missing, unreadable, damaged or another file."""
    path = Path(root) / device_type / f"{name}.json"
    rerun = f"rerun `python benchmarks/{name}.py` on this {device_type} device (from the repository root)"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark result {path}: run `python benchmarks/{name}.py` on this "
                                f"{device_type} device first (from the repository root)")
    data = load_json(path, rerun)
    if not isinstance(data, dict) or data.get("benchmark") != name:
        raise ResultsFileError(f"{path} is not the result of benchmarks/{name}.py (its \"benchmark\" field is "
                               f"{data.get('benchmark') if isinstance(data, dict) else None!r}); {rerun}")
    return data
