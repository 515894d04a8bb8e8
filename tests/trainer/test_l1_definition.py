"""One L1: training's val_l1 and evaluate's l1 are the same number for the same model and pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer import metrics
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards


def test_l1_metric_known_answer() -> None:
    prediction = torch.zeros(1, 3, 2, 2)
    target = torch.full((1, 3, 2, 2), 0.25)
    target[0, 0, 0, 0] = 1.0  # |0 - 1| once, |0 - 0.25| eleven times
    assert torch.allclose(metrics.l1(prediction, target), torch.tensor([(1.0 + 11 * 0.25) / 12]))


@pytest.mark.slow
def test_validation_l1_equals_evaluate_l1(tmp_path: Path) -> None:
    # instance norm and no dropout: eval-mode validation and evaluate run the very same function;
    # no augmentation and crop = stored size: they see the very same pixels
    shards = write_shards(tmp_path / "shards", kind="edges", count=2, size=32, shards=1, val=2)
    config = make_tiny_config(shards, tmp_path / "runs", steps=2, augment__crop_size=32, augment__mode="none",
                              model__norm="instance", model__dropout=False)
    result = train(config)
    val_l1 = result.validation["val_l1"]
    out = tmp_path / "eval"
    evaluated = CliRunner().invoke(cli, ["evaluate", str(result.run_dir), str(shards), "--dropout", "off",
                                         "-o", str(out), "-q"])
    assert evaluated.exit_code == 0, evaluated.output
    l1 = json.loads((out / "metrics.json").read_text())["means"]["l1"]
    assert abs(val_l1 - l1) < 0.005, (val_l1, l1)  # [-1, 1] pixels would make val_l1 twice as large
