"""Study 4, notebook 04, the tables that close it: the 1- against 2-process timing as a table, the results file
(rows and details) and what we found. The models, the thesis's tables and the measurements live in
`fastdiff.studies.patch_parallel_sr`."""
from __future__ import annotations

import dataclasses

from ..verdicts import verdict_lines
from .common import weights_label
from .patch_parallel_sr import (PAPER_TABLE_3_1, PAPER_TABLE_3_2, PAPER_TABLE_3_3, PAPER_TABLE_3_4, PAPER_TABLE_3_5,
                           PAPER_TABLE_3_6, TABLE_3_1, collect_results)


def process_table(bench: dict):
    """`fastdiff.swin_torchrun.benchmark`'s result as a DataFrame: seconds per image and the shares of the time, by image
    size, model and number of processes."""
    import pandas as pd
    rows = [{"size": f"{s}x{s}", "model": b["model"], "processes": b["processes"],
             "threads each": b["threads per process"], "patches": b["patches"],
             "seconds per image": b["seconds per image"], **{f"{k} share": v for k, v in b["shares"].items()}}
            for s, per in bench["sizes"].items() for b in per.values()]
    return pd.DataFrame(rows).set_index(["size", "model", "processes"])


def _plain(value):
    """An `Estimate` as a dict (value, low, high, n, method), for the details; anything else as it is."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def results_with_details(run, *, dataset: str, provenance: dict, train_info: dict, rows: list[dict],
                         tables: dict[str, list[dict]], time_table: list[dict], bench: dict | None, measured: dict,
                         verdicts: list[dict], steps: int, quality: dict | None = None, live_rows=None):
    """The results file of notebook 04: its rows (`collect_results`: Table 3.1's rows, the models Tables 3.2,
    3.3 and 3.5 add, then every other SR row) and its details. ``tables``: {"3.1": rows, "3.2": ..., "3.3": ...,
    "3.5": ...}, each `beside_paper`'s rows. ``quality``: the measurement the rows come from
    (`patch_parallel_sr_quality`; its machine labels them, its sanity records go to the details); ``live_rows``:
    this run's small live table (details only)."""
    t31, t32, t33, t35 = (tables[k] for k in ("3.1", "3.2", "3.3", "3.5"))
    in_tables = {x["model"] for x in t31 + t32 + t33 + t35}
    res = collect_results(run, dataset=dataset, weights=weights_label(provenance),
                          rows=t31 + [r for r in t32 + t33 + t35 if r["model"] not in TABLE_3_1]
                          + [r for r in rows if r["model"] not in in_tables],
                          time_table=time_table, bench=bench, verdicts=verdicts, steps=steps,
                          measured_on=quality["environment"] if quality else None)
    plain = lambda table: [{k: _plain(v) for k, v in r.items()} for r in table]   # noqa: E731
    details = {"rows": plain(rows), "table_3_1": plain(t31), "table_3_2": plain(t32), "table_3_3": plain(t33),
               "table_3_5": plain(t35), "live_rows": live_rows, "time_in_process": time_table, "processes": bench,
               "weights": provenance, "train": train_info,
               "measurement": None if quality is None else {k: v for k, v in quality.items() if k != "per_image"},
               "measured_for_claims": {k: _plain(v) for k, v in measured.items()},
               "thesis": {"3.1": PAPER_TABLE_3_1, "3.2": PAPER_TABLE_3_2, "3.3": PAPER_TABLE_3_3,
                          "3.4": PAPER_TABLE_3_4, "3.5": PAPER_TABLE_3_5, "3.6": PAPER_TABLE_3_6}}
    return res, details


def _num(value, spec: str) -> str:
    return value.format() if hasattr(value, "format") and hasattr(value, "low") else f"{value:{spec}}"


def summary(rows: list[dict], verdicts: list[dict]) -> None:
    """What we found, printed: every model's PSNR, SSIM, LR-PSNR and seam score (``rows``: the SR rows, numbers or
    `Estimate`s with their intervals; the real HR images' row has only a seam score), then the verdicts."""
    real = [r for r in rows if r["model"] == "HR (real)"]
    lines = [f"{r['model']:>34}: PSNR {_num(r['PSNR'], '.2f')} dB, SSIM {_num(r['SSIM'], '.3f')}, LR-PSNR "
             f"{_num(r['LR-PSNR'], '.2f')} dB, seam score {_num(r['seam score'], '.2f')}"
             for r in rows if r["model"] != "HR (real)"]
    lines += [f"{'HR (real)':>34}: seam score {_num(r['seam score'], '.2f')}" for r in real]
    print("\n".join(lines + verdict_lines(verdicts)))
