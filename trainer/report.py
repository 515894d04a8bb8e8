"""What a person looks at: sample grids (A | G(A) | B) and report.html with inline SVG curves."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

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


def write_sample_grid(path: Path, rows: list[torch.Tensor]) -> None:
    """Save rows of (A, G(A), B) side by side as a PNG.

    Args:
        path: PNG file to write (folders are created).
        rows: each ``(3, 3, H, W)``: A, G(A), B as RGB in [0, 1].
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [torch.cat(list(row.float().clamp(0, 1)), dim=2) for row in rows]
    image = torch.cat(lines, dim=1)
    array = (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))


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


def svg_curve(points: list[tuple[float, float]], title: str, width: int = 360, height: int = 200) -> str:
    """A small line chart as inline SVG."""
    pad = 36
    xs = [p[0] for p in points]
    ys = [p[1] for p in points if math.isfinite(p[1])]
    if not ys:
        return ""
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_low, y_high = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def sx(x: float) -> float:
        return pad + (x - x_low) / (x_high - x_low) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y_low) / (y_high - y_low) * (height - 2 * pad)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points if math.isfinite(y))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        f'<title>{html.escape(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>'
        f'<text x="{pad}" y="16" font-size="12">{html.escape(title)}</text>'
        f'<text x="2" y="{sy(y_high) + 4:.1f}" font-size="9">{y_high:.4g}</text>'
        f'<text x="2" y="{sy(y_low) + 4:.1f}" font-size="9">{y_low:.4g}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="9">step {x_low:.0f}</text>'
        f'<text x="{width - pad - 50}" y="{height - 8}" font-size="9">step {x_high:.0f}</text>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{path}"/>'
        # a lone point (e.g. one validation pass) draws no line: mark each point of short series
        + "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#1f77b4"/>'
                  for x, y in points if math.isfinite(y) and len(points) < 3)
        + "</svg>"
    )


def write_report(run_dir: Path) -> Path:
    """Write ``report.html``: config, loss and validation curves, and the latest sample grid inline."""
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
        sample_html = (
            f"<h2>Latest samples ({html.escape(samples[-1].stem)}): A | G(A) | B</h2>"
            # shown 768 px wide (256 px per column) whatever the training size, like the other pages
            f'<img alt="samples" style="width:768px" src="data:image/png;base64,{encoded}">'
        )
    config_path = run_dir / "config.json"
    config_text = config_path.read_text() if config_path.is_file() else "{}"
    summary_path = run_dir / "summary.json"
    summary_html = (
        f"<h2>Summary</h2><pre>{html.escape(summary_path.read_text())}</pre>" if summary_path.is_file() else ""
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>pairforge run {html.escape(run_dir.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em} svg{margin:4px} img{max-width:100%}</style>"
        f"</head><body><h1>Run {html.escape(run_dir.name)}</h1>"
        f"{summary_html}<h2>Curves</h2><div>{''.join(charts) or '<p>no metrics yet</p>'}</div>"
        f"{sample_html}<h2>Config</h2><details><pre>{html.escape(config_text)}</pre></details>"
        "</body></html>"
    )
    target = run_dir / "report.html"
    temporary = run_dir / ".report.html.tmp"
    temporary.write_text(page)
    temporary.replace(target)
    return target
