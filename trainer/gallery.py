"""Static HTML pages: the prediction gallery (``index.html``) and metric tables (parts from :mod:`pairforge.page`).

The gallery follows the official pix2pix test page (one row per input: input | output(s) |
target) but shows display copies (256 px: larger images scaled down, smaller ones scaled up,
nearest-neighbour for label maps and edges so no new colours appear) with ``loading="lazy"``
linking to the full images, so a page with hundreds of rows opens at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pairforge.page import Cell, escape, format_value, img_html, table_html, write_page

THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class GalleryRow:
    """One input of the gallery; paths are relative to the page's folder.

    Attributes:
        name: the input's name.
        input: full-size input image.
        outputs: full-size outputs (one per dropout sample).
        target: full-size target, when one exists.
        thumbnails: full-size path -> thumbnail path.
    """

    name: str
    input: str
    outputs: tuple[str, ...]
    target: str | None = None
    thumbnails: dict[str, str] = field(default_factory=dict)


def save_thumbnail(image: np.ndarray, path: str | os.PathLike[str], side: int = THUMBNAIL_SIDE,
                   nearest: bool = False) -> Path:
    """Write a display copy whose longer side is ``side``: larger images are scaled down
    (area averaging), smaller ones scaled up (nearest neighbour when ``nearest``, for label
    maps and edges; bicubic otherwise). A ``.png`` path is lossless, anything else JPEG.

    Shape:
        image: (H, W) or (H, W, 3) uint8 RGB.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        method = cv2.INTER_AREA if scale < 1.0 else (cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC)
        image = cv2.resize(image, size, interpolation=method)
    bgr = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)
    if path.suffix.lower() == ".png":
        cv2.imwrite(str(path), bgr)
    else:
        cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def save_display_image(image: np.ndarray, path: str | os.PathLike[str], nearest: bool = False,
                       side: int = THUMBNAIL_SIDE) -> Path:
    """:func:`save_thumbnail` under the name the metric and comparison pages use."""
    return save_thumbnail(image, path, side=side, nearest=nearest)


def facts_html(facts: dict[str, Any]) -> str:
    """A small definition list (run, checkpoint, options) shown above a table."""
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts.items())
    return f"<dl class='facts'>{items}</dl>" if facts else ""


def _cell(full: str | None, thumbnails: dict[str, str]) -> str:
    if full is None:
        return "<td></td>"
    return f"<td>{img_html(thumbnails.get(full, full), href=full, css_class='thumb', lazy=True)}</td>"


def write_gallery(folder: str | os.PathLike[str], rows: Sequence[GalleryRow], title: str = "pairforge predict",
                  facts: dict[str, Any] | None = None) -> Path:
    """Write ``folder/index.html``: input | output(s) | target, one row per input.

    Args:
        facts: shown above the table (run, checkpoint step, options used).

    Returns:
        the page's path.
    """
    folder = Path(folder)
    samples = max((len(row.outputs) for row in rows), default=1)
    has_target = any(row.target for row in rows)
    output_heads = ["output"] if samples == 1 else [f"output {k + 1}" for k in range(samples)]
    heads = ["name", "input", *output_heads] + (["target"] if has_target else [])
    lines = [
        f"<h1>{escape(title)}</h1>{facts_html(facts or {})}",
        f"<p>{len(rows)} inputs. Images are shown at {THUMBNAIL_SIDE} px; click one for its full size.</p>",
        "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in heads) + "</tr></thead><tbody>",
    ]
    for row in rows:
        cells = [f"<td>{escape(row.name)}</td>", _cell(row.input, row.thumbnails)]
        outputs = list(row.outputs) + [None] * (samples - len(row.outputs))
        cells += [_cell(output, row.thumbnails) for output in outputs]
        if has_target:
            cells.append(_cell(row.target, row.thumbnails))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return write_page(folder / "index.html", title, "\n".join(lines))


def example_rows_html(folder: str | os.PathLike[str], rows: Sequence[dict[str, Any]],
                      images: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], count: int = 3,
                      metric: str = "l1", nearest_input: bool = False) -> str:
    """The best and worst rows by ``metric`` (lower is better) with input | output | target images.

    Writes the display images under ``folder/examples/`` and returns an HTML section for a
    metrics page (empty when there are no rows or no images).

    Args:
        rows: per-sample rows with ``key`` and ``metric``.
        images: key -> (A, output, target) uint8 arrays.
        nearest_input: upscale A with nearest neighbours (label maps, edges).
    """
    scored = [row for row in rows if row.get("key") in images and isinstance(row.get(metric), (int, float))]
    if not scored:
        return ""
    scored.sort(key=lambda row: row[metric])
    best = scored[:count]
    worst = [row for row in reversed(scored[count:]) if row not in best][:count]
    shown = [c for c in ("l1", "psnr", "ssim", "edge_f1", "ab_error", "fcn_pixel_accuracy") if c in scored[0]]
    columns = ["", "key", *shown, "input", "output", "target"]
    table_rows = []
    for label, group in (("best", best), ("worst", worst)):
        for rank, row in enumerate(group, 1):
            key = str(row["key"])
            cells: dict[str, Any] = {"": f"{label} {rank}", "key": key}
            cells.update({c: Cell(format_value(row[c]), numeric=True) for c in shown})
            for name, image in zip(("input", "output", "target"), images[key], strict=True):
                exact = name == "input" and nearest_input
                relative = f"examples/{_safe_name(key)}.{name}.{'png' if exact else 'jpg'}"
                save_thumbnail(image, Path(folder) / relative, nearest=exact)
                cells[name] = Cell(img_html(relative, alt=f"{name} {key}", css_class="thumb"))
            table_rows.append(cells)
    return table_html(f"best and worst samples by {metric} (lower is better)", columns, table_rows)


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)


def write_tables_page(path: str | os.PathLike[str], title: str, tables: Sequence[str]) -> Path:
    """A page holding tables from :func:`pairforge.page.table_html`."""
    return write_page(path, title, f"<h1>{escape(title)}</h1>" + "".join(tables))
