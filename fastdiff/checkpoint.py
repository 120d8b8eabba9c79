"""Training checkpoints that cannot silently go wrong: written atomically, verified by a checksum of everything
in them when read, and rebuilt through the architecture registry (nothing read from a file chooses code).

A checkpoint is a dict: ``version``, ``model_spec`` (`fastdiff.registry.model_spec`), ``train_config``,
``schedule`` (its tensors), ``step``, ``model``, ``ema``, ``optimizer``, ``scaler``, ``rng``, ``history``,
``evals``, ``sessions`` (how many `train` calls it took) and ``checksum``: the sha256 of all the rest,
tensors by their bytes. Version 1 (fastdiff 0.1: a class name and a module path, no checksum) still loads.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from .registry import build_model, from_legacy, model_spec
from .files import atomic_write

CHECKPOINT_VERSION = 2   # 2: the model as a registered spec, the schedule's tensors, a checksum


class CheckpointError(ValueError):
    """A checkpoint file is missing, empty, truncated, corrupt or not a fastdiff checkpoint; the message names
    the file and says which."""


def digest(obj) -> str:
    """sha256 of a nested structure of dicts, lists, tensors and plain values (tensors by dtype, shape and bytes)."""
    h = hashlib.sha256()

    def feed(value, key: str):
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                feed(value[k], f"{key}/{k}")
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                feed(v, f"{key}[{i}]")
        else:
            h.update(json.dumps(value, default=repr).encode())
    feed({k: v for k, v in obj.items() if k != "checksum"}, "")
    return h.hexdigest()


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """Write atomically (temporary file, fsync, rename; stale temporaries of a killed writer are removed), with
    the checksum `load_checkpoint` verifies."""
    payload = {**payload, "checksum": digest(payload)}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A training checkpoint, verified and converted to the current version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): its write was interrupted or it is not a "
                              f"checkpoint; delete it (training then starts over) or restore a copy")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # EOFError, KeyError, UnpicklingError, BadZipFile ... all mean: cannot be read
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); delete it or restore a copy") from e
    if not isinstance(ckpt, dict) or "version" not in ckpt:
        raise CheckpointError(f"{path} is not a fastdiff training checkpoint (it holds a {type(ckpt).__name__}"
                              + (f" with keys {sorted(ckpt)[:6]}" if isinstance(ckpt, dict) else "") + ")")
    version = ckpt["version"]
    if version == 1:
        return _from_version_1(ckpt, path)
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is a fastdiff checkpoint of version {version!r}; this fastdiff reads versions "
                              f"1 and {CHECKPOINT_VERSION} (a newer fastdiff wrote it?)")
    missing = [k for k in ("model_spec", "model", "ema", "step", "checksum") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it is not a complete fastdiff checkpoint")
    if digest(ckpt) != ckpt["checksum"]:
        raise CheckpointError(f"checkpoint {path} is corrupt: its contents do not match the checksum written with "
                              f"them (flipped bytes on disk?). Delete it or restore a copy; do not resume from it")
    return ckpt


def _from_version_1(ckpt: dict, path: Path) -> dict:
    """Version 1 (before the registry): ``arch`` (a class name), ``module``, ``model_config``, and ``amp`` "none"
    for fp32. The weights are renamed where a wrapper's inner model moved (``unet.`` -> ``inner.``). It carries no
    checksum, so only its structure can be checked."""
    ckpt = dict(ckpt)
    arch, config = ckpt.pop("arch", None), ckpt.pop("model_config", None)
    if arch is None or config is None or "model" not in ckpt or "ema" not in ckpt:
        raise CheckpointError(f"{path} claims version 1 but has no model class, config or weights")
    spec, ckpt["model"] = from_legacy(arch, config, ckpt["model"])
    ckpt["ema"] = from_legacy(arch, config, ckpt["ema"])[1]
    ckpt.pop("module", None)   # the module path is never imported
    ckpt["model_spec"] = model_spec(build_model(spec))   # with today's defaults for fields added since
    train_config = dict(ckpt.get("train_config", {}))
    if train_config.get("amp") == "none":
        train_config["amp"] = "fp32"
    ckpt["train_config"] = train_config
    ckpt.setdefault("sessions", 1)
    ckpt["version"] = CHECKPOINT_VERSION
    return ckpt


def load_model(path: str | Path, *, ema: bool = True, map_location="cpu") -> nn.Module:
    """Rebuild the model stored in a checkpoint from its registered spec (EMA weights by default), in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    model = build_model(ckpt["model_spec"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.eval()
