"""The pix2pix PostprocessHED recipe: smoothing, orientation, NMS, thinning, small-edge removal."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.morphology import thin

from pairforge.pipelines.hed_post import (
    edge_orientation,
    non_maximum_suppression,
    postprocess_hed,
    remove_small_components,
    soft_to_image,
    triangle_filter,
)


def blurred_line_map(size: int = 96, sigma: float = 2.5, angle_degrees: float = 0.0) -> np.ndarray:
    """A soft edge map: one straight line through the centre, Gaussian-blurred, peak about 0.9."""
    canvas = np.zeros((size, size), np.float32)
    centre = size / 2
    direction = np.deg2rad(angle_degrees)
    dx, dy = np.cos(direction) * size, np.sin(direction) * size
    start = (round(centre - dx), round(centre - dy))
    end = (round(centre + dx), round(centre + dy))
    cv2.line(canvas, start, end, 1.0, 1)
    blurred = cv2.GaussianBlur(canvas, (0, 0), sigma)
    return blurred / blurred.max() * 0.9


def test_triangle_filter_kernel_and_constant_preservation() -> None:
    impulse = np.zeros((21, 21), np.float32)
    impulse[10, 10] = 1
    kernel_1d = np.array([1, 2, 3, 4, 5, 4, 3, 2, 1], np.float32) / 25
    np.testing.assert_allclose(triangle_filter(impulse, 4)[6:15, 6:15], np.outer(kernel_1d, kernel_1d), atol=1e-7)
    flat = np.full((12, 17), 0.3, np.float32)
    np.testing.assert_allclose(triangle_filter(flat, 4), flat, atol=1e-6)


def test_orientation_points_across_the_edge() -> None:
    vertical = blurred_line_map(angle_degrees=90)  # line along rows: normal along x
    horizontal = blurred_line_map(angle_degrees=0)  # line along columns: normal along y
    band = slice(30, 66)
    # Near the ridge, the normal of a vertical line is 0 (or pi), of a horizontal line pi/2.
    angle_v = edge_orientation(vertical)[band, 47]
    angle_h = edge_orientation(horizontal)[47, band]
    assert np.all(np.minimum(angle_v, np.pi - angle_v) < 0.1)
    assert np.all(np.abs(angle_h - np.pi / 2) < 0.1)


@pytest.mark.parametrize("angle_degrees", [0, 30, 90, 135])
def test_nms_thins_a_blurred_line_to_one_pixel(angle_degrees: float) -> None:
    soft = blurred_line_map(angle_degrees=angle_degrees)
    assert (soft > 25 / 255).sum(axis=0 if angle_degrees != 90 else 1).max() >= 7  # it starts thick
    suppressed = non_maximum_suppression(soft, edge_orientation(soft))
    ridge = suppressed[12:-12, 12:-12] > 25 / 255
    # Along the line's cross-section only about one pixel survives.
    axis = 1 if angle_degrees == 90 else 0
    counts = ridge.sum(axis=axis)
    counts = counts[counts > 0]
    assert len(counts) > 40
    assert np.median(counts) == 1 and counts.max() <= 2


def test_nms_fades_out_the_border() -> None:
    soft = blurred_line_map(angle_degrees=0)  # horizontal ridge crossing the left and right borders
    suppressed = non_maximum_suppression(soft, edge_orientation(soft), boundary=5)
    row = int(np.argmax(soft[:, 48]))
    assert suppressed[row, 0] == 0 and suppressed[row, -1] == 0
    np.testing.assert_allclose(suppressed[row, 2], soft[row, 2] * 2 / 5, rtol=1e-5)
    np.testing.assert_allclose(suppressed[row, -3], soft[row, -3] * 2 / 5, rtol=1e-5)
    np.testing.assert_allclose(suppressed[row, 48], soft[row, 48], rtol=1e-6)


def test_small_components_are_removed_with_8_connectivity() -> None:
    binary = np.zeros((20, 20), bool)
    binary[2, 2:6] = True  # 4 pixels: removed
    for step in range(5):  # 5 diagonal pixels: one 8-connected component, kept
        binary[10 + step, 10 + step] = True
    kept = remove_small_components(binary, 5)
    assert not kept[2, 2:6].any()
    assert kept[10:15, 10:15].sum() == 5
    np.testing.assert_array_equal(remove_small_components(binary, 0), binary)
    assert not remove_small_components(np.zeros((8, 8), bool), 5).any()


def test_postprocess_gives_thin_black_lines_on_white_without_specks() -> None:
    soft = blurred_line_map(angle_degrees=30)
    soft[80, 20] = 0.8  # an isolated speck above threshold
    edges = postprocess_hed(soft)
    assert edges.dtype == np.uint8 and edges.shape == soft.shape
    assert set(np.unique(edges)) == {0, 255}
    lines = edges == 0
    assert lines.mean() < 0.05  # mostly white
    assert np.array_equal(thin(lines), lines)
    assert not lines[78:83, 18:23].any(), "the 1-pixel speck survived"
    count, _ = cv2.connectedComponents(lines.astype(np.uint8), connectivity=8)
    assert count - 1 == 1  # one line


def test_postprocess_threshold_and_resize() -> None:
    soft = blurred_line_map(angle_degrees=0) * 0.05  # peak 0.045 < 25/255
    assert (postprocess_hed(soft) == 255).all()
    assert (postprocess_hed(soft, threshold=0.02) == 0).any()
    resized = postprocess_hed(blurred_line_map(), size=(64, 80))
    assert resized.shape == (64, 80)
    assert (resized == 0).sum(axis=0)[10:-10].max() == 1


def test_soft_to_image_is_dark_on_white() -> None:
    soft = np.array([[0.0, 0.5, 1.0, 1.2]], np.float32)
    np.testing.assert_array_equal(soft_to_image(soft), np.array([[255, 128, 0, 0]], np.uint8))
