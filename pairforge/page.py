"""HTML pages: the one head, style sheet, escaping, tables and image tags of every page pairforge writes.

The check report, a run's report, the prediction gallery, the metric and comparison pages
and the demo report are all built from these parts, so they look alike and escape alike,
and are written whole or not at all (:func:`pairforge.files.write_atomic`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairforge.files import write_atomic

STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
body.narrow{max-width:1200px}
h1{font-size:20px} h2{font-size:16px;margin-top:28px} h3{font-size:15px;margin-top:20px}
section{margin-bottom:3em} .muted{color:#888} p.bad{color:#c0392b}
table{border-collapse:collapse;margin-bottom:1em;font-size:13px}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
thead th{position:sticky;top:0;background:#eee} caption{text-align:left;font-weight:bold;padding:4px}
td.n{text-align:right;font-variant-numeric:tabular-nums} tr.bad td{background:#fdf0ee}
tr.bound td{color:#555;font-style:italic}
tbody th{font-weight:normal;color:#555}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px}
dl.facts dt{font-weight:bold} dl.facts dd{margin:0;font-family:ui-monospace,monospace}
img.thumb{display:block;max-width:256px;max-height:256px}
table.pictures img{width:256px;height:auto;display:block} table.pictures th{vertical-align:middle}
img.grid{width:100%;max-width:1100px;image-rendering:pixelated;border:1px solid #ccc}
img.strip{height:96px;image-rendering:auto}
.row figure{display:inline-block;margin:4px;text-align:center}
.row figure img{image-rendering:pixelated;border:1px solid #ccc}
.curves svg{margin:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px} .card{border:1px solid #ccc;border-radius:6px;padding:10px 14px;min-width:110px}
.card .n{font-size:22px;font-weight:600} .card.bad{border-color:#c0392b;background:#fdf0ee}
.card.good{border-color:#3a9a5b;background:#eef8f1}
.hists{display:flex;flex-wrap:wrap;gap:12px} .hists figure{margin:0} figcaption{font-size:12px;color:#555}
#controls{margin:8px 0;display:flex;gap:12px;align-items:center}
"""
"""The one style sheet of every page (classes: ``narrow`` body, ``n`` numeric cell, ``thumb``/``grid``/``strip``
images, ``facts`` lists, ``pictures`` tables, check's ``cards`` and ``hists``)."""


def escape(value: Any) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def document(title: str, body: str, narrow: bool = False) -> str:
    """A whole page: head (charset, viewport, title, :data:`STYLE`) around ``body`` (HTML).

    Args:
        title: the page's title (text; escaped here).
        body: the body's HTML.
        narrow: limit the width to 1200 px (text pages; galleries stay as wide as their rows).
    """
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>\n{STYLE}</style></head>\n<body{' class=narrow' if narrow else ''}>\n{body}\n</body></html>\n"
    )


def write_page(path: str | os.PathLike[str], title: str, body: str, narrow: bool = False) -> Path:
    """Write :func:`document` to ``path`` atomically (folders are created); returns the path."""
    path = Path(path)
    write_atomic(path, document(title, body, narrow))
    return path


@dataclass(frozen=True)
class Cell:
    """A table cell given as HTML (not escaped again), right-aligned when ``numeric``."""

    html: str
    numeric: bool = False


def format_value(value: Any) -> str:
    """A table value as HTML text: floats with 4 decimals, anything else as escaped text."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return escape(value)


def cell_html(value: Any) -> str:
    """One ``<td>``: numbers (and numeric :class:`Cell`) right-aligned, a :class:`Cell` as given."""
    if isinstance(value, Cell):
        return f"<td class='n'>{value.html}</td>" if value.numeric else f"<td>{value.html}</td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"<td class='n'>{format_value(value)}</td>"
    return f"<td>{format_value(value)}</td>"


def table_html(caption: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
               headings: Sequence[str] | None = None, row_classes: Sequence[str] = (),
               css_class: str = "") -> str:
    """One table: a caption, a header row, one row per mapping (values by column; missing ones empty).

    Args:
        caption: text above the table ("" for none).
        columns: the keys of each row, in order.
        rows: column -> value (text, number, :class:`Cell`).
        headings: the header texts (default: the column names).
        row_classes: a CSS class per row (``bad``, ``bound``; "" for none).
        css_class: the table's CSS class.
    """
    head = "".join(f"<th>{escape(heading)}</th>" for heading in (headings or columns))
    body = []
    for index, row in enumerate(rows):
        css = row_classes[index] if index < len(row_classes) and row_classes[index] else ""
        cells = "".join(cell_html(row.get(column, "")) for column in columns)
        body.append(f"<tr class='{escape(css)}'>{cells}</tr>" if css else f"<tr>{cells}</tr>")
    table_class = f" class='{escape(css_class)}'" if css_class else ""
    caption_html = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table{table_class}>{caption_html}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def img_html(src: str, alt: str = "", href: str | None = None, css_class: str = "", lazy: bool = False,
             width: int | None = None) -> str:
    """An ``<img>`` (escaped source and text), linked to ``href`` when given; ``lazy`` loads it when scrolled to."""
    attributes = [f'src="{escape(src)}"']
    if css_class:
        attributes.append(f'class="{escape(css_class)}"')
    if lazy:
        attributes.append('loading="lazy" decoding="async"')
    if width:
        attributes.append(f'width="{width}"')
    attributes.append(f'alt="{escape(alt)}"')
    tag = f"<img {' '.join(attributes)}>"
    return f'<a href="{escape(href)}">{tag}</a>' if href else tag
