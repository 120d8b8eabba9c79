"""The model zoo: trained weights that ship inside the package, each with its provenance.

An entry is one model a notebook evaluates, named ``<study>/<model>`` (``basics/quick-ddpm``). Its file holds
the model's registered spec (`fastdiff.registry`) and its EMA weights in half precision; `index.json` holds, per
entry, what a reader needs to trust it: parameters, data, steps, batch size, wall time, device, training dtype,
final loss, the git commit of the code that trained it, how many sessions the training took, and the file's
sha256, which `load` verifies. The recipes that train the entries live with their studies
(``fastdiff.studies.<study>.ZOO``) and run with ``fastdiff train NAME``; `export` turns a finished training
checkpoint into an entry.

Reading checks the index (`entries`): another format, or an entry with a missing or wrongly typed field, is a
`ZooError` naming the file, the entry and the field; a field this version does not know is ignored with a
`ZooIndexWarning` (the weights themselves are checked by their sha256, so an extra provenance field cannot hurt).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import re
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .registry import build_model
from .files import atomic_write, file_lock

ZOO_DIR = Path(__file__).parent / "zoo"
INDEX_NAME = "index.json"
INDEX_LOCK_WAIT_S = 60.0     # an export waits this long for another export to finish its index update
FORMAT = "fastdiff.zoo/1"


class ZooError(ValueError):
    """A zoo entry is unknown, missing or does not match its recorded checksum; the message says what to do."""


class ZooIndexWarning(UserWarning):
    """The zoo index has a field this fastdiff does not know (written by a newer version); it is ignored."""


@dataclass
class ZooEntry:
    name: str
    file: str                     # relative to the zoo folder
    sha256: str
    parameters: int
    data: str
    steps: int
    batch_size: int
    wall_seconds: float           # training time over all sessions (evaluation excluded)
    device: str                   # what it was trained on
    train_dtype: str              # autocast dtype of training
    final_loss: float
    git_commit: str
    trained_utc: str
    sessions: int = 1             # 1: trained in one go; more: resumed from its checkpoint that many times - 1
    stored_dtype: str = "fp16"
    recipe: dict = field(default_factory=dict)
    notes: str = ""
    curves_file: str = ""         # the training loss and evaluation curves, beside the weights

    @property
    def provenance(self) -> str:
        """One line for every table and printout that uses the model."""
        resumed = "" if self.sessions == 1 else f", resumed over {self.sessions} sessions"
        return (f"zoo:{self.name} ({self.parameters / 1e6:.2f}M params, {self.steps} steps x batch {self.batch_size} "
                f"on {self.data}, {self.wall_seconds / 60:.0f} min on {self.device}, {self.train_dtype}{resumed}, "
                f"git {self.git_commit[:10]}, stored {self.stored_dtype})")


def _index_path(zoo_dir: Path | None) -> Path:
    return Path(zoo_dir or ZOO_DIR) / INDEX_NAME


def entries(zoo_dir: str | Path | None = None) -> dict[str, ZooEntry]:
    """Every entry in the zoo's index, by name. The index is checked: not JSON, another format, or an entry with a
    missing or wrongly typed field is a `ZooError` naming the file, the entry and the field. A field this version
    does not know (an index written by a newer fastdiff) is ignored with a `ZooIndexWarning` naming it; `export`
    rewrites the index without it."""
    path = _index_path(zoo_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"the zoo index {path} is not valid JSON ({e}); restore it from git") from e
    found = {n: _checked_entry(path, n, e) for n, e in _index_entries(path, data).items()}
    return {n: ZooEntry(**e) for n, e in found.items()}


_KINDS = {"str": ((str,), "text"), "int": ((int,), "an integer"), "float": ((int, float), "a number"),
          "dict": ((dict,), "an object")}     # ZooEntry's annotations -> the JSON types that fit them


def _index_entries(path: Path, data) -> dict:
    """The index's {name: entry} after its format is checked."""
    fmt = data.get("format") if isinstance(data, dict) else None
    if fmt != FORMAT:
        newer = isinstance(fmt, str) and fmt.startswith("fastdiff.zoo/")
        what = f"format {fmt!r}" if isinstance(data, dict) else f"a {type(data).__name__}"
        raise ZooError(f"{path} " + (f"was written by another fastdiff version ({what}; this one reads {FORMAT!r}): "
                                     f"upgrade fastdiff, or restore the index from git" if newer else
                                     f"is not a fastdiff zoo index ({FORMAT}; it holds {what}); restore it from git"))
    if not isinstance(data.get("entries"), dict):
        raise ZooError(f"{path}: 'entries' is missing or not an object (written by another fastdiff version?); "
                       f"restore it from git")
    return data["entries"]


def _checked_entry(path: Path, name: str, e) -> dict:
    """Entry ``name`` of the index ``path`` as `ZooEntry` keywords: a ZooError names a missing or wrongly typed
    field; unknown fields are dropped with a warning."""
    problems = _entry_problems(name, e)
    if problems:
        raise ZooError(f"{path}, entry {name!r}: {'; '.join(problems)} (written by another fastdiff version?); "
                       f"restore the index from git, or retrain with `fastdiff train {name}`")
    known = {f.name for f in dataclasses.fields(ZooEntry)}
    unknown = [k for k in e if k not in known]
    if unknown:
        warnings.warn(f"{path}, entry {name!r}: unknown field{'s' * (len(unknown) > 1)} "
                      f"{', '.join(map(repr, unknown))} ignored (written by a newer fastdiff version?)",
                      ZooIndexWarning, stacklevel=2)
    return {k: v for k, v in e.items() if k in known}


def _entry_problems(name: str, e) -> list[str]:
    if not isinstance(e, dict):
        return [f"is a {type(e).__name__}, not an object"]
    problems = []
    for f in dataclasses.fields(ZooEntry):
        if f.name not in e:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"missing field {f.name!r}")
            continue
        types, kind = _KINDS[f.type]
        if isinstance(e[f.name], bool) or not isinstance(e[f.name], types):
            problems.append(f"field {f.name!r} is {type(e[f.name]).__name__} {str(e[f.name])[:40]!r}, not {kind}")
    if problems:
        return problems
    if e["name"] != name:
        problems.append(f"its name field says {e['name']!r}")
    if not re.fullmatch(r"[0-9a-f]{64}", e["sha256"]):
        problems.append(f"sha256 {e['sha256'][:20]!r} is not 64 hex digits")
    if Path(e["file"]).is_absolute() or ".." in Path(e["file"]).parts:
        problems.append(f"file {e['file']!r} is not a path inside the zoo folder")
    return problems


def entry(name: str, zoo_dir: str | Path | None = None) -> ZooEntry:
    known = entries(zoo_dir)
    if name not in known:
        hint = f"known entries: {', '.join(sorted(known))}" if known else "the zoo is empty"
        raise ZooError(f"no zoo entry {name!r} ({hint}). Train it with `fastdiff train {name}`, or set the "
                       f"notebook's weights = \"train\" to train under its profile")
    return known[name]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(name: str, *, device: str | torch.device = "cpu", zoo_dir: str | Path | None = None,
         verbose: bool = True) -> tuple[nn.Module, ZooEntry]:
    """(model in eval mode, float32 on ``device``; its entry). The file's sha256 must match the index."""
    e = entry(name, zoo_dir)
    path = Path(zoo_dir or ZOO_DIR) / e.file
    if not path.is_file():
        raise ZooError(f"zoo entry {name!r} is in the index but its file {path} is missing; reinstall fastdiff or "
                       f"run `fastdiff train {name}`")
    digest = sha256_of(path)
    if digest != e.sha256:
        raise ZooError(f"zoo file {path} does not match its recorded sha256 ({digest[:12]} != {e.sha256[:12]}): it "
                       f"is corrupt or was changed. Restore it from git, or retrain with `fastdiff train {name}`")
    stored = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(stored["spec"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored["state_dict"].items()})
    model = model.to(device).eval()
    if verbose:
        print(f"loaded {e.provenance}")
    return model, e


def curves(name: str, zoo_dir: str | Path | None = None) -> dict:
    """The entry's training curves: {"history": [{step, loss, seconds}], "evals": [{step, seconds, ...}]}."""
    e = entry(name, zoo_dir)
    path = Path(zoo_dir or ZOO_DIR) / e.curves_file
    if not (e.curves_file and path.is_file()):
        return {"history": [], "evals": []}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZooError(f"the curves file {path} of zoo entry {name!r} is not valid JSON ({err}); restore it from git, "
                       f"or retrain with `fastdiff train {name}`") from err
    if not (isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("history", "evals"))):
        raise ZooError(f"the curves file {path} of zoo entry {name!r} lacks its 'history' and 'evals' lists; restore "
                       f"it from git, or retrain with `fastdiff train {name}`")
    return data


def git_commit(repo: Path | None = None) -> str:
    """HEAD of the checkout this package lives in, with "+dirty" when its fastdiff/ has uncommitted changes."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "fastdiff"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def export(name: str, checkpoint: dict, *, data: str, device: str, sessions: int = 1, recipe: dict | None = None,
           notes: str = "", git_commit: str | None = None, zoo_dir: str | Path | None = None) -> ZooEntry:
    """Write the EMA weights of a (verified, loaded) training checkpoint as zoo entry ``name``, in half
    precision, and record it in the index. ``git_commit`` is the code that trained it (default: HEAD now).
    Returns the entry."""
    zoo_dir = Path(zoo_dir or ZOO_DIR)
    spec, ema = checkpoint["model_spec"], checkpoint["ema"]
    model = build_model(spec)
    model.load_state_dict(ema)
    half = {k: v.half() if v.is_floating_point() else v for k, v in ema.items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "name": name, "spec": spec, "state_dict": half}, buffer)
    rel = f"{name}.pt"
    path = atomic_write(zoo_dir / rel, lambda f: f.write(buffer.getvalue()))
    history = checkpoint["history"]
    cfg = checkpoint["train_config"]
    curves = json.dumps({"history": [{k: h[k] for k in ("step", "loss", "seconds")} for h in history],
                         "evals": checkpoint.get("evals", [])}).encode()
    atomic_write(zoo_dir / f"{name}.curves.json", lambda f: f.write(curves))
    e = ZooEntry(name=name, file=rel, sha256=sha256_of(path),
                 parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
                 data=data, steps=checkpoint["step"], batch_size=cfg["batch_size"],
                 wall_seconds=round(history[-1]["seconds"], 1) if history else 0.0, device=device,
                 train_dtype=cfg["amp"], final_loss=float(_mean_tail(history)),
                 git_commit=git_commit or globals()["git_commit"](),
                 trained_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), sessions=sessions,
                 recipe={"train_config": cfg, **(recipe or {})}, notes=notes, curves_file=f"{name}.curves.json")
    index_path = _index_path(zoo_dir)
    with file_lock(index_path, what=f"the zoo index {index_path}", wait_s=INDEX_LOCK_WAIT_S):  # read-modify-write
        index = {n: dataclasses.asdict(x) for n, x in entries(zoo_dir).items()}
        index[name] = dataclasses.asdict(e)
        text = json.dumps({"format": FORMAT, "entries": dict(sorted(index.items()))}, indent=1).encode()
        atomic_write(index_path, lambda f: f.write(text))
    return e


def _mean_tail(history: list[dict], n: int = 10) -> float:
    """The final loss as the mean of the last ``n`` logged losses (one batch's loss is noisy)."""
    tail = [h["loss"] for h in history[-n:]]
    return sum(tail) / len(tail) if tail else float("nan")


def table(zoo_dir: str | Path | None = None) -> list[dict]:
    """One row per entry, for `fastdiff zoo` and the results README."""
    rows = []
    for e in entries(zoo_dir).values():
        path = Path(zoo_dir or ZOO_DIR) / e.file
        rows.append({"name": e.name, "params (M)": round(e.parameters / 1e6, 3), "data": e.data, "steps": e.steps,
                     "batch": e.batch_size, "wall (min)": round(e.wall_seconds / 60, 1), "device": e.device,
                     "dtype": e.train_dtype, "final loss": round(e.final_loss, 5), "sessions": e.sessions,
                     "git": e.git_commit[:12], "sha256": e.sha256[:12],
                     "MB": round(path.stat().st_size / 2**20, 2) if path.is_file() else None})
    return rows
