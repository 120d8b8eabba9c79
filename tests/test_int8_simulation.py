"""Simulated W8A8 int8 (`fastdiff.methods.int8_simulation`): weights on a per-channel int8 grid, inputs on a
per-tensor one (each call's range, or a calibration run's), every Conv2d and Linear, and the map's rungs built on it."""
import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fastdiff.diffusion import make_schedule
from fastdiff.methods.int8_simulation import (QMAX, fake_quantize_input, fake_quantize_weight, quantized_layers,
                                              simulate_int8)
from fastdiff.sampling import DDIM, sampler_call
from fastdiff.studies import speed_quality_map as M
from fastdiff.studies.inference_ladder import INT8_SIMULATED, prepare
from fastdiff.unet import build_unet


def tiny():
    torch.manual_seed(0)
    return build_unet("tiny", image_size=16, channel_mult=(1, 2, 2)).eval()


def test_weights_and_inputs_land_on_the_int8_grid_of_their_scales():
    w = torch.randn(4, 3, 3, 3) * torch.tensor([1.0, 0.1, 10.0, 0.01]).reshape(4, 1, 1, 1)
    q = fake_quantize_weight(w)
    scale = w.abs().flatten(1).amax(1) / QMAX                      # one scale per output channel
    steps = q / scale.reshape(4, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= QMAX + 1e-3
    assert ((q - w).abs() <= scale.reshape(4, 1, 1, 1) / 2 + 1e-6).all()       # rounding error at most half a step
    x = torch.randn(2, 3, 5, 5)
    lo, hi = x.min(), x.max()
    step = (hi - lo) / 255                                          # affine: 256 levels over [lo, hi], 0 exact
    xq = fake_quantize_input(x, lo, hi)
    assert (xq - x).abs().max() <= step / 2 + 1e-6 and len(torch.unique(xq)) <= 256
    assert fake_quantize_input(torch.zeros(3), lo, hi).abs().max() == 0
    assert fake_quantize_input(torch.full((4,), 9.0), -1.0, 1.0).max() <= 1.0 + 2 / 255         # beyond: clipped
    per = fake_quantize_input(x, x.flatten(1).amin(1), x.flatten(1).amax(1), per_image=True)   # one range per image
    assert torch.equal(per[1], fake_quantize_input(x[1:], x[1].min(), x[1].max())[0])


def test_every_conv_and_linear_computes_with_quantized_weights_and_inputs():
    model = tiny()
    layers = quantized_layers(model)
    assert any(isinstance(m, nn.Linear) for m in layers) and any(isinstance(m, nn.Conv2d) for m in layers)
    conv = next(m for m in layers if isinstance(m, nn.Conv2d))
    w = conv.weight.detach().clone()
    simulate_int8(model)
    assert torch.equal(conv.weight, fake_quantize_weight(w)) and model.int8_simulation["layers"] == len(layers)
    x = torch.randn(2, conv.in_channels, 8, 8)
    rows = x.flatten(1)
    xq = fake_quantize_input(x, rows.amin(1), rows.amax(1), per_image=True)         # dynamic: each image its range
    want = F.conv2d(xq, conv.weight, conv.bias, conv.stride, conv.padding)
    assert torch.allclose(conv(x), want, atol=1e-6)
    x_t, t = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([10, 900])
    with torch.no_grad():
        plain, quantized = tiny()(x_t, t), model(x_t, t)
    assert 0 < (quantized - plain).norm() / plain.norm() < 0.05                  # close, not equal


def test_static_ranges_come_from_the_calibration_run_and_stay():
    model, x_T, schedule = tiny(), torch.randn(2, 1, 16, 16), make_schedule("linear")
    static = simulate_int8(copy.deepcopy(model), activations="static",
                           calibrate=lambda m: sampler_call(m, schedule, DDIM, 3, x_T)())
    conv = next(m for m in quantized_layers(static) if isinstance(m, nn.Conv2d) and m.in_channels == 1)
    big = torch.full((1, 1, 4, 4), 1e3)                 # far beyond any calibrated input: clipped to the range
    dynamic = next(m for m in quantized_layers(simulate_int8(copy.deepcopy(model))) if isinstance(m, nn.Conv2d))
    with torch.no_grad():               # static: both clip to the calibrated range, so the outputs are equal
        assert torch.equal(conv(big), conv(2 * big))
        assert not torch.allclose(dynamic(big), dynamic(2 * big))        # dynamic: each call's own range
    with pytest.raises(ValueError, match="static activations need calibrate"):
        simulate_int8(copy.deepcopy(model), activations="static")
    with pytest.raises(ValueError, match="only they do"):
        simulate_int8(copy.deepcopy(model), calibrate=lambda m: None)
    with pytest.raises(ValueError, match="never called"):
        simulate_int8(copy.deepcopy(model), activations="static", calibrate=lambda m: None)
    with pytest.raises(ValueError, match="activations must be one of"):
        simulate_int8(copy.deepcopy(model), activations="per-row")
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        simulate_int8(nn.GroupNorm(1, 4))
    with pytest.raises(ValueError, match="already int8-simulated"):
        simulate_int8(static)


def test_the_map_rungs_quantize_a_copy_and_the_static_one_calibrates_on_the_points_own_run():
    model, schedule = tiny(), make_schedule("linear")
    before = copy.deepcopy(model.state_dict())
    for rung in INT8_SIMULATED:
        point = M.Point(f"{rung.name}, DDIM 3", "int8 simulated (quality only)", steps=3, rung=rung.name)
        built = M.build_point(point, {"U-Net": model}, schedule, device="cpu", batch_size=2)
        assert built.int8_simulation["activations"] == rung.simulated
        x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
        assert torch.isfinite(M.point_call(point, built, schedule, x, seed=1)()).all()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())    # the zoo model untouched
    with pytest.raises(ValueError, match="calibrates its activation ranges"):
        prepare(model, INT8_SIMULATED[1], device="cpu", warm=False)
