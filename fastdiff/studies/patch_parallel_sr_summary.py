"""Study 4, notebook 04, the tables that close it: the 1- against 2-process timing as a table, the results file
(rows and details) and what we found. The models, the thesis's tables and the measurements live in
`fastdiff.studies.patch_parallel_sr`."""
from __future__ import annotations

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


def results_with_details(run, *, dataset: str, provenance: dict, train_info: dict, rows: list[dict],
                         tables: dict[str, list[dict]], time_table: list[dict], bench: dict | None, measured: dict,
                         verdicts: list[dict], steps: int):
    """The results file of notebook 04: its rows (`collect_results`: Table 3.1's rows, the models Tables 3.2,
    3.3 and 3.5 add, then every other SR row) and its details. ``tables``: {"3.1": rows, "3.2": ..., "3.3": ...,
    "3.5": ...}, each `beside_paper`'s rows."""
    t31, t32, t33, t35 = (tables[k] for k in ("3.1", "3.2", "3.3", "3.5"))
    in_tables = {x["model"] for x in t31 + t32 + t33 + t35}
    res = collect_results(run, dataset=dataset, weights=weights_label(provenance),
                          rows=t31 + [r for r in t32 + t33 + t35 if r["model"] not in TABLE_3_1]
                          + [r for r in rows if r["model"] not in in_tables],
                          time_table=time_table, bench=bench, verdicts=verdicts, steps=steps)
    details = {"rows": rows, "table_3_1": t31, "table_3_2": t32, "table_3_3": t33, "table_3_5": t35,
               "time_in_process": time_table, "processes": bench, "weights": provenance, "train": train_info,
               "measured_for_claims": measured,
               "thesis": {"3.1": PAPER_TABLE_3_1, "3.2": PAPER_TABLE_3_2, "3.3": PAPER_TABLE_3_3,
                          "3.4": PAPER_TABLE_3_4, "3.5": PAPER_TABLE_3_5, "3.6": PAPER_TABLE_3_6}}
    return res, details


def summary(rows: list[dict], verdicts: list[dict]) -> None:
    """What we found, printed: every model's PSNR, SSIM, LR-PSNR and seam score (``rows``: `sr_rows`' rows, the
    real HR images first), the real images' seam score, the verdicts."""
    lines = [f"{r['model']:>34}: PSNR {r['PSNR']:.2f} dB, SSIM {r['SSIM']:.3f}, LR-PSNR {r['LR-PSNR']:.2f} dB, "
             f"seam score {r['seam score']:.2f}" for r in rows[1:]]
    lines.append(f"{'HR (real)':>34}: seam score {rows[0]['seam score']:.2f}")
    print("\n".join(lines + verdict_lines(verdicts)))
