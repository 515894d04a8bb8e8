"""The ``pairforge check`` report: report.html with summary cards, SVG histograms and a gallery of flagged pairs.

The page is one self-contained HTML file plus ``gallery/*.jpg`` strips
(A | B | A's structure drawn on B). Flagged rows travel as JSON inside the page
and are rendered 100 at a time, so it opens fast with thousands of rows;
thumbnails load lazily. Gallery strips are drawn on the runner, re-reading only
the flagged pairs that make it into the gallery.
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pairforge import kinds
from pairforge.check.check import (
    PROBLEMS,
    CheckResult,
    PairRef,
    ShardRef,
    iter_pairs,
    measured_kind,
)
from pairforge.check.measures import gradient_magnitude, label_boundaries, to_gray
from pairforge.files import write_atomic
from pairforge.imageio import encode_jpeg
from pairforge.page import document, table_html
from pairforge.runner import RunnerConfig, run_partitions

log = logging.getLogger(__name__)

THUMB = 128


@dataclass(frozen=True)
class GalleryTask:
    """Pairs of one source task to draw: ``split/key -> file name``."""

    task: Any
    names: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DrawGallery:
    """Partition function: decode the wanted pairs of one task and write their strips."""

    kind: str
    a_channels: int
    out_dir: str

    def __call__(self, job: GalleryTask) -> list[str]:
        names = dict(job.names)
        written = []
        for ref, outcome in iter_pairs(job.task, self.a_channels, wanted=set(names)):
            identity = f"{ref['split']}/{ref['key']}"
            if identity not in names or not isinstance(outcome, tuple):
                continue
            strip = draw_strip(self.kind, *outcome)
            path = Path(self.out_dir) / names[identity]
            write_atomic(path, encode_jpeg(strip, 85))
            written.append(identity)
        return written


def draw_strip(kind: str, a: np.ndarray, b: np.ndarray, height: int = THUMB) -> np.ndarray:
    """A | B | overlay of A's structure (red) on a dimmed gray B, each ``height`` px tall.

    Shape:
        a ``(H, W)`` or ``(H, W, 3)``, b ``(H, W, 3)`` uint8 -> ``(height, 3 * w + 8, 3)`` uint8.
    """
    width = max(8, round(b.shape[1] * height / b.shape[0]))
    size = (width, height)
    a_rgb = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
    a_small = cv2.resize(a_rgb, size, interpolation=cv2.INTER_NEAREST if kinds.of(kind).nearest else cv2.INTER_AREA)
    b_small = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    if kinds.measured(kind).edge_map:
        structure = to_gray(a_small) < 200
    elif kinds.measured(kind).palette:
        structure = label_boundaries(a_small)
    else:
        magnitude = gradient_magnitude(to_gray(a_small))
        structure = magnitude > np.percentile(magnitude, 88) if magnitude.any() else np.zeros(magnitude.shape, bool)
    base = (0.55 * to_gray(b_small)).astype(np.uint8)
    overlay = np.repeat(base[..., None], 3, axis=2)
    overlay[structure] = (255, 40, 40)
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([a_small, gap, b_small, gap, overlay], axis=1)


def draw_gallery(result: CheckResult, runner: RunnerConfig) -> dict[str, str]:
    """Draw up to ``config.gallery`` flagged pairs (most serious problems first); returns ``split/key -> file``."""
    out_dir = Path(result.config.out_dir) / "gallery"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.jpg"):
        old.unlink()
    chosen: dict[str, str] = {}
    for row in result.flagged:
        if len(chosen) >= result.config.gallery:
            break
        if row["key"] is None or row["problem"] == "unreadable":
            continue
        identity = f"{row['split']}/{row['key']}"
        chosen.setdefault(identity, f"{len(chosen):06d}.jpg")
    if not chosen:
        return {}
    jobs = []
    for task in result.source.tasks:
        if isinstance(task, ShardRef):
            names = tuple((identity, name) for identity, name in chosen.items() if identity.startswith(f"{task.split}/"))
        else:
            names = tuple((f"{ref.split}/{ref.key}", chosen[f"{ref.split}/{ref.key}"]) for ref in task
                          if isinstance(ref, PairRef) and f"{ref.split}/{ref.key}" in chosen)
        if names:
            jobs.append(GalleryTask(task, names))
    function = DrawGallery(result.source.kind, result.source.a_channels, str(out_dir))
    written = {identity for part in run_partitions(function, jobs, runner) for identity in part}
    return {identity: f"gallery/{name}" for identity, name in chosen.items() if identity in written}


def svg_histogram(values: list[float], title: str, bins: int = 40, marker: float | None = None,
                  marker_label: str = "", log_counts: bool = False, width: int = 380, height: int = 170) -> str:
    """An inline SVG bar histogram, with an optional vertical threshold line."""
    if not values:
        return f'<figure class="hist"><figcaption>{html.escape(title)}</figcaption><p class="muted">no values</p></figure>'
    array = np.asarray(values, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if marker is not None:
        low, high = min(low, marker), max(high, marker)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(array, bins=bins, range=(low, high))
    shown = np.log1p(counts) if log_counts else counts.astype(np.float64)
    top = float(shown.max()) or 1.0
    left, bottom, plot_w, plot_h = 34, 22, width - 44, height - 44
    bar_w = plot_w / bins
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for index, value in enumerate(shown):
        bar_h = plot_h * value / top
        parts.append(f'<rect x="{left + index * bar_w:.1f}" y="{height - bottom - bar_h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                     f'height="{bar_h:.1f}" fill="#4a78b5"><title>{edges[index]:.3g}..{edges[index + 1]:.3g}: '
                     f'{counts[index]}</title></rect>')
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{left + plot_w}" y2="{height - bottom}" stroke="#333"/>')
    for x, label, anchor in ((left, f"{low:.3g}", "middle"), (left + plot_w, f"{high:.3g}", "end")):
        parts.append(f'<text x="{x}" y="{height - 6}" font-size="11" text-anchor="{anchor}">{label}</text>')
    parts.append(f'<text x="4" y="{height - bottom - plot_h + 10}" font-size="11">{int(counts.max())}</text>')
    if marker is not None:
        x = left + plot_w * (marker - low) / (high - low)
        right_side = x > left + 0.7 * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{height - bottom - plot_h}" x2="{x:.1f}" y2="{height - bottom}" '
                     f'stroke="#c0392b" stroke-dasharray="4 3"/><text x="{x - 3 if right_side else x + 3:.1f}" '
                     f'y="{height - bottom - plot_h + 10}" font-size="11" fill="#c0392b" '
                     f'text-anchor="{"end" if right_side else "start"}">{html.escape(marker_label)}</text>')
    parts.append("</svg>")
    scale = " (log counts)" if log_counts else ""
    return f'<figure class="hist"><figcaption>{html.escape(title)}{scale}</figcaption>{"".join(parts)}</figure>'


def svg_bars(labels: list[str], series: dict[str, list[float]], title: str, width: int = 780) -> str:
    """Horizontal grouped bars (one group per label, one bar per series), inline SVG."""
    colors = ["#4a78b5", "#e08e2b", "#3a9a5b", "#9b59b6"]
    row_h = 6 + 9 * len(series)
    height = 30 + row_h * len(labels)
    top = max([max(values) for values in series.values() if values] + [1])
    left, plot_w = 150, width - 230
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for name_index, name in enumerate(series):
        parts.append(f'<rect x="{left + name_index * 110}" y="4" width="10" height="10" fill="{colors[name_index % 4]}"/>'
                     f'<text x="{left + 14 + name_index * 110}" y="13" font-size="11">{html.escape(name)}</text>')
    for index, label in enumerate(labels):
        y = 24 + index * row_h
        parts.append(f'<text x="{left - 6}" y="{y + row_h / 2 + 3:.1f}" font-size="11" text-anchor="end">{html.escape(label)}</text>')
        for name_index, (name, values) in enumerate(series.items()):
            value = values[index]
            bar = plot_w * value / top
            parts.append(f'<rect x="{left}" y="{y + name_index * 9}" width="{bar:.1f}" height="8" '
                         f'fill="{colors[name_index % 4]}"><title>{html.escape(label)} / {html.escape(name)}: {value:,.0f}'
                         f'</title></rect><text x="{left + bar + 4:.1f}" y="{y + name_index * 9 + 7}" font-size="9">{value:,.0f}</text>')
    parts.append("</svg>")
    return f'<figure><figcaption>{html.escape(title)}</figcaption>{"".join(parts)}</figure>'


def render_report(result: CheckResult, gallery: dict[str, str]) -> str:
    """The report page as an HTML string: cards, histograms, classes, clusters, the flagged table."""
    source, config = result.source, result.config
    counts = result.problem_counts()
    leaking = [cluster for cluster in result.clusters if cluster["leakage"]]
    table = [
        {"key": row["key"] or "", "split": row["split"] or "", "problem": row["problem"],
         "value": row["value"], "threshold": row["threshold"],
         "thumb": gallery.get(f"{row['split']}/{row['key']}", ""), "path": row.get("path") or ""}
        for row in result.flagged
    ]
    problem_options = "".join(f'<option value="{html.escape(problem)}">{html.escape(problem)} ({counts[problem]})</option>'
                              for problem in PROBLEMS if counts.get(problem))
    # no "<" at all in the JSON block: a "</script>" or "<!--" in a file name cannot end or confuse it
    data = json.dumps(table, ensure_ascii=True).replace("<", "\\u003c")
    title = f"pairforge check: {source.root}"
    script = PAGE_SCRIPT.replace("__PROBLEM_ORDER__", json.dumps(list(PROBLEMS)))
    return document(title, f"""<h1>{html.escape(title)}</h1>
<p class="muted">{html.escape(source.layout)} · kind {html.escape(source.kind)} · {result.checked:,} pairs checked in {result.seconds:.1f} s on {html.escape(result.runner)} ·
shift limit {config.max_shift} px · near-duplicates within {config.near_distance}/64 pHash bits</p>
<div class="cards">{_cards_html(result, counts, leaking)}</div>
<h2>Distributions</h2><div class="hists">{"".join(_histograms(result))}</div>
{_classes_html(result.class_stats)}
{_clusters_html(result.clusters, leaking)}
<h2>Flagged ({len(table):,} rows; thumbnails: A | B | A's structure in red on B)</h2>
<div id="controls"><label>problem <select id="problem"><option value="">all</option>{problem_options}</select></label>
<label>sort by <select id="sort"><option value="problem">problem</option><option value="key">key</option>
<option value="split">split</option><option value="value">value (high first)</option></select></label>
<span id="shown" class="muted"></span><button id="more">show 100 more</button></div>
<table><thead><tr><th>problem</th><th>split</th><th>key</th><th>value</th><th>threshold</th><th>A | B | overlay</th></tr></thead>
<tbody id="rows"></tbody></table>
<script id="data" type="application/json">{data}</script>
<script>
{script}</script>""", narrow=True)


def _cards_html(result: CheckResult, counts: Counter, leaking: list[dict[str, Any]]) -> str:
    """Summary cards: counts, red when something is wrong, green when a check came out clean."""
    cards = [("pairs seen", result.seen, ""), ("checked", result.checked, ""),
             ("unreadable", result.unreadable_count, "bad" if result.unreadable_count else ""),
             ("pairs flagged", result.flagged_pairs(), "bad" if result.flagged_pairs() else "good"),
             ("misaligned", counts.get("misaligned", 0), "bad" if counts.get("misaligned") else ""),
             ("alignment uncertain", counts.get("alignment uncertain", 0), ""),
             ("low agreement", counts.get("low agreement", 0), "bad" if counts.get("low agreement") else ""),
             ("duplicate clusters", len(result.clusters), ""),
             ("leaking clusters", len(leaking), "bad" if leaking else "good")]
    return "".join(f'<div class="card {css}"><div class="n">{value:,}</div><div>{html.escape(label)}</div></div>'
                   for label, value, css in cards)


def _histograms(result: CheckResult) -> list[str]:
    """SVG histograms of shift, agreement, shift evidence and edge density, with their thresholds marked."""
    source, config, rows = result.source, result.config, result.rows
    fence = (result.fences.get("agreement") or {}).get("fence")
    agreement_name = {"edges": "edge F1 (A vs the edge recipe on B)", "gray": "correlation of A with B's lightness",
                      "labels": "F1 of label boundaries vs B's edges"}.get(measured_kind(source.kind))
    density_name = "edge density of A" if kinds.measured(source.kind).edge_map else "edge density of B (Canny)"
    needed = result.fences.get("shift_evidence")
    unit = ("score gain over no shift and its 1-px neighbours, z units" if kinds.measured(source.kind).palette
            else "share of the structure disagreement near no shift that the shift removes")
    # pairs within the shift limit need no evidence: only the shifts that were judged
    confidence = svg_histogram([row["evidence"] for row in rows if row["shift"] > config.max_shift],
                               f"shift evidence of shifts over {config.max_shift} px ({unit})",
                               marker=needed, marker_label="needed to flag", log_counts=True)
    histograms = [
        svg_histogram([row["shift"] for row in rows], "estimated shift (px)", marker=config.max_shift,
                      marker_label=f"{config.max_shift} px", log_counts=True),
        confidence,
        svg_histogram([row["edge_density"] for row in rows], density_name,
                      marker=config.min_edge_density if kinds.measured(source.kind).edge_map else None, marker_label="near-empty"),
    ]
    if agreement_name:
        histograms.insert(1, svg_histogram([row["agreement"] for row in rows if row["agreement"] is not None],
                                           f"agreement: {agreement_name}", marker=fence, marker_label="outlier fence",
                                           log_counts=True))
    return histograms


def _classes_html(class_stats: dict[str, Any]) -> str:
    """Bar charts of pixels and images per label class and split (labels datasets), and classes missing from val."""
    if not class_stats.get("splits"):
        return ""
    names = class_stats["classes"]
    series_pixels = {split: [float(values[name]["pixels"]) for name in names]
                     for split, values in class_stats["splits"].items()}
    series_images = {split: [float(values[name]["images"]) for name in names]
                     for split, values in class_stats["splits"].items()}
    missing = class_stats.get("missing_from_val") or []
    return ("<h2>Label classes</h2>" + svg_bars(names, series_pixels, "pixels per class and split")
            + svg_bars(names, series_images, "images containing each class, per split")
            + (f'<p class="bad">never in val: {html.escape(", ".join(missing))}</p>' if missing else ""))


def _clusters_html(clusters: list[dict[str, Any]], leaking: list[dict[str, Any]]) -> str:
    """The duplicate clusters as a table (leaking ones first and in red), at most 300 rows."""
    shown = clusters[:300]
    rows = [{"id": cluster["id"], "size": cluster["size"], "splits": ", ".join(cluster["splits"]),
             "match": "exact" if cluster["exact"] else "near",
             "members": ", ".join(member["split"] + "/" + member["key"] for member in cluster["members"][:8])
             + (" ..." if cluster["size"] > 8 else "")} for cluster in shown]
    table = table_html("", ["id", "size", "splits", "match", "members"], rows,
                       row_classes=["bad" if cluster["leakage"] else "" for cluster in shown])
    return (f'<h2>Duplicate clusters ({len(clusters)}, {len(leaking)} spanning splits)</h2>'
            + (table if clusters else '<p class="muted">none</p>')
            + ('<p class="muted">first 300 shown; all in check.json</p>' if len(clusters) > 300 else ""))


PAGE_SCRIPT = """const rows = JSON.parse(document.getElementById('data').textContent);
const order = __PROBLEM_ORDER__;
let limit = 100;
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
function view() {
  const problem = document.getElementById('problem').value, sort = document.getElementById('sort').value;
  let list = rows.filter(r => !problem || r.problem === problem);
  const cmp = {problem: (a, b) => order.indexOf(a.problem) - order.indexOf(b.problem) || a.key.localeCompare(b.key),
    key: (a, b) => a.key.localeCompare(b.key), split: (a, b) => a.split.localeCompare(b.split) || a.key.localeCompare(b.key),
    value: (a, b) => (typeof b.value === 'number' ? b.value : -1) - (typeof a.value === 'number' ? a.value : -1)}[sort];
  list = list.slice().sort(cmp);
  document.getElementById('rows').innerHTML = list.slice(0, limit).map(r =>
    `<tr><td>${esc(r.problem)}</td><td>${esc(r.split)}</td><td title="${esc(r.path)}">${esc(r.key)}</td>` +
    `<td>${esc(typeof r.value === 'object' ? JSON.stringify(r.value) : r.value)}</td><td>${esc(JSON.stringify(r.threshold))}</td>` +
    `<td>${r.thumb ? `<img class="strip" loading="lazy" src="${esc(r.thumb)}" alt="">` : ''}</td></tr>`).join('');
  document.getElementById('shown').textContent = `showing ${Math.min(limit, list.length)} of ${list.length}`;
  document.getElementById('more').hidden = limit >= list.length;
}
document.getElementById('problem').onchange = () => { limit = 100; view(); };
document.getElementById('sort').onchange = view;
document.getElementById('more').onclick = () => { limit += 100; view(); };
view();
"""
"""The flagged table's filter, sort and paging (rows come from the JSON block; 100 rendered at a time)."""


def write_report(result: CheckResult, runner: RunnerConfig) -> Path:
    """Draw the gallery and write report.html; returns its path."""
    gallery = draw_gallery(result, runner) if result.config.gallery else {}
    path = Path(result.config.out_dir) / "report.html"
    write_atomic(path, render_report(result, gallery))
    log.info("report: %s (%d gallery strips; problems %s)", path, len(gallery), dict(Counter(r["problem"] for r in result.flagged)))
    return path
