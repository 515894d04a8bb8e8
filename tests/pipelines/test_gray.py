"""The gray stage: BT.601 luma / Lab L as A, the colour photo as B, grayscale photos rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skimage.color

from pairforge.errors import ConfigError, SampleError
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage, lab_lightness, luma


def test_luma_is_bt601(photo: np.ndarray) -> None:
    expected = 0.299 * photo[..., 0] + 0.587 * photo[..., 1] + 0.114 * photo[..., 2]
    assert np.abs(luma(photo).astype(np.float64) - expected).max() <= 0.5 + 1e-3


def test_luma_of_primaries() -> None:
    primaries = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert luma(primaries).tolist() == [[76, 150, 29, 255]]


def test_lab_lightness_matches_cie_lab(photos: dict[str, np.ndarray]) -> None:
    for image in photos.values():
        reference = skimage.color.rgb2lab(image)[..., 0] * 255.0 / 100.0
        assert np.abs(lab_lightness(image).astype(np.float64) - reference).max() <= 1.0


def test_lab_and_luma_differ(photo: np.ndarray) -> None:
    # L* is perceptual (cube root of linear luminance), Y' a weighted sum of gamma values.
    assert not np.array_equal(lab_lightness(photo), luma(photo))
    assert lab_lightness(np.zeros((1, 1, 3), np.uint8))[0, 0] == 0
    assert lab_lightness(np.full((1, 1, 3), 255, np.uint8))[0, 0] == 255


@pytest.mark.parametrize("space", ["luma", "lab"])
def test_pair_shapes_and_content(photos: dict[str, np.ndarray], space: str) -> None:
    stage = GrayStage(GrayConfig(space=space, fit=FitConfig(size=64, fit="crop")))
    sample = stage(photos["coffee"], "coffee")
    assert sample.a.shape == (64, 64) and sample.b.shape == (64, 64, 3)
    assert sample.a.dtype == np.uint8 and sample.b.dtype == np.uint8
    assert sample.a_channels == 1 == stage.a_channels
    expected = luma(sample.b) if space == "luma" else lab_lightness(sample.b)
    np.testing.assert_array_equal(sample.a, expected)
    assert sample.meta["space"] == space


def test_size_none_keeps_input_size(photos: dict[str, np.ndarray]) -> None:
    image = photos["chelsea"]
    sample = GrayStage(GrayConfig(fit=FitConfig(size=None)))(image, "cat")
    np.testing.assert_array_equal(sample.b, image)


def test_already_grayscale_rejected(gray_photo: np.ndarray) -> None:
    with pytest.raises(SampleError, match="already grayscale"):
        GrayStage()(gray_photo, "bw")


def test_gray_tolerance(gray_photo: np.ndarray) -> None:
    # A faint uniform tint (channels 3 apart) is grayscale for tolerance 3, colour for 2.
    tinted = gray_photo.copy()
    tinted[..., 0] = np.clip(tinted[..., 0].astype(np.int16) + 3, 0, 255).astype(np.uint8)
    tinted[..., 0] = np.maximum(tinted[..., 0], 3)  # keep the offset at white too
    with pytest.raises(SampleError, match="already grayscale"):
        GrayStage(GrayConfig(gray_tolerance=3, fit=FitConfig(size=None)))(tinted, "tinted")
    sample = GrayStage(GrayConfig(gray_tolerance=2, fit=FitConfig(size=None)))(tinted, "tinted")
    assert sample.b.shape == tinted.shape


def test_a_few_noisy_pixels_do_not_make_a_photo_colour(gray_photo: np.ndarray) -> None:
    noisy = gray_photo.copy()
    noisy[0, :5] = [255, 0, 0]  # 5 of 25600 pixels: JPEG-style speckle, not colour
    with pytest.raises(SampleError, match="already grayscale"):
        GrayStage(GrayConfig(fit=FitConfig(size=None)))(noisy, "speckle")


def test_describe_is_json_ready() -> None:
    described = GrayStage(
        GrayConfig(space="lab", gray_tolerance=5, fit=FitConfig(128, "pad"))
    ).describe()
    assert described == {
        "builder": "gray",
        "config": {"space": "lab", "gray_tolerance": 5, "fit": {"size": 128, "fit": "pad"}},
        "provenance": {},
    }
    json.dumps(described)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("space", {"space": "hsv"}),
        ("gray_tolerance", {"gray_tolerance": -1}),
        ("gray_tolerance", {"gray_tolerance": 256}),
        ("gray_tolerance", {"gray_tolerance": 1.5}),
    ],
)
def test_bad_config(field: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError) as info:
        GrayConfig(**kwargs)
    assert info.value.field == field
