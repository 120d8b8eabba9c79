"""Argument checks that name the parameter and what it accepts: integers, flags, finite numbers, and the image
tensors a network is handed (notebook parameters arrive from papermill as text, so nothing is taken on trust)."""
from __future__ import annotations

import math

import torch


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


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 positive: bool = False) -> float:
    """``value`` as a finite real number in [low, high] (> 0 with ``positive``), or a ValueError naming it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        (low is None or value >= low) and (high is None or value <= high) and (not positive or value > 0)
    if not ok:
        bound = " > 0" if positive else (f" in [{low}, {high}]" if low is not None and high is not None else
                                         f" >= {low}" if low is not None else "")
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


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
                     f"fastdiff.devices.autocast, or TrainConfig.amp in training)")
