import pytest
import torch

from fastdiff.nn import count_parameters
from fastdiff.unet import PRESETS, SuperResUNet, UNet, build_unet, unet_config


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_shapes(preset):
    torch.manual_seed(0)
    model = build_unet(preset)
    c = model.config
    size = min(c.image_size, 32)  # the U-Net is fully convolutional; keep the sr3 check cheap
    x = torch.randn(1, c.in_channels, size, size)
    kw = {"lr": torch.randn(1, c.cond_channels, size // 4, size // 4)} if c.cond_channels else {}
    with torch.no_grad():
        out = model(x, torch.tensor([10]), **kw)
    assert out.shape == (1, c.out_channels, size, size)
    assert isinstance(model, SuperResUNet if c.cond_channels else UNet)


def test_ddpm_cifar10_matches_published_parameter_count():
    n = count_parameters(build_unet("ddpm_cifar10"))
    assert abs(n / 35.7e6 - 1) < 0.01, n


def test_levels_are_explicit_and_mirrored():
    model = build_unet("ddpm_cifar10")
    assert len(model.encoder) == len(model.decoder) == 4
    assert [len(level.blocks) for level in model.encoder] == [2] * 4
    assert [len(level.blocks) for level in model.decoder] == [3] * 4
    assert model.encoder[-1].down is None and model.decoder[0].up is None
    # attention sits at 16x16 (level 1) only, and in the middle block
    assert [b.attn is not None for b in model.encoder[1].blocks] == [True, True]
    assert all(b.attn is None for lvl in (0, 2, 3) for b in model.encoder[lvl].blocks)
    assert model.middle.block1.attn is not None


def test_time_embedding_changes_output(tiny_model):
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(tiny_model(x, torch.tensor([0, 0])), tiny_model(x, torch.tensor([500, 500])))


def test_bad_inputs_are_clear_errors(tiny_model):
    with pytest.raises(ValueError, match="expects"):
        tiny_model(torch.randn(1, 3, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="divisible"):
        tiny_model(torch.randn(1, 1, 7, 7), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        unet_config("huge")
    with pytest.raises(ValueError, match="unknown UNetConfig fields"):
        unet_config("tiny", width=3)
    with pytest.raises(ValueError, match="norm_groups"):
        build_unet("tiny", base_channels=6)
    with pytest.raises(ValueError, match="match no level"):
        build_unet("tiny", attention_resolutions=(3,))
    sr = build_unet("tiny", cond_channels=1)
    with pytest.raises(ValueError, match="does not divide"):
        sr(torch.randn(1, 1, 8, 8), torch.tensor([0]), lr=torch.randn(1, 1, 3, 3))


def test_a_model_cast_to_bf16_stays_close_to_fp32(tiny_model):
    x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([3, 900])
    with torch.no_grad():
        ref = tiny_model(x, t)
        out = tiny_model.to(torch.bfloat16)(x.bfloat16(), t)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_frozen_output_slice_of_the_tiny_unet():
    """As diffusers' tests do: a silent change of the network (init order, a block, the embedding) changes these
    numbers. Recorded with fastdiff 0.1 (commit 42c477c) and unchanged by the move to the level walk."""
    torch.manual_seed(0)
    model = build_unet("tiny").eval()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x, torch.tensor([3, 700]))
    expected_corner = torch.tensor([-0.0871, 0.1694, 0.3340, -0.0801, 0.3475, 0.4166, -0.0482, 0.1983, 0.0921])
    torch.testing.assert_close(out[0, 0, :3, :3].flatten(), expected_corner, atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1, 0, -1, -3:], torch.tensor([-0.3687, -0.1613, 0.0385]), atol=1e-3, rtol=0)
    assert out.abs().sum().item() == pytest.approx(30.8719, abs=1e-2)


def test_channels_last_equals_contiguous(tiny_model):
    x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 900])
    with torch.no_grad():
        ref = tiny_model(x, t)
        out = tiny_model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stays_within_a_stated_tolerance_of_fp32(tiny_model, dtype):
    """Autocast keeps the weights in fp32 and runs convolutions and matmuls in the lower precision: bf16 (8 bits
    of mantissa) within 5% and fp16 (11 bits) within 1% of the output's range."""
    x, t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        ref = tiny_model(x, t)
        with torch.autocast("cpu", dtype=dtype):
            out = tiny_model(x, t)
    tolerance = {torch.bfloat16: 0.05, torch.float16: 0.01}[dtype]
    assert (out.float() - ref).abs().max() < tolerance * ref.abs().max()
    assert not torch.equal(out.float(), ref)     # the lower precision did run
