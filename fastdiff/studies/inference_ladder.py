"""Study 5's inference ladder: one configuration per rung (precision, memory layout, attention kernel, torch.compile
with and without frozen weights, im2col convolution) and `prepare`, which configures a copy of a model for a rung.
Shared by study 5 (`performance`: the ladder timed with its quality cost) and the speed/quality map of notebook 07
(`speed_quality_map`: a rung as one of a point's methods). A leaf: it imports no study module.

`INT8_DYNAMIC`, int8 dynamic quantization through torchao, is a rung outside `LADDER`: study 5's FD measurement
keys every `LADDER` rung (`performance_fd.RUNG_KEYS`), and this one has no measurement there. So are `INT8_SIMULATED`,
W8A8 int8 of every convolution and linear layer simulated in floating point (`fastdiff.methods.int8_simulation`), with
dynamic or statically calibrated activation ranges: rungs for a quality cost only (their time is the simulation's)."""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..devices import DTYPES
from ..measure.bench import model_step
from ..methods.im2col import convert_to_im2col
from ..methods.int8_simulation import simulate_int8
from ..nn import set_attention


@dataclass(frozen=True)
class Rung:
    name: str
    dtype: str = "fp32"
    channels_last: bool = False
    attention: str = "sdpa"
    compile: bool = False
    freeze: bool = False                 # torch.compile with inductor's freezing: weights folded as constants and
    #                                      prepacked for the convolution library (inference only)
    im2col: bool = False
    quantize: str | None = None          # "int8-dynamic": torchao's int8 weights and per-call int8 activations
    #                                      in every nn.Linear (`quantize_int8_dynamic`); "simulated-dynamic" and
    #                                      "simulated-static": W8A8 in every Conv2d and Linear, simulated

    @property
    def simulated(self) -> str | None:
        """The activation ranges of a simulated int8 rung ("dynamic" or "static"), None for any other rung."""
        return self.quantize.removeprefix("simulated-") if (self.quantize or "").startswith("simulated-") else None


LADDER = (
    Rung("fp32"),
    Rung("channels_last", channels_last=True),
    Rung("bf16 autocast", dtype="bf16", channels_last=True),
    Rung("fp16 autocast", dtype="fp16", channels_last=True),
    Rung("manual attention (not SDPA)", attention="manual"),
    Rung("torch.compile", compile=True),
    Rung("compile, frozen weights", channels_last=True, compile=True, freeze=True),
    Rung("bf16 + compile, frozen weights", dtype="bf16", channels_last=True, compile=True, freeze=True),
    Rung("im2col convolution", im2col=True),
)
# Linear layers only (torchao has no int8 convolution); on the digits U-Net, 16 Linear (the time embedding and each
# block's embedding projection) of 69 Linear + Conv2d layers, a small share of its FLOPs
INT8_DYNAMIC = Rung("int8 dynamic (torchao)", quantize="int8-dynamic")
TORCHAO = "torchao>=0.18,<0.19"
# W8A8 in every convolution and linear layer, simulated (quality only; `fastdiff.methods.int8_simulation`): dynamic
# activation ranges, or static ones calibrated on one sampling run (naive post-training quantization)
INT8_SIMULATED = (Rung("int8 W8A8 dynamic (simulated)", quantize="simulated-dynamic"),
                  Rung("int8 W8A8 static PTQ (simulated)", quantize="simulated-static"))


def quantize_int8_dynamic(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Linear``'s weight replaced, in place, by an int8 tensor (torchao's
    ``Int8DynamicActivationInt8WeightConfig``: symmetric, one scale per output channel); each call quantizes the
    input to int8 (one scale per row), multiplies in int8 with int32 sums and rescales to floating point.
    Convolutions stay fp32: torchao's int8 tensor has no ``aten.convolution``, and the one int8 dynamic convolution
    in torch (``torch.ao.nn.quantized.dynamic.Conv2d``) belongs to the deprecated ``torch.ao.quantization``."""
    pytree_log = logging.getLogger("torch.utils._pytree")   # torchao's import warns about a torch.compile detail
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as e:
        raise ImportError(f"the {INT8_DYNAMIC.name!r} rung needs torchao: pip install '{TORCHAO}'") from e
    finally:
        pytree_log.setLevel(level)
    # set_inductor_config=False: torchao would otherwise change inductor's global settings for every later compile
    quantize_(model, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    return model


def prepare(model: nn.Module, rung: Rung, *, device, batch_size: int = 1, warm: bool = True,
            calibrate=None) -> tuple[nn.Module, float]:
    """A copy of ``model`` configured for ``rung``, and the seconds torch.compile took (0 without it; measured by
    the first call at ``batch_size``, the compiled graph's build, with inductor's graph cache and AOTAutograd's cache
    off; kernels this machine compiled before still come from inductor's kernel cache). ``warm=False`` skips that
    first call (for a model whose calls need more than one U-Net step's inputs, such as a wrapper that follows the
    sampler's timesteps): the graph is then built by the model's first real call, and the time returned is 0.
    ``calibrate(model)``: one sampling run, for a rung with static int8 activation ranges (`simulate_int8`)."""
    m = copy.deepcopy(model).to(device).eval()
    if hasattr(m, "set_attention"):          # a peer library's model (fastdiff.measure.peers) sets its own
        m.set_attention(rung.attention)
    else:
        set_attention(m, rung.attention)
    if rung.im2col:
        convert_to_im2col(m)
    if rung.quantize == "int8-dynamic":
        quantize_int8_dynamic(m)
    elif rung.simulated is not None:
        if rung.simulated == "static" and calibrate is None:
            raise ValueError(f"the rung {rung.name!r} calibrates its activation ranges: pass calibrate=run")
        simulate_int8(m, activations=rung.simulated, calibrate=calibrate if rung.simulated == "static" else None)
    elif rung.quantize is not None:
        raise ValueError(f"unknown quantization {rung.quantize!r} (known: 'int8-dynamic', 'simulated-dynamic', "
                         f"'simulated-static')")
    if rung.channels_last:
        m = m.to(memory_format=torch.channels_last)
    if not rung.compile:
        return m, 0.0
    # a CUDA build of torch on a machine without CUDA warns about it when inductor first builds C++: noise here
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # Every compiled copy of a model is one more entry for the same forward code: past dynamo's recompile limit
    # (8) it would silently run eager under a "compiled" label. Raise the limit, and fail rather than fall back.
    dynamo = torch._dynamo.config
    dynamo.recompile_limit = max(dynamo.recompile_limit, 256)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 1024)
    dynamo.fail_on_recompile_limit_hit = True
    compiled = torch.compile(m, options={"freezing": True} if rung.freeze else None)
    if not warm:
        return compiled, 0.0
    step = model_step(compiled, batch_size=batch_size, device=device, dtype=DTYPES[rung.dtype],
                      channels_last=rung.channels_last)
    # the graph build itself, not a cache hit: inductor's graph cache and AOTAutograd's cache left out
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):
        began = time.perf_counter()
        step()
        return compiled, time.perf_counter() - began
