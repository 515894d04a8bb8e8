"""What a person looks at: sample grids (A | G(A) | B) and report.html with inline SVG curves."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pairforge.files import write_atomic
from pairforge.page import escape, img_html, write_page

CURVES = (
    ("loss_g_l1", "generator L1 loss (outputs in [-1, 1])"),
    ("loss_g_gan", "generator GAN"),
    ("loss_d", "discriminator"),
    ("val_l1", "validation L1 (RGB in [0, 1], as evaluate)"),
    ("val_psnr", "validation PSNR (dB)"),
    ("val_ssim", "validation SSIM"),
    ("lr", "learning rate"),
    ("images_per_s", "images/s"),
    ("data_wait_fraction", "data-wait fraction"),
)


GRID_COLUMNS = ("A (input)", "G(A) (output)", "B (target)")
MIN_TILE = 256
"""Sample tiles smaller than this are enlarged (nearest neighbour) so the grids are easy to look at."""


def write_sample_grid(path: Path, rows: list[torch.Tensor]) -> None:
    """Save rows of (A, G(A), B) side by side as a PNG, under a header naming the columns.

    Tiles smaller than :data:`MIN_TILE` pixels are enlarged by a whole factor (nearest, so
    pixels stay visible).

    Args:
        path: PNG file to write (folders are created).
        rows: each ``(3, 3, H, W)``: A, G(A), B as RGB in [0, 1].
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [torch.cat(list(row.float().clamp(0, 1)), dim=2) for row in rows]
    image = torch.cat(lines, dim=1)
    array = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    tile_height, tile_width = rows[0].shape[-2:]
    scale = max(1, MIN_TILE // max(tile_height, tile_width))
    if scale > 1:
        array = cv2.resize(array, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    header = np.full((28, array.shape[1], 3), 255, np.uint8)
    for index, title in enumerate(GRID_COLUMNS):
        cv2.putText(header, title, (index * tile_width * scale + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    encoded = cv2.imencode(".png", cv2.cvtColor(np.concatenate([header, array]), cv2.COLOR_RGB2BGR))[1]
    write_atomic(path, encoded.tobytes())  # a full disk names this file


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl (a torn last line is ignored)."""
    path = run_dir / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


MARKED_POINTS = 60
"""Curves with at most this many points draw a marker on each (validation curves, short runs)."""


def svg_curve(points: list[tuple[float, float]], title: str, width: int = 360, height: int = 200) -> str:
    """A small line chart as inline SVG, with a marker per point when there are few, and the last value."""
    pad = 36
    xs = [p[0] for p in points]
    ys = [p[1] for p in points if math.isfinite(p[1])]
    if not ys:
        return ""
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:  # one step: the point sits in the middle
        x_low, x_high = x_low - 1, x_high + 1
    y_low, y_high = min(ys), max(ys)
    if y_high == y_low:
        spread = max(abs(y_low) * 0.05, 1e-3)
        y_low, y_high = y_low - spread, y_high + spread

    def sx(x: float) -> float:
        return pad + (x - x_low) / (x_high - x_low) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y_low) / (y_high - y_low) * (height - 2 * pad)

    finite = [(x, y) for x, y in points if math.isfinite(y)]
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
    # every point gets a marker when there are few (a single validation point is otherwise invisible)
    marked = finite if len(finite) <= MARKED_POINTS else finite[-1:]
    markers = "".join(
        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"><title>step {x:.0f}: {y:.4g}</title></circle>'
        for x, y in marked
    )
    last_x, last_y = finite[-1]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        f'<title>{escape(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>'
        f'<text x="{pad}" y="16" font-size="12">{escape(title)}</text>'
        f'<text x="{width - pad}" y="16" font-size="10" text-anchor="end">last {last_y:.4g} (step {last_x:.0f})</text>'
        f'<text x="2" y="{sy(y_high) + 4:.1f}" font-size="9">{y_high:.4g}</text>'
        f'<text x="2" y="{sy(y_low) + 4:.1f}" font-size="9">{y_low:.4g}</text>'
        + (
            f'<text x="{width / 2:.0f}" y="{height - 8}" font-size="9" text-anchor="middle">step {last_x:.0f}</text>'
            if min(xs) == max(xs)
            else f'<text x="{pad}" y="{height - 8}" font-size="9">step {x_low:.0f}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="9" text-anchor="end">step {x_high:.0f}</text>'
        )
        + f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{path}"/>{markers}</svg>'
    )


LOSS_NAMES = {"loss_g_l1": "generator L1", "loss_g_gan": "generator GAN", "loss_d": "discriminator"}
VALIDATION_NAMES = {"val_l1": "L1", "val_psnr": "PSNR (dB)", "val_ssim": "SSIM"}


def summary_rows(summary: dict[str, Any], config: dict[str, Any], run_dir: Path) -> list[tuple[str, str]]:
    """What a person wants to know about a run, as (name, value) rows.

    Internal fields of summary.json (parameter checksums, which exist for the DDP and resume
    tests) are left out.
    """
    rows: list[tuple[str, str]] = []
    model, loss, data = config.get("model", {}), config.get("loss", {}), config.get("data", {})
    dataset = config.get("dataset", {})
    if dataset.get("kind"):
        counts = ", ".join(f"{split} {count}" for split, count in sorted((dataset.get("counts") or {}).items()))
        rows.append(("data", f"{dataset['kind']} pairs ({counts})" if counts else str(dataset["kind"])))
    if model:
        discriminator = {"patch": f"PatchGAN, {model.get('n_layers')} layers", "pixel": "PixelGAN (1x1)",
                         "image": "ImageGAN (whole image)"}.get(model.get("discriminator"), model.get("discriminator"))
        rows.append(("networks", f"{model.get('generator')} ({model.get('generator_channels')} channels), "
                                 f"{discriminator} ({model.get('discriminator_channels')} channels), "
                                 f"{'conditional' if model.get('conditional', True) else 'unconditional'}"))
    if loss:
        terms = [f"{loss.get('lambda_l1'):g} x L1"] if loss.get("lambda_l1") else []
        terms += [f"{loss.get('gan_mode')} GAN"] if loss.get("use_gan", True) else []
        rows.append(("loss", " + ".join(terms) or "none"))
    if data:
        rows.append(("batch size", str(data.get("batch_size"))))
    rows += _lineage_rows(config)
    if "steps" in summary:
        rows.append(("steps", f"{summary['steps']:,} of {summary.get('total_steps', summary['steps']):,}"))
    if isinstance(summary.get("elapsed_s"), (int, float)):
        rows.append(("training time", duration_text(summary["elapsed_s"])))
    if isinstance(summary.get("images_per_s"), (int, float)):
        wait = summary.get("data_wait_fraction")
        rows.append(("speed", f"{summary['images_per_s']:.1f} images/s"
                              + (f" ({wait:.0%} waiting for data)" if isinstance(wait, (int, float)) else "")))
    if summary.get("skipped_samples"):
        rows.append(("skipped samples", f"{summary['skipped_samples']} (corrupt, see the log)"))
    for key, value in (summary.get("last_losses") or {}).items():
        rows.append((f"last loss: {LOSS_NAMES.get(key, key)}", f"{value:.4f}"))
    for key, value in (summary.get("validation") or {}).items():
        rows.append((f"validation {VALIDATION_NAMES.get(key, key)}", f"{value:.4f}"))
    if summary.get("checkpoint"):
        checkpoint = Path(str(summary["checkpoint"]))
        try:
            checkpoint = checkpoint.relative_to(run_dir)
        except ValueError:
            pass
        rows.append(("checkpoint", checkpoint.as_posix()))
    return rows


def _lineage_rows(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Where the weights started (``--init-from``) and each resume, with the options it changed."""
    rows: list[tuple[str, str]] = []
    source = config.get("init_source")
    if isinstance(source, dict):
        parts = [f"{source.get('checkpoint')} (step {source.get('step')})"]
        for name in ("generator", "discriminator"):
            network = source.get(name) or {}
            if network.get("sha256"):
                parts.append(f"{name} sha256 {network['sha256'][:16]}" + (", adapted" if network.get("adapted") else ""))
            elif network.get("fresh"):
                parts.append(f"{name} fresh ({network['fresh']})")
        rows.append(("initialised from", "; ".join(parts)))
    for entry in config.get("history") or []:
        if not isinstance(entry, dict):
            continue
        text = f"at step {entry.get('step')} from {entry.get('checkpoint')}, {entry.get('time', '')}"
        changed = entry.get("changed") or {}
        if changed:
            text += "; changed " + ", ".join(f"{name} {values[0]} -> {values[1]}" for name, values in changed.items())
        if entry.get("total_steps"):
            text += f"; extended from {entry['total_steps'][0]} to {entry['total_steps'][1]} steps"
        if entry.get("set_aside"):
            text += "; set aside " + ", ".join(map(str, entry["set_aside"]))
        rows.append(("resumed", text))
    return rows


def duration_text(seconds: float) -> str:
    """``42.0 s``, ``3.5 min`` or ``1.2 h`` (a run's training time, train-judge's expected time)."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def write_report(run_dir: Path) -> Path:
    """Write ``report.html``: a summary table, loss and validation curves, sample grids, the config."""
    rows = read_metrics(run_dir)
    charts = []
    for name, title in CURVES:
        points = [(float(r["step"]), float(r[name])) for r in rows if isinstance(r.get(name), (int, float))]
        if points:
            charts.append(svg_curve(points, title))
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    sample_html = ""
    if samples:
        encoded = base64.b64encode(samples[-1].read_bytes()).decode("ascii")
        step = samples[-1].stem.replace("step-", "").lstrip("0") or "0"
        earlier = "".join(
            f'<li><a href="samples/{escape(p.name)}">{escape(p.stem)}</a></li>' for p in reversed(samples[:-1])
        )
        sample_html = (
            f"<h2>Samples at step {escape(step)}: A (input) | G(A) (output) | B (target)</h2>"
            "<p>Validation pairs when the dataset has a val split, else the first training batch; each row is "
            "one pair.</p>"
            + img_html(f"data:image/png;base64,{encoded}", alt="A | G(A) | B", css_class="grid")
            + (f"<details><summary>earlier samples</summary><ul>{earlier}</ul></details>" if earlier else "")
        )
    config_path = run_dir / "config.json"
    config_text = config_path.read_text() if config_path.is_file() else "{}"
    summary_path = run_dir / "summary.json"
    summary = _read_json(summary_path)
    table = summary_rows(summary, _read_json(config_path), run_dir)
    status = "finished" if summary else "running (this page is rewritten as training goes on: reload it)"
    summary_html = "<h2>Summary</h2><table>" + "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in [("status", status), *table]
    ) + "</table>"
    body = (
        f"<h1>Run {escape(run_dir.name)}</h1>"
        f"{summary_html}<h2>Curves</h2><div class='curves'>{''.join(charts) or '<p>no metrics yet</p>'}</div>"
        f"{sample_html}<h2>Config</h2><details><summary>config.json</summary>"
        f"<pre>{escape(config_text)}</pre></details>"
    )
    return write_page(run_dir / "report.html", f"pairforge run {run_dir.name}", body, narrow=True)
