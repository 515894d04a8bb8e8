"""The ``gray`` stage: colorization pairs (A = lightness of the photo, B = the colour photo)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pairforge.descriptions import describe
from pairforge.errors import ConfigError, SampleError
from pairforge.imageio import colored_fraction
from pairforge.lab import L_SCALE_8BIT, lightness
from pairforge.pipelines.base import require_min_side, require_rgb
from pairforge.pipelines.geometry import FitConfig, fit_image
from pairforge.sample import PairSample

GRAY_SPACES = ("luma", "lab")

# A photo counts as grayscale when at most this fraction of its pixels has
# channels further apart than the tolerance (JPEG noise in a few pixels of a
# black-and-white photo must not make it "colour").
GRAY_OUTLIER_FRACTION = 0.001

# ITU-R BT.601 luma weights for R, G, B.
BT601_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class GrayConfig:
    """Options of ``make-gray``.

    Attributes:
        space: ``luma`` (ITU-R BT.601 Y' of the sRGB values) or ``lab`` (CIE L*
            of sRGB under D65 as defined in :mod:`pairforge.lab`, scaled from 0..100 to 0..255).
        gray_tolerance: a photo whose channels differ by at most this much
            (after resizing) at all but 0.1% of its pixels is already grayscale
            and is rejected.
        fit: output size and resizing policy.
    """

    space: str = "luma"
    gray_tolerance: int = 2
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        if self.space not in GRAY_SPACES:
            raise ConfigError("space", self.space, " | ".join(GRAY_SPACES))
        if (
            isinstance(self.gray_tolerance, bool)
            or not isinstance(self.gray_tolerance, int)
            or not (0 <= self.gray_tolerance <= 255)
        ):
            raise ConfigError("gray_tolerance", self.gray_tolerance, "an integer from 0 to 255")


class GrayStage:
    """Builds (lightness, colour photo) pairs for colorization.

    Args:
        config: the stage options.
    """

    kind = "gray"
    a_channels = 1
    config_class = GrayConfig
    card_template = "gray2color.md"
    card = {
        "a_description": "1-channel grayscale",
        "b_description": "RGB colour photo",
        "task_id": "image-colorization",
        "limitations": "Colourisation is ambiguous: many colourings fit one grayscale image; "
        "the photos' own colour casts and processing are learnt as they are.",
    }

    def __init__(self, config: GrayConfig | None = None) -> None:
        self.config = config if config is not None else GrayConfig()

    def __call__(self, image: np.ndarray, key: str) -> PairSample:
        """Make one pair.

        Args:
            image: the colour photo.
            key: the sample key.

        Returns:
            A pair with ``a`` the lightness and ``b`` the resized photo.

        Shape:
            image ``(H, W, 3)`` uint8 RGB -> a ``(h, w)`` uint8, b ``(h, w, 3)`` uint8
            (``h, w`` from ``config.fit``).

        Raises:
            SampleError: not an RGB uint8 image, or ``already grayscale``.
        """
        require_rgb(image)
        require_min_side(image, "photo")
        photo = np.ascontiguousarray(fit_image(image, self.config.fit))
        color_fraction = colored_fraction(photo, self.config.gray_tolerance)
        if color_fraction <= GRAY_OUTLIER_FRACTION:
            raise SampleError("already grayscale", f"{color_fraction:.2%} of the pixels have colour "
                              f"(channels differing by more than {self.config.gray_tolerance})")
        lightness = luma(photo) if self.config.space == "luma" else lab_lightness(photo)
        meta = {"space": self.config.space, "colored_fraction": round(color_fraction, 4)}
        return PairSample(key, lightness, photo, meta)

    def describe(self) -> dict[str, Any]:
        """``{"builder", "config", "provenance"}`` (recorded in pairs.json)."""
        return describe("gray", self.config)


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma ``Y' = 0.299 R' + 0.587 G' + 0.114 B'``, rounded.

    Shape:
        ``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8.
    """
    value = image.astype(np.float32) @ BT601_WEIGHTS
    return np.clip(np.rint(value), 0, 255).astype(np.uint8)


def lab_lightness(image: np.ndarray) -> np.ndarray:
    """CIE L* (sRGB, D65) scaled to 0..255, rounded.

    Shape:
        ``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8; 0 is black, 255 is L* = 100.
    """
    return np.clip(np.rint(lightness(image) * L_SCALE_8BIT), 0, 255).astype(np.uint8)
