"""The demo's data, training recipe and report: what ``pairforge demo`` builds, trains and shows.

Photos come from scikit-image's bundled images (no download); the report is demo/report.html
with held-out inputs, outputs and targets, L1 vs L1+cGAN, loss curves and metrics per task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pairforge.page import escape, img_html, table_html, write_page
from pairforge.trainer.config import TrainConfig
from pairforge.trainer.data import default_num_workers
from pairforge.trainer.report import LOSS_NAMES, read_metrics, svg_curve

# scikit-image's bundled colour photographs (no download); `camera` is grayscale on purpose:
# make-gray rejects it, so the demo shows a rejects file too.
TRAIN_SOURCES = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle",
                 "colorwheel", "camera")
HELD_OUT_SOURCES = ("chelsea", "coffee")
TASKS = {
    "edges": "edges -> photo (the paper's edges2shoes recipe, on procedural facades)",
    "gray": "grayscale -> colour (colorization, Lab as the official setup)",
}
HELD_OUT_FACADES = 4
"""Facades of another seed, never seen in training, for the edges task's held-out inputs."""


DETECTORS = {"hed": "HED (Xie & Tu 2015, BSDS500 weights) + the official post-processing",
              "canny": "OpenCV Canny (HED weights not installed)"}


def make_demo_photos(folder: Path, crops_per_photo: int, size: int, seed: int) -> tuple[Path, Path, list[str]]:
    """Random crops of the training sources, and the held-out photos whole (centre square).

    Returns:
        (training photo folder, held-out photo folder, names of the sources used).
    """
    import cv2
    import numpy as np
    from skimage import data

    from pairforge.imageio import to_rgb_uint8, write_image

    train_dir, held_dir = folder / "train", folder / "held_out"
    rng = np.random.default_rng(seed)
    used = []
    for name in TRAIN_SOURCES + HELD_OUT_SOURCES:
        try:
            image = getattr(data, name)()
        except (AttributeError, ImportError, OSError):  # not bundled with this scikit-image version
            continue
        image = np.asarray(image[0] if isinstance(image, tuple) else image)  # stereo pair: the left photo
        if image.ndim == 3 and image.shape[2] == 4:
            from PIL import Image

            image = to_rgb_uint8(Image.fromarray(image, "RGBA"))
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.dtype != np.uint8 or image.ndim != 3:
            continue
        used.append(name)
        height, width = image.shape[:2]
        if name in HELD_OUT_SOURCES:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            square = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
            write_image(held_dir / f"{name}.png", square)
            continue
        for index in range(crops_per_photo):
            side = int(min(height, width) * rng.uniform(0.35, 1.0))
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            crop = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
            write_image(train_dir / f"{name}_{index:03d}.jpg", crop, "jpg", 95)
    return train_dir, held_dir, used


def demo_train_config(shards: Path, runs: Path, task: str, steps: int, size: int, device: str, seed: int,
                      gan: bool = True) -> TrainConfig:
    """A small pix2pix for the demo: U-Net with depth from the crop size, 32 base channels, batch 4.

    It trains on random crops of half the image side (4x less work per step; the networks are
    fully convolutional, so they run on the whole image afterwards); ``gan=False`` is L1 alone.
    """
    crop = max(32, size // 2) // 2 * 2
    return TrainConfig.from_options(
        shards=str(shards), colorspace="lab" if task == "gray" else "rgb", batch_size=4,
        num_workers=default_num_workers(device), shuffle_buffer=200, max_val_samples=32, augment="pix2pix",
        load_size=size, crop_size=crop, generator="unet", generator_channels=32, discriminator_channels=32,
        use_gan=gan, steps=steps, output=str(runs), name=f"demo-{task}" + ("" if gan else "-l1"), seed=seed,
        device=device, log_every=max(1, steps // 100), sample_every=max(1, steps // 4), val_every=0,
        checkpoint_every=0,
    )


def data_description(task: str, facades: int, size: int, seed: int, sources: list[str]) -> str:
    """The report's line on where a task's photos came from (HTML)."""
    if task == "edges":
        return (f"{facades} procedural facades (<code>synth facades</code>, seed {seed}, {size}x{size}); held out: "
                f"{HELD_OUT_FACADES} facades of seed {seed + 1}")
    return ("random crops of scikit-image's bundled photos ("
            + escape(", ".join(s for s in sources if s not in HELD_OUT_SOURCES))
            + "); held out: " + escape(", ".join(s for s in sources if s in HELD_OUT_SOURCES)))


def _figure(output: Path, path: Path, label: str) -> str:
    image = img_html(path.relative_to(output).as_posix(), alt=label, lazy=True, width=192)
    return f"<figure>{image}<figcaption>{escape(label)}</figcaption></figure>"


def _task_section(output: Path, result: dict[str, Any]) -> str:
    """One task's part of the demo report: held-out pictures, L1 vs L1+cGAN, loss curves, metrics."""
    task, predict_dir, run_dir = result["task"], Path(result["predict"]), Path(result["run"])
    rows = read_metrics(run_dir)
    curves = []
    for key, title in LOSS_NAMES.items():
        points = [(float(r["step"]), float(r[key])) for r in rows if key in r and "step" in r]
        if points:
            curves.append(svg_curve(points, title))
    metrics_path = Path(result["eval"]) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    means = metrics.get("means", {})
    metric_table = table_html("", ["metric", "value"], [{"metric": k, "value": v} for k, v in means.items()])
    pictures, comparison = [], []
    l1_dir = Path(result["l1_predict"]) if result.get("l1_predict") else None
    for produced in sorted(p for p in predict_dir.glob("*.png")):
        name = produced.stem
        source, target = predict_dir / "inputs" / f"{name}.png", predict_dir / "targets" / f"{name}.png"
        cells = [_figure(output, path, label) for label, path in
                 (("input", source), ("output", produced), ("target", target)) if path.exists()]
        pictures.append(f'<div class="row"><h4>{escape(name)}</h4>{"".join(cells)}</div>')
        if l1_dir is not None and (l1_dir / f"{name}.png").exists():
            cells = [_figure(output, path, label) for label, path in
                     (("input", source), ("L1 alone", l1_dir / f"{name}.png"), ("L1 + cGAN", produced),
                      ("target", target)) if path.exists()]
            comparison.append(f'<div class="row">{"".join(cells)}</div>')
    comparison_html = ""
    if comparison:
        comparison_html = (
            "<h3>L1 alone vs L1 + cGAN (the paper's comparison of losses, on held-out facades)</h3>"
            "<p>The same generator and steps, trained with the L1 loss alone and with L1 plus the conditional "
            "GAN loss. Many photos fit one edge map (any wall colour, any texture), so L1 alone learns their "
            "average: blurrier, greyer output. The discriminator pushes L1 + cGAN towards one sharp, "
            "plausible photo instead (neither is the target's exact colours, which the edges do not "
            "determine).</p>" + "".join(comparison)
        )
    return f"""
<section><h2>{escape(TASKS[task])}</h2>
<p>Photos: {result.get('data', '')}. A made with: {escape(str(result['detector']))}.
Shards: <code>{escape(str(result['shards']))}</code>,
run: <a href="{(run_dir / 'report.html').relative_to(output).as_posix()}">{escape(run_dir.name)}</a>,
all predictions: <a href="{(predict_dir / 'index.html').relative_to(output).as_posix()}">index.html</a>.</p>
<h3>Held-out inputs (never seen in training)</h3>{''.join(pictures) or '<p>no predictions</p>'}
{comparison_html}
<h3>Loss curves</h3><div class="curves">{''.join(curves) or '<p>no metrics logged</p>'}</div>
<h3>Validation metrics (mean over the val split)</h3>
{metric_table if means else '<p>none</p>'}
</section>"""


def write_demo_report(output: Path, results: list[dict[str, Any]], seconds: float, steps: int | None = None) -> Path:
    """demo/report.html: per task, held-out inputs | outputs | targets, L1 vs L1+cGAN, loss curves and metrics."""
    sections = [_task_section(output, result) for result in results]
    budget = f"{steps:,} steps of batch 4 on half-size crops" if steps else "a few minutes of training"
    body = f"""<h1>pairforge demo</h1>
<p>For each task: pairs built from photos that need no download, packed into WebDataset shards, a small pix2pix
(U-Net + PatchGAN, L1 + cGAN, 32-channel networks) trained on them, run on inputs held back from training and
evaluated. Total time: {seconds / 60:.1f} minutes.</p>
<p><strong>What to expect:</strong> these are small models trained briefly ({escape(budget)}). The procedural
facades are regular enough for such a model to turn held-out edge maps into recognisable facades, with plausible
rather than correct colours, and with visible artefacts; colorization of real photos gives plausible but partly
wrong colours (often too much of one hue). Neither is what a
full-size model trained for hours on real data gives: train longer on more data for real results.</p>
{''.join(sections)}"""
    return write_page(output / "report.html", "pairforge demo", body, narrow=True)
