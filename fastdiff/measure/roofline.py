"""The roofline (Williams, Waterman and Patterson 2009) of a model on this machine: the machine's roofs measured here
(dense matmul FLOP/s per dtype, copy bandwidth), and every convolution and linear layer of one forward call placed
under them: arithmetic intensity (FLOPs per byte moved: inputs, weights and output read or written once) against the
FLOP/s the layer achieved, timed by ``torch.profiler``.

A layer far below the slanted roof (bandwidth x intensity) and the flat one (peak FLOP/s) is bound by neither:
by overheads (small tensors, layout conversions, kernel launches). The top operators' share of the call's time says
where the rest goes (group norm, SiLU, attention, copies).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

from ..devices import DTYPES
from .bench import measure


def peaks(device: torch.device, *, n: int = 2048, repeats: int = 5, dtypes=tuple(DTYPES),
          budget_s: float = 2.0) -> dict:
    """The roofs measured on ``device``: dense matmul GFLOP/s in each dtype (median of ``repeats`` products of
    ``n`` x ``n`` matrices; a dtype this hardware only emulates, fp16 on most CPUs, is measured on a smaller
    size so that one product stays under ``budget_s`` seconds, and "matmul n (dtype)" records the size), and
    copy bandwidth in GB/s (a 64 MiB fp32 tensor read and written once)."""
    device = torch.device(device)
    out = {}
    for name in dtypes:
        size = n
        probe = torch.randn(256, 256, device=device).to(DTYPES[name])
        rate = 2 * 256**3 / measure(lambda: probe @ probe, device=device, warmup=1, repeats=1)["median_s"]
        while size > 256 and 2 * size**3 / rate > budget_s:
            size //= 2
        a = torch.randn(size, size, device=device).to(DTYPES[name])
        b = torch.randn(size, size, device=device).to(DTYPES[name])
        t = measure(lambda: a @ b, device=device, warmup=1, repeats=repeats, max_seconds=5 * budget_s)
        out[f"matmul GFLOP/s ({name})"] = 2 * size**3 / t["median_s"] / 1e9
        out[f"matmul n ({name})"] = size
    x = torch.empty(64 * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    t = measure(lambda: y.copy_(x), device=device, warmup=1, repeats=repeats)
    out["copy GB/s"] = 2 * x.numel() * 4 / t["median_s"] / 1e9
    return out


@dataclass
class _Layer:
    name: str
    kind: str
    flops: int = 0
    bytes: int = 0
    calls: int = 0


def _conv_flops(m: nn.Conv2d, out: torch.Tensor) -> int:
    k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
    return 2 * out.numel() * k


def layer_roofline(model: nn.Module, step, *, device: torch.device, element_size: int = 4, repeats: int = 3) -> dict:
    """Every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` during ``step()`` (one forward call): FLOPs, bytes moved
    (``element_size`` bytes per element of input, weight and output), arithmetic intensity, profiled time (the mean
    over ``repeats`` profiled calls) and achieved GFLOP/s; and the top operators' share of the call's time.
    Returns {"layers": [...], "operators": [...], "total_ms": ...}."""
    device = torch.device(device)
    layers: dict[str, _Layer] = {}
    handles = []
    ranges: list = []

    def pre(name):
        def hook(module, inputs):
            rf = torch.profiler.record_function(f"layer::{name}")
            rf.__enter__()
            ranges.append(rf)
        return hook

    def post(name, kind):
        def hook(module, inputs, output):
            ranges.pop().__exit__(None, None, None)
            layer = layers.setdefault(name, _Layer(name, kind))
            if counting[0]:
                x = inputs[0]
                w = module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)
                layer.flops += (_conv_flops(module, output) if kind == "conv" else 2 * output.numel() * module.in_features)
                layer.bytes += (x.numel() + w + output.numel()) * element_size
                layer.calls += 1
        return hook

    for name, m in model.named_modules():
        kind = "conv" if isinstance(m, nn.Conv2d) else "linear" if isinstance(m, nn.Linear) else None
        if kind:
            handles += [m.register_forward_pre_hook(pre(name)), m.register_forward_hook(post(name, kind))]
    counting = [True]
    try:
        step()                          # warm-up, and the FLOP and byte counts of one call
        counting[0] = False
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with _profiler_chatter_filtered(), torch.profiler.profile(activities=activities) as prof:
            for _ in range(repeats):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    finally:
        for h in handles:
            h.remove()
    time_attr = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    spent: dict[str, float] = {}
    ops = []
    for ev in prof.key_averages():
        us = getattr(ev, time_attr, 0.0) or 0.0
        if ev.key.startswith("layer::"):
            spent[ev.key[len("layer::"):]] = us
        elif device.type == "cuda" or not _is_wrapper(ev.key):
            ops.append((ev.key, getattr(ev, "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total")))
    total_us = sum(us for _, us in ops)
    rows = []
    for name, layer in layers.items():
        seconds = spent.get(name, 0.0) / 1e6 / repeats
        rows.append({"layer": name, "kind": layer.kind, "GFLOP": layer.flops / 1e9, "MB moved": layer.bytes / 1e6,
                     "FLOP per byte": layer.flops / max(layer.bytes, 1), "ms": 1e3 * seconds,
                     "GFLOP/s": layer.flops / seconds / 1e9 if seconds > 0 else float("nan")})
    ops.sort(key=lambda kv: -kv[1])
    operators = [{"operator": key, "ms per call": us / 1e3 / repeats, "share of time": us / total_us if total_us else 0}
                 for key, us in ops[:10]]
    return {"layers": rows, "operators": operators, "total_ms": total_us / 1e3 / repeats}


def _is_wrapper(key: str) -> bool:
    """Profiler ranges that only contain other operators (their self time is not the model's work)."""
    return key.startswith("ProfilerStep") or key.startswith("layer::")


# What torch's profiler backend writes to the process's stderr on every start and stop (and, in a CUDA build on a
# machine without a GPU, one failed device count): noise in a notebook's output. Other lines pass through.
_CHATTER = re.compile(r"^(USDT|ERROR):.*(profiler_start|profiler_stop|gpuGetDeviceCount failed)")


@contextlib.contextmanager
def _profiler_chatter_filtered():
    """Capture file descriptor 2 during the block and write back every line but the profiler's chatter."""
    fd = 2                                    # the C++ side writes to the process's fd 2 (a kernel forwards it)
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines() if not _CHATTER.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
