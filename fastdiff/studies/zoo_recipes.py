"""Every study's zoo recipes, by zoo name, and `fastdiff train NAME`: train (or resume) one and export it to the
zoo. The top of the studies package: it imports every study that has recipes; no study imports it."""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch

from .. import zoo
from ..checkpoint import load_checkpoint
from ..devices import device_name, resolve_device
from ..diffusion import make_schedule
from ..files import atomic_write_text, file_lock
from ..train import train
from . import (adaptive_layer_skipping, continuous_unet, diffusion_basics, performance, patch_parallel_sr,
               vgg_conditioned_sr)
from ..recipes import Recipe, slug

STUDIES = (diffusion_basics, vgg_conditioned_sr, adaptive_layer_skipping, continuous_unet, patch_parallel_sr,
           performance)


def recipes() -> dict[str, Recipe]:
    """Every study's recipes, by zoo name."""
    found: dict[str, Recipe] = {}
    for module in STUDIES:
        for r in getattr(module, "recipes", lambda: [])():
            found[r.name] = r
    return found


def train_recipe(name: str, *, device: str = "auto", checkpoint_dir: str | Path = "runs/zoo", steps: int | None = None,
                 export: bool = True, progress: bool = True, zoo_dir: str | Path | None = None) -> dict:
    """Train (or resume) the recipe ``name`` into ``checkpoint_dir`` and, once it has all its steps, export its EMA
    weights to the zoo. ``steps`` stops at that step (the recipe's schedule is kept, so a later call resumes
    exactly); an unfinished run is not exported."""
    all_recipes = recipes()
    if name not in all_recipes:
        raise ValueError(f"no recipe {name!r}; known: {', '.join(sorted(all_recipes))}")
    recipe = all_recipes[name]
    dev = resolve_device(device)
    cfg = recipe.train
    model = recipe.build()
    schedule = make_schedule(recipe.schedule)
    path = Path(checkpoint_dir) / f"{slug(name)}.pt"
    with file_lock(path, what=f"the checkpoint {path} (recipe {name})"):
        log = _log_session(path.with_suffix(".sessions.json"), dev)
        draw = recipe.timesteps(model, schedule) if recipe.timesteps is not None else None
        evaluate = recipe.evaluate(dev, schedule) if recipe.evaluate is not None else None
        result = train(model, recipe.data(), schedule, cfg, checkpoint=path, device=dev, progress=progress,
                       timesteps=draw, until=steps, evaluate=evaluate, evaluate_every=recipe.evaluate_every)
        entry = None
        if export and result["step"] >= recipe.train.steps:
            ckpt = load_checkpoint(path)
            commits = sorted({x["git_commit"] for x in log})
            entry = zoo.export(name, ckpt, data=recipe.data_label, device=device_name(dev), sessions=ckpt["sessions"],
                               recipe={"description": recipe.description, "schedule": recipe.schedule,
                                       "sessions": log}, git_commit=log[0]["git_commit"], zoo_dir=zoo_dir,
                               notes="" if len(commits) == 1 else f"resumed under {len(commits)} commits: {commits}")
            print(f"exported {entry.provenance}")
    return {"result": result, "checkpoint": path, "entry": entry}


def _log_session(sessions_log: Path, device: torch.device) -> list[dict]:
    """Append this training session (the code it runs, the device, the time) to the checkpoint's sessions log,
    written atomically; a damaged log is an error naming it (it is the provenance of the earlier sessions)."""
    log = []
    if sessions_log.is_file():
        try:
            log = json.loads(sessions_log.read_text())
            if not isinstance(log, list) or not all(isinstance(x, dict) and "git_commit" in x for x in log):
                raise ValueError("not a list of sessions, each with its git_commit")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"the sessions log {sessions_log} is damaged ({e}): it records which code trained each "
                             f"session of this checkpoint. Restore it, or delete it to resume without that "
                             f"provenance") from e
    log.append({"git_commit": zoo.git_commit(), "device": device_name(device),
                "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    atomic_write_text(sessions_log, json.dumps(log, indent=1))
    return log
