"""Comparison of several runs on one split, laid out like the paper's tables: ``compare.csv`` and ``compare.html``.

One row per run (the paper's "Loss" column), one column per score with its direction
(higher or lower is better), the best value of each column in bold, then a picture row per
run: the same inputs through every run, between an input row and a ground-truth row (the
layout of the paper's Figure 4).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pairforge.files import atomic_path
from pairforge.page import Cell, escape, img_html, table_html, write_page
from pairforge.trainer.gallery import save_display_image

# name -> (paper-style label, +1 higher is better / -1 lower is better / 0 no direction)
METRICS: dict[str, tuple[str, int]] = {
    "fcn_pixel_accuracy": ("Per-pixel acc.", 1),
    "fcn_class_accuracy": ("Per-class acc.", 1),
    "fcn_class_iou": ("Class IOU", 1),
    "l1": ("L1", -1),
    "psnr": ("PSNR (dB)", 1),
    "ssim": ("SSIM", 1),
    "edge_precision": ("Edge precision", 1),
    "edge_recall": ("Edge recall", 1),
    "edge_f1": ("Edge F1", 1),
    "ab_error": ("Lab ab error", -1),
    "colorfulness": ("Colourfulness", 0),
    "target_colorfulness": ("Target colourfulness", 0),
    "high_freq_ratio": ("High-freq. power / photo's", 0),
    "spectral_distance": ("Spectral distance", -1),
}
REAL_PREFIX = "real_"
ARROWS = {1: "\u2191", -1: "\u2193", 0: ""}


@dataclass(frozen=True)
class PictureRow:
    """Images of one row of the picture table (uint8 RGB or gray), one per compared key."""

    label: str
    images: tuple[np.ndarray, ...]


def columns_of(summaries: dict[str, dict[str, float]]) -> list[str]:
    """The score columns in the paper's order (FCN-score first), then any other score."""
    present = {name for summary in summaries.values() for name in summary if not name.startswith(REAL_PREFIX)}
    ordered = [name for name in METRICS if name in present]
    return ordered + sorted(present - set(ordered))


def header_label(column: str) -> str:
    """``L1 ↓``, ``SSIM ↑``: the column's name with its better direction."""
    label, direction = METRICS.get(column, (column, 0))
    return f"{label} {ARROWS[direction]}".strip()


def best_values(summaries: dict[str, dict[str, float]], columns: Sequence[str]) -> dict[str, float]:
    """The best finite value of each column that has a direction."""
    best: dict[str, float] = {}
    for column in columns:
        direction = METRICS.get(column, (column, 0))[1]
        values = [s[column] for s in summaries.values() if column in s and math.isfinite(s[column])]
        if direction and values:
            best[column] = max(values) if direction > 0 else min(values)
    return best


def upper_bound(summaries: dict[str, dict[str, float]]) -> dict[str, float]:
    """The judge on the real photos (``real_fcn_*``), as the paper's "Ground truth" row; empty if absent."""
    for summary in summaries.values():
        real = {name[len(REAL_PREFIX):]: value for name, value in summary.items() if name.startswith(REAL_PREFIX)}
        if real:
            return real
    return {}


def table_rows(summaries: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Header (with directions) and formatted rows, for the terminal and the CSV."""
    columns = columns_of(summaries)
    header = ["run", *(header_label(c) for c in columns)]
    rows = [[name, *(f"{summary[c]:.4f}" if c in summary else "-" for c in columns)] for name, summary in summaries.items()]
    real = upper_bound(summaries)
    if real:
        rows.append(["real photos (upper bound)", *(f"{real[c]:.4f}" if c in real else "-" for c in columns)])
    return header, rows


def write_comparison(
    folder: str | os.PathLike[str],
    summaries: dict[str, dict[str, float]],
    pictures: Sequence[PictureRow] = (),
    keys: Sequence[str] = (),
    title: str = "pairforge compare",
    nearest_rows: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``compare.csv`` (one row per run) and ``compare.html`` (table + picture rows).

    Args:
        folder: where to write.
        summaries: run name -> scores (:meth:`EvaluationReport.summary`).
        pictures: picture rows (input, one per run, ground truth), each with one image per key.
        keys: the sample keys of the picture columns.
        title: page title.
        nearest_rows: labels of picture rows upscaled with nearest neighbours (label maps).

    Returns:
        format -> path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "compare.csv", "html": folder / "compare.html"}
    header, rows = table_rows(summaries)
    with atomic_path(paths["csv"]) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    columns = columns_of(summaries)
    best = best_values(summaries, columns)
    rows_html: list[dict[str, Any]] = []
    for name, summary in summaries.items():
        row: dict[str, Any] = {"run": name}
        for column in columns:
            value = summary.get(column)
            text = "-" if value is None else f"{value:.4f}"
            bold = value is not None and column in best and text == f"{best[column]:.4f}"
            row[column] = Cell(f"<b>{text}</b>" if bold else text, numeric=True)
        rows_html.append(row)
    real = upper_bound(summaries)
    if real:
        rows_html.append({"run": "real photos (upper bound)",
                          **{c: Cell(f"{real[c]:.4f}" if c in real else "-", numeric=True) for c in columns}})
    caption = f"Scores ({ARROWS[1]} higher is better, {ARROWS[-1]} lower is better; best in bold)"
    table = table_html(caption, ["run", *columns], rows_html, headings=header,
                       row_classes=[""] * len(summaries) + ["bound"])

    picture_html = ""
    if pictures:
        image_dir = folder / "compare_images"
        lines = ["<table class='pictures'><caption>The same inputs through every run</caption><thead><tr><th></th>"
                 + "".join(f"<th>{escape(key)}</th>" for key in keys) + "</tr></thead><tbody>"]
        for index, picture in enumerate(pictures):
            cells = [f"<th>{escape(picture.label)}</th>"]
            for column, image in enumerate(picture.images):
                relative = f"compare_images/{index:02d}_{column:02d}.png"
                save_display_image(image, image_dir.parent / relative, nearest=picture.label in nearest_rows)
                cells.append(f"<td>{img_html(relative, alt=picture.label)}</td>")
            lines.append("<tr>" + "".join(cells) + "</tr>")
        lines.append("</tbody></table>")
        picture_html = "<h2>Pictures</h2>" + "".join(lines)
    write_page(paths["html"], title, f"<h1>{escape(title)}</h1>{table}{picture_html}")
    return paths

