"""Shared fixtures for pipeline tests: small real photos from scikit-image and synthetic label maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data


def _small(image: np.ndarray, width: int) -> np.ndarray:
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Four real RGB uint8 photos, about 160 px wide (non-square except the astronaut)."""
    return {
        name: _small(getattr(skimage.data, name)(), 160)
        for name in ("astronaut", "coffee", "chelsea", "rocket")
    }


@pytest.fixture(scope="session")
def photo(photos: dict[str, np.ndarray]) -> np.ndarray:
    """The astronaut, 160x160 RGB uint8."""
    return photos["astronaut"]


@pytest.fixture(scope="session")
def gray_photo(photo: np.ndarray) -> np.ndarray:
    """The astronaut in black and white, stored as RGB (R = G = B)."""
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[..., None], 3, axis=2)


def blocky_labels(
    height: int, width: int, ids: list[int], seed: int = 0, block: int = 8
) -> np.ndarray:
    """A random class-id map made of ``block``-pixel squares, drawing from ``ids``.

    Shape:
        ``(height, width)`` uint8 (uint16 when an id exceeds 255).
    """
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if max(ids) > 255 else np.uint8
    coarse = rng.choice(np.asarray(ids), size=(-(-height // block), -(-width // block)))
    return np.kron(coarse, np.ones((block, block), dtype=np.int64))[:height, :width].astype(dtype)


@pytest.fixture(scope="session")
def label_ids(photo: np.ndarray) -> np.ndarray:
    """Cityscapes-style class ids 0..33 in blocks, the size of ``photo``."""
    return blocky_labels(photo.shape[0], photo.shape[1], list(range(34)))


@pytest.fixture(scope="session")
def make_label_map():  # noqa: ANN201 - returns the factory function
    """Factory fixture: ``make_label_map(height, width, ids, seed=0, block=8)`` (see :func:`blocky_labels`)."""
    return blocky_labels
