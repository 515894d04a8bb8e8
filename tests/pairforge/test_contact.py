"""Contact sheets: A | B tiles captioned with key and split, and a palette legend for label datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.contact import CAPTION_HEIGHT, Sample, contact_sheet, palette_legend, sample_pairs
from tests.trainer.conftest import PALETTE, write_shards


def test_tiles_are_captioned_and_sized() -> None:
    a = np.zeros((20, 20), np.uint8)
    b = np.full((20, 20, 3), 200, np.uint8)
    samples = [Sample(f"k{i}", "train", a, b) for i in range(3)]
    sheet = contact_sheet(samples, tile=32, columns=2)
    assert sheet.shape == (2 * (32 + 4 + CAPTION_HEIGHT), 2 * (2 * 32 + 8), 3)
    caption = sheet[2 + 32 : 2 + 32 + CAPTION_HEIGHT, : 2 * 32 + 8]
    assert (caption < 128).any()  # the caption text is drawn under the tile
    blank = contact_sheet([Sample("", "", a, b)], tile=32)[2 + 32 : 2 + 32 + CAPTION_HEIGHT]
    assert (blank < 128).sum() < (caption < 128).sum()


def test_palette_legend_shows_every_class_colour() -> None:
    legend = palette_legend(PALETTE, width=400)
    colours = {tuple(int(v) for v in c) for c in legend.reshape(-1, 3)}
    for entry in [*PALETTE["classes"], PALETTE["ignore"]]:
        assert tuple(entry["color"]) in colours, entry["name"]


def test_inspect_labels_sheet_has_splits_and_legend(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="labels", count=3, size=32, shards=1, val=2)
    dataset = json.loads((shards / "dataset.json").read_text())
    samples = sample_pairs(shards, dataset, count=20, seed=0).samples
    assert {s.split for s in samples} == {"train", "val"}
    result = CliRunner().invoke(cli, ["inspect", str(shards), "-n", "4", "--sheet", str(tmp_path / "sheet.png")])
    assert result.exit_code == 0, result.output
    import cv2

    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "sheet.png")), cv2.COLOR_BGR2RGB)
    grid_height = 1 * (128 + 4 + CAPTION_HEIGHT)
    assert sheet.shape[0] > grid_height  # the legend below the grid
    legend = {tuple(int(v) for v in c) for c in sheet[grid_height:].reshape(-1, 3)}
    assert tuple(PALETTE["classes"][1]["color"]) in legend
