"""One-pass paired augmentation: same geometry for A and B, label values preserved."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pairforge.trainer.augment import PairAugment
from pairforge.trainer.config import AugmentConfig

PALETTE_IDS = torch.tensor([0.0, 3.0, 7.0, 250.0])


def _photo(height: int, width: int, seed: int) -> torch.Tensor:
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, 512 - height + 1), rng.integers(0, 512 - width + 1)
    crop = photo[top : top + height, left : left + width]
    return torch.from_numpy(crop.copy()).permute(2, 0, 1).float()


sizes = st.integers(min_value=24, max_value=120)


@settings(max_examples=25, deadline=None)
@given(
    height=sizes,
    width=sizes,
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(["none", "pix2pix", "strong"]),
)
def test_a_and_b_get_the_same_geometry(height: int, width: int, seed: int, mode: str) -> None:
    b = torch.stack([_photo(height, width, seed), _photo(height, width, seed + 1)])
    a = b[:, 1:2].clone()  # A is a channel of B: identical geometry means identical output
    sizes_tensor = torch.tensor([[height, width]] * 2)
    augment = PairAugment(AugmentConfig(mode=mode, load_size=40, crop_size=32))
    out_a, out_b = augment(a, b, sizes_tensor, torch.Generator().manual_seed(seed))
    assert out_a.shape == (2, 1, 32, 32) and out_b.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out_a, out_b[:, 1:2], rtol=0, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(height=sizes, width=sizes, seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["pix2pix", "strong"]))
def test_label_maps_keep_only_palette_values_and_follow_b(height: int, width: int, seed: int, mode: str) -> None:
    generator = np.random.default_rng(seed)
    blocks = generator.integers(0, len(PALETTE_IDS), size=(2, 1, height // 8 + 1, width // 8 + 1))
    ids = PALETTE_IDS[torch.from_numpy(blocks)]
    ids = ids.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)[:, :, :height, :width].contiguous()
    b = ids.expand(-1, 3, -1, -1).contiguous()  # B shows the same blocks: bilinear inside them is exact
    augment = PairAugment(AugmentConfig(mode=mode, load_size=40, crop_size=32), nearest_a=True)
    out_a, out_b = augment(ids, b, torch.tensor([[height, width]] * 2), torch.Generator().manual_seed(seed))
    assert set(out_a.unique().tolist()) <= set(PALETTE_IDS.tolist())
    inside_blocks = (out_b[:, :1] - out_b[:, :1].round()).abs() < 1e-3
    inside_blocks &= torch.isin(out_b[:, :1].round(), PALETTE_IDS)
    agree = (out_a == out_b[:, :1].round()) | ~inside_blocks
    assert agree.float().mean() > 0.97


def test_pix2pix_mode_is_resize_crop_flip() -> None:
    photo = _photo(64, 64, 0)[None]
    augment = PairAugment(AugmentConfig(mode="pix2pix", load_size=64, crop_size=48))
    generator = torch.Generator().manual_seed(3)
    matrices = augment.sample_matrices(torch.tensor([[64, 64]]), torch.Generator().manual_seed(3))
    out, _ = augment(photo, photo, torch.tensor([[64, 64]]), generator)
    x0, y0 = int(round(matrices[0, 0, 2].item())), int(round(matrices[0, 1, 2].item()))
    flipped = matrices[0, 0, 0].item() < 0
    if flipped:
        x0 -= 47
    expected = photo[:, :, y0 : y0 + 48, x0 : x0 + 48]
    expected = expected.flip(-1) if flipped else expected
    torch.testing.assert_close(out, expected, rtol=0, atol=0.05)


def test_none_mode_is_a_plain_resize_of_each_pair_inside_a_padded_batch() -> None:
    small, large = _photo(32, 32, 1), _photo(64, 64, 2)
    canvas = torch.zeros(2, 3, 64, 64)
    canvas[0, :, :32, :32] = small
    canvas[1] = large
    augment = PairAugment(AugmentConfig(mode="none", load_size=32, crop_size=32))
    out, _ = augment(canvas, canvas, torch.tensor([[32, 32], [64, 64]]))
    torch.testing.assert_close(out[0], small, rtol=0, atol=0.05)
    reference = torch.nn.functional.interpolate(large[None], size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[1], reference[0], rtol=0, atol=0.05)


@pytest.mark.parametrize("mode", ["pix2pix", "strong"])
def test_parameters_are_reproducible_and_vary(mode: str) -> None:
    augment = PairAugment(AugmentConfig(mode=mode, load_size=72, crop_size=64))
    sizes_tensor = torch.tensor([[100, 80]] * 16)
    first = augment.sample_matrices(sizes_tensor, torch.Generator().manual_seed(5))
    again = augment.sample_matrices(sizes_tensor, torch.Generator().manual_seed(5))
    torch.testing.assert_close(first, again)
    assert len({tuple(m.flatten().tolist()) for m in first}) > 1
