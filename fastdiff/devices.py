"""Where and in what precision the numbers are computed: the device and dtype a notebook asks for (``auto`` picks
what is fast here), the CPU's vector/matrix extensions, the environment label every result carries, device
synchronisation and autocast."""
from __future__ import annotations

import datetime as _dt
import platform
import re
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cpu`` / ``cuda`` / ``cuda:N`` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda'")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    return device


def cpu_features() -> dict:
    """The CPU's vector/matrix extensions that decide bf16 speed, and the kernel level torch uses."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
    return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "flags": [f for f in wanted if f in flags], "amx": "amx_bf16" in flags}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 where it is reliably fast, else fp32: a bf16-capable GPU, or a CPU with AMX tiles. Without
    AMX, bf16 is emulated (AVX2 only: ~25x slower) or mixed (AVX-512 BF16: in results/cpu/performance.json faster
    than fp32 for the 35.7M-parameter CIFAR-10 U-Net, slower for the 0.38M digits U-Net), so ``auto`` keeps fp32
    there. Otherwise one of fp32, bf16, fp16."""
    if name == "auto":
        if device.type == "cuda":
            fast = torch.cuda.is_bf16_supported()
        else:
            fast = cpu_features()["amx"] and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return torch.bfloat16 if fast else torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use 'auto' or one of {sorted(DTYPES)}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}[dtype]


def instruction_class(features: dict | None = None) -> str:
    """The CPU's class for deep-learning kernels, which decides what bf16 costs there: AMX (bf16 tiles, fast),
    AVX-512 BF16 (bf16 dot products), AVX-512, AVX2 (bf16 emulated, slow) or "no AVX2"."""
    flags = set((features or cpu_features())["flags"])
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "no AVX2"


BF16_NATIVE_CLASSES = ("AMX", "AVX-512 BF16")     # CPU instruction classes with bf16 in hardware


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 in hardware, so that timing a model in bf16 can pay: a GPU torch calls
    bf16-capable, or a CPU of class AMX or AVX-512 BF16 whose oneDNN runs bf16. Elsewhere bf16 is emulated (AVX2:
    ~25x slower than fp32). Whether it is *faster* for a given model is a measurement
    (`fastdiff.measure.dtype_choice`): on one AMX CPU the digits U-Net runs at 0.83x its fp32 speed in bf16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return instruction_class() in BF16_NATIVE_CLASSES and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def device_name(device: torch.device) -> str:
    """What every number is labelled with: the GPU's name, or the CPU's model, its instruction class and the
    threads torch uses (two CPUs of one model name can differ in class: AVX2-only and AVX-512 BF16 EPYCs)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU: {model}, {instruction_class()} ({threads} thread{'s' if threads != 1 else ''})"


def machine(label: str | None) -> str:
    """A device label without its thread count ("CPU: AMD EPYC, AVX2 (2 threads)" -> "CPU: AMD EPYC, AVX2"): the
    machine. FD does not depend on threads, so an FD measured with one thread and a time measured with two on the
    same CPU model and instruction class are one machine's (bf16 rounds differently across instruction classes)."""
    return re.sub(r" \(\d+ threads?\)$", "", label or "")


def environment(device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """What every reported number is labelled with."""
    env = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
           "python": platform.python_version(), "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if dtype is not None:
        env["dtype"] = dtype_name(dtype)
    return env


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``; fp32 runs without autocast."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
