"""Static HTML pages: the prediction gallery (``index.html``) and metric tables.

The gallery follows the official pix2pix test page (one row per input: input | output(s) |
target) but shows small JPEG thumbnails with ``loading="lazy"`` linking to the full images,
so a page with hundreds of rows opens at once.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

THUMBNAIL_SIDE = 192

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}
th{position:sticky;top:0;background:#eee}img{display:block;max-width:192px;max-height:192px;image-rendering:auto}
td.n{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:bold;padding:4px}
"""


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


def save_thumbnail(image: np.ndarray, path: str | os.PathLike[str], side: int = THUMBNAIL_SIDE) -> Path:
    """Write a JPEG thumbnail whose longer side is at most ``side``.

    Shape:
        image: (H, W) or (H, W, 3) uint8 RGB.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    bgr = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def _cell(full: str | None, thumbnails: dict[str, str]) -> str:
    if full is None:
        return "<td></td>"
    thumb = thumbnails.get(full, full)
    src, href = html.escape(thumb, quote=True), html.escape(full, quote=True)
    return f'<td><a href="{href}"><img src="{src}" loading="lazy" decoding="async" alt=""></a></td>'


def write_gallery(folder: str | os.PathLike[str], rows: Sequence[GalleryRow], title: str = "pairforge predict") -> Path:
    """Write ``folder/index.html``: input | output(s) | target, one row per input.

    Returns:
        the page's path.
    """
    folder = Path(folder)
    samples = max((len(row.outputs) for row in rows), default=1)
    has_target = any(row.target for row in rows)
    output_heads = ["output"] if samples == 1 else [f"output {k + 1}" for k in range(samples)]
    heads = ["name", "input", *output_heads] + (["target"] if has_target else [])
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{len(rows)} inputs. Click an image for full size.</p>",
        "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead><tbody>",
    ]
    for row in rows:
        cells = [f"<td>{html.escape(row.name)}</td>", _cell(row.input, row.thumbnails)]
        outputs = list(row.outputs) + [None] * (samples - len(row.outputs))
        cells += [_cell(output, row.thumbnails) for output in outputs]
        if has_target:
            cells.append(_cell(row.target, row.thumbnails))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table></body></html>")
    path = folder / "index.html"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def table_html(title: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """One HTML table (numbers right-aligned, 4 decimals)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td class='n'>{_format(value)}</td>" if numeric else f"<td>{_format(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><caption>{html.escape(title)}</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_tables_page(path: str | os.PathLike[str], title: str, tables: Sequence[str]) -> Path:
    """A page holding tables from :func:`table_html`."""
    path = Path(path)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>" + "<br>".join(tables) + "</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path
