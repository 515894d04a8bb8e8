"""Contact sheets: a grid of random A | B samples read straight from shard tars.

Each tile is captioned with its key and split; label datasets get a palette legend
(colour swatch and class name) under the grid.
"""

from __future__ import annotations

import random
import tarfile
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from pairforge.errors import DatasetError
from pairforge.imageio import encode_png
from pairforge.shards import decode_shard_sample


class Sample(NamedTuple):
    """One pair drawn for the sheet: A as ``(H, W)`` or ``(H, W, 3)``, B as ``(H, W, 3)``, uint8."""

    key: str
    split: str
    a: np.ndarray
    b: np.ndarray


def sample_pairs(shards_dir: str | Path, dataset: dict[str, Any], count: int, seed: int = 0) -> list[Sample]:
    """Up to ``count`` random samples; reads only the shards it picks from."""
    rng = random.Random(seed)
    shards = [shard for shard in dataset["shards"] if shard["count"] > 0]
    if not shards:
        return []
    wanted: dict[str, int] = {}
    for _ in range(count):
        shard = rng.choices(shards, weights=[s["count"] for s in shards])[0]
        wanted[shard["name"]] = wanted.get(shard["name"], 0) + 1
    samples: list[Sample] = []
    splits = {shard["name"]: shard.get("split") or shard["name"].rsplit("-", 1)[0] for shard in shards}
    for name in sorted(wanted):
        path = Path(shards_dir) / name
        try:
            with tarfile.open(path) as tar:
                files = {member.name: member for member in tar.getmembers() if member.isfile()}
                keys = sorted({n.split(".", 1)[0] for n in files})
                for key in rng.sample(keys, min(wanted[name], len(keys))):
                    members = {
                        member: tar.extractfile(files[f"{key}.{member}"]).read()
                        for member in ("a.png", "b.jpg", "b.png")
                        if f"{key}.{member}" in files
                    }
                    if "a.png" not in members or not {"b.jpg", "b.png"} & members.keys():
                        continue
                    a, b = decode_shard_sample(members, gray_a=dataset["a_channels"] == 1)
                    samples.append(Sample(key, splits[name], a, b))
        except (OSError, tarfile.TarError) as exc:
            raise DatasetError(f"cannot read shard {path}: {exc}") from None
    return samples


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(sheet, compression=6))
    return path
