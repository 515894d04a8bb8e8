"""One Canny for make-edges and check: the boolean map and the stored drawing are the same edges."""

from __future__ import annotations

import numpy as np
from skimage import data

from pairforge.check.measures import EdgeRecipe
from pairforge.pipelines.canny import canny_edges, canny_mask


def square() -> np.ndarray:
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = 255
    return image


def test_canny_mask_marks_the_outline_of_a_square() -> None:
    mask = canny_mask(square())
    assert mask.dtype == bool and mask.shape == (64, 64)
    rows, columns = np.nonzero(mask)
    # the outline, one or two pixels either side of the step, and nothing else
    assert rows.min() >= 14 and rows.max() <= 49 and columns.min() >= 14 and columns.max() <= 49
    assert mask[15:18, 32].any() and mask[46:49, 32].any() and mask[32, 15:18].any() and mask[32, 46:49].any()
    assert not mask[20:44, 20:44].any()


def test_canny_edges_is_the_mask_drawn_black_on_white() -> None:
    photo = np.ascontiguousarray(data.astronaut()[::4, ::4])
    drawing = canny_edges(photo)
    assert drawing.dtype == np.uint8 and set(np.unique(drawing)) == {0, 255}
    np.testing.assert_array_equal(drawing == 0, canny_mask(photo))


def test_parameters_reach_the_detector_and_gray_input_is_accepted() -> None:
    photo = np.ascontiguousarray(data.astronaut()[::4, ::4])
    default = canny_mask(photo)
    assert canny_mask(photo, blur=1).sum() > default.sum()  # no blur: more texture edges
    assert canny_mask(photo, low_ratio=1.2, high_ratio=2.5).sum() < default.sum()
    gray = np.ascontiguousarray(photo[..., 1])
    np.testing.assert_array_equal(canny_mask(gray), canny_mask(np.repeat(gray[..., None], 3, axis=2)))


def test_the_check_measures_b_with_make_edges_canny() -> None:
    photo = np.ascontiguousarray(data.coffee()[::4, ::4])
    np.testing.assert_array_equal(EdgeRecipe().edges(photo), canny_edges(photo) == 0)
