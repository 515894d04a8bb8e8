"""Contact sheets: a grid of random A | B samples read straight from shard tars."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pairforge.errors import DatasetError
from pairforge.imageio import decode_fast, encode_png


def sample_pairs(shards_dir: str | Path, dataset: dict[str, Any], count: int, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Up to ``count`` random (key, A, B) samples; reads only the shards it picks from.

    Returns:
        A as ``(H, W)`` or ``(H, W, 3)`` and B as ``(H, W, 3)``, uint8.
    """
    rng = random.Random(seed)
    shards = [shard for shard in dataset["shards"] if shard["count"] > 0]
    if not shards:
        return []
    wanted: dict[str, int] = {}
    for _ in range(count):
        shard = rng.choices(shards, weights=[s["count"] for s in shards])[0]
        wanted[shard["name"]] = wanted.get(shard["name"], 0) + 1
    samples: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name in sorted(wanted):
        path = Path(shards_dir) / name
        try:
            with tarfile.open(path) as tar:
                files = {member.name: member for member in tar.getmembers() if member.isfile()}
                keys = sorted({n.split(".", 1)[0] for n in files})
                for key in rng.sample(keys, min(wanted[name], len(keys))):
                    b_name = next((f"{key}.{ext}" for ext in ("b.jpg", "b.png") if f"{key}.{ext}" in files), None)
                    if f"{key}.a.png" not in files or b_name is None:
                        continue
                    a = decode_fast(tar.extractfile(files[f"{key}.a.png"]).read(), channels=dataset["a_channels"])
                    b = decode_fast(tar.extractfile(files[b_name]).read())
                    samples.append((key, a, b))
        except (OSError, tarfile.TarError) as exc:
            raise DatasetError(f"cannot read shard {path}: {exc}") from None
    return samples


def contact_sheet(samples: list[tuple[str, np.ndarray, np.ndarray]], tile: int = 128, columns: int = 4) -> np.ndarray:
    """Tile samples as ``A | B`` cells, ``columns`` pairs per row, on a white background.

    Returns:
        ``(rows * (tile + 4), columns * (2 * tile + 8), 3)`` uint8 RGB.
    """
    if not samples:
        raise DatasetError("no samples to draw")
    columns = max(1, min(columns, len(samples)))
    rows = -(-len(samples) // columns)
    cell_w, cell_h = 2 * tile + 8, tile + 4
    sheet = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for index, (_, a, b) in enumerate(samples):
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        row, column = divmod(index, columns)
        top, left = row * cell_h + 2, column * cell_w + 2
        for offset, image in ((0, a), (tile + 2, b)):
            scale = tile / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            thumb = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            sheet[top : top + thumb.shape[0], left + offset : left + offset + thumb.shape[1]] = thumb
    return sheet


def write_contact_sheet(path: str | Path, sheet: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(sheet, compression=6))
    return path
