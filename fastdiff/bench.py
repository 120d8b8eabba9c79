"""The one timing harness: warm-up, device synchronisation, median and spread over repeats, FLOPs, peak
memory; every row labelled with device, dtype, batch size and torch version.

Speed is measured here and in ``benchmarks/``, never asserted in tests. Ratios are only meaningful
between rows measured in the same run on the same device.
"""
from __future__ import annotations

import statistics
import threading
import time
from contextlib import nullcontext

import torch

from .nn import count_parameters
from .utils import device_name, dtype_name, synchronize


def measure(fn, *, device: torch.device, warmup: int = 2, repeats: int = 10,
            max_seconds: float | None = None) -> dict:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, synchronising the device around each.
    With ``max_seconds``, stops early once that much time was spent timing (always at least one repeat):
    a 30-second sampler gets one repeat, a 0.1-second forward gets all of them.
    Returns median, min, max and interquartile range in seconds, the number of repeats, and the last call's
    return value as ``result``."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    times, spent = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if max_seconds is not None and spent >= max_seconds:
            break
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "iqr_s": q[2] - q[0], "repeats": len(times),
            "result": result}


def count_flops(fn) -> int:
    """FLOPs of one call as ``torch.utils.flop_counter`` counts them: matmuls, convolutions and attention
    (2 per multiply-add); elementwise ops and normalisation are not counted."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class _RSSSampler(threading.Thread):
    """Polls this process's resident set size every ``interval`` seconds; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        import psutil
        self.process, self.interval = psutil.Process(), interval
        self.peak = self.process.memory_info().rss
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def peak_memory(fn, *, device: torch.device) -> dict:
    """Peak memory during one call. CUDA: ``torch.cuda.max_memory_allocated`` (tensors only). CPU: peak
    resident set size of the whole process (sampled every 2 ms), and how much it grew during the call."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                "memory_measure": "cuda max_memory_allocated"}
    sampler = _RSSSampler()
    baseline = sampler.peak
    sampler.start()
    try:
        fn()
    finally:
        peak = sampler.stop()
    return {"peak_memory_mb": peak / 2**20, "memory_growth_mb": (peak - baseline) / 2**20,
            "memory_measure": "process peak RSS"}


def benchmark(fn, *, label: str, device: torch.device, dtype: torch.dtype, batch_size: int,
              warmup: int = 2, repeats: int = 10, max_seconds: float | None = None, flops: bool = True,
              memory: bool = True, params: int | None = None, **extra) -> dict:
    """One result row for ``fn`` (which processes ``batch_size`` images per call): latency, images/s,
    GFLOPs per call and achieved GFLOP/s, peak memory, parameters, and the labels every row carries.
    ``extra`` keyword arguments are copied into the row (e.g. ``layout="channels_last"``). FLOPs and memory
    each cost one more untimed call."""
    row = {"label": label, "device": device_name(device), "device_type": device.type, "dtype": dtype_name(dtype),
           "batch_size": batch_size, "torch": str(torch.__version__), **extra}
    if params is not None:
        row["params"] = params
    t = measure(fn, device=device, warmup=warmup, repeats=repeats, max_seconds=max_seconds)
    row.update({"median_ms": t["median_s"] * 1e3, "iqr_ms": t["iqr_s"] * 1e3, "min_ms": t["min_s"] * 1e3,
                "max_ms": t["max_s"] * 1e3, "repeats": t["repeats"], "images_per_s": batch_size / t["median_s"]})
    if flops:
        row["gflops"] = count_flops(fn) / 1e9
        row["gflop_per_s"] = row["gflops"] / t["median_s"]
    if memory:
        row.update(peak_memory(fn, device=device))
    return row


def benchmark_unet(model: torch.nn.Module, *, label: str, batch_size: int, device: torch.device,
                   dtype: torch.dtype = torch.float32, channels_last: bool = False, warmup: int = 2,
                   repeats: int = 10, max_seconds: float | None = None, seed: int = 0, **extra) -> dict:
    """`benchmark` of one denoising step, ``model(x_t, t, **cond)`` under ``torch.no_grad``, on random
    inputs of the model's own size. Non-fp32 dtypes run under autocast, as the training and sampling code
    does; ``channels_last`` converts the weights and inputs to NHWC (in place: the model stays converted).
    SR models get a random LR image ``sr_scale`` (an ``extra`` keyword, default 8: SR3's 16->128) times smaller."""
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).eval()
    x = torch.randn(batch_size, cfg.in_channels, cfg.image_size, cfg.image_size, generator=gen)
    x = x.to(device, memory_format=memory_format)
    t = torch.randint(0, 1000, (batch_size,), generator=gen).to(device)
    cond = {}
    if getattr(cfg, "cond_channels", 0):
        lr_size = cfg.image_size // extra.get("sr_scale", 8)
        cond["lr"] = torch.randn(batch_size, cfg.cond_channels, lr_size, lr_size, generator=gen).to(device)

    def step():
        autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
        with torch.no_grad(), autocast:
            return model(x, t, **cond)

    return benchmark(step, label=label, device=device, dtype=dtype, batch_size=batch_size, warmup=warmup,
                     repeats=repeats, max_seconds=max_seconds, params=count_parameters(model),
                     layout="channels_last" if channels_last else "contiguous",
                     image_size=cfg.image_size, **extra)
