"""The Stage contract every pair builder implements (see shared/ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from pairforge.errors import SampleError
from pairforge.sample import PairSample


@runtime_checkable
class Stage(Protocol):
    """Turns one decoded RGB uint8 image into an aligned (A, B) pair.

    A stage validates its config in ``__init__`` (loading any weights once) and
    is then a pure function of its inputs: no file I/O, no printing, no Dask,
    no global state. Bad input raises :class:`~pairforge.errors.SampleError`.

    Extra inputs (a label map for ``make-labels``, the B image for ``combine``)
    arrive as keyword arguments named after the source item's extras.
    """

    kind: str
    """Recorded in pairs.json; what it means is :func:`pairforge.kinds.of` (``edges``, ``gray``, ``labels``,
    ``generic``, or one a registered builder declares)."""

    a_channels: int
    """Channels of A as stored (1 for edges and gray, 3 otherwise)."""

    def __call__(self, image: np.ndarray, key: str, **extras: Any) -> PairSample: ...

    def describe(self) -> dict[str, Any]:
        """``{"builder", "config": asdict(config), "provenance"}`` (:func:`pairforge.descriptions.describe`):
        enough to rebuild A the same way later, as ``Stage(Config(**d["config"]))``."""
        ...


MIN_PHOTO_SIDE = 32
"""Smallest photo side every builder accepts, in pixels (one rule for edges, gray and labels):
smaller inputs enlarged to ``--size`` carry no detail to learn from, and HED needs 32 px."""


def require_min_side(image: np.ndarray, what: str = "image") -> None:
    """Raise :class:`SampleError` when ``image`` is smaller than :data:`MIN_PHOTO_SIDE` on a side."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_PHOTO_SIDE:
        raise SampleError("too small", f"{what} is {width}x{height} px (minimum {MIN_PHOTO_SIDE} px per side)")


def require_rgb(image: Any, what: str = "image") -> None:
    """Raise :class:`SampleError` unless ``image`` is a non-empty ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray):
        raise SampleError("invalid array", f"{what} is not an array ({type(image).__name__})")
    if image.ndim != 3 or image.shape[2] != 3:
        raise SampleError("invalid array", f"{what} must be RGB (H, W, 3), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise SampleError("invalid array", f"{what} must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise SampleError("empty image", f"{what} is {image.shape[1]}x{image.shape[0]}")
