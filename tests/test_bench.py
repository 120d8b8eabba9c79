"""The harness returns sane, labelled rows on the CPU (it measures; it asserts no speed)."""
import pytest
import torch

from fastdiff.bench import benchmark, benchmark_unet, count_flops, measure, peak_memory
from fastdiff.unet import build_unet

CPU = torch.device("cpu")


def test_measure_warms_up_and_summarises_repeats():
    calls = []
    t = measure(lambda: calls.append(1), device=CPU, warmup=3, repeats=7)
    assert len(calls) == 10 and t["repeats"] == 7
    assert 0 <= t["min_s"] <= t["median_s"] <= t["max_s"] and t["iqr_s"] >= 0
    slow = measure(lambda: sum(range(200_000)), device=CPU, warmup=0, repeats=50, max_seconds=1e-9)
    assert slow["repeats"] == 1                       # the time budget stops after the first repeat
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure(lambda: None, device=CPU, repeats=0)


def test_flop_count_of_a_linear_layer():
    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)
    assert count_flops(lambda: layer(x)) == 2 * 8 * 64 * 32


def test_peak_memory_sees_a_large_allocation():
    m = peak_memory(lambda: torch.ones(64 * 2**20 // 4).sum(), device=CPU)   # 64 MiB
    assert m["memory_measure"] == "process peak RSS" and m["peak_memory_mb"] > 64
    assert m["memory_growth_mb"] >= 0


def test_benchmark_rows_carry_their_labels():
    row = benchmark(lambda: torch.randn(4, 16) @ torch.randn(16, 16), label="mm", device=CPU,
                    dtype=torch.float32, batch_size=4, warmup=1, repeats=3, note="x")
    for key in ("device", "dtype", "batch_size", "torch", "median_ms", "images_per_s", "gflops", "peak_memory_mb"):
        assert key in row
    assert row["device"].startswith("CPU") and row["dtype"] == "fp32" and row["note"] == "x"
    assert row["images_per_s"] == pytest.approx(4 / (row["median_ms"] / 1e3))
    assert row["gflops"] == pytest.approx(2 * 4 * 16 * 16 / 1e9)


@pytest.mark.parametrize("dtype,channels_last", [(torch.float32, False), (torch.bfloat16, True)])
def test_benchmark_unet_on_cpu(dtype, channels_last):
    torch.manual_seed(0)
    row = benchmark_unet(build_unet("tiny"), label="tiny", batch_size=2, device=CPU, dtype=dtype,
                         channels_last=channels_last, warmup=1, repeats=2)
    assert row["params"] > 0 and row["gflops"] > 0 and row["median_ms"] > 0 and row["repeats"] == 2
    assert row["layout"] == ("channels_last" if channels_last else "contiguous")


def test_benchmark_unet_feeds_the_low_res_image_to_sr_models():
    model = build_unet("sr3", image_size=32, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                       attention_resolutions=(), norm_groups=4)
    row = benchmark_unet(model, label="sr", batch_size=1, device=CPU, warmup=0, repeats=1, sr_scale=4)
    assert row["sr_scale"] == 4 and row["image_size"] == 32
