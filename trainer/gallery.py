"""Static HTML pages: the prediction gallery (``index.html``) and metric tables.

The gallery follows the official pix2pix test page (one row per input: input | output(s) |
target) but shows display copies (256 px: larger images scaled down, smaller ones scaled up,
nearest-neighbour for label maps and edges so no new colours appear) with ``loading="lazy"``
linking to the full images, so a page with hundreds of rows opens at once.
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

THUMBNAIL_SIDE = 256

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}
th{position:sticky;top:0;background:#eee}img{display:block;max-width:256px;max-height:256px}
td.n{text-align:right;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:bold;padding:4px}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:14px}
dl.facts dt{font-weight:bold}dl.facts dd{margin:0;font-family:ui-monospace,monospace}
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
    items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items())
    return f"<dl class='facts'>{items}</dl>" if facts else ""


def _cell(full: str | None, thumbnails: dict[str, str]) -> str:
    if full is None:
        return "<td></td>"
    thumb = thumbnails.get(full, full)
    src, href = html.escape(thumb, quote=True), html.escape(full, quote=True)
    return f'<td><a href="{href}"><img src="{src}" loading="lazy" decoding="async" alt=""></a></td>'


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
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>{facts_html(facts or {})}",
        f"<p>{len(rows)} inputs. Images are shown at {THUMBNAIL_SIDE} px; click one for its full size.</p>",
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
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["", "key", *shown, "input", "output", "target"])
    body = []
    for label, group in (("best", best), ("worst", worst)):
        for rank, row in enumerate(group, 1):
            key = str(row["key"])
            cells = [f"<td>{label} {rank}</td><td>{html.escape(key)}</td>"]
            cells += [f"<td class='n'>{_format(row[c])}</td>" for c in shown]
            for name, image in zip(("input", "output", "target"), images[key], strict=True):
                exact = name == "input" and nearest_input
                relative = f"examples/{_safe_name(key)}.{name}.{'png' if exact else 'jpg'}"
                save_thumbnail(image, Path(folder) / relative, nearest=exact)
                cells.append(f'<td><img src="{html.escape(relative, quote=True)}" alt="{name} {html.escape(key)}"></td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"best and worst samples by {metric} (lower is better)"
    return (f"<br><table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key)


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
