"""report.html: a summary table without internal fields, visible curve points, large labelled A | G(A) | B grids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import torch

from pairforge.trainer.report import MIN_TILE, svg_curve, write_report, write_sample_grid


def test_one_point_is_drawn_in_the_middle_and_long_curves_mark_only_the_last() -> None:
    single = svg_curve([(500.0, 0.25)], "validation L1", width=360)
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', single)
    assert len(circles) == 1 and float(circles[0][0]) == 180.0 and 36 <= float(circles[0][1]) <= 164
    assert "step 500" in single and "last 0.25" in single
    few = svg_curve([(float(s), 1.0 / s) for s in range(1, 11)], "loss")
    assert few.count("<circle") == 10
    many = svg_curve([(float(s), 1.0 / s) for s in range(1, 201)], "loss")
    assert many.count("<circle") == 1 and "step 1<" in many and "step 200<" in many


def test_sample_grid_is_enlarged_and_labelled(tmp_path: Path) -> None:
    rows = [torch.rand(3, 3, 32, 32) for _ in range(2)]
    write_sample_grid(tmp_path / "grid.png", rows)
    image = cv2.cvtColor(cv2.imread(str(tmp_path / "grid.png")), cv2.COLOR_BGR2RGB)
    scale = MIN_TILE // 32
    assert image.shape == (28 + 2 * 32 * scale, 3 * 32 * scale, 3)
    header = image[:28]
    for column in range(3):  # some dark text above each of A, G(A), B
        assert (header[:, column * 32 * scale : (column + 1) * 32 * scale] < 100).any()
    # nearest-neighbour enlargement: pixel (5, 7) of G(A) in the second row is a scale x scale block
    expected = (rows[1][1, :, 5, 7].clamp(0, 1) * 255).round().numpy()
    block = image[28 + (32 + 5) * scale : 28 + (32 + 6) * scale, (32 + 7) * scale : (32 + 8) * scale]
    assert np.abs(block.reshape(-1, 3) - expected).max() <= 1


def test_report_summary_is_a_table_without_internal_fields(tmp_path: Path) -> None:
    run = tmp_path / "00001-demo"
    (run / "samples").mkdir(parents=True)
    write_sample_grid(run / "samples" / "step-000000010.png", [torch.rand(3, 3, 16, 16)])
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss_g_l1": 0.3}) + "\n"
                                       + json.dumps({"step": 10, "split": "val", "val_l1": 0.4}) + "\n")
    (run / "config.json").write_text(json.dumps({
        "model": {"generator": "unet_256", "generator_channels": 64, "discriminator": "patch", "n_layers": 3,
                  "discriminator_channels": 64, "conditional": True},
        "loss": {"lambda_l1": 100.0, "use_gan": True, "gan_mode": "vanilla"}, "data": {"batch_size": 1},
        "dataset": {"kind": "labels", "counts": {"train": 400, "val": 100}}}))
    (run / "summary.json").write_text(json.dumps({
        "run_dir": str(run), "steps": 10, "total_steps": 10, "elapsed_s": 300.0, "images_per_s": 2.5,
        "data_wait_fraction": 0.01, "skipped_samples": 0, "last_losses": {"loss_g_l1": 0.3},
        "validation": {"val_l1": 0.4}, "checkpoint": str(run / "checkpoints" / "step-000000010"),
        "parameter_checksums": [1234.5678]}))
    page = write_report(run).read_text()
    summary = page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert summary.startswith("<table>") and "{" not in summary
    for expected in ("unet_256 (64 channels), PatchGAN, 3 layers (64 channels), conditional", "100 x L1 + vanilla GAN",
                     "10 of 10", "5.0 min", "2.5 images/s", "checkpoints/step-000000010", "train 400, val 100"):
        assert expected in summary, expected
    assert "checksum" not in page and "1234.5678" not in page
    assert page.count("<circle") == 2  # one logged loss point and one validation point, both visible
    assert "A (input) | G(A) (output) | B (target)" in page
