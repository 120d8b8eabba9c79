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
