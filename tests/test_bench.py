"""The harness measures what it is given, in the order it says, on every kind of model (it asserts no speed of
ours: only that a known wait is seen, that calls interleave, and that every model gets its own inputs)."""
import time

import pytest
import torch

from fastdiff.measure.bench import benchmark, benchmark_model, count_flops, interleaved, measure, model_step, peak_memory
from fastdiff.methods.layer_skipping import LayerSkippingUNet
from fastdiff.methods.vgg_features import VGGFeatureFusion
from fastdiff.unet import build_unet

CPU = torch.device("cpu")


def test_measure_warms_up_sees_a_known_wait_and_respects_its_budget():
    calls = []
    t = measure(lambda: (calls.append(1), time.sleep(0.01)), device=CPU, warmup=3, repeats=5)
    assert len(calls) == 8 and t["repeats"] == 5
    assert 0.01 <= t["min_s"] <= t["median_s"] <= t["max_s"] and t["iqr_s"] >= 0
    slow = measure(lambda: time.sleep(0.02), device=CPU, warmup=0, repeats=50, max_seconds=0.03)
    assert 1 <= slow["repeats"] <= 2                    # the time budget stops it early
    assert measure(lambda: 42, device=CPU, warmup=0, repeats=1)["result"] == 42
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure(lambda: None, device=CPU, repeats=0)


def test_interleaved_runs_round_robin_and_times_each_entry():
    order = []
    waits = {"short": 0.002, "long": 0.02}
    calls = {name: (lambda name=name: (order.append(name), time.sleep(waits[name]))) for name in waits}
    out = interleaved(calls, device=CPU, rounds=3, warmup=1)
    assert order == ["short", "long"] + ["short", "long"] * 3          # warm-up each, then rounds of one each
    assert out["long"]["median_s"] >= 0.02 and out["short"]["median_s"] >= 0.002
    assert out["long"]["median_s"] > out["short"]["median_s"] and out["short"]["repeats"] == 3
    with pytest.raises(ValueError, match="rounds >= 1"):
        interleaved(calls, device=CPU, rounds=0)
    order.clear()
    out = interleaved(calls, device=CPU, rounds=2, warmup=0, number=3)   # 3 calls per sample, time per call
    assert order == ["short"] * 3 + ["long"] * 3 + ["short"] * 3 + ["long"] * 3
    assert 0.02 <= out["long"]["median_s"] < 0.06 and out["long"]["repeats"] == 2


def test_flop_count_of_a_linear_layer_and_a_convolution():
    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)
    assert count_flops(lambda: layer(x)) == 2 * 8 * 64 * 32
    conv, img = torch.nn.Conv2d(3, 5, 3, padding=1), torch.randn(2, 3, 6, 6)
    assert count_flops(lambda: conv(img)) == 2 * 2 * 5 * 6 * 6 * 3 * 3 * 3


def test_peak_memory_sees_a_large_allocation():
    m = peak_memory(lambda: torch.ones(64 * 2**20 // 4).sum(), device=CPU)   # 64 MiB
    assert m["memory_measure"] == "process peak RSS" and m["peak_memory_mb"] > 64
    assert m["memory_growth_mb"] >= 0


def test_benchmark_rows_are_consistent_with_their_own_measurements():
    a, b = torch.randn(4, 16), torch.randn(16, 16)
    row = benchmark(lambda: a @ b, label="mm", device=CPU, dtype=torch.float32, batch_size=4, warmup=1, repeats=3,
                    note="x")
    assert row["device"].startswith("CPU") and row["dtype"] == "fp32" and row["torch"] == torch.__version__
    assert row["images_per_s"] == pytest.approx(4 / (row["median_ms"] / 1e3))
    assert row["gflops"] == pytest.approx(2 * 4 * 16 * 16 / 1e9)
    assert row["gflop_per_s"] == pytest.approx(row["gflops"] / (row["median_ms"] / 1e3))
    assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]


def tiny_models():
    torch.manual_seed(0)
    sr = build_unet("tiny", cond_channels=1)
    torch.manual_seed(0)
    stacked = LayerSkippingUNet(VGGFeatureFusion(build_unet("tiny", cond_channels=1), vgg_weights="random",
                                                 lr_channels=1))
    return {"unet": build_unet("tiny"), "sr": sr, "vgg": VGGFeatureFusion(sr, vgg_weights="random", lr_channels=1),
            "skip": LayerSkippingUNet(build_unet("tiny")), "skip+vgg": stacked}


@pytest.mark.parametrize("name", ["unet", "sr", "vgg", "skip", "skip+vgg"])
def test_one_step_of_any_model_uses_its_own_inputs(name):
    model = tiny_models()[name].eval()
    step = model_step(model, batch_size=2, device=CPU, sr_scale=2, seed=5)
    x, t, cond = model.example_inputs(2, generator=torch.Generator().manual_seed(5), sr_scale=2)
    with torch.no_grad():
        assert torch.equal(step(), model(x, t, **cond))
    assert ("lr" in cond) == (name not in ("unet", "skip")) and cond.get("lr", x).shape[-1] in (4, 8)
    row = benchmark_model(model, label=name, batch_size=2, device=CPU, warmup=0, repeats=1, sr_scale=2, memory=False)
    assert row["gflops"] == pytest.approx(count_flops(step) / 1e9) and row["params"] == sum(p.numel() for p in model.parameters())
    assert row["image_size"] == 8 and row["layout"] == "contiguous"


def test_channels_last_and_bf16_steps_agree_with_fp32_contiguous():
    model = tiny_models()["vgg"].eval()
    ref = model_step(model, batch_size=2, device=CPU, sr_scale=2)()
    nhwc = model_step(model, batch_size=2, device=CPU, sr_scale=2, channels_last=True)()
    torch.testing.assert_close(nhwc, ref, rtol=1e-4, atol=1e-5)      # the same maths in another layout
    model = model.to(memory_format=torch.contiguous_format)
    half = model_step(model, batch_size=2, device=CPU, sr_scale=2, dtype=torch.bfloat16)()
    assert half.dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: outputs within 5% of the fp32 output's range
    assert (half.float() - ref).abs().max() < 0.05 * ref.abs().max()
