"""The contract every pipeline stage keeps (shared/ARCHITECTURE.md, "Stage").

Each entry of ``STAGE_CASES`` is run through the same checks: A and B have the
same height and width, both are uint8, the same key and input give the same
output (twice, and from a stage rebuilt from a pickled config, as on a Dask
worker), bad input raises ``SampleError``, no file is touched during a call,
and ``describe()`` and ``meta`` are JSON-ready.

To add a stage, append a ``StageCase``: a factory that builds it (config passed
positionally, as ``pairforge.sources.StageSpec`` does), the extra keyword
inputs it needs for a given photo, and any stage-specific bad extras.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import PIL.Image
import pytest

from pairforge import registry
from pairforge.errors import SampleError
from pairforge.palettes import builtin_palette
from pairforge.pipelines.base import Stage
from pairforge.pipelines.combine import CombineConfig, CombineStage
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage
from pairforge.pipelines.labels import LabelsConfig, LabelsStage
from pairforge.sample import PairSample

Extras = Callable[[np.ndarray], dict[str, Any]]

CITYSCAPES = builtin_palette("cityscapes")
SMALL = FitConfig(size=64, fit="crop")


def no_extras(photo: np.ndarray) -> dict[str, Any]:
    return {}


def label_ids_for(photo: np.ndarray) -> dict[str, Any]:
    """Cityscapes ids in 5-pixel stripes, the photo's size."""
    rows = (np.arange(photo.shape[0]) // 5 % 34).astype(np.uint8)
    return {"label": np.repeat(rows[:, None], photo.shape[1], axis=1)}


def label_colors_for(photo: np.ndarray) -> dict[str, Any]:
    return {"label": np.asarray(CITYSCAPES.colors, np.uint8)[label_ids_for(photo)["label"]]}  # ids 0..33 = rows


def b_image_for(photo: np.ndarray) -> dict[str, Any]:
    """An aligned B image for combine: the photo upside down."""
    return {"b": np.ascontiguousarray(photo[::-1])}


@dataclass(frozen=True)
class StageCase:
    """One stage under the contract.

    Attributes:
        id: test id.
        build: makes the stage (loading weights, if any, happens here).
        extras: keyword inputs the stage needs besides the photo.
        bad_extras: keyword inputs that must be rejected with SampleError.
    """

    id: str
    build: Callable[[], Stage]
    extras: Extras = no_extras
    bad_extras: tuple[dict[str, Any], ...] = field(default_factory=tuple)


# Every pipeline stage goes here. Add new stages (and new configurations worth
# covering) as further entries.
STAGE_CASES: list[StageCase] = [
    StageCase("gray-luma", lambda: GrayStage(GrayConfig(space="luma", fit=SMALL))),
    StageCase("gray-lab", lambda: GrayStage(GrayConfig(space="lab", fit=SMALL))),
    StageCase(
        "labels-ids",
        lambda: LabelsStage(LabelsConfig(CITYSCAPES, fit=SMALL)),
        label_ids_for,
        (
            {"label": None},
            {"label": np.zeros((40, 40), np.float32)},
            {"label": np.full((40, 40), 99, np.uint8)},  # unknown ids, rejected by default
        ),
    ),
    StageCase(
        "labels-colors-pad-ignore",
        lambda: LabelsStage(LabelsConfig(CITYSCAPES, unknown="ignore", fit=FitConfig(64, "pad"))),
        label_colors_for,
        ({"label": np.zeros((40, 40, 4), np.uint8)}, {"label": np.zeros((0, 0, 3), np.uint8)}),
    ),
    StageCase("edges-canny", lambda: EdgesStage(EdgesConfig(detector="canny", fit=SMALL))),
    StageCase(
        "combine",
        lambda: CombineStage(CombineConfig()),
        b_image_for,
        (
            {"b": None},
            {"b": np.zeros((40, 40), np.uint8)},
            {"b": np.zeros((40, 40, 3), np.float32)},
        ),
    ),
]

BAD_IMAGES = {
    "empty-0x0": np.zeros((0, 0, 3), np.uint8),
    "float32": np.zeros((48, 48, 3), np.float32),
    "uint16": np.zeros((48, 48, 3), np.uint16),
    "2d-gray": np.zeros((48, 48), np.uint8),
    "rgba": np.zeros((48, 48, 4), np.uint8),
    "not-an-array": [[0, 0, 0]],
}

VALID_KINDS = {registry.builder(name).kind for name in registry.names()} | {"generic"}
"""Kinds of the registered builders, plus ``combine``'s generic pairs."""


@pytest.fixture(params=STAGE_CASES, ids=[case.id for case in STAGE_CASES])
def case(request: pytest.FixtureRequest) -> StageCase:
    return request.param


@pytest.fixture
def stage(case: StageCase) -> Stage:
    return case.build()


def run(stage: Stage, case: StageCase, photo: np.ndarray, key: str = "sample_1") -> PairSample:
    return stage(photo, key, **case.extras(photo))


def assert_same(first: PairSample, second: PairSample) -> None:
    assert first.key == second.key
    np.testing.assert_array_equal(first.a, second.a)
    np.testing.assert_array_equal(first.b, second.b)
    assert first.meta == second.meta


def test_every_registered_builder_is_under_contract() -> None:
    """A newly registered builder fails here until a StageCase covers it."""
    covered = {type(case.build()) for case in STAGE_CASES}
    for name in registry.names():
        assert registry.builder(name) in covered, f"add a StageCase for the builder {name!r}"


def test_registered_builders_carry_what_the_tool_reads() -> None:
    from importlib import resources

    for name in registry.names():
        stage_class = registry.builder(name)
        assert stage_class.a_channels in (1, 3)
        template = registry.card_texts(stage_class.kind)["template"]
        assert resources.files("pairforge.data_cards").joinpath(template).is_file()


def test_declares_the_protocol(stage: Stage) -> None:
    assert isinstance(stage, Stage)
    assert stage.kind in VALID_KINDS
    assert stage.a_channels in (1, 3)
    json.dumps(stage.describe())
    config_class = getattr(type(stage), "config_class", None)
    if config_class is not None:  # a registered builder: its config is the declared dataclass
        assert isinstance(stage.config, config_class)  # type: ignore[attr-defined]


def test_a_and_b_same_size_uint8(
    stage: Stage, case: StageCase, photos: dict[str, np.ndarray]
) -> None:
    for name, photo in photos.items():
        sample = run(stage, case, photo, key=name)
        assert isinstance(sample, PairSample) and sample.key == name
        assert sample.a.dtype == np.uint8 and sample.b.dtype == np.uint8
        assert sample.a.shape[:2] == sample.b.shape[:2]
        assert min(sample.b.shape[:2]) > 0
        assert sample.b.ndim == 3 and sample.b.shape[2] == 3
        assert sample.a_channels == stage.a_channels
        json.dumps(sample.meta)


def test_same_key_same_output(stage: Stage, case: StageCase, photo: np.ndarray) -> None:
    first = run(stage, case, photo)
    assert_same(first, run(stage, case, photo))
    # a stage rebuilt from a pickled config (as on a Dask worker) agrees too
    rebuilt = type(stage)(pickle.loads(pickle.dumps(stage.config)))  # type: ignore[attr-defined]
    assert_same(first, run(rebuilt, case, photo))


def test_does_not_modify_its_input(stage: Stage, case: StageCase, photo: np.ndarray) -> None:
    original = photo.copy()
    extras = case.extras(photo)
    extras_before = {name: value.copy() for name, value in extras.items()}
    stage(photo, "k", **extras)
    np.testing.assert_array_equal(photo, original)
    for name, value in extras.items():
        np.testing.assert_array_equal(value, extras_before[name])


@pytest.mark.parametrize("bad", list(BAD_IMAGES), ids=list(BAD_IMAGES))
def test_bad_image_raises_sample_error(
    stage: Stage, case: StageCase, photo: np.ndarray, bad: str
) -> None:
    with pytest.raises(SampleError):
        stage(BAD_IMAGES[bad], "bad", **case.extras(photo))


def test_photos_under_the_minimum_side_are_too_small(stage: Stage, case: StageCase, photo: np.ndarray) -> None:
    """One minimum size for every builder (pipelines.base.MIN_PHOTO_SIDE): a 1x50000 strip is no photo."""
    from pairforge.pipelines.base import MIN_PHOTO_SIDE

    for height, width in ((1, 500), (MIN_PHOTO_SIDE - 1, 4 * MIN_PHOTO_SIDE)):
        strip = np.ascontiguousarray(cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA))
        with pytest.raises(SampleError) as caught:
            stage(strip, "strip", **case.extras(strip))
        assert caught.value.reason == "too small", caught.value
        assert f"{width}x{height} px (minimum {MIN_PHOTO_SIDE} px per side)" in caught.value.detail


def test_bad_extras_raise_sample_error(stage: Stage, case: StageCase, photo: np.ndarray) -> None:
    for extras in case.bad_extras:
        with pytest.raises(SampleError):
            stage(photo, "bad", **extras)


def test_no_file_io_during_a_call(
    stage: Stage, case: StageCase, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = case.extras(photo)
    touched: list[str] = []

    def forbidden(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            touched.append(f"{name}{args[:1]}")
            raise AssertionError(f"stage called {name} during __call__")

        return refuse

    for module, attribute in [
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
        (cv2, "imread"),
        (cv2, "imwrite"),
        (PIL.Image, "open"),
    ]:
        monkeypatch.setattr(module, attribute, forbidden(f"{module.__name__}.{attribute}"))
    sample = stage(photo, "k", **extras)
    monkeypatch.undo()
    assert touched == []
    assert sample.a.shape[:2] == sample.b.shape[:2]
