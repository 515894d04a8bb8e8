"""Resizing policies shared by every pair builder (``--size`` and ``--fit``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pairforge.errors import ConfigError

FIT_MODES = ("crop", "pad", "stretch", "none")


@dataclass(frozen=True)
class FitConfig:
    """How photos are brought to the output size.

    Attributes:
        size: output side in pixels (``None`` keeps the input size).
        fit: ``crop`` scales the short side to ``size`` then centre-crops a square;
            ``pad`` scales the long side to ``size`` and letterboxes (white);
            ``stretch`` resizes to ``size`` x ``size`` ignoring aspect;
            ``none`` scales the short side to ``size`` and keeps the aspect.
    """

    size: int | None = 256
    fit: str = "crop"

    def __post_init__(self) -> None:
        if self.size is not None and not (8 <= self.size <= 16384):
            raise ConfigError("size", self.size, "an integer from 8 to 16384, or None")
        if self.fit not in FIT_MODES:
            raise ConfigError("fit", self.fit, " | ".join(FIT_MODES))


def fit_image(image: np.ndarray, config: FitConfig, nearest: bool = False, pad_value: int = 255) -> np.ndarray:
    """Apply a :class:`FitConfig` to one image.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array (uint8 or uint16).
        config: size and policy.
        nearest: nearest-neighbour resampling (label maps); otherwise area for
            shrinking and bicubic for enlarging.
        pad_value: fill for ``pad`` letterboxing.

    Returns:
        The resized array, same dtype and channel layout.
    """
    if config.size is None:
        return image
    size = config.size
    height, width = image.shape[:2]
    if config.fit == "stretch":
        return resize(image, size, size, nearest)
    if config.fit == "pad":
        scale = size / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        resized = resize(image, new_h, new_w, nearest)
        canvas = np.full((size, size, *image.shape[2:]), pad_value, dtype=image.dtype)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resized
        return canvas
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = resize(image, new_h, new_w, nearest)
    if config.fit == "none":
        return resized
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top : top + size, left : left + size]


def resize(image: np.ndarray, height: int, width: int, nearest: bool = False) -> np.ndarray:
    """Resize to ``(height, width)``; nearest for label maps, area/bicubic otherwise."""
    if image.shape[:2] == (height, width):
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST_EXACT
    elif height < image.shape[0] or width < image.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    if image.ndim == 3 and resized.ndim == 2:
        resized = resized[..., None]
    return resized
