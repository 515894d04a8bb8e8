"""Canny edges with thresholds from the image's median intensity (the cheap alternative to HED)."""

from __future__ import annotations

import cv2
import numpy as np


def canny_edges(image: np.ndarray, low_ratio: float = 0.66, high_ratio: float = 1.33, blur: int = 3) -> np.ndarray:
    """Black-on-white Canny edges of an RGB photo.

    The gray image is lightly blurred, then Canny runs with hysteresis
    thresholds ``low_ratio * median`` and ``high_ratio * median``.

    Args:
        image: RGB photo.
        low_ratio: lower threshold as a fraction of the median intensity.
        high_ratio: upper threshold as a fraction of the median intensity.
        blur: Gaussian blur kernel side (odd; 1 disables it).

    Returns:
        255 background, 0 on edges.

    Shape:
        image ``(H, W, 3)`` uint8; output ``(H, W)`` uint8.
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if blur > 1:
        gray = cv2.GaussianBlur(gray, (blur, blur), 0)
    median = float(np.median(gray))
    low = int(max(0.0, low_ratio * median))
    high = int(min(255.0, max(low + 1.0, high_ratio * median)))
    edges = cv2.Canny(gray, low, high, L2gradient=True)
    return 255 - edges
