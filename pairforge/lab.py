"""CIE L*a*b* (sRGB, D65): the one Lab definition of make-gray, the trainer and evaluate.

The constants live here; :mod:`pairforge.trainer.transforms` has the torch version of the
same formulas (its tests pin the two to each other). A neutral gray maps to a = b = 0 exactly
(the white point is the matrix's row sums).
"""

from __future__ import annotations

import numpy as np

RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
"""Linear sRGB -> CIE XYZ (D65), as in OpenCV."""
WHITE = RGB_TO_XYZ.sum(axis=1)
"""XYZ of sRGB white: the D65 reference white of this matrix."""
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
DELTA = 6.0 / 29.0
L_SCALE_8BIT = 255.0 / 100.0
"""make-gray --space lab stores L* (0..100) as uint8 0..255."""


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] to linear light."""
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light to sRGB values (not clipped)."""
    values = np.maximum(values, 0.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1.0 / 2.4) - 0.055)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > DELTA**3, np.cbrt(t), t / (3.0 * DELTA**2) + 4.0 / 29.0)


def _f_inverse(t: np.ndarray) -> np.ndarray:
    return np.where(t > DELTA, t**3, 3.0 * DELTA**2 * (t - 4.0 / 29.0))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB to Lab.

    Shape:
        (..., 3) uint8 (0..255) or float in [0, 1] -> (..., 3) float64: L in [0, 100], a, b about [-110, 110].
    """
    values = rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    xyz = srgb_to_linear(values) @ RGB_TO_XYZ.T / WHITE
    fx, fy, fz = (_f(xyz[..., i]) for i in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Lab to sRGB in [0, 1] (clipped).

    Shape:
        (..., 3) float -> (..., 3) float64.
    """
    fy = (lab[..., 0] + 16.0) / 116.0
    fx, fz = fy + lab[..., 1] / 500.0, fy - lab[..., 2] / 200.0
    xyz = np.stack([_f_inverse(fx), _f_inverse(fy), _f_inverse(fz)], axis=-1) * WHITE
    return np.clip(linear_to_srgb(xyz @ XYZ_TO_RGB.T), 0.0, 1.0)


def lightness(rgb: np.ndarray) -> np.ndarray:
    """L* in [0, 100] of sRGB pixels; a 2-D (H, W) image counts as neutral gray.

    Shape:
        (H, W) or (H, W, 3) uint8 -> (H, W) float64.
    """
    if rgb.ndim == 2 or rgb.shape[-1] == 1:
        gray = rgb.reshape(rgb.shape[:2]).astype(np.float64) / 255.0
        return 116.0 * _f(srgb_to_linear(gray)) - 16.0
    return rgb_to_lab(rgb[..., :3])[..., 0]
