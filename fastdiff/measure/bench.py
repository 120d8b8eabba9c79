"""The one timing harness: warm-up, device synchronisation, median and spread over repeats, FLOPs, peak
memory; every row labelled with device, dtype, batch size and torch version.

Speed is measured here and in ``benchmarks/``, never asserted in tests. Ratios are only meaningful
between rows measured in the same run on the same device.
"""
from __future__ import annotations

import statistics
import threading
import time
import torch

from ..devices import device_name, dtype_name, synchronize
from ..nn import count_parameters


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
    return {**_summary(times), "result": result}


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


def interleaved(calls: dict[str, callable], *, device: torch.device, rounds: int = 5, warmup: int = 1,
                number: int = 1, progress: bool = False) -> dict[str, dict]:
    """Time several calls side by side: after ``warmup`` untimed calls of each, ``rounds`` rounds each time
    ``number`` consecutive calls of every entry in turn (timeit's convention: the sample is their mean), so a slow
    spell of a shared machine lands on all of them rather than on one, and a call of a few milliseconds is not
    timed alone. Returns {name: `measure`-style summary (median, min, max, IQR in seconds per call, repeats =
    rounds, last result)}."""
    from ..progress import progress_bar
    if rounds < 1 or warmup < 0 or number < 1:
        raise ValueError(f"need rounds >= 1, warmup >= 0 and number >= 1, got rounds={rounds}, warmup={warmup}, "
                         f"number={number}")
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, object] = {}
    for _ in progress_bar(range(rounds), desc="timing rounds", disable=not progress):
        for name, fn in calls.items():
            t = measure(fn if number == 1 else (lambda fn=fn: [fn() for _ in range(number)][-1]), device=device,
                        warmup=0, repeats=1)
            times[name].append(t["median_s"] / number)
            results[name] = t["result"]
    return {name: {**_summary(ts), "result": results[name]} for name, ts in times.items()}


def _summary(times: list[float]) -> dict:
    q = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else [times[0]] * 3
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "iqr_s": q[2] - q[0], "repeats": len(times)}


def model_step(model: torch.nn.Module, *, batch_size: int, device: torch.device, dtype: torch.dtype = torch.float32,
               channels_last: bool = False, seed: int = 0, sr_scale: int = 8, **call_kwargs):
    """A zero-argument function running one denoising step, ``model(x_t, t, **cond)`` under ``torch.no_grad``,
    on the model's own example inputs (`example_inputs`: the LR image for SR models, ...). Non-fp32 dtypes run
    under autocast, as training and sampling do; ``channels_last`` converts the weights and inputs to NHWC (in
    place: the model stays converted). ``call_kwargs`` are passed to every call (layer skipping's ``k``)."""
    from ..devices import autocast
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).eval()
    x, t, cond = model.example_inputs(batch_size, generator=torch.Generator().manual_seed(seed), sr_scale=sr_scale)
    x = x.to(device, memory_format=memory_format)
    cond = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
    cond = {**cond, **call_kwargs}

    def step():
        with torch.no_grad(), autocast(device, dtype):
            return model(x, t.to(device), **cond)
    return step


def benchmark_model(model: torch.nn.Module, *, label: str, batch_size: int, device: torch.device,
                    dtype: torch.dtype = torch.float32, channels_last: bool = False, warmup: int = 2,
                    repeats: int = 10, max_seconds: float | None = None, seed: int = 0, sr_scale: int = 8,
                    **extra) -> dict:
    """`benchmark` of one denoising step of any fastdiff model (`model_step`): a U-Net, an SR U-Net (given a
    random LR image ``sr_scale`` times smaller, default 8: SR3's 16->128) or any stack of method wrappers."""
    step = model_step(model, batch_size=batch_size, device=device, dtype=dtype, channels_last=channels_last,
                      seed=seed, sr_scale=sr_scale)
    return benchmark(step, label=label, device=device, dtype=dtype, batch_size=batch_size, warmup=warmup,
                     repeats=repeats, max_seconds=max_seconds, params=count_parameters(model),
                     layout="channels_last" if channels_last else "contiguous",
                     image_size=model.base.config.image_size, sr_scale=sr_scale, **extra)
