"""The labels stage: exact palette colours in A, nearest resizing, unknown ids and size mismatches."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from pairforge.errors import ConfigError, SampleError
from pairforge.palettes import Palette, auto_palette, builtin_palette
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.labels import LabelsConfig, LabelsStage

CITYSCAPES = builtin_palette("cityscapes")


def colours_of(image: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in np.unique(image.reshape(-1, 3), axis=0).tolist()}


def colorize(palette: Palette, ids: np.ndarray) -> np.ndarray:
    """Known answer: every pixel's palette colour, by a plain dictionary lookup."""
    table = dict(zip(palette.ids, palette.colors, strict=True))
    return np.array([[table[int(i)] for i in row] for row in ids], dtype=np.uint8).reshape(*ids.shape, 3)


def stage(**kwargs) -> LabelsStage:
    kwargs.setdefault("palette", CITYSCAPES)
    return LabelsStage(LabelsConfig(**kwargs))


def test_a_is_the_colorized_label_map(photo: np.ndarray, label_ids: np.ndarray) -> None:
    sample = stage(fit=FitConfig(size=None))(photo, "astro", label=label_ids)
    np.testing.assert_array_equal(sample.a, colorize(CITYSCAPES, label_ids))
    np.testing.assert_array_equal(sample.b, photo)
    assert sample.a_channels == 3 and sample.meta["label_input"] == "ids"


@pytest.mark.parametrize(
    ("size", "fit"), [(64, "crop"), (100, "pad"), (96, "stretch"), (300, "none"), (77, "crop")]
)
def test_resizing_adds_no_colour(
    photos: dict[str, np.ndarray], make_label_map, size: int, fit: str
) -> None:
    image = photos["coffee"]  # not square, so crop and pad do real work
    label = make_label_map(image.shape[0], image.shape[1], list(range(34)), seed=5, block=3)
    labels_stage = stage(fit=FitConfig(size=size, fit=fit))
    sample = labels_stage(image, "coffee", label=label)
    assert sample.a.shape[:2] == sample.b.shape[:2]
    assert min(sample.a.shape[:2]) == size
    allowed = set(labels_stage.palette.channel_colors)
    assert colours_of(sample.a) <= allowed
    assert colours_of(sample.a) - {labels_stage.palette.ignore_color} <= colours_of(
        colorize(CITYSCAPES, label)
    )
    if fit == "pad":  # the letterbox is the ignore class, not white paper
        assert labels_stage.palette.ignore_id is not None
        assert tuple(sample.a[0, 0]) == labels_stage.palette.ignore_color


def test_colour_coded_input_gives_same_a(photo: np.ndarray, label_ids: np.ndarray) -> None:
    from_ids = stage(fit=FitConfig(size=64))(photo, "k", label=label_ids)
    from_colours = stage(fit=FitConfig(size=64))(photo, "k", label=colorize(CITYSCAPES, label_ids))
    np.testing.assert_array_equal(from_ids.a, from_colours.a)
    assert from_colours.meta["label_input"] == "colors"


def test_sixteen_bit_ids(photo: np.ndarray, make_label_map) -> None:
    palette = auto_palette([0, 700, 40000])
    label = make_label_map(photo.shape[0], photo.shape[1], [0, 700, 40000])
    assert label.dtype == np.uint16
    sample = stage(palette=palette, fit=FitConfig(size=None))(photo, "k", label=label)
    np.testing.assert_array_equal(sample.a, colorize(palette, label))


def test_unknown_ids_rejected_by_default(photo: np.ndarray, label_ids: np.ndarray) -> None:
    label = label_ids.copy()
    label[:4, :4] = 200
    with pytest.raises(
        SampleError, match=r"16 label pixels with ids not in palette 'cityscapes': ids 200"
    ):
        stage()(photo, "k", label=label)


def test_unknown_ids_ignored_map_to_ignore_class(photo: np.ndarray, label_ids: np.ndarray) -> None:
    label = label_ids.copy()
    label[:4, :4] = 200
    labels_stage = stage(unknown="ignore", fit=FitConfig(size=None))
    sample = labels_stage(photo, "k", label=label)
    ignore = labels_stage.palette.ignore_color
    assert ignore is not None and ignore not in CITYSCAPES.colors
    assert (sample.a[:4, :4] == ignore).all()
    np.testing.assert_array_equal(sample.a[4:], colorize(CITYSCAPES, label_ids[4:]))
    assert sample.meta["unknown_pixels"] == 16
    assert labels_stage.describe()["config"]["palette"]["ignore_color"] == ignore


def test_palette_ignore_id_is_known(photo: np.ndarray, label_ids: np.ndarray) -> None:
    palette = Palette(
        CITYSCAPES.ids, CITYSCAPES.names, CITYSCAPES.colors, ignore_id=255, ignore_color=(1, 2, 3)
    )
    label = label_ids.copy()
    label[0, 0] = 255
    sample = stage(palette=palette, fit=FitConfig(size=None))(
        photo, "k", label=label
    )  # reject policy
    assert tuple(sample.a[0, 0]) == (1, 2, 3) and sample.meta["unknown_pixels"] == 0


def test_unknown_colours(photo: np.ndarray, label_ids: np.ndarray) -> None:
    colours = colorize(CITYSCAPES, label_ids)
    colours[5, 5] = (1, 2, 3)
    with pytest.raises(SampleError, match="#010203"):
        stage()(photo, "k", label=colours)
    sample = stage(unknown="ignore", fit=FitConfig(size=None))(photo, "k", label=colours)
    assert sample.meta["unknown_pixels"] == 1


def test_size_mismatch_resize_and_reject(photo: np.ndarray, make_label_map) -> None:
    half = make_label_map(photo.shape[0] // 2, photo.shape[1] // 2, list(range(34)), block=4)
    sample = stage(fit=FitConfig(size=None))(photo, "k", label=half)
    assert sample.a.shape == photo.shape and sample.meta["label_resized"]
    # nearest x2 upsampling: every label pixel becomes a 2x2 block of its exact colour
    np.testing.assert_array_equal(
        sample.a, np.repeat(np.repeat(colorize(CITYSCAPES, half), 2, 0), 2, 1)
    )
    with pytest.raises(SampleError, match="size mismatch: label map is 80x80, photo is 160x160"):
        stage(size_mismatch="reject")(photo, "k", label=half)


@pytest.mark.parametrize(
    ("label", "input_mode", "reason"),
    [
        (None, "auto", "no label map"),
        (np.zeros((0, 5), np.uint8), "auto", "empty"),
        (np.zeros((8, 8), np.float32), "auto", "integers"),
        (np.zeros((8, 8, 4), np.uint8), "auto", "shape"),
        (np.zeros((8, 8, 3), np.uint16), "auto", "uint8"),
        (np.zeros((8, 8), np.uint8), "colors", "colour-coded"),
        (
            np.dstack(
                [np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8), np.zeros((8, 8), np.uint8)]
            ),
            "ids",
            "single-channel",
        ),
    ],
)
def test_bad_label_maps(
    photo: np.ndarray, label: np.ndarray | None, input_mode: str, reason: str
) -> None:
    with pytest.raises(SampleError, match=reason):
        stage(input=input_mode)(photo, "k", label=label)


def test_ids_mode_accepts_gray_rgb_ids(photo: np.ndarray, label_ids: np.ndarray) -> None:
    as_rgb = np.repeat(label_ids[..., None], 3, axis=2)
    sample = stage(input="ids", fit=FitConfig(size=None))(photo, "k", label=as_rgb)
    np.testing.assert_array_equal(sample.a, colorize(CITYSCAPES, label_ids))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("palette", {"palette": None}),
        ("unknown", {"unknown": "keep"}),
        ("size_mismatch", {"size_mismatch": "crop"}),
        ("input", {"input": "rgb"}),
    ],
)
def test_bad_config(field: str, kwargs: dict) -> None:
    kwargs = {"palette": CITYSCAPES, **kwargs}
    with pytest.raises(ConfigError) as info:
        LabelsConfig(**kwargs)
    assert info.value.field == field


def test_describe_carries_palette() -> None:
    described = stage(unknown="ignore").describe()
    assert described["builder"] == "labels"
    assert described["config"]["palette"] == asdict(CITYSCAPES.with_ignore())  # the palette used
    assert stage().describe()["config"]["palette"]["ignore_id"] is None
