"""JSON that any machine reads the same: no absolute paths of the machine that wrote it (`portable`), no NaN or
Infinity tokens (`finite_or_null`), tensors and paths as plain values, written atomically (`save_results`). The
results schema on top of it lives in `fastdiff.results`."""
from __future__ import annotations

import json
import math
import os
import warnings
import dataclasses
from pathlib import Path

import torch

from .files import atomic_write


def _jsonable(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (torch.device, torch.dtype, Path)):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):     # e.g. an Estimate: its fields
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _project_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


def portable(obj, *, cwd: Path | None = None):
    """``obj`` with this machine's absolute paths taken out of every string: a string that is a path is made
    relative to the working folder; inside other strings the project folder becomes ``<repo>`` and the home
    folder ``~``. Results files carry no absolute paths of the machine that wrote them."""
    cwd = Path(cwd or Path.cwd()).resolve()
    root, home = _project_root(cwd), Path.home()

    def fix(value):
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [fix(v) for v in value]
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str):
            return value
        if value.startswith("/") and "\n" not in value and " " not in value:
            return os.path.relpath(value, cwd)
        for folder, name in ((root, "<repo>"), (home, "~")):
            if folder is not None and str(folder) != "/":
                value = value.replace(str(folder), name)
        return value
    return fix(obj)


def finite_or_null(obj, where: str = ""):
    """(``obj`` with every NaN and +-Infinity replaced by None, {where each was: "nan" | "inf" | "-inf"}). JSON has
    no such numbers: Python writes them as the non-standard tokens ``NaN``/``Infinity`` that other readers reject."""
    found: dict[str, str] = {}

    def fix(value, at):
        if isinstance(value, float) and not math.isfinite(value):
            found[at or "the value"] = str(value)
            return None
        if isinstance(value, dict):
            return {k: fix(v, f"{at}.{k}" if at else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [fix(v, f"{at}[{i}]") for i, v in enumerate(value)]
        return value
    return fix(obj, where), found


def save_results(output_dir: str | Path, name: str, results: dict) -> Path:
    """Write ``<output_dir>/<name>.json`` atomically (absolute paths made `portable`) and return its path. The file
    is standard JSON: a NaN or infinite number is written as null and listed under ``"non-finite"`` ({where: "nan"}),
    with a warning that names them (`finite_or_null`)."""
    path = Path(output_dir) / f"{name}.json"
    data, found = finite_or_null(portable(json.loads(json.dumps(results, default=_jsonable))))
    if found:
        if not isinstance(data, dict):
            raise ValueError(f"cannot write {path}: {', '.join(found)} is not a finite number (JSON has no NaN)")
        data["non-finite"] = {**data.get("non-finite", {}), **found}
        warnings.warn(f"{path}: {len(found)} non-finite number(s) written as null: "
                      + ", ".join(f"{at} ({v})" for at, v in found.items()), stacklevel=2)
    text = json.dumps(data, indent=2, allow_nan=False).encode()
    return atomic_write(path, lambda f: f.write(text))
