"""What ``fastdiff info`` and ``fastdiff weights`` report: versions, devices, dtype support, and which
pretrained files and datasets are on this machine."""
from __future__ import annotations

import importlib.metadata as md
import platform
from pathlib import Path

import torch

from . import weights
from .devices import cpu_features, device_name, dtype_name, resolve_dtype

PACKAGES = ("fastdiff", "torch", "torchvision", "numpy", "lpips", "torch-fidelity", "scikit-image", "mlxtend",
            "papermill", "nbval", "ipywidgets", "jupyterlab")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def devices() -> list[dict]:
    cpu = torch.device("cpu")
    rows = [{"device": "cpu", "name": device_name(cpu), **cpu_features(),
             "bf16_kernels": bool(torch.backends.mkldnn.is_available()
                                  and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
             "auto_dtype": dtype_name(resolve_dtype("auto", cpu))}]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        d = torch.device("cuda", i)
        props = torch.cuda.get_device_properties(d)
        rows.append({"device": f"cuda:{i}", "name": props.name, "capability": f"{props.major}.{props.minor}",
                     "memory_gb": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported(),
                     "fp16": True, "auto_dtype": dtype_name(resolve_dtype("auto", d))})
    return rows


def datasets(root: str | Path = "data") -> list[dict]:
    """Which datasets load here without a download (the torchvision ones are looked for under ``root``)."""
    from .data import DatasetUnavailableError, _torchvision_dataset, load_photo, mnist_digits, BUILTIN_PHOTOS
    checks = {"mnist-builtin": lambda: mnist_digits(32),
              "photos": lambda: [load_photo(p) for p in BUILTIN_PHOTOS]}
    for name in ("cifar10", "mnist", "celeba"):
        checks[name] = lambda name=name: _torchvision_dataset(name, Path(root), True, False)
    rows = []
    for name, check in checks.items():
        try:
            check()
            rows.append({"dataset": name, "available": True, "note": ""})
        except (DatasetUnavailableError, ImportError, OSError, RuntimeError) as e:
            rows.append({"dataset": name, "available": False, "note": str(e).split(". ")[0]})
    return rows


def format_info(root: str | Path = "data") -> str:
    lines = ["fastdiff info", "", "versions:"]
    lines += [f"  {k:15} {v or 'not installed'}" for k, v in versions().items()]
    lines += ["", "devices:"]
    for d in devices():
        extra = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("device", "name"))
        lines.append(f"  {d['device']:7} {d['name']}  ({extra})")
    if not torch.cuda.is_available():
        lines.append("  (torch sees no CUDA GPU)")
    lines += ["", f"pretrained weights (torch hub folder: {weights.checkpoints_dir()}):"]
    lines += [_weights_line(r) for r in weights.status()]
    lines += ["", f"datasets (torchvision sets looked for under {Path(root).resolve()}):"]
    for r in datasets(root):
        lines.append(f"  {'yes' if r['available'] else 'no ':4} {r['dataset']:14} {r['note']}")
    return "\n".join(lines)


def _weights_line(r: dict) -> str:
    state = f"present ({r['megabytes']} MB)" if r["present"] else "MISSING"
    return f"  {r['key']:20} {state:20} {r['file']}  — {r['used_for']}"


def fetch_weights(keys: list[str] | None = None, *, check_only: bool = False, progress: bool = True) -> tuple[int, str]:
    """Download every missing pretrained file (or only ``keys``); returns (exit code, report). The exit code
    is 1 when a download was attempted and failed, else 0."""
    keys = keys or list(weights.FILES)
    for k in keys:
        if k not in weights.FILES:
            raise ValueError(f"unknown pretrained file {k!r}; known: {sorted(weights.FILES)}")
    lines, failed = [f"pretrained weights (torch hub folder: {weights.checkpoints_dir()}):"], []
    for key in keys:
        if not check_only and not weights.is_available(key):
            try:
                weights.download(key, progress=progress)
            except weights.WeightsDownloadError as e:
                failed.append(key)
                lines.append(f"  {key}: download failed: {e}")
    lines += [_weights_line(r) for r in weights.status() if r["key"] in keys]
    if failed:
        lines.append(f"{len(failed)} download(s) failed ({', '.join(failed)}); without them the notebooks skip "
                     f"those metrics and say so.")
    return (1 if failed else 0), "\n".join(lines)
