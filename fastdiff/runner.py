"""``fastdiff reproduce``: execute the study notebooks with papermill into one output folder."""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

from .files import file_lock
from .portable_json import save_results
from .progress import progress_bar

PROFILES = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")


def default_notebooks_dir() -> Path:
    """``./notebooks`` when run from a checkout, else the checkout this package was installed from."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "notebooks"


def find_notebooks(notebooks_dir: Path, only: str | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``), or those whose number or name is listed in ``only``."""
    notebooks = sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    if only is None:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if not wanted:
        raise ValueError(f"--only {only!r} names no notebook; give numbers or names, e.g. --only 00,02 "
                         f"(available: {', '.join(nb.stem for nb in notebooks)})")
    chosen = []
    for w in wanted:
        match = [nb for nb in notebooks if nb.stem == w or nb.stem.split("_", 1)[0] == w]
        if not match:
            raise ValueError(f"--only {w!r} matches no notebook; available: {', '.join(nb.stem for nb in notebooks)}")
        chosen += [nb for nb in match if nb not in chosen]
    return chosen


def check_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and make sure files can be written there, before any notebook runs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is an existing file, not a folder; choose a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".fastdiff-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out_dir} cannot be written ({e.strerror or e}); choose a writable folder") from e


def _first_line(source: str) -> str:
    lines = [line for line in (source or "").splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return lines[0].strip()[:100] if lines else ""


def run_notebook(notebook: Path, out_dir: Path, parameters: dict, kernel_name: str | None = None) -> dict:
    """Execute one notebook; return a record with its status and, on failure, the failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / notebook.name
    record = {"notebook": notebook.name, "output": str(output), "status": "ok"}
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(notebook.parent),
                            kernel_name=kernel_name, progress_bar=False, log_output=False)
    except PapermillExecutionError as e:
        # cell_index counts cells of the executed copy (papermill's injected-parameters cell included)
        record.update(status="failed", cell_index=e.cell_index, execution_count=e.exec_count,
                      error=f"{e.ename}: {e.evalue}", source=_first_line(e.source))
    except Exception as e:  # kernel death, bad notebook JSON, missing kernel ...
        record.update(status="failed", cell_index=None, error=f"{type(e).__name__}: {e}")
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def _pretrained_parameter(notebook: Path, pretrained: str | None) -> dict:
    """{"pretrained": ...} for a notebook whose parameters cell has one (a local folder made absolute: the notebooks
    run in their own folder), else {}."""
    if pretrained is None:
        return {}
    import papermill as pm
    if "pretrained" not in pm.inspect_notebook(str(notebook)):
        return {}
    local = Path(pretrained).expanduser()
    return {"pretrained": str(local.resolve()) if local.exists() else pretrained}


def reproduce(*, profile: str = "quick", device: str = "auto", only: str | None = None,
              out: str | Path | None = None, notebooks_dir: str | Path | None = None,
              kernel_name: str | None = None, progress: bool = True,
              pretrained: str | None = None) -> tuple[int, list[dict]]:
    """Run the notebooks; carry on past failures. Returns (exit code, one record per notebook). ``pretrained``: a
    diffusers DDPM pipeline (hub id or folder) for the notebooks that take one (a ``pretrained`` parameter: 00, 02,
    05 and 07), which then also measure the papers' settings on it."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")
    notebooks = find_notebooks(Path(notebooks_dir) if notebooks_dir else default_notebooks_dir(), only)
    out_dir = Path(out) if out else Path("runs") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = out_dir.resolve()
    check_output_dir(out_dir)
    nb_dir = notebooks[0].parent.resolve()
    # relative to the notebooks' working folder, so that results files carry no absolute path of this machine
    parameters = {"profile": profile, "device": device, "output_dir": os.path.relpath(out_dir, nb_dir)}

    os.environ.setdefault("FASTDIFF_PROGRESS", "final")   # the kernels inherit it: one line per progress bar
    records = []
    bar = progress_bar(notebooks, desc="notebooks", unit="nb", disable=not progress)
    with file_lock(out_dir / "summary.json", what=f"the run folder {out_dir}"):   # one reproduce per folder
        for nb in bar:
            bar.set_postfix_str(nb.stem)
            records.append(run_notebook(nb, out_dir, {**parameters, **_pretrained_parameter(nb, pretrained)},
                                        kernel_name))
        save_results(out_dir, "summary", {"parameters": {**parameters, "pretrained": pretrained},
                                          "notebooks": records})

    failed = [r for r in records if r["status"] != "ok"]
    for r in records:
        line = f"{r['status']:>6}  {r['notebook']}  ({r['seconds']} s)"
        if r["status"] != "ok":
            error = r["error"].splitlines()[0] if r["error"] else ""
            if r.get("cell_index") is None:
                line += f"\n        {error}"
            else:
                line += (f"\n        failing cell {r['cell_index']} of {r['output']} (In [{r['execution_count']}]: "
                         f"{r['source']})\n        {error}")
        print(line)
    print(f"{len(records) - len(failed)} of {len(records)} notebooks ran; outputs in {out_dir}")
    return (1 if failed else 0), records
