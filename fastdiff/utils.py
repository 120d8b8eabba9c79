"""Small shared helpers: device and dtype resolution, the environment label every result carries,
device synchronisation, and the results JSON each notebook writes (timing lives in `fastdiff.measure.bench`, the results schema in `fastdiff.results`)."""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import os
import platform
import warnings
from pathlib import Path

import torch

from .files import atomic_write

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
    """``auto`` is bf16 where it is fast, else fp32: a bf16-capable GPU, or a CPU with AMX tiles. On CPUs with
    only AVX-512 BF16, bf16 convolutions measured slower than fp32 (benchmarks/unet_throughput.py), so
    ``auto`` keeps fp32 there. Otherwise one of fp32, bf16, fp16."""
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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


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


class _FinalLine:
    """A stream for tqdm that keeps only each bar's last state and writes it once, when the bar ends: an executed
    notebook then holds one line per loop instead of every refresh."""

    def __init__(self, stream):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        for part in re.split(r"([\r\n])", text):
            if part == "\n":
                if self.last:
                    self.stream.write(self.last.strip() + "\n")
                self.last = ""
            elif part != "\r" and part.strip():
                self.last = part

    def flush(self) -> None:
        pass


def progress_mode() -> str:
    """``FASTDIFF_PROGRESS``: ``bars`` (live bars, the default), ``final`` (one line per loop: papermill, nbval,
    `fastdiff reproduce` set it) or ``off``."""
    mode = os.environ.get("FASTDIFF_PROGRESS", "bars")
    return mode if mode in ("bars", "final", "off") else "bars"


def progress_bar(iterable=None, *, total=None, desc=None, disable=False, leave=True, **kw):
    """A text tqdm bar (stderr). Text rather than widgets so executed notebooks keep the final state; under
    papermill (``FASTDIFF_PROGRESS=final``) each loop leaves one line."""
    import sys
    from tqdm import tqdm
    mode = progress_mode()
    if mode == "final":
        return tqdm(iterable, total=total, desc=desc, disable=disable, leave=True, mininterval=1e9,
                    file=_FinalLine(sys.stderr), ncols=100, **kw)
    return tqdm(iterable, total=total, desc=desc, disable=disable or mode == "off", leave=leave, mininterval=0.5,
                dynamic_ncols=True, **kw)


def _jsonable(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (torch.device, torch.dtype, Path)):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255] (rounded), on the CPU, same shape. NaN or inf is an error (it
    would silently become black)."""
    if not torch.isfinite(images).all():
        raise ValueError("cannot convert images holding NaN or inf to 8 bits (a diverged model or sampler?)")
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def check_int(name: str, value, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or a ValueError naming the parameter and what it accepts."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """``value`` as a bool: True/False, or the strings "true"/"false" in any case (papermill's ``-p`` and YAML hand
    some flags over as text). Anything else is a ValueError naming the parameter: a string is never truthy here."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    hint = (f"; papermill's -p passes text such as `false` as a string: use -p {name} False or -y '{name}: false'"
            if isinstance(value, str) else "")
    raise ValueError(f"{name} must be True or False, got {value!r}{hint}")


def check_image_dtype(name: str, x: torch.Tensor, weights: torch.dtype | None = None) -> None:
    """``x`` must be float images the network can take: not integer pixels (uint8 from a file), and of the
    weights' dtype unless autocast is on (it casts float32/bf16/fp16 inside, not float64). Looks at no values, so
    it costs nothing per call."""
    if not x.is_floating_point():
        raise ValueError(f"{name} is {str(x.dtype).replace('torch.', '')}; the models take float images in "
                         f"[-1, 1]: convert with fastdiff.data.to_model_range")
    if weights is None or x.dtype == weights:
        return
    if x.dtype != torch.float64 and torch.is_autocast_enabled(x.device.type):
        return                                          # autocast casts it inside
    short = {d: str(d).replace("torch.", "") for d in (x.dtype, weights)}
    raise ValueError(f"{name} is {short[x.dtype]} but the model's weights are {short[weights]}: pass "
                     f"{name}.to(torch.{short[weights]}) (for bf16/fp16 compute keep float32 inputs under autocast: "
                     f"fastdiff.utils.autocast, or TrainConfig.amp in training)")


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 positive: bool = False) -> float:
    """``value`` as a finite real number in [low, high] (> 0 with ``positive``), or a ValueError naming it."""
    import math
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        (low is None or value >= low) and (high is None or value <= high) and (not positive or value > 0)
    if not ok:
        bound = " > 0" if positive else (f" in [{low}, {high}]" if low is not None and high is not None else
                                         f" >= {low}" if low is not None else "")
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _check_field(name: str, value, current):
    """An override of a profile field, checked against the type of the value it replaces."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    elif isinstance(current, int):
        check_int(name, value, low=0 if name.endswith("seed") else 1)
    elif isinstance(current, float):
        check_number(name, value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def with_overrides(profile, **overrides):
    """A copy of a profile dataclass with some fields replaced; ``train_<field>`` reaches into its ``train``
    (TrainConfig). None keeps the profile's value, so notebook parameters can default to None. Every override is
    checked against the field it replaces (a step count must be a positive integer ...), and an error names the
    parameter as the notebook spells it."""
    import dataclasses
    fields = {f.name for f in dataclasses.fields(profile)}
    train_fields = {f.name for f in dataclasses.fields(profile.train)} if "train" in fields else set()
    unknown = [k for k in overrides if k not in fields and not (k.startswith("train_") and k[6:] in train_fields)]
    if unknown:
        raise ValueError(f"unknown profile settings {unknown}; this profile has {sorted(fields)}")
    train_kw = {k[len("train_"):]: _check_field(k, v, getattr(profile.train, k[len("train_"):]))
                for k, v in overrides.items() if k.startswith("train_") and v is not None and k[6:] in train_fields}
    other = {k: _check_field(k, v, getattr(profile, k)) for k, v in overrides.items()
             if not (k.startswith("train_") and k[6:] in train_fields) and v is not None}
    if not train_kw:
        return dataclasses.replace(profile, **other)
    try:
        train = dataclasses.replace(profile.train, **train_kw)
    except ValueError as e:   # TrainConfig's own checks, named as the notebook parameter
        raise ValueError(str(e).replace("TrainConfig.", "train_")) from None
    return dataclasses.replace(profile, train=train, **other)


def profile_by_name(profiles: dict, name: str, **overrides):
    """``profiles[name]`` with `with_overrides` applied, or a ValueError listing the profiles."""
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(profiles)}")
    return with_overrides(profiles[name], **overrides)


def slug(name: str) -> str:
    """A label as a file-name part: lower case, runs of other characters as one underscore."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``; fp32 runs without autocast."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


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
