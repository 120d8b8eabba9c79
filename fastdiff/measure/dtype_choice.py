"""Which precision a model samples in, chosen by timing that model here (issue 30). The instruction set alone
misleads: on one AMX CPU the 0.38M-parameter digits U-Net runs at 0.83x its fp32 speed in bf16, while the 35.7M
CIFAR-10 U-Net runs 3.5x faster (bf16 + channels_last).

`choose_dtype` times a few forward calls ``model(x, t, **cond)`` in fp32 and under each lower-precision autocast,
side by side (`fastdiff.measure.bench.interleaved`) after warm-up, and keeps a lower precision only when it is at
least ``margin`` times faster (default 1.1x): a precision change must pay for its quality risk. Where a precision
is emulated (bf16 on an AVX2 CPU, ~25x slower) it is not timed, and the record says so. Measurements are cached in
memory per (architecture, input shapes, device label, candidates), so a notebook that asks twice measures once.

`resolve_dtype_for` is `fastdiff.devices.resolve_dtype` for sampling one model: a fixed name is taken as given,
``auto`` measures where the device runs bf16 in hardware and is fp32 elsewhere. Training keeps `resolve_dtype`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import numbers

import torch
from torch import nn

from ..devices import (DTYPES, autocast, bf16_native, cpu_features, device_name, instruction_class, resolve_device,
                       resolve_dtype)
from ..nn import count_parameters
from ..registry import UnknownArchitectureError, model_spec
from .bench import interleaved, measure

MARGIN = 1.1                 # a lower precision must be this many times faster than fp32 to be chosen
MIN_SAMPLE_S = 0.02          # one timed sample repeats a short call until it lasts about this long ...
MAX_NUMBER = 20              # ... but at most this many calls
_CACHE: dict[tuple, dict] = {}


def clear_cache() -> None:
    """Forget every cached measurement (the next `choose_dtype` times again)."""
    _CACHE.clear()


def model_fingerprint(model: nn.Module) -> str:
    """What a model's speed depends on, as a short key: its registered architecture and config (`model_spec`;
    wrappers include the model they wrap), else its class; its parameter count and parameter dtypes. Not its
    weights' values."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        spec = model_spec(model)
        name = spec["arch"]
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    except (UnknownArchitectureError, AttributeError, TypeError):
        name, digest = f"{type(model).__module__}.{type(model).__qualname__}", "unregistered"
    dtypes = ",".join(sorted({str(p.dtype).replace("torch.", "") for p in model.parameters()})) or "no parameters"
    return f"{name}:{digest}:{count_parameters(model)} params:{dtypes}"


def default_candidates(device: torch.device) -> tuple[str, ...]:
    """The precisions timed against fp32 unless told: bf16 everywhere, fp16 too on a GPU."""
    return ("bf16", "fp16") if device.type == "cuda" else ("bf16",)


def emulated(name: str, device: torch.device) -> str | None:
    """Why ``name`` would not be worth timing on ``device`` (emulated, unsupported), or None."""
    if device.type == "cuda":
        if name == "bf16" and not torch.cuda.is_bf16_supported():
            return "this GPU has no bf16: not measured"
        return None
    cls = instruction_class()
    if name == "bf16" and not bf16_native(device):
        slow = " (~25x slower than fp32)" if cls in ("AVX2", "no AVX2") else ""
        return f"bf16 is emulated on this {cls} CPU{slow}: not measured"
    if name == "fp16" and "avx512_fp16" not in cpu_features()["flags"] and cls != "AMX":
        return f"fp16 is emulated on this {cls} CPU: not measured"
    return None


def _device(device) -> torch.device:
    if isinstance(device, str):
        return resolve_device(device)
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device or a name ('cpu', 'cuda'), got {type(device).__name__}")
    return device


def _candidates(candidates, device: torch.device) -> tuple[str, ...]:
    if candidates is None:
        return default_candidates(device)
    if isinstance(candidates, str) or not hasattr(candidates, "__iter__"):
        raise TypeError(f"candidates must be a list of dtype names such as ['bf16', 'fp16'], got {candidates!r}")
    names = list(dict.fromkeys(candidates))
    bad = [n for n in names if not isinstance(n, str) or n not in DTYPES]
    if bad:
        raise ValueError(f"unknown candidate dtype(s) {bad!r}; use names from {sorted(DTYPES)}")
    return tuple(n for n in names if n != "fp32")         # fp32 is always the baseline


def _example(model, example, batch_size, device: torch.device):
    """(x, t, cond) on ``device``: the given example, or the model's own `example_inputs` of ``batch_size``."""
    if example is None:
        if batch_size is None:
            raise ValueError("pass example=(x, t) or (x, t, cond), or batch_size= to time the model on its own "
                             "example inputs (the choice depends on the batch: give the sampling batch)")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not hasattr(model, "example_inputs"):
            raise TypeError(f"{type(model).__name__} has no example_inputs(batch_size): pass example=(x, t)")
        x, t, cond = model.example_inputs(batch_size, generator=torch.Generator().manual_seed(0))
    elif isinstance(example, (tuple, list)) and len(example) in (2, 3):
        x, t, cond = (*example, {}) if len(example) == 2 else example
    else:
        raise TypeError(f"example must be (x, t) or (x, t, cond), got {type(example).__name__}"
                        f"{' of length ' + str(len(example)) if isinstance(example, (tuple, list)) else ''}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"example x must be a floating-point tensor, got "
                        f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(t, (torch.Tensor, numbers.Number)):
        raise TypeError(f"example t must be a tensor or a number, got {type(t).__name__}")
    if not isinstance(cond, dict):
        raise TypeError(f"example cond must be a dict of keyword arguments, got {type(cond).__name__}")
    move = (lambda v: v.to(device) if isinstance(v, torch.Tensor) else v)
    return move(x), move(t), {k: move(v) for k, v in cond.items()}


def _shape_key(x, t, cond) -> tuple:
    def one(v):
        return (tuple(v.shape), str(v.dtype)) if isinstance(v, torch.Tensor) else repr(v)
    return (one(x), one(t), tuple(sorted((k, one(v)) for k, v in cond.items())))


def _decide(measured: dict, margin: float) -> dict:
    """The choice from cached or fresh times: the fastest precision at least ``margin`` x fp32's speed, else fp32."""
    ms = measured["median_ms"]
    speedup = {n: ms["fp32"] / ms[n] for n in ms if n != "fp32"}
    best = max(speedup, key=speedup.get, default=None)
    if best is not None and speedup[best] >= margin:
        choice, reason = best, f"{best} ran {speedup[best]:.2f}x fp32's speed here (margin {margin:g}x)"
    elif best is not None:
        choice, reason = "fp32", (f"{best} ran {speedup[best]:.2f}x fp32's speed here, below the {margin:g}x "
                                  f"margin: fp32 kept")
    else:
        choice, reason = "fp32", "no lower precision was measured: fp32 kept"
    return {"dtype": choice, "reason": reason, "margin": margin, "speedup": speedup}


def choose_dtype(model: nn.Module, example=None, *, device, batch_size: int | None = None, candidates=None,
                 margin: float = MARGIN, rounds: int = 5, warmup: int = 1, cache: bool | dict = True) -> dict:
    """Time ``model(x, t, **cond)`` on ``example`` ((x, t) or (x, t, cond); or the model's own example inputs of
    ``batch_size``) in fp32 and under autocast to each of ``candidates`` (default: bf16; on a GPU fp16 too), and
    choose the fastest one at least ``margin`` times faster than fp32, else fp32.

    Each precision is warmed up ``warmup`` times, then ``rounds`` interleaved samples are taken, each of as many
    consecutive calls as make about 20 ms (at most 20). Precisions the device emulates are skipped, not timed.
    ``cache``: True uses the module's in-memory cache (`clear_cache`), a dict uses that dict, False always measures.
    The model is timed in eval mode and under ``torch.no_grad``; its training mode is restored.

    Returns {"dtype": chosen name, "reason", "margin", "speedup": {name: fp32 time / its time}, "median_ms",
    "iqr_ms": {name: ms per call}, "skipped": {name: why}, "model": `model_fingerprint`, "input_shape", "device":
    the device label, "rounds", "number" (calls per sample), "measured": True, "cached": whether it was reused}."""
    device = _device(device)
    fingerprint = model_fingerprint(model)
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not margin >= 1.0 or math.isinf(margin):
        raise ValueError(f"margin must be a number >= 1 (a lower precision must be that many times faster), "
                         f"got {margin!r}")
    for name, value, least in (("rounds", rounds, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not isinstance(cache, (bool, dict)):
        raise TypeError(f"cache must be True, False or a dict, got {type(cache).__name__}")
    names = _candidates(candidates, device)
    on = {p.device.type for p in model.parameters()}
    if on and on != {device.type}:
        raise ValueError(f"the model's parameters are on {sorted(on)}, but device is {device}: move the model first")
    x, t, cond = _example(model, example, batch_size, device)
    label = device_name(device)
    store = _CACHE if cache is True else (cache if isinstance(cache, dict) else None)
    key = (fingerprint, _shape_key(x, t, cond), label, names)
    if store is not None and key in store:
        measured = copy.deepcopy(store[key])             # the caller may edit its record; the cache stays
        return {**_decide(measured, margin), **measured, "cached": True}

    skipped = {n: why for n in names if (why := emulated(n, device)) is not None}

    def call(dtype):
        def run():
            with torch.no_grad(), autocast(device, dtype):
                model(x, t, **cond)
        return run
    calls = {"fp32": call(torch.float32)}
    was_training = model.training
    model.eval()
    try:
        fp32_s = measure(calls["fp32"], device=device, warmup=warmup, repeats=1)["median_s"]
        for n in names:
            if n in skipped:
                continue
            calls[n] = call(DTYPES[n])
            try:
                for _ in range(max(warmup, 1)):
                    calls[n]()
            except RuntimeError as e:                      # an autocast this build or device cannot run
                skipped[n] = f"{n} failed here ({str(e).splitlines()[0][:120]}): not measured"
                del calls[n]
        number = min(MAX_NUMBER, max(1, math.ceil(MIN_SAMPLE_S / max(fp32_s, 1e-9))))
        times = interleaved(calls, device=device, rounds=rounds, warmup=0, number=number)
    finally:
        model.train(was_training)
    measured = {"median_ms": {n: s["median_s"] * 1e3 for n, s in times.items()},
                "iqr_ms": {n: s["iqr_s"] * 1e3 for n, s in times.items()}, "skipped": skipped,
                "model": fingerprint, "input_shape": list(x.shape), "device": label, "rounds": rounds,
                "number": number, "measured": True}
    if store is not None:
        store[key] = copy.deepcopy(measured)
    return {**_decide(measured, margin), **measured, "cached": False}


def resolve_dtype_for(name: str, model: nn.Module, example=None, *, device, batch_size: int | None = None,
                      **options) -> tuple[torch.dtype, dict]:
    """`resolve_dtype` for sampling ``model``: (dtype, record). A fixed name (fp32, bf16, fp16) is taken as given.
    ``auto`` is fp32 where the device has no bf16 in hardware (`bf16_native`: an AVX2 CPU, a GPU without bf16),
    and elsewhere (a bf16 GPU, an AMX or AVX-512 BF16 CPU) whichever of fp32 and bf16 `choose_dtype` measures
    faster for this model by its margin (``options`` go to it: margin, rounds, warmup, cache)."""
    device = _device(device)
    if not isinstance(name, str):
        raise TypeError(f"dtype must be a name ('auto', 'fp32', 'bf16', 'fp16'), got {type(name).__name__}")
    if name != "auto":
        return resolve_dtype(name, device), {"dtype": name, "reason": f"{name} as asked", "measured": False}
    if not bf16_native(device):
        where = "GPU" if device.type == "cuda" else f"{instruction_class()} CPU"
        return torch.float32, {"dtype": "fp32", "reason": f"bf16 is not native on this {where}: fp32, not measured",
                               "measured": False}
    record = choose_dtype(model, example, device=device, batch_size=batch_size, candidates=("bf16",), **options)
    return DTYPES[record["dtype"]], record
