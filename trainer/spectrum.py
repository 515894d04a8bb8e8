"""Radially averaged power spectra: a measure that sees blur and high-frequency artefacts directly.

An L1-only generator loses high frequencies (its outputs are blurry: too little power at the
top of the spectrum); a GAN-only generator may add spurious ones (too much). Comparing the
radially averaged power spectrum of an output with that of the real photo shows both, beside
the FCN-score that only asks whether a segmenter still finds the classes.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 32
"""Frequency bins between 0 and 0.5 cycles per pixel (the same for every image size)."""
HIGH_BAND = 0.25
"""Frequencies above this (cycles per pixel) count as high in :func:`spectrum_scores`."""


def radial_power_spectrum(image: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Mean power of the gray image per radial frequency bin.

    The image is converted to gray in [0, 1], its mean removed and a Hann window applied
    (so the image border adds no false edges) before the 2-D FFT.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` gray, uint8.
        bins: bins between 0 and 0.5 cycles per pixel.

    Returns:
        ``(bins,)`` float64 mean power per bin (bin ``i`` covers ``[i, i + 1) * 0.5 / bins``).
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
    values = gray.astype(np.float64) / 255.0
    values -= values.mean()
    height, width = values.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2(values * window)) ** 2
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    index = np.minimum((radius / 0.5 * bins).astype(np.int64), bins)  # bin ``bins``: corners past 0.5
    sums = np.bincount(index.ravel(), power.ravel(), minlength=bins + 1)[:bins]
    counts = np.bincount(index.ravel(), minlength=bins + 1)[:bins]
    return sums / np.maximum(counts, 1)


def spectrum_scores(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """How the output's spectrum departs from the real photo's.

    Returns:
        ``spectral_distance``: mean absolute difference of log10 power over the bins above
        the DC bin (0 = the same spectrum; 1 = a factor of 10 everywhere);
        ``high_freq_ratio``: power above :data:`HIGH_BAND` cycles/pixel of the output over
        the target's (< 1: blurrier than the photo, > 1: spurious high frequencies).

    Shape:
        output, target: ``(H, W, 3)`` uint8 RGB of the same size.
    """
    if output.shape[:2] != target.shape[:2]:
        raise ValueError(f"output {output.shape} and target {target.shape} differ in size")
    out_power, ref_power = radial_power_spectrum(output), radial_power_spectrum(target)
    floor = 1e-12
    distance = np.abs(np.log10(out_power[1:] + floor) - np.log10(ref_power[1:] + floor)).mean()
    high = int(HIGH_BAND / 0.5 * BINS)
    ratio = (out_power[high:].sum() + floor) / (ref_power[high:].sum() + floor)
    return {"spectral_distance": float(distance), "high_freq_ratio": float(ratio)}
