"""Simulated 8-bit post-training quantization (W8A8) of every convolution and linear layer of a model, for its
*quality* cost: the question issue 30 asks of the claim that 8-bit post-training quantization of a diffusion U-Net
does not keep quality without quantization-aware training (reported for Stable Diffusion; Q-Diffusion, Shang et al.
2023, Table 1, names the reason: the activations' ranges change over the timesteps, so one calibrated range fits
no step well). On the CPU no maintained library runs an int8 convolution (`inference_ladder.INT8_DYNAMIC` makes only
the linear layers int8), so the numbers of int8 inference are simulated with torch's own fake-quantization ops
(`torch.fake_quantize_per_channel_affine`, `torch.fake_quantize_per_tensor_affine`): each value is rounded to the
int8 grid of its scale and mapped back to floating point, which is what an int8 kernel with int32 sums computes up to
the order of its additions. The time of a simulated model is the simulation's, not int8's: it measures no speed.

Notation: for a layer with weight W (out channels first) and input x,

    W_q = s_w * clamp(round(W / s_w), -127, 127),          s_w = max |W[c]| / 127 per output channel c (symmetric),
    x_q = s_x * (clamp(round(x / s_x) + z, 0, 255) - z),   s_x = (hi - lo) / 255, z = round(-lo / s_x) (affine),

with [lo, hi] the input's range widened to hold 0 (as torch's min-max observers do, so that 0 is exact), and the
layer computes with W_q and x_q (its bias stays floating point, as int8 kernels keep it in int32 or float). The
activation range is either ``dynamic``, each call's own, one per image (per row of a linear layer's input, as
torchao's dynamic quantization takes it), or ``static``, one per layer: the smallest and largest input it saw over
a calibration run (`calibrate`: one sampling run over all its steps; naive min-max post-training quantization,
Q-Diffusion's "linear quantization" baseline), fixed for every later call and clipping what falls outside it.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

QMAX = 127
MODES = ("dynamic", "static")
SCHEME = ("W8A8: weights int8 symmetric per output channel; inputs uint8 affine over a range holding 0, per image "
          "(dynamic) or per layer from one calibration run (static)")     # what a measurement's fingerprint records


def quantized_layers(model: nn.Module) -> list[nn.Module]:
    """The layers W8A8 quantizes: every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` (normalisation, attention's
    own matmuls and the nonlinearities stay floating point)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def fake_quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """W_q: symmetric int8 with one scale per output channel (the module docstring)."""
    scale = (w.detach().abs().flatten(1).amax(1) / QMAX).clamp_min(1e-12).float()
    zero = torch.zeros(len(scale), dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w.float(), scale, zero, 0, -QMAX, QMAX).to(w.dtype)


def fake_quantize_input(x: torch.Tensor, lo, hi, *, per_image: bool = False) -> torch.Tensor:
    """x_q on the affine 8-bit grid of [lo, hi] (widened to hold 0; values outside clip): one range for the tensor,
    or with ``per_image`` one per image (``lo``, ``hi`` of shape (batch,))."""
    lo = torch.as_tensor(lo, dtype=torch.float32, device=x.device).clamp(max=0)
    hi = torch.as_tensor(hi, dtype=torch.float32, device=x.device).clamp(min=0)
    scale = ((hi - lo) / 255).clamp_min(1e-12)
    zero = (-lo / scale).round().clamp(0, 255).to(torch.int32)
    if per_image:
        return torch.fake_quantize_per_channel_affine(x.float(), scale, zero, 0, 0, 255).to(x.dtype)
    return torch.fake_quantize_per_tensor_affine(x.float(), scale.reshape(()), zero.reshape(()), 0, 255).to(x.dtype)


def simulate_int8(model: nn.Module, *, activations: str = "dynamic",
                  calibrate: Callable[[nn.Module], object] | None = None) -> nn.Module:
    """``model`` (changed in place, and returned) computing as W8A8 int8: every layer of `quantized_layers` with its
    weight replaced by W_q and its input fake-quantized at each call. ``activations``: "dynamic" (each call's own
    range per image) or "static" (each layer's range over ``calibrate(model)``, one sampling run with the weights
    already quantized, as post-training quantization calibrates the quantized model). Give it a copy to keep the
    original; a model already simulated is refused."""
    if activations not in MODES:
        raise ValueError(f"activations must be one of {MODES}, got {activations!r}")
    if getattr(model, "int8_simulation", None) is not None:
        raise ValueError("this model is already int8-simulated: quantize a fresh copy")
    if (activations == "static") != (calibrate is not None):
        raise ValueError("static activations need calibrate=run (one sampling run of the model), and only they do")
    layers = quantized_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to quantize")
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(fake_quantize_weight(layer.weight))
    ranges: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    if activations == "static":
        def observe(layer, args):
            x = args[0].detach().float()
            lo, hi = x.amin(), x.amax()
            ranges[layer] = (torch.minimum(ranges[layer][0], lo), torch.maximum(ranges[layer][1], hi)) \
                if layer in ranges else (lo, hi)
        observers = [layer.register_forward_pre_hook(observe) for layer in layers]
        try:
            with torch.no_grad():
                calibrate(model)
        finally:
            for handle in observers:
                handle.remove()
        if missing := [type(m).__name__ for m in layers if m not in ranges]:
            raise ValueError(f"the calibration run never called {len(missing)} of the {len(layers)} layers "
                             f"({', '.join(sorted(set(missing)))}): calibrate with a run of the whole model")

    def quantize_input(layer, args):
        x = args[0]
        if ranges:
            return (fake_quantize_input(x, *ranges[layer]), *args[1:])
        rows = x.detach().flatten(1)
        return (fake_quantize_input(x, rows.amin(1), rows.amax(1), per_image=True), *args[1:])
    for layer in layers:
        layer.register_forward_pre_hook(quantize_input)
    model.int8_simulation = {"activations": activations, "layers": len(layers)}
    return model
