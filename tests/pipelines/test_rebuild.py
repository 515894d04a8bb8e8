"""rebuild: stages come back from their recorded describe() and make the same A."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pairforge.errors import ConfigError, PairforgeError
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage
from pairforge.pipelines.rebuild import (
    edge_detector,
    rebuild_a,
    run_photo_stage,
    stage_from_description,
    stage_from_source,
)


@pytest.mark.parametrize(
    "stage",
    [
        EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=96, fit="pad"))),
        GrayStage(GrayConfig(space="lab", fit=FitConfig(size=80, fit="crop"))),
        GrayStage(GrayConfig(space="luma", fit=FitConfig(size=None))),
    ],
    ids=["edges-canny-pad", "gray-lab-crop", "gray-luma-keep"],
)
def test_rebuilt_stage_makes_identical_a(stage: object, skimage_photos: list[np.ndarray]) -> None:
    recorded = json.loads(json.dumps(stage.describe()))  # as read back from dataset.json
    rebuilt = stage_from_source({"kind": stage.kind, "stage": recorded, "command": "x"})
    for photo in skimage_photos[:2]:
        assert np.array_equal(rebuild_a(rebuilt, photo), stage(photo, "k").a)


def test_edge_detector_keeps_size(skimage_photos: list[np.ndarray]) -> None:
    description = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=64))).describe()
    photo = skimage_photos[0][:101, :77]
    edges = edge_detector(description)(photo)
    assert edges.shape == (101, 77) and edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}


@pytest.mark.parametrize(
    ("kind", "description", "message"),
    [
        ("labels", {"palette": {}}, "label maps"),
        ("generic", {"stage": "combine"}, "combined"),
        ("edges", {}, "did not record"),
        ("edges", {"detector": "sobel"}, r"detector.*hed \| canny"),
    ],
)
def test_unrebuildable_descriptions_fail_clearly(kind: str, description: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        stage_from_description(kind, description)


def test_run_photo_stage_follows_the_run_direction() -> None:
    """predict --from-photos and serve build A from a photo only for AtoB runs (a BtoA run's input is B)."""
    source = {"kind": "edges", "stage": EdgesStage(EdgesConfig(detector="canny")).describe()}
    forward = run_photo_stage({"dataset": {"source": source}, "data": {"direction": "AtoB"}})
    assert isinstance(forward, EdgesStage) and forward.config.fit.size is None  # the photo's own resolution
    with pytest.raises(PairforgeError, match="trained BtoA"):
        run_photo_stage({"dataset": {"source": source}, "data": {"direction": "BtoA"}})
