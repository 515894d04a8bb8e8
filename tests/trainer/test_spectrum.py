"""Radially averaged power spectra: known answers for a flat image, a sinusoid, blur and added noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from pairforge.trainer.evaluation import evaluate_pairs
from pairforge.trainer.spectrum import BINS, radial_power_spectrum, spectrum_scores


def _photo() -> np.ndarray:
    return cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


def test_flat_image_has_no_power_and_a_sinusoid_peaks_in_its_bin() -> None:
    assert radial_power_spectrum(np.full((64, 64), 90, np.uint8)).max() == pytest.approx(0.0, abs=1e-20)
    x = np.arange(128)
    # 16 cycles over 128 pixels = 0.125 cycles/pixel -> bin 0.125 / 0.5 * BINS = 8
    stripes = np.tile((127 + 100 * np.sin(2 * np.pi * 16 * x / 128)).astype(np.uint8), (128, 1))
    spectrum = radial_power_spectrum(stripes)
    assert spectrum.shape == (BINS,) and int(np.argmax(spectrum)) == 8


def test_identity_blur_and_noise() -> None:
    photo = _photo()
    same = spectrum_scores(photo, photo)
    assert same["spectral_distance"] == 0.0 and same["high_freq_ratio"] == pytest.approx(1.0)
    blurred = spectrum_scores(cv2.GaussianBlur(photo, (0, 0), 2.0), photo)
    noisy_values = photo.astype(np.float32) + np.random.default_rng(0).normal(0, 40, photo.shape)
    noisy = spectrum_scores(np.clip(noisy_values, 0, 255).astype(np.uint8), photo)
    assert blurred["high_freq_ratio"] < 0.01 and noisy["high_freq_ratio"] > 1.5
    assert blurred["spectral_distance"] > 1.0 and noisy["spectral_distance"] > 0.1
    with pytest.raises(ValueError, match="differ in size"):
        spectrum_scores(photo, photo[:64])


def test_evaluate_reports_the_spectrum_per_sample() -> None:
    photo = _photo()
    report = evaluate_pairs([("sharp", photo, photo, photo), ("blur", photo, photo, cv2.GaussianBlur(photo, (0, 0), 2.0))],
                            "generic")
    rows = {row["key"]: row for row in report.rows}
    assert rows["sharp"]["spectral_distance"] == 0.0 and rows["blur"]["high_freq_ratio"] < 0.2
    assert report.means["spectral_distance"] == pytest.approx(rows["blur"]["spectral_distance"] / 2)
