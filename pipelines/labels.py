"""The ``labels`` stage: label map -> photo pairs (A = colour-coded label map, B = the photo)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pairforge.descriptions import describe
from pairforge.errors import ConfigError, SampleError
from pairforge.imageio import colored_fraction
from pairforge.palettes import UNKNOWN, Palette
from pairforge.pipelines.base import require_min_side, require_rgb
from pairforge.pipelines.geometry import FitConfig, fit_image, resize
from pairforge.sample import PairSample

UNKNOWN_POLICIES = ("reject", "ignore")
SIZE_MISMATCH_POLICIES = ("resize", "reject")
LABEL_INPUTS = ("auto", "ids", "colors")


@dataclass(frozen=True)
class LabelsConfig:
    """Options of ``make-labels``.

    Attributes:
        palette: the label space. With no ``--palette`` the CLI decides an
            automatic palette before the run (``palettes.auto_palette_for``), so
            that every worker uses the same one.
        unknown: ``reject`` a sample whose map holds ids/colours outside the
            palette, or ``ignore`` them (mapped to the palette's ignore class,
            added when the palette has none).
        size_mismatch: ``resize`` the label map (nearest) to the photo's size,
            or ``reject`` the sample.
        fit: output size and resizing policy, applied to photo and label map
            alike (nearest for the label map; ``pad`` fills with the ignore class).
        input: ``ids`` (single-channel class ids), ``colors`` (colour-coded
            RGB) or ``auto`` (by the number of channels).
    """

    palette: Palette
    unknown: str = "reject"
    size_mismatch: str = "resize"
    fit: FitConfig = field(default_factory=FitConfig)
    input: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.palette, Palette):
            raise ConfigError(
                "palette",
                self.palette,
                "a Palette (builtin_palette, load_palette, or auto_palette_for over the label maps)",
            )
        if self.unknown not in UNKNOWN_POLICIES:
            raise ConfigError("unknown", self.unknown, " | ".join(UNKNOWN_POLICIES))
        if self.size_mismatch not in SIZE_MISMATCH_POLICIES:
            raise ConfigError(
                "size_mismatch", self.size_mismatch, " | ".join(SIZE_MISMATCH_POLICIES)
            )
        if self.input not in LABEL_INPUTS:
            raise ConfigError("input", self.input, " | ".join(LABEL_INPUTS))


class LabelsStage:
    """Builds (colour-coded label map, photo) pairs.

    A holds only the exact colours of :attr:`palette` (nearest resampling,
    no blending), so the trainer can turn it back into one-hot classes.

    Args:
        config: the stage options.

    Attributes:
        palette: the palette actually used: ``config.palette``, plus an ignore
            class when ``unknown="ignore"`` or ``fit="pad"`` need one. Write
            ``palette.to_json()`` into pairs.json.
    """

    kind = "labels"
    a_channels = 3
    config_class = LabelsConfig
    card_template = "labels2photo.md"
    card = {
        "a_description": "RGB colour-coded label map",
        "b_description": "RGB photo",
        "task_id": "labels-to-photo",
        "limitations": "Label maps are only as accurate as their annotation; classes missing from the "
        "palette were rejected or mapped to the ignore class, as recorded in dataset.json.",
    }
    rebuildable = False
    not_rebuildable_because = "labels need label maps"

    def __init__(self, config: LabelsConfig) -> None:
        self.config = config
        needs_ignore = config.unknown == "ignore" or (
            config.fit.fit == "pad" and config.fit.size is not None
        )
        self.palette = config.palette.with_ignore() if needs_ignore else config.palette

    def __call__(self, image: np.ndarray, key: str, label: np.ndarray | None = None) -> PairSample:
        """Make one pair.

        Args:
            image: the photo.
            key: the sample key.
            label: the label map matched to the photo (from ``read_label_image``).

        Returns:
            A pair with ``a`` the colour-coded label map and ``b`` the photo.

        Shape:
            image ``(H, W, 3)`` uint8; label ``(h, w)`` uint8/uint16 ids or
            ``(h, w, 3)`` uint8 colours -> a and b ``(H', W', 3)`` uint8.

        Raises:
            SampleError: bad photo or label map, unknown ids/colours with
                ``unknown="reject"``, or a size mismatch with ``size_mismatch="reject"``.
        """
        require_rgb(image, "photo")
        require_min_side(image, "photo")
        label, source = self._checked_label(label)
        if source == "ids":
            index = self.palette.index_of_ids(label)
        else:
            index = self.palette.index_of_colors(label)
        unknown = index == UNKNOWN
        unknown_pixels = int(np.count_nonzero(unknown))
        if unknown_pixels:
            if self.config.unknown == "reject":
                raise SampleError(
                    f"unknown {source}",
                    f"{unknown_pixels} label pixels with {source} not in palette "
                    f"{self.palette.name!r}: {_examples(label, unknown, source)} "
                    "(use --unknown ignore, or another --palette)",
                )
            index[unknown] = self.palette.ignore_index
        index = index.astype(np.uint16)

        height, width = image.shape[:2]
        resized = index.shape != (height, width)
        if resized:
            if self.config.size_mismatch == "reject":
                raise SampleError(
                    "size mismatch",
                    f"label map is {index.shape[1]}x{index.shape[0]}, "
                    f"photo is {width}x{height} (use --size-mismatch resize)",
                )
            index = resize(index, height, width, nearest=True)

        pad_index = self.palette.ignore_index if self.palette.ignore_index is not None else 0
        index = fit_image(index, self.config.fit, nearest=True, pad_value=pad_index)
        photo = np.ascontiguousarray(fit_image(image, self.config.fit))
        label_rgb = self.palette.colors_of(index)
        meta = {"label_input": source, "unknown_pixels": unknown_pixels, "label_resized": resized}
        return PairSample(key, label_rgb, photo, meta)

    def describe(self) -> dict[str, Any]:
        """``{"builder", "config", "provenance"}`` with the palette actually used (recorded in pairs.json)."""
        return describe("labels", replace(self.config, palette=self.palette))

    def _checked_label(self, label: Any) -> tuple[np.ndarray, str]:
        """The label map as ``(H, W)`` ids or ``(H, W, 3)`` colours, and which of the two it is."""
        if label is None:
            raise SampleError("unmatched", "no label map for this photo (label maps are matched by file stem)")
        if not isinstance(label, np.ndarray):
            raise SampleError("bad label map", f"not an array ({type(label).__name__})")
        if label.ndim == 3 and label.shape[2] == 1:
            label = label[..., 0]
        if label.ndim not in (2, 3) or (label.ndim == 3 and label.shape[2] != 3):
            raise SampleError(
                "bad label map", f"label map must be (H, W) ids or (H, W, 3) colours, got shape {label.shape}"
            )
        if label.shape[0] == 0 or label.shape[1] == 0:
            raise SampleError("bad label map", f"label map is empty ({label.shape[1]}x{label.shape[0]})")
        if label.ndim == 3 and self.config.input == "ids":
            if colored_fraction(label):
                raise SampleError(
                    "bad label map", "expected a single-channel class-id map, got a colour image (try --input colors)"
                )
            label = label[..., 0]
        if label.ndim == 2:
            if self.config.input == "colors":
                raise SampleError(
                    "bad label map", "expected a colour-coded label map, got single-channel ids (try --input ids)"
                )
            if not np.issubdtype(label.dtype, np.integer):
                raise SampleError("bad label map", f"class ids must be integers, got {label.dtype}")
            return label, "ids"
        if label.dtype != np.uint8:
            raise SampleError("bad label map", f"colour label map must be uint8, got {label.dtype}")
        return label, "colors"


def _examples(label: np.ndarray, unknown: np.ndarray, source: str, limit: int = 5) -> str:
    """A few of the offending ids or colours, for the reject reason."""
    found = np.unique(label[unknown], axis=0)[:limit]
    text = ", ".join(
        str(v) if source == "ids" else "#{:02x}{:02x}{:02x}".format(*v) for v in found.tolist()
    )
    return f"{source} {text}" + (", ..." if len(found) == limit else "")
