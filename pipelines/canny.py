"""Canny edges with thresholds from the image's median intensity (the cheap alternative to HED).

One implementation, two forms of its result: :func:`canny_mask` (True on edges; the
check measures B's edges with it) and :func:`canny_edges` (the black-on-white drawing
make-edges stores as A).
"""

from __future__ import annotations

import cv2
import numpy as np


def canny_mask(image: np.ndarray, low_ratio: float = 0.66, high_ratio: float = 1.33, blur: int = 3) -> np.ndarray:
    """Canny edges of a photo as a boolean map.

    The gray image is lightly blurred, then Canny runs with hysteresis
    thresholds ``low_ratio * median`` and ``high_ratio * median`` (L2 gradient).

    Args:
        image: RGB photo, or an already gray image.
        low_ratio: lower threshold as a fraction of the median intensity.
        high_ratio: upper threshold as a fraction of the median intensity.
        blur: Gaussian blur kernel side (odd; 1 disables it).

    Returns:
        True on edges.

    Shape:
        image ``(H, W, 3)`` RGB or ``(H, W)`` gray, uint8; output ``(H, W)`` bool.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if blur > 1:
        gray = cv2.GaussianBlur(gray, (blur, blur), 0)
    median = float(np.median(gray))
    low = int(max(0.0, low_ratio * median))
    high = int(min(255.0, max(low + 1.0, high_ratio * median)))
    return cv2.Canny(gray, low, high, L2gradient=True) > 0


def canny_edges(image: np.ndarray, low_ratio: float = 0.66, high_ratio: float = 1.33, blur: int = 3) -> np.ndarray:
    """Black-on-white Canny edges of an RGB photo: :func:`canny_mask` drawn as make-edges stores A.

    Returns:
        255 background, 0 on edges.

    Shape:
        image ``(H, W, 3)`` uint8; output ``(H, W)`` uint8.
    """
    return np.where(canny_mask(image, low_ratio, high_ratio, blur), 0, 255).astype(np.uint8)
