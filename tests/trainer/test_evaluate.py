"""evaluate: metric functions on arrays (identity perfect, constant poor), reports, CLI with --compare."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer.evaluation import (
    ab_error,
    colorfulness,
    confusion_matrix,
    edge_mask,
    edge_scores,
    evaluate_pairs,
    image_scores,
    segmentation_scores,
    write_report,
)
from pairforge.trainer.loop import train
from pairforge.trainer.transforms import colors_to_ids, palette_colors
from tests.trainer.conftest import PALETTE, _photos, make_pair, make_tiny_config, write_shards


def canny_detector(photo: np.ndarray) -> np.ndarray:
    """The detector the fixture's edge datasets were made with (black edges on white)."""
    return 255 - cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), 60, 120)


def gray_segmenter(photos: list[np.ndarray]) -> list[np.ndarray]:
    """The rule the fixture's label maps were made with, as a perfect 'judge'."""
    return [np.digitize(cv2.cvtColor(p, cv2.COLOR_RGB2GRAY), [60, 120, 200]) for p in photos]


def _pairs(kind: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(f"k{i}", *make_pair(photo, kind, i)) for i, photo in enumerate(_photos(64))]


def _constant(b: np.ndarray) -> np.ndarray:
    return np.full_like(b, 128)


def test_image_scores_identity_perfect_constant_poor() -> None:
    _, _, b = _pairs("edges")[0]
    perfect = image_scores(b, b)
    assert perfect["l1"] == 0 and perfect["psnr"] == pytest.approx(100) and perfect["ssim"] == pytest.approx(1, abs=1e-5)
    poor = image_scores(_constant(b), b)
    assert poor["l1"] > 0.1 and poor["psnr"] < 20 and poor["ssim"] < 0.5


def test_edge_scores_tolerance() -> None:
    reference = np.zeros((20, 20), bool)
    reference[10, 2:18] = True
    shifted = np.roll(reference, 2, axis=0)
    assert edge_scores(shifted, reference)["edge_f1"] == 1.0  # within 2 px
    assert edge_scores(np.roll(reference, 3, axis=0), reference)["edge_f1"] == 0.0
    half = reference.copy()
    half[10, 10:] = False
    scores = edge_scores(half, reference)
    assert scores["edge_precision"] == 1.0 and scores["edge_recall"] == pytest.approx(10 / 16, abs=0.1)
    assert edge_scores(np.zeros_like(reference), reference)["edge_f1"] == 0.0


def test_edges_identity_perfect_constant_poor() -> None:
    pairs = _pairs("edges")
    good = evaluate_pairs(((k, a, b, b) for k, a, b in pairs), "edges", edge_detector=canny_detector)
    bad = evaluate_pairs(((k, a, b, _constant(b)) for k, a, b in pairs), "edges", edge_detector=canny_detector)
    assert good.means["edge_f1"] == 1.0 and good.means["l1"] == 0.0
    assert bad.means["edge_f1"] == 0.0 and bad.means["psnr"] < good.means["psnr"]
    assert edge_mask(pairs[0][1]).any()


def test_gray_identity_perfect_constant_poor() -> None:
    pairs = _pairs("gray")
    good = evaluate_pairs(((k, a, b, b) for k, a, b in pairs), "gray")
    bad = evaluate_pairs(((k, a, b, _constant(b)) for k, a, b in pairs), "gray")
    assert good.means["ab_error"] == pytest.approx(0, abs=1e-4)
    assert good.means["colorfulness"] == pytest.approx(good.means["target_colorfulness"])
    assert bad.means["ab_error"] > 5 and bad.means["colorfulness"] == 0.0
    assert colorfulness(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    assert ab_error(pairs[0][2], pairs[0][2]) == 0.0


def test_segmentation_scores_from_confusion() -> None:
    truth = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    assert segmentation_scores(confusion_matrix(truth, truth, 3)) == {
        "pixel_accuracy": 1.0, "class_accuracy": 1.0, "class_iou": 1.0}
    all_zero = segmentation_scores(confusion_matrix(np.zeros_like(truth), truth, 3))  # class 3 = ignore
    assert all_zero["pixel_accuracy"] == pytest.approx(2 / 6)
    assert all_zero["class_accuracy"] == pytest.approx(1 / 3)
    assert all_zero["class_iou"] == pytest.approx((2 / 6) / 3)


def test_labels_fcn_score_identity_perfect_constant_poor() -> None:
    pairs = _pairs("labels")
    colors = palette_colors(PALETTE)
    args = {"segmenter": gray_segmenter, "label_ids": lambda a: colors_to_ids(a, colors), "num_classes": 3}
    good = evaluate_pairs(((k, a, b, b) for k, a, b in pairs), "labels", **args)
    bad = evaluate_pairs(((k, a, b, _constant(b)) for k, a, b in pairs), "labels", **args)
    assert good.task["generated"] == good.task["real"]
    assert good.task["generated"]["class_iou"] == 1.0
    assert bad.task["generated"]["class_iou"] < 0.5 and bad.task["real"]["class_iou"] == 1.0
    assert "fcn_class_iou" in bad.summary() and "real_fcn_class_iou" in bad.summary()


def test_missing_tools_are_noted_not_faked() -> None:
    report = evaluate_pairs(((k, a, b, b) for k, a, b in _pairs("edges")), "edges")
    assert "edge_f1" not in report.means and "edge detector" in report.notes[0]


def test_write_report_json_csv_html(tmp_path: Path) -> None:
    report = evaluate_pairs(((k, a, b, _constant(b)) for k, a, b in _pairs("gray")), "gray")
    paths = write_report(report, tmp_path)
    document = json.loads(paths["json"].read_text())
    assert document["count"] == 4 and set(document["means"]) >= {"l1", "psnr", "ssim", "ab_error"}
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 4 and float(rows[0]["l1"]) == pytest.approx(report.rows[0]["l1"])
    page = paths["html"].read_text()
    assert page.count("<table>") == 2
    # the mean table names each score as the comparison tables do (with its better direction), then its key
    mean_table = page.split("<table>")[1].split("</table>")[0]
    for label, key in (("L1 \u2193", "l1"), ("PSNR (dB) \u2191", "psnr"), ("Spectral distance \u2193", "spectral_distance")):
        assert f"<td>{html.escape(label)}</td><td>{key}</td>" in mean_table, (label, mean_table[:400])


@pytest.fixture(scope="module")
def edge_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    shards = write_shards(root / "shards", kind="edges", count=4, size=48, shards=1, val=3)
    dataset = json.loads((shards / "dataset.json").read_text())
    dataset["source"]["stage"] = {"detector": "canny", "fit": {"size": None, "fit": "crop"}}
    (shards / "dataset.json").write_text(json.dumps(dataset))
    first = train(make_tiny_config(shards, root / "runs", steps=1, augment__crop_size=32)).run_dir
    second = train(make_tiny_config(shards, root / "runs", steps=2, augment__crop_size=32, name="other")).run_dir
    return shards, Path(first), Path(second)


@pytest.mark.slow
def test_evaluate_cli_with_compare(edge_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    shards, first, second = edge_runs
    result = CliRunner().invoke(cli, ["evaluate", str(first), str(shards), "--compare", str(second), "-o",
                                      str(tmp_path), "--dropout", "off", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    table = [line for line in result.output.splitlines() if line.startswith(("run", first.name, second.name))]
    assert len(table) == 3 and "Edge F1 \u2191" in table[0] and "PSNR (dB) \u2191" in table[0] and "L1 \u2193" in table[0]
    document = json.loads((tmp_path / first.name / "metrics.json").read_text())
    assert document["count"] == 3 and 0.0 <= document["means"]["edge_f1"] <= 1.0
