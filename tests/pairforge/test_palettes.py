"""Palettes: the Cityscapes table, JSON round trip and schema, lookups, automatic colours."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pairforge.errors import ConfigError
from pairforge.palettes import (
    UNKNOWN,
    Palette,
    auto_palette,
    auto_palette_for,
    auto_palette_from_colors,
    builtin_palette,
    load_palette,
    palette_colors,
    palette_from_option,
    scan_label_colors,
    scan_label_ids,
)


def test_cityscapes_standard_entries() -> None:
    palette = builtin_palette("cityscapes")
    assert palette.ids == tuple(range(34))
    table = {
        i: (n, c, t)
        for i, n, c, t in zip(
            palette.ids, palette.names, palette.colors, palette.train_ids, strict=True
        )
    }
    assert table[7] == ("road", (128, 64, 128), 0)
    assert table[11] == ("building", (70, 70, 70), 2)
    assert table[23] == ("sky", (70, 130, 180), 10)
    assert table[26] == ("car", (0, 0, 142), 13)
    assert table[33] == ("bicycle", (119, 11, 32), 18)
    assert table[0][2] == 255 and table[18][2] == 255
    trained = sorted(t for t in palette.train_ids if t != 255)
    assert trained == list(range(19))  # the 19 benchmark classes
    assert palette.ignore_id is None


def test_json_schema_exact() -> None:
    palette = builtin_palette("cityscapes").with_ignore()
    data = palette.to_json()
    assert set(data) == {"name", "classes", "ignore"}
    assert data["name"] == "cityscapes"
    assert data["classes"][7] == {"id": 7, "name": "road", "color": [128, 64, 128], "train_id": 0}
    assert all(set(entry) == {"id", "name", "color", "train_id"} for entry in data["classes"])
    assert data["ignore"] == {
        "id": 255,
        "name": "ignore",
        "color": [255, 255, 255],
    }  # black is taken
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    "palette",
    [
        builtin_palette("cityscapes"),
        builtin_palette("cityscapes").with_ignore(),
        auto_palette([3, 1, 700]),
        Palette(
            ids=(5, 2),
            names=("a", "b"),
            colors=((1, 2, 3), (4, 5, 6)),
            name="x",
            ignore_id=9,
            ignore_color=(7, 8, 9),
            ignore_name="void",
        ),
    ],
)
def test_json_round_trip(palette: Palette) -> None:
    assert Palette.from_json(json.loads(json.dumps(palette.to_json()))) == palette


def test_channel_order_is_classes_then_ignore() -> None:
    palette = Palette(
        ids=(5, 2),
        names=("a", "b"),
        colors=((1, 2, 3), (4, 5, 6)),
        ignore_id=0,
        ignore_color=(0, 0, 0),
    )
    assert palette.channel_colors == ((1, 2, 3), (4, 5, 6), (0, 0, 0))
    assert len(palette.channel_colors) == 3 and palette.ignore_index == 2
    ids = np.array([[5, 2, 0, 1]], dtype=np.uint8)
    assert palette.index_of_ids(ids).tolist() == [[0, 1, 2, UNKNOWN]]
    assert palette.index_of_ids(ids.astype(np.int64) - 10).tolist() == [[UNKNOWN] * 4]


def test_colour_lookup_first_class_wins() -> None:
    palette = builtin_palette("cityscapes")
    black, grey, road = (0, 0, 0), (153, 153, 153), (128, 64, 128)
    rgb = np.array([[black, grey, road]], dtype=np.uint8)
    # ids 0-4 are all black and polegroup (18) shares pole's (17) grey: the first class is returned.
    assert palette.index_of_colors(rgb).tolist() == [[0, 17, 7]]
    assert palette.colors_of(np.array([[0, 17, 7]])).tolist() == rgb.tolist()
    assert palette.index_of_colors(np.array([[[1, 2, 3]]], np.uint8)).tolist() == [[UNKNOWN]]


def test_sixteen_bit_ids() -> None:
    palette = auto_palette([0, 1000, 65535])
    ids = np.array([[0, 1000, 65535, 999]], dtype=np.uint16)
    assert palette.index_of_ids(ids).tolist() == [[0, 1, 2, UNKNOWN]]
    assert palette.index_of_ids(ids.astype(np.int64) + 65536).tolist() == [[UNKNOWN] * 4]


def test_palette_colors_of_a_recorded_palette() -> None:
    """The trainer's one-hot colours come from the recorded JSON: classes, then the ignore class."""
    palette = Palette(ids=(3, 9), names=("a", "b"), colors=((1, 2, 3), (4, 5, 6)), ignore_id=255,
                      ignore_color=(7, 8, 9))
    recorded = json.loads(json.dumps(palette.to_json()))
    assert palette_colors(recorded) == ((1, 2, 3), (4, 5, 6), (7, 8, 9))
    assert palette_colors({**recorded, "ignore": None}) == ((1, 2, 3), (4, 5, 6))
    assert palette_colors(None) == () and palette_colors({}) == ()
    with pytest.raises(ConfigError, match="palette"):
        palette_colors({"classes": [{"id": 1, "color": [1, 2]}]})


def test_auto_palette_distinct_and_stable() -> None:
    palette = auto_palette(range(300))
    assert len(set(palette.colors)) == 300
    # a colour depends on the id only, not on which other ids are present
    assert auto_palette([7, 250]).colors == (palette.colors[7], palette.colors[250])
    assert auto_palette([250, 7, 7]) == auto_palette([7, 250])
    # the first few classes are far apart (at least one channel differs by >= 64)
    first = np.array(palette.colors[:8], dtype=int)
    gaps = np.abs(first[:, None, :] - first[None, :, :]).max(axis=2)
    assert gaps[~np.eye(8, dtype=bool)].min() >= 64


def test_with_ignore_avoids_used_ids_and_colours() -> None:
    palette = Palette(
        ids=(255, 0), names=("a", "b"), colors=((0, 0, 0), (255, 255, 255))
    ).with_ignore()
    assert palette.ignore_id == 256
    assert palette.ignore_color not in ((0, 0, 0), (255, 255, 255))
    assert palette.with_ignore() is palette


def make_label_map(height: int, width: int, ids: list[int], seed: int = 0) -> np.ndarray:
    """A random class-id map drawing from ``ids`` (uint16 when an id exceeds 255)."""
    dtype = np.uint16 if max(ids) > 255 else np.uint8
    return np.random.default_rng(seed).choice(np.asarray(ids), size=(height, width)).astype(dtype)


def test_scan_and_auto_palette_for() -> None:
    maps = [make_label_map(16, 16, [1, 4], seed=1), make_label_map(8, 24, [4, 9, 300], seed=2)]
    assert scan_label_ids(maps) == tuple(sorted({int(v) for m in maps for v in np.unique(m)}))
    assert auto_palette_for(maps) == auto_palette(scan_label_ids(maps))
    ten = auto_palette(range(10))
    colored = [ten.colors_of(ten.index_of_ids(make_label_map(16, 16, [1, 4, 9], seed=3)))]
    colors = scan_label_colors(colored)
    palette = auto_palette_for(colored)
    assert palette == auto_palette_from_colors(colors)
    assert set(palette.colors) == set(colors) and palette.ids == tuple(range(len(colors)))
    with pytest.raises(ConfigError):
        auto_palette_for([maps[0], colored[0]])


def test_load_palette_forms(tmp_path: Path) -> None:
    full = tmp_path / "full.json"
    full.write_text(json.dumps(builtin_palette("cityscapes").to_json()))
    assert load_palette(full) == builtin_palette("cityscapes")

    simple = tmp_path / "rooms.json"
    simple.write_text(
        json.dumps({"0": {"name": "floor", "color": "#ff0000"}, "3": ["wall", [0, 255, 0]]})
    )
    palette = load_palette(simple)
    assert palette.ids == (0, 3) and palette.names == ("floor", "wall")
    assert palette.colors == ((255, 0, 0), (0, 255, 0)) and palette.name == "rooms"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"classes": [{"id": 1, "name": "a", "color": [0, 0, 300]}]}),
        json.dumps({"classes": [{"id": 1, "name": "a", "color": [0, 0]}]}),
        json.dumps({"classes": [{"id": 1, "color": [0, 0, 0]}, {"id": 1, "color": [1, 1, 1]}]}),
        json.dumps({"classes": [{"id": 70000, "color": [0, 0, 0]}]}),
        json.dumps(
            {"classes": [{"id": 1, "color": [0, 0, 0]}], "ignore": {"id": 1, "color": [9, 9, 9]}}
        ),
        json.dumps(
            {"classes": [{"id": 1, "color": [0, 0, 0]}], "ignore": {"id": 2, "color": [0, 0, 0]}}
        ),
        json.dumps({"classes": []}),
    ],
)
def test_load_palette_rejects_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_palette(path)


def test_load_palette_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="readable"):
        load_palette(tmp_path / "nope.json")


def test_unknown_builtin() -> None:
    with pytest.raises(ConfigError, match="cityscapes"):
        builtin_palette("ade20k")


def test_palette_from_option(tmp_path: Path) -> None:
    assert palette_from_option("cityscapes") == builtin_palette("cityscapes")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(auto_palette([1, 2]).to_json()))
    assert palette_from_option(str(path)) == auto_palette([1, 2])
    with pytest.raises(ConfigError, match="cityscapes"):
        palette_from_option("pascal")
    with pytest.raises(ConfigError, match="readable"):
        palette_from_option(str(tmp_path / "missing.json"))


def test_pickle_leaves_lookup_tables_behind() -> None:
    palette = builtin_palette("cityscapes")
    fresh = len(pickle.dumps(palette))
    palette.index_of_ids(np.zeros((2, 2), np.uint8))
    palette.index_of_colors(np.zeros((2, 2, 3), np.uint8))
    restored = pickle.loads(pickle.dumps(palette))
    assert len(pickle.dumps(palette)) == fresh < 10_000
    assert restored == palette
    assert restored.index_of_ids(np.array([[7, 40]], np.uint8)).tolist() == [[7, UNKNOWN]]


def test_nearest_colors_and_unpack_rgb_known_answers():
    from pairforge.imageio import pack_rgb, unpack_rgb
    from pairforge.palettes import nearest_colors

    table = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 0]])
    colors = np.array([[0, 0, 0], [250, 0, 0], [10, 200, 10], [120, 140, 0]])
    assert nearest_colors(colors, table).tolist() == [2, 0, 1, 1]
    many = np.random.default_rng(0).integers(0, 256, (9000, 3))  # more than one block of 4,096
    brute = ((many[:, None, :] - table[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (nearest_colors(many, table) == brute).all()
    assert (unpack_rgb(pack_rgb(many)) == many).all() and unpack_rgb(pack_rgb(many[0])).tolist() == many[0].tolist()
