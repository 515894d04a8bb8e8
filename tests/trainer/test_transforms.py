"""Encodings shared with inference: RGB, gray, one-hot labels, Lab."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from pairforge.trainer.transforms import (
    Encoding,
    colors_to_ids,
    decode_output,
    encode_input,
    encode_pair,
    encode_target,
    output_to_rgb,
    prepare_input,
)

COLORS = ((70, 130, 180), (220, 20, 60), (0, 0, 0))


def test_rgb_round_trip_is_exact() -> None:
    photo = skimage.data.coffee()[:32, :48]
    encoding = Encoding(kind="generic", a_channels=3)
    x = prepare_input(photo, encoding)
    assert x.shape == (1, 3, 32, 48) and x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(output_to_rgb(x, encoding)[0], photo)


def test_gray_input_accepts_rgb_and_gray() -> None:
    photo = skimage.data.astronaut()[:16, :16]
    encoding = Encoding(kind="edges", a_channels=1)
    from_rgb = prepare_input(photo, encoding)
    from_gray = prepare_input(from_rgb.add(1).mul(127.5).round().to(torch.uint8)[0, 0].numpy(), encoding)
    assert from_rgb.shape == (1, 1, 16, 16)
    torch.testing.assert_close(from_rgb, from_gray)


def test_onehot_labels_from_colours_with_nearest_palette_colour() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2] = COLORS[0]
    image[2:, :2] = (219, 22, 60)  # off by a little: still class 1
    ids = colors_to_ids(image, COLORS)
    assert ids.tolist() == [[0] * 4, [0] * 4, [1, 1, 2, 2], [1, 1, 2, 2]]
    encoding = Encoding(kind="labels", a_channels=3, palette_colors=COLORS)
    x = prepare_input(image, encoding)
    assert x.shape == (1, 3, 4, 4)
    assert torch.equal(x.argmax(1)[0], torch.from_numpy(ids).long())
    assert set(x.unique().tolist()) == {-1.0, 1.0}


def test_lab_target_and_output_reconstruct_the_photo() -> None:
    photo = skimage.data.chelsea()[:32, :32]
    encoding = Encoding(kind="gray", a_channels=3, colorspace="lab")
    assert encoding.in_channels == 1 and encoding.out_channels == 2
    b = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    x = prepare_input(photo, encoding)  # L of the photo itself
    target = encode_target(b, encoding)
    assert target.shape == (1, 2, 32, 32) and target.abs().max() <= 1.0
    rgb = output_to_rgb(target, encoding, x)
    assert np.abs(rgb[0].astype(int) - photo.astype(int)).max() <= 2
    assert decode_output(target, encoding, x).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("colorspace,kind", [("lab", "gray"), ("rgb", "gray"), ("rgb", "edges")])
def test_encode_pair_is_encode_input_and_target(colorspace: str, kind: str) -> None:
    """The training batches' one-pass encoding equals the two separate ones, bit for bit."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 3, 16, 16), generator=generator).float()
    b = torch.randint(0, 256, (2, 3, 16, 16), generator=generator).float()
    encoding = Encoding(kind=kind, a_channels=3, colorspace=colorspace)
    x, y = encode_pair(a, b, encoding)
    assert torch.equal(x, encode_input(a, encoding, b)) and torch.equal(y, encode_target(b, encoding))
