"""Contact sheets: a grid of random A | B samples read straight from shard tars.

Each tile is captioned with its key and split; label datasets get a palette legend
(colour swatch and class name) under the grid.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from pairforge.errors import DatasetError, SampleError
from pairforge.files import write_atomic
from pairforge.imageio import encode_png
from pairforge.paths import OutputError, describe_path
from pairforge.shards import decode_shard_sample
from pairforge.shardset import list_shards
from pairforge.storage import is_url
from pairforge.tars import read_shard


class Sample(NamedTuple):
    """One pair drawn for the sheet: A as ``(H, W)`` or ``(H, W, 3)``, B as ``(H, W, 3)``, uint8."""

    key: str
    split: str
    a: np.ndarray
    b: np.ndarray


@dataclass
class Drawn:
    """The samples drawn for a sheet, and what could not be read among them.

    Attributes:
        samples: the decoded pairs.
        skipped: one line per drawn sample that did not decode (shard and key named) and per
            shard that ended before the samples drawn from it.
        unreadable: how many drawn samples could not be read.
    """

    samples: list[Sample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unreadable: int = 0


def sample_pairs(shards_dir: str | Path, dataset: dict[str, Any], count: int, seed: int = 0) -> Drawn:
    """Up to ``count`` random samples; reads only the shards it picks from, and only the samples it picks.

    A drawn sample that does not decode, or that a damaged shard cannot deliver, is skipped,
    named (shard and key) and counted; the others are still drawn.
    """
    rng = random.Random(seed)
    drawn = Drawn()
    shards = [shard for shard in list_shards(dataset, shards_dir) if shard.expected > 0]
    if not shards:
        return drawn
    wanted: dict[str, int] = {}
    for _ in range(count):
        shard = rng.choices(shards, weights=[s.expected for s in shards])[0]
        wanted[shard.name] = wanted.get(shard.name, 0) + 1
    by_name = {shard.name: shard for shard in shards}
    for name in sorted(wanted):
        shard = by_name[name]
        split = shard.split
        picked = set(rng.sample(range(shard.expected), min(wanted[name], shard.expected)))
        reading = shard.reading()
        for key, fields in read_shard(reading, wanted=lambda index, key: index in picked):  # noqa: B023
            try:
                a, b = decode_shard_sample(fields, gray_a=dataset["a_channels"] == 1)
            except SampleError as exc:
                drawn.unreadable += 1
                drawn.skipped.append(f"shard {reading.path}: sample {key} skipped ({exc})")
                continue
            drawn.samples.append(Sample(key, split, a, b))
        lost = sum(1 for index in picked if index >= reading.samples)
        if lost:
            drawn.unreadable += lost
            drawn.skipped.append(f"{reading.problem()}; {lost} of the samples drawn from it are among them")
    return drawn


def check_sheet_path(sheet: str | Path, shards_dir: str | Path, dataset: dict[str, Any]) -> None:
    """Refuse a sheet path that would replace a file another command wrote.

    The sheet may go into the shard set (its default place) or any folder that is not another
    command's output, but never over one of the set's own files.

    Raises:
        OutputError: naming the file or folder and what to do.
    """
    from pairforge.outputs import SHARD_FOLDER, refuse_foreign
    from pairforge.shards import DATASET_NAME, stats_path_for

    sheet = Path(sheet)
    refuse_foreign(sheet.parent, SHARD_FOLDER)
    if sheet.exists() and not is_url(shards_dir) and os.path.samefile(sheet.parent, shards_dir):
        names = {DATASET_NAME, "DATA_CARD.md", "rejects.jsonl"}
        for shard in dataset.get("shards", []):
            names |= {shard["name"], stats_path_for(Path(shard["name"])).name}
        if sheet.name in names:
            raise OutputError(f"--sheet {describe_path(sheet)} is a file of the shard set; choose another name")


FONT = cv2.FONT_HERSHEY_SIMPLEX
CAPTION_HEIGHT = 18
INK = (40, 40, 40)


def _text(canvas: np.ndarray, text: str, left: int, baseline: int, width: int, scale: float = 0.4) -> None:
    """Draw ``text`` (shortened with '..' to fit ``width`` pixels) on ``canvas``."""
    while text and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-3] + ".." if len(text) > 3 else ""
    cv2.putText(canvas, text, (left, baseline), FONT, scale, INK, 1, cv2.LINE_AA)


def palette_legend(palette: dict[str, Any], width: int, swatch: int = 14) -> np.ndarray:
    """Rows of colour swatch + ``id name`` for every class (and the ignore class), ``width`` px wide.

    Returns:
        ``(rows * (swatch + 6) + 24, width, 3)`` uint8 RGB.
    """
    classes = list(palette.get("classes", []))
    if palette.get("ignore"):
        classes.append({**palette["ignore"], "name": f"{palette['ignore'].get('name', 'ignore')} (ignored)"})
    entry_width = 180
    per_row = max(1, width // entry_width)
    rows = -(-len(classes) // per_row)
    legend = np.full((rows * (swatch + 6) + 24, width, 3), 255, np.uint8)
    _text(legend, f"palette {palette.get('name', '')}: {len(palette.get('classes', []))} classes", 4, 15, width - 8)
    for index, entry in enumerate(classes):
        row, column = divmod(index, per_row)
        top, left = 22 + row * (swatch + 6), 4 + column * entry_width
        color = tuple(int(c) for c in entry.get("color", (0, 0, 0)))
        cv2.rectangle(legend, (left, top), (left + swatch, top + swatch), color, -1)
        cv2.rectangle(legend, (left, top), (left + swatch, top + swatch), INK, 1)
        _text(legend, f"{entry.get('id', '')} {entry.get('name', '')}", left + swatch + 6, top + swatch - 3,
              entry_width - swatch - 12)
    return legend


def contact_sheet(samples: list[Sample], tile: int = 128, columns: int = 4,
                  palette: dict[str, Any] | None = None) -> np.ndarray:
    """Tile samples as ``A | B`` cells captioned ``key (split)``, ``columns`` pairs per row, on white.

    Args:
        samples: from :func:`sample_pairs`.
        tile: side of each image in pixels.
        columns: pairs per row.
        palette: a label palette: adds a legend under the grid.

    Returns:
        ``(rows * (tile + 4 + CAPTION_HEIGHT) [+ legend], columns * (2 * tile + 8), 3)`` uint8 RGB.
    """
    if not samples:
        raise DatasetError("no samples to draw")
    columns = max(1, min(columns, len(samples)))
    rows = -(-len(samples) // columns)
    cell_w, cell_h = 2 * tile + 8, tile + 4 + CAPTION_HEIGHT
    sheet = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for index, (key, split, a, b) in enumerate(samples):
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        row, column = divmod(index, columns)
        top, left = row * cell_h + 2, column * cell_w + 2
        for offset, image, exact in ((0, a, palette is not None), (tile + 2, b, False)):
            scale = tile / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            method = cv2.INTER_NEAREST if exact else (cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            thumb = cv2.resize(image, size, interpolation=method)
            sheet[top : top + thumb.shape[0], left + offset : left + offset + thumb.shape[1]] = thumb
        _text(sheet, f"{key} ({split})", left + 2, top + tile + CAPTION_HEIGHT - 5, cell_w - 8)
    if palette and palette.get("classes"):
        sheet = np.concatenate([sheet, palette_legend(palette, sheet.shape[1])], axis=0)
    return sheet


def write_contact_sheet(path: str | Path, sheet: np.ndarray) -> Path:
    """Write the sheet as PNG, atomically (see :func:`check_sheet_path` for where it may go)."""
    path = Path(path)
    write_atomic(path, encode_png(sheet, compression=6))
    return path
