"""Evaluation metrics on arrays, per sample and per split: L1/PSNR/SSIM and the task scores.

Task scores by dataset kind:

- ``edges``: edge consistency -- edges of the output (by the dataset's own detector, passed in
  as a callable) against the input edges; precision, recall and F1 with a 2-pixel tolerance.
- ``gray``: colourfulness (Hasler and Suesstrunk) of output and target, and the mean absolute
  error of the Lab a/b channels.
- ``labels``: the paper's FCN-score -- a segmenter (the judge) applied to the generated photos
  against the input labels: per-pixel accuracy, per-class accuracy and class IoU, from one
  confusion matrix over the split; the same judge on the real photos gives the upper bound.

Every metric function takes numpy arrays so it can be tested directly; :func:`evaluate_pairs`
combines them over ``(key, a, b, output)`` tuples computed elsewhere.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pairforge import kinds
from pairforge.files import atomic_path, write_atomic
from pairforge.lab import rgb_to_lab
from pairforge.page import table_html
from pairforge.trainer import metrics
from pairforge.trainer.compare import header_label
from pairforge.trainer.gallery import write_tables_page
from pairforge.trainer.spectrum import spectrum_scores

EDGE_TOLERANCE = 2


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    array = image if image.ndim == 3 else image[..., None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0


def image_scores(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """L1 (on [0, 1] values), PSNR (dB) and SSIM of one output against its target.

    Shape:
        output, target: (H, W, 3) uint8.
    """
    if output.shape != target.shape:
        raise ValueError(f"output {output.shape} and target {target.shape} differ in shape")
    prediction, reference = _to_tensor(output), _to_tensor(target)
    return {
        "l1": float(metrics.l1(prediction, reference)[0]),
        "psnr": float(metrics.psnr(prediction, reference)[0]),
        "ssim": float(metrics.ssim(prediction, reference)[0]),
    }


def edge_mask(edge_image: np.ndarray) -> np.ndarray:
    """Edge pixels of a pairforge edge map (black edges on white).

    Shape:
        (H, W) uint8 (or (H, W, 3)) -> (H, W) bool.
    """
    gray = edge_image if edge_image.ndim == 2 else edge_image[..., :3].mean(axis=2)
    return gray < 128


def _within(mask: np.ndarray, of: np.ndarray, tolerance: int) -> np.ndarray:
    """Pixels of ``mask`` that lie within ``tolerance`` pixels (Euclidean) of a pixel of ``of``."""
    if not of.any():
        return np.zeros_like(mask)
    distance = cv2.distanceTransform((~of).astype(np.uint8), cv2.DIST_L2, 3)
    return mask & (distance <= tolerance + 1e-6)


def edge_scores(predicted: np.ndarray, reference: np.ndarray, tolerance: int = EDGE_TOLERANCE) -> dict[str, float]:
    """Precision, recall and F1 of predicted edges against reference edges, with a pixel tolerance.

    A predicted edge pixel is correct when a reference edge lies within ``tolerance`` pixels;
    a reference edge pixel is recalled when a predicted edge lies within ``tolerance`` pixels.
    No edges on either side scores 1; edges on one side only score 0.

    Shape:
        predicted, reference: (H, W) bool.
    """
    n_predicted, n_reference = int(predicted.sum()), int(reference.sum())
    if n_predicted == 0 and n_reference == 0:
        return {"edge_precision": 1.0, "edge_recall": 1.0, "edge_f1": 1.0}
    precision = float(_within(predicted, reference, tolerance).sum()) / n_predicted if n_predicted else 0.0
    recall = float(_within(reference, predicted, tolerance).sum()) / n_reference if n_reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"edge_precision": precision, "edge_recall": recall, "edge_f1": f1}


def colorfulness(image: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness (0 for gray images; ~100+ for vivid ones).

    Shape:
        (H, W, 3) uint8 RGB.
    """
    rgb = image.astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def ab_error(output: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference of the Lab a and b channels (CIE units, :mod:`pairforge.lab`).

    Shape:
        output, target: (H, W, 3) uint8 RGB.
    """
    lab_out, lab_target = rgb_to_lab(output), rgb_to_lab(target)
    return float(np.abs(lab_out[..., 1:] - lab_target[..., 1:]).mean())


def confusion_matrix(predicted: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts[true class, predicted class]; truth ids >= ``num_classes`` (ignore) are left out.

    Shape:
        predicted, truth: (H, W) integer ids -> (num_classes, num_classes) int64.
    """
    valid = truth < num_classes
    index = truth[valid].astype(np.int64) * num_classes + np.clip(predicted[valid].astype(np.int64), 0, num_classes - 1)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """The FCN-score triple: per-pixel accuracy, mean per-class accuracy, mean class IoU.

    Class means run over the classes present in the ground truth.

    Shape:
        confusion: (C, C) counts[true, predicted].
    """
    confusion = confusion.astype(np.float64)
    total = confusion.sum()
    true_per_class = confusion.sum(axis=1)
    predicted_per_class = confusion.sum(axis=0)
    hits = np.diag(confusion)
    present = true_per_class > 0
    if total == 0 or not present.any():
        return {"pixel_accuracy": float("nan"), "class_accuracy": float("nan"), "class_iou": float("nan")}
    union = true_per_class + predicted_per_class - hits
    return {
        "pixel_accuracy": float(hits.sum() / total),
        "class_accuracy": float((hits[present] / true_per_class[present]).mean()),
        "class_iou": float((hits[present] / union[present]).mean()),
    }


@dataclass
class EvaluationReport:
    """Per-sample rows, their means, and split-level task scores.

    Attributes:
        kind: dataset kind.
        rows: one dict per sample (``key`` and metric values).
        means: mean of each numeric column.
        task: split-level scores (labels: ``generated`` and ``real`` FCN-scores).
        notes: what was skipped and why.
        settings: how the generator ran (batch-norm statistics, dropout, scale, direction).
        data: what was read (pairs, unreadable samples, modified shards used as they are).
    """

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    means: dict[str, float] = field(default_factory=dict)
    task: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Means plus the task scores flattened (``fcn_pixel_accuracy``, ``real_fcn_...``)."""
        flat = dict(self.means)
        for name, scores in self.task.items():
            prefix = "fcn_" if name == "generated" else f"{name}_fcn_"
            flat.update({prefix + key: value for key, value in scores.items()})
        return flat

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": len(self.rows), "settings": self.settings, "data": self.data,
                "means": self.means, "task": self.task, "notes": self.notes, "rows": self.rows}


Segmenter = Callable[[list[np.ndarray]], list[np.ndarray]]
"""photos (H, W, 3) uint8 -> class ids (H, W)."""


def evaluate_pairs(
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    kind: str,
    edge_detector: Callable[[np.ndarray], np.ndarray] | None = None,
    segmenter: Segmenter | None = None,
    label_ids: Callable[[np.ndarray], np.ndarray] | None = None,
    num_classes: int = 0,
) -> EvaluationReport:
    """Score ``(key, a, b, output)`` tuples.

    Args:
        pairs: key, A (edge map / gray / colour-coded labels), target B and the output, uint8.
        kind: dataset kind (selects the task scores).
        edge_detector: edges kind: the dataset's detector (photo -> black-on-white edge map).
        segmenter: labels kind: the judge (photos -> ids).
        label_ids: labels kind: colour-coded A -> class ids (ignore class >= ``num_classes``).
        num_classes: labels kind: classes scored (the ignore class excluded).

    Returns:
        the report; task scores that lack their tool are skipped with a note.
    """
    report = EvaluationReport(kind)
    use_edges = kinds.of(kind).edge_map and edge_detector is not None
    use_judge = kinds.of(kind).palette and segmenter is not None and label_ids is not None and num_classes > 0
    if kinds.of(kind).edge_map and not use_edges:
        report.notes.append("edge consistency skipped: the dataset's edge detector is unknown")
    if kinds.of(kind).palette and not use_judge:
        report.notes.append("FCN-score skipped: no judge (train one with `pairforge train-judge SHARDS`)")
    confusion_generated = np.zeros((max(num_classes, 1),) * 2, np.int64)
    confusion_real = np.zeros_like(confusion_generated)
    for key, a, b, output in pairs:
        row: dict[str, Any] = {"key": key, **image_scores(output, b), **spectrum_scores(output, b)}
        if use_edges:
            assert edge_detector is not None
            row.update(edge_scores(edge_mask(edge_detector(output)), edge_mask(a)))
        if kinds.of(kind).lightness:
            row.update(colorfulness=colorfulness(output), target_colorfulness=colorfulness(b), ab_error=ab_error(output, b))
        if use_judge:
            assert segmenter is not None and label_ids is not None
            truth = label_ids(a)
            generated, real = segmenter([output, b])
            sample_confusion = confusion_matrix(generated, truth, num_classes)
            confusion_generated += sample_confusion
            confusion_real += confusion_matrix(real, truth, num_classes)
            row["fcn_pixel_accuracy"] = segmentation_scores(sample_confusion)["pixel_accuracy"]
        report.rows.append(row)
    numeric = [k for k in (report.rows[0] if report.rows else {}) if k != "key"]
    report.means = {k: float(np.nanmean([row[k] for row in report.rows])) for k in numeric}
    if use_judge and report.rows:
        report.task = {"generated": segmentation_scores(confusion_generated), "real": segmentation_scores(confusion_real)}
    return report


def write_report(report: EvaluationReport, folder: str | Path, title: str = "pairforge evaluate",
                 examples: str = "") -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.csv`` (one row per sample) and ``metrics.html``.

    Args:
        examples: an HTML section shown above the per-sample table
            (:func:`pairforge.trainer.gallery.example_rows_html`).

    Returns:
        format -> path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "metrics.json", "csv": folder / "metrics.csv", "html": folder / "metrics.html"}
    write_atomic(paths["json"], json.dumps(report.to_json(), indent=2))
    columns = ["key"] + [c for c in (report.rows[0] if report.rows else {}) if c != "key"]
    with atomic_path(paths["csv"]) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(report.rows)
    tables = [table_html("mean", ["metric", "name", "value"],
                         [{"metric": header_label(k), "name": k, "value": v} for k, v in report.means.items()])]
    if report.settings:
        tables.insert(0, table_html("how the generator ran", ["setting", "value"],
                                    [{"setting": k, "value": v} for k, v in report.settings.items()]))
    if report.task:
        names = ["pixel_accuracy", "class_accuracy", "class_iou"]
        tables.append(table_html("FCN-score (the judge on generated vs real photos)", ["photos", *names],
                                 [{"photos": name, **scores} for name, scores in report.task.items()]))
    tables += [examples] if examples else []
    tables.append(table_html("per sample", columns, report.rows))
    write_tables_page(paths["html"], title, tables)
    return paths

