"""Study 5's methods against their references: im2col convolution equals F.conv2d (the strides, paddings and groups
the U-Net uses), a converted model equals the original, manual attention equals SDPA, the bottleneck block builds
through the factory and costs what it should."""
import pytest
import torch
import torch.nn.functional as F

from fastdiff.measure.bench import count_flops
from fastdiff.methods.im2col import Im2colConv2d, convert_to_im2col, im2col_conv2d
from fastdiff.nn import count_parameters, set_attention
from fastdiff.unet import build_unet


@pytest.mark.parametrize("kernel,stride,padding,groups", [(3, 1, 1, 1), (3, 2, 1, 1), (1, 1, 0, 1), (3, 1, 1, 4),
                                                          (5, 2, 2, 2), (3, 1, 0, 1)])
def test_im2col_equals_conv2d_in_fp32(kernel, stride, padding, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 11, 9, generator=g)
    w = torch.randn(12, 8 // groups, kernel, kernel, generator=g)
    b = torch.randn(12, generator=g)
    ref = F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    out = im2col_conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_a_converted_unet_equals_the_original():
    torch.manual_seed(0)
    model = build_unet("tiny").eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        ref = model(x, t)
        converted = convert_to_im2col(model)
        assert any(isinstance(m, Im2colConv2d) for m in converted.modules())
        assert not any(type(m) is torch.nn.Conv2d for m in converted.modules())
        torch.testing.assert_close(converted(x, t), ref, rtol=1e-5, atol=1e-5)
    assert count_flops(lambda: converted(x, t)) > 0                     # the matmuls are counted
    with pytest.raises(ValueError, match="zero padding only"):
        Im2colConv2d(1, 1, 3, padding=1, padding_mode="reflect")


def test_manual_attention_equals_sdpa():
    torch.manual_seed(0)
    model = build_unet("tiny", num_heads=2).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        ref = model(x, t)
        manual = set_attention(model, "manual")(x, t)
    torch.testing.assert_close(manual, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="'sdpa' or 'manual'"):
        set_attention(model, "flash")


def test_the_bottleneck_block_builds_through_the_factory_and_cuts_compute():
    torch.manual_seed(0)
    plain = build_unet("quick", image_size=16)
    bottleneck = build_unet("quick", image_size=16, block="bottleneck", block_options={"reduction": 4})
    x, t = torch.randn(1, 1, 16, 16), torch.tensor([10])
    assert bottleneck(x, t).shape == x.shape
    assert count_parameters(bottleneck) < 0.5 * count_parameters(plain)
    assert count_flops(lambda: bottleneck(x, t)) < 0.6 * count_flops(lambda: plain(x, t))
    with pytest.raises(ValueError, match="reduction must be a positive integer dividing"):
        build_unet("quick", image_size=16, block="bottleneck", block_options={"reduction": 5})


def test_the_inference_ladder_measures_every_rung_against_fp32():
    from fastdiff.diffusion import make_schedule
    from fastdiff.studies import performance
    torch.manual_seed(0)
    rungs = [r for r in performance.LADDER if not r.compile]           # compiling takes a minute on a CPU
    rows = performance.ladder(build_unet("tiny"), make_schedule("linear", 50), batch_size=2, device="cpu", rungs=rungs,
                              rounds=1, ddim_steps=3)
    assert [r["rung"] for r in rows] == [r.name for r in rungs]
    by = {r["rung"]: r for r in rows}
    assert by["fp32"]["max |x0 - fp32| after DDIM"] == 0 and by["fp32"]["speed-up vs fp32"] == 1
    assert by["channels_last"]["max |x0 - fp32| after DDIM"] < 1e-4          # the same maths in another layout
    assert by["im2col convolution"]["max |x0 - fp32| after DDIM"] < 1e-4
    assert 0 < by["bf16 autocast"]["max |x0 - fp32| after DDIM"] < 0.2    # lower precision, bounded
    assert all(r["ms per call"] > 0 and r["GFLOP/s"] > 0 for r in rows)


def test_the_diffusers_twin_has_the_same_parameters_and_flops_and_its_attention_switches():
    from fastdiff.measure.peers import diffusers_unet
    torch.manual_seed(0)
    ours, twin = build_unet("ddpm_cifar10"), diffusers_unet("ddpm_cifar10")
    assert count_parameters(ours) == count_parameters(twin) == 35_746_307        # DDPM's CIFAR-10 U-Net
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
    with torch.no_grad():
        assert count_flops(lambda: ours(x, t)) == count_flops(lambda: twin(x, t))
    small = diffusers_unet("tiny", num_heads=1).eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        ref = small(x, t)
        assert ref.shape == x.shape
        torch.testing.assert_close(small.set_attention("manual")(x, t), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="plain ResNet-block"):
        diffusers_unet("tiny", block="bottleneck")


def test_libraries_are_compared_rung_by_rung_in_one_run():
    from fastdiff.measure.peers import diffusers_unet
    from fastdiff.studies import performance
    torch.manual_seed(0)
    rungs = [r for r in performance.LADDER if r.name in ("fp32", "manual attention (not SDPA)")]
    rows = performance.compare_libraries({"fastdiff": build_unet("tiny"), "diffusers": diffusers_unet("tiny")},
                                         batch_size=2, device="cpu", rungs=rungs, rounds=1)
    assert [(r["library"], r["rung"]) for r in rows] == [(lib, r.name) for lib in ("fastdiff", "diffusers")
                                                          for r in rungs]
    assert len({r["parameters"] for r in rows}) == 1 and len({r["GFLOP per image"] for r in rows}) == 1
    versus = performance.best_versus(rows)
    assert set(versus["by rung"]) == {r.name for r in rungs}
    best = {lib: min(r["ms per call"] for r in rows if r["library"] == lib) for lib in ("fastdiff", "diffusers")}
    assert versus["best vs best"] == pytest.approx(best["diffusers"] / best["fastdiff"])


def test_the_roofline_counts_every_conv_and_linear_layer():
    from fastdiff.measure.bench import model_step
    from fastdiff.measure.roofline import layer_roofline, peaks
    torch.manual_seed(0)
    model = build_unet("tiny").eval()
    step = model_step(model, batch_size=2, device=torch.device("cpu"))
    out = layer_roofline(model, step, device="cpu", repeats=1)
    layers = {r["layer"]: r for r in out["layers"]}
    convs = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert set(layers) == set(convs) | set(linears)
    stem, size = model.stem, model.config.image_size
    expected = 2 * 2 * stem.out_channels * size * size * stem.in_channels * 9   # batch 2, 3x3, stride 1
    assert layers["stem"]["GFLOP"] * 1e9 == pytest.approx(expected)
    assert layers["stem"]["MB moved"] * 1e6 == 4 * (2 * stem.in_channels * size * size + stem.weight.numel()
                                                    + stem.out_channels + 2 * stem.out_channels * size * size)
    assert all(r["ms"] > 0 and r["FLOP per byte"] > 0 for r in out["layers"])
    assert 0 < sum(o["share of time"] for o in out["operators"]) <= 1 + 1e-9
    roofs = peaks(torch.device("cpu"), n=64, repeats=1, dtypes=("fp32",))
    assert roofs["matmul GFLOP/s (fp32)"] > 0 and roofs["copy GB/s"] > 0


def test_channels_last_equals_contiguous():
    torch.manual_seed(0)
    model = build_unet("tiny").eval()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        ref = model(x, t)
        nhwc = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(nhwc, ref, rtol=1e-5, atol=1e-5)


def _ladder_row(rung, dtype, ms, fd, layout="contiguous", compiled=False):
    return {"rung": rung, "dtype": dtype, "ms per call": ms, "FD (LeNet-MNIST)": fd, "layout": layout,
            "attention": "sdpa", "compiled": compiled, "im2col": False}


def _fd_section(ratios: dict[tuple[str, str], float], *, n: int = 1000, half_width: float = 0.02) -> dict:
    """A study-5 FD measurement (`fastdiff.measure.fd_sweep`'s section) holding only the paired ratios given."""
    from fastdiff.measure.fd_sweep import estimate_dict
    from fastdiff.measure.intervals import Estimate

    def est(v):
        return estimate_dict(Estimate(v, v - half_width, v + half_width, n, "bias-corrected bootstrap paired 95%"))
    return {"n": n, "settings": {}, "floor": None,
            "pairs": {f"{a}|{b}": {"a": a, "b": b, "n": n, "difference": est(0.0), "ratio": est(r)}
                      for (a, b), r in ratios.items()}}


def test_the_verdicts_follow_the_measured_numbers():
    from fastdiff import verdicts
    from fastdiff.studies import performance
    from fastdiff.studies import performance_claims as study
    base, bottleneck, fewer = performance.arch_zoo_models()
    arch = [{"model": base},
            {"model": bottleneck, "FLOPs vs baseline": 0.3, "sampling time vs baseline": 0.7,
             "training time vs baseline": 0.9},
            {"model": fewer, "FLOPs vs baseline": 1.0, "sampling time vs baseline": 0.9,
             "training time vs baseline": 1.0}]
    cl = "channels_last"
    ladder = [_ladder_row("fp32", "fp32", 10, None), _ladder_row(cl, "fp32", 10, None, cl),
              _ladder_row("bf16 autocast", "bf16", 12, None, cl), _ladder_row("fp16 autocast", "fp16", 40, None, cl),
              _ladder_row("compile, frozen weights", "fp32", 4, None, cl, "frozen"),
              _ladder_row("bf16 + compile, frozen weights", "bf16", 3.5, None, cl, "frozen"),   # 1.14x its twin
              {**_ladder_row("im2col convolution", "fp32", 5, None), "im2col": True}]
    fd = _fd_section({("bf16-compile-frozen", "fp32"): 1.02, ("arch-bottleneck", "arch-baseline"): 1.1,
                      ("arch-fewer-levels", "arch-baseline"): 1.0})
    ddp = {"runs": {"1": {"images per second": 10.0, "device": "CPU: X (2 threads)"},
                    "2": {"images per second": 12.0, "device": "CPU: X (1 threads)"}}, "shared cores": True,
           "cpu": {"flags": ["avx2"]}}
    compare = {"best vs best": 1.1, "ours best": "a", "peer best": "b"}
    here = "CPU: X, AVX2 (2 threads)"
    m = study.measured_for_claims(ladder_rows=ladder, arch_rows=arch, ddp=ddp, compare=compare, device=here,
                                  train_steps=8000, fd=fd, fd_device="CPU: X, AVX2 (1 thread)")
    rows = {r["key"]: r for r in verdicts.judge(study.CLAIMS, m)}
    assert {k: r["verdict"] for k, r in rows.items()} == {
        "half": "not testable here", "half-digits": "partly", "im2col": "reproduced", "bottleneck": "reproduced",
        "fewer-levels": "contradicted", "devices": "not testable here", "peer": "partly"}
    assert m["digits half rung"] == "bf16 + compile, frozen weights"
    assert m["digits half speed-up"] == pytest.approx(4 / 3.5) and m["digits half FD ratio"].value == 1.02
    assert m["ddp device"] == "CPU: X, AVX2 (1 thread)" and here in rows["im2col"]["ours"]
    assert here in rows["half-digits"]["why"] and "CPU: X, AVX2 (1 thread), n = 1000" in rows["half-digits"]["why"]
    # the CIFAR-10 ladder is a row of its own, its speed from one machine (named); the digits row keeps its own
    cifar = [_ladder_row("fp32", "fp32", 100, None), _ladder_row(cl, "fp32", 100, None, cl),
             _ladder_row("bf16 autocast", "bf16", 60, None, cl)]
    m = study.measured_for_claims(ladder_rows=ladder, arch_rows=arch, ddp=ddp, compare=compare, device=here,
                                  train_steps=8000, cifar_rows=cifar, cifar_device="CPU: Y, AVX-512 BF16 (2 threads)",
                                  fd=fd, fd_device=here)
    rows = {r["key"]: r for r in verdicts.judge(study.CLAIMS, m)}
    assert rows["half"]["verdict"] == "reproduced" and "CPU: Y, AVX-512 BF16 (2 threads)" in rows["half"]["ours"]
    assert rows["half-digits"]["verdict"] == "partly"
    # no FD measurement: the quality rows are not judged on speed alone
    m = study.measured_for_claims(ladder_rows=ladder, arch_rows=arch, ddp=ddp, compare=compare, device=here,
                                  train_steps=8000)
    got = {r["key"]: r["verdict"] for r in verdicts.judge(study.CLAIMS, m)}
    assert got["half-digits"] == got["bottleneck"] == got["fewer-levels"] == "not testable here"
    lines = study.precision_report({"matmul GFLOP/s (fp32)": 100, "matmul GFLOP/s (bf16)": 300,
                                    "matmul GFLOP/s (fp16)": 1}, {"digits": ladder})
    assert lines[0].startswith("bf16: native") and "slower" in lines[1] and "emulates" in lines[3]
