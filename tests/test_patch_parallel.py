"""Study 4's geometry: rolling and patchifying are exact inverses, patches come out where they belong, position
masks follow the rolled patch, the fixed shift pattern cycles, and the seam score sees a seam."""
import pytest
import torch

from fastdiff.methods.patch_parallel import (gaussian_position_mask, patchify, rolling_shift, seam_score,
                                             shift_for_step, unpatchify, unroll)


def test_roll_then_unroll_and_patchify_then_unpatchify_are_identities():
    x = torch.randn(3, 2, 16, 12)
    for shift in ((0, 0), (4, 0), (0, 4), (5, 7)):
        assert torch.equal(unroll(rolling_shift(x, shift), shift), x)
    for d in (1, 2, 4):
        assert torch.equal(unpatchify(patchify(x, d), d), x)
    p = patchify(x, 2)
    assert p.shape == (12, 2, 8, 6)
    assert torch.equal(p[1], x[0, :, :8, 6:]) and torch.equal(p[4 + 2], x[1, :, 8:, :6])   # (i, j) = (0, 1), (1, 0)
    with pytest.raises(ValueError, match="does not split"):
        patchify(x, 5)


def test_the_mask_peaks_on_its_patch_and_moves_with_the_roll():
    masks = gaussian_position_mask((8, 8), 2)
    assert masks.shape == (4, 1, 8, 8)
    odd = gaussian_position_mask((6, 6), 2)          # 3x3 patches: each centre is a pixel, the peak is there
    assert [divmod(int(m.flatten().argmax()), 6) for m in odd] == [(1, 1), (1, 4), (4, 1), (4, 4)]
    assert torch.allclose(odd.amax(dim=(1, 2, 3)), torch.ones(4))
    moved = gaussian_position_mask((8, 8), 2, shift=(2.0, 0.0))
    torch.testing.assert_close(moved[0, 0], torch.roll(masks[0, 0], shifts=2, dims=0), atol=1e-6, rtol=0)


def test_the_fixed_pattern_cycles_and_random_stays_in_range():
    assert [shift_for_step("fixed", 4, i) for i in range(5)] == [(0, 0), (0, 4), (4, 0), (4, 4), (0, 0)]
    g = torch.Generator().manual_seed(0)
    assert all(shift_for_step("fixed", 4, 0, generator=g, training=True) in ((0, 0), (0, 4), (4, 0), (4, 4))
               for _ in range(20))
    assert all(0 <= v <= 4 for _ in range(20) for v in shift_for_step("random", 4, 0, generator=g))
    assert shift_for_step("none", 8, 3) == (0, 0) and shift_for_step("fixed", 0, 1) == (0, 0)
    with pytest.raises(ValueError, match="unknown shift mode"):
        shift_for_step("circular", 4, 0)


def test_the_seam_score_sees_a_seam():
    smooth = torch.linspace(-1, 1, 32)[None, None, None, :].expand(2, 1, 32, 32).contiguous()
    assert seam_score(smooth, 2) == pytest.approx(1.0, abs=1e-5)
    seamed = smooth.clone()
    seamed[..., :, 16:] += 0.5                                      # a jump at the vertical patch boundary
    assert seam_score(seamed, 2) > 3
