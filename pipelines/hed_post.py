"""Post-processing of soft HED maps into clean line drawings, as pix2pix made edges2shoes.

A Python version of the official pix2pix ``scripts/edges/PostprocessHED.m``:
resize the soft map; non-maximum suppression along the edge orientation taken
from the smoothed map's second derivatives (the algorithm of Piotr Dollar's
``edgesNmsMex``: radius 1, 5 px boundary suppression, multiplier 1.01);
threshold at 25/255; thin to one pixel; drop connected components smaller than
5 pixels; black edges on white.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import resize


def triangle_filter(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable triangle smoothing with symmetric borders (Piotr's ``convTri``, integer radius).

    The kernel is ``[1, 2, .., r+1, .., 2, 1] / (r+1)^2``.

    Shape:
        image ``(H, W)`` float32; output ``(H, W)`` float32.
    """
    if radius < 1:
        return image.astype(np.float32)
    kernel = np.concatenate([np.arange(1, radius + 2), np.arange(radius, 0, -1)]).astype(np.float32)
    kernel /= (radius + 1) ** 2
    return cv2.sepFilter2D(image.astype(np.float32), -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)


def edge_orientation(soft: np.ndarray, smoothing: int = 4) -> np.ndarray:
    """Edge normal angle from the second derivatives of the smoothed map.

    Args:
        soft: edge strength.
        smoothing: triangle filter radius applied first.

    Returns:
        Angles in ``[0, pi)``: the direction across the edge (x = columns, y = rows).

    Shape:
        soft ``(H, W)``; output ``(H, W)`` float32.
    """
    smooth = triangle_filter(soft, smoothing)
    grad_y, grad_x = np.gradient(smooth)
    grad_xx = np.gradient(grad_x, axis=1)
    grad_yy, grad_xy = np.gradient(grad_y)
    # MATLAB's sign(-Oxy), except that an exactly zero Oxy counts as +1: the original
    # then returns 0 (suppression along x) even for perfectly horizontal ridges.
    sign = np.where(grad_xy > 0, -1.0, 1.0).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(grad_yy * sign / (grad_xx + 1e-5))
    return np.mod(np.nan_to_num(angle, nan=0.0), np.pi).astype(np.float32)


def non_maximum_suppression(
    edges: np.ndarray,
    orientation: np.ndarray,
    radius: int = 1,
    boundary: int = 5,
    multiplier: float = 1.01,
) -> np.ndarray:
    """Keep pixels that are maxima across the edge; fade out the image border.

    A pixel survives when ``multiplier * value`` is at least the bilinearly
    interpolated strength at every offset ``d`` in ``-radius..radius`` along
    ``(cos, sin)`` of its orientation. Then columns and rows closer than
    ``boundary`` pixels to the border are scaled by ``distance / boundary``.

    Shape:
        edges, orientation ``(H, W)``; output ``(H, W)`` float32.
    """
    edges = edges.astype(np.float32)
    height, width = edges.shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    cos, sin = np.cos(orientation), np.sin(orientation)
    scaled = edges * multiplier
    keep = np.ones(edges.shape, dtype=bool)
    for offset in range(-radius, radius + 1):
        if offset:
            neighbour = _bilinear(edges, cols + offset * cos, rows + offset * sin)
            keep &= scaled >= neighbour
    result = np.where(keep, edges, 0).astype(np.float32)

    margin = min(boundary, width // 2, height // 2)
    if margin > 0:
        ramp = np.arange(margin, dtype=np.float32) / margin
        result[:, :margin] *= ramp
        result[:, width - margin :] *= ramp[::-1]
        result[:margin] *= ramp[:, None]
        result[height - margin :] *= ramp[::-1, None]
    return result


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples at ``(x, y)``, clamped inside the image as edgesNmsMex does."""
    height, width = image.shape
    x = np.clip(x, 0, width - 1.001)
    y = np.clip(y, 0, height - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    dx, dy = x - x0, y - y0
    return (
        image[y0, x0] * (1 - dx) * (1 - dy)
        + image[y0, x0 + 1] * dx * (1 - dy)
        + image[y0 + 1, x0] * (1 - dx) * dy
        + image[y0 + 1, x0 + 1] * dx * dy
    )


def remove_small_components(binary: np.ndarray, min_size: int) -> np.ndarray:
    """Drop 8-connected components with fewer than ``min_size`` pixels (MATLAB ``bwareaopen``).

    Shape:
        binary ``(H, W)`` bool; output ``(H, W)`` bool.
    """
    if min_size <= 1:
        return binary.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= min_size
    large[0] = False  # background
    return large[labels] if count > 1 else np.zeros_like(binary, dtype=bool)


def postprocess_hed(
    soft: np.ndarray,
    size: tuple[int, int] | None = None,
    threshold: float = 25 / 255,
    small_edge: int = 5,
) -> np.ndarray:
    """Turn a soft HED map into a one-pixel black-on-white line drawing.

    Args:
        soft: edge probabilities in [0, 1].
        size: output ``(height, width)``; ``None`` keeps the map's size.
        threshold: minimum suppressed strength of an edge pixel.
        small_edge: connected components with fewer pixels are removed.

    Returns:
        255 background, 0 on edges.

    Shape:
        soft ``(H, W)`` float; output ``(height, width)`` uint8.
    """
    from skimage.morphology import thin  # slow to import: kept out of `pairforge --help`

    edges = soft.astype(np.float32)
    if size is not None:
        edges = np.clip(resize(edges, size[0], size[1]), 0, 1)
    orientation = edge_orientation(edges)
    suppressed = non_maximum_suppression(edges, orientation, radius=1, boundary=5, multiplier=1.01)
    binary = suppressed >= max(np.finfo(np.float32).eps, threshold)
    binary = thin(binary)
    binary = remove_small_components(binary, small_edge)
    return np.where(binary, 0, 255).astype(np.uint8)


def soft_to_image(soft: np.ndarray) -> np.ndarray:
    """The soft map as a dark-on-white uint8 image (``raw`` output).

    Shape:
        soft ``(H, W)`` in [0, 1]; output ``(H, W)`` uint8.
    """
    return np.round(255 * (1 - np.clip(soft, 0, 1))).astype(np.uint8)
