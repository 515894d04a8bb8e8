"""train-judge: the FCN judge learns a labels dataset, saves as safetensors + JSON, and drives evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import DatasetError
from pairforge.trainer.evaluation import confusion_matrix, segmentation_scores
from pairforge.trainer.judge import Judge, JudgeConfig, load_judge, save_judge, train_judge
from pairforge.trainer.loop import train
from pairforge.trainer.transforms import colors_to_ids, palette_colors
from tests.trainer.conftest import PALETTE, _photos, make_pair, make_tiny_config, write_shards


@pytest.mark.slow
def test_judge_any_size_and_training_beats_majority() -> None:
    colors = palette_colors(PALETTE)
    samples = [(b, colors_to_ids(a, colors)) for a, b in (make_pair(p, "labels", i) for i, p in enumerate(_photos(48)))]
    assert Judge(4, 4)(torch.zeros(2, 3, 37, 29)).shape == (2, 4, 37, 29)
    judge = train_judge(samples, 3, JudgeConfig(base_channels=8, steps=60, batch_size=4, crop_size=32, lr=3e-3))
    confusion = sum(confusion_matrix(judge.segment([p])[0], ids, 3) for p, ids in samples)
    truth = np.concatenate([ids[ids < 3] for _, ids in samples])
    majority = np.bincount(truth).max() / truth.size
    assert segmentation_scores(confusion)["pixel_accuracy"] > majority + 0.1


def test_save_load_round_trip_and_bad_files(tmp_path: Path) -> None:
    judge = Judge(3, 4).eval()
    save_judge(judge, tmp_path, {"palette": PALETTE}, JudgeConfig(base_channels=4))
    loaded, document = load_judge(tmp_path)
    x = torch.rand(1, 3, 16, 24)
    assert torch.equal(judge(x), loaded(x)) and document["palette"] == PALETTE
    (tmp_path / "judge.safetensors").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="cannot load"):
        load_judge(tmp_path)


@pytest.mark.slow
def test_train_judge_and_evaluate_labels_cli(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="labels", count=4, size=48, shards=1, val=2)
    result = CliRunner().invoke(cli, ["train-judge", str(shards), "--steps", "20", "--batch-size", "2",
                                      "--crop-size", "32", "--channels", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (shards / "judge" / "judge.safetensors").is_file()
    assert json.loads((shards / "judge" / "judge.json").read_text())["class_names"] == ["sky", "cat", "grass"]
    run = train(make_tiny_config(shards, tmp_path / "runs", steps=1, augment__crop_size=32)).run_dir
    result = CliRunner().invoke(cli, ["evaluate", str(run), str(shards), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = json.loads((Path(run) / "eval-val" / "metrics.json").read_text())
    assert set(document["task"]) == {"generated", "real"}
    assert set(document["task"]["real"]) == {"pixel_accuracy", "class_accuracy", "class_iou"}


def test_region_mean_fill_and_blur_known_answers() -> None:
    from pairforge.trainer.judge import blur, region_mean_fill

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    ids = np.zeros((6, 8), np.int64)
    ids[:, 5:] = 2  # class 1 absent, class 2 on the right
    filled = region_mean_fill(photo, ids)
    np.testing.assert_array_equal(filled[:, :5], np.broadcast_to(np.rint(photo[:, :5].reshape(-1, 3).mean(0)), (6, 5, 3)))
    np.testing.assert_array_equal(filled[:, 5:], np.broadcast_to(np.rint(photo[:, 5:].reshape(-1, 3).mean(0)), (6, 3, 3)))
    flat = np.full((16, 16, 3), 77, np.uint8)
    np.testing.assert_array_equal(blur(flat), flat)
    assert blur(photo).std() < photo.std()


def test_judge_sensitivity_real_matches_segment_and_degradations_differ() -> None:
    from pairforge.trainer.judge import judge_sensitivity

    colors = palette_colors(PALETTE)
    samples = [(b, colors_to_ids(a, colors)) for a, b in (make_pair(p, "labels", i) for i, p in enumerate(_photos(32)))]
    judge = train_judge(samples, 3, JudgeConfig(base_channels=4, steps=3, batch_size=2, crop_size=32))
    result = judge_sensitivity(judge, samples)
    assert list(result) == ["real photos", "blurred, sigma 2 px", "class regions filled with their mean colour"]
    confusion = sum(confusion_matrix(judge.segment([p])[0], ids, 3) for p, ids in samples)
    expected = segmentation_scores(confusion)
    assert result["real photos"]["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    assert result["real photos"]["class_iou"] == pytest.approx(expected["class_iou"])
    assert all(np.isfinite(scores["loss"]) and scores["loss"] > 0 for scores in result.values())
    assert result["blurred, sigma 2 px"] != result["real photos"]


def test_the_full_budget_is_the_judge_configs_default_and_auto_follows_the_device() -> None:
    """--budget full keeps the judge as it was (JudgeConfig's defaults); auto is full on CUDA and cpu elsewhere."""
    from pairforge.trainer.config import JUDGE_BUDGETS, judge_budget

    full, default = JUDGE_BUDGETS["full"], JudgeConfig()
    assert (full.base_channels, full.crop_size, full.batch_size, full.steps) == (
        default.base_channels, default.crop_size, default.batch_size, default.steps) == (32, 128, 8, 2000)
    cpu = JUDGE_BUDGETS["cpu"]
    assert cpu.base_channels * cpu.crop_size < full.base_channels * full.crop_size  # cheaper per step
    assert judge_budget("auto", "cpu")[0] == "cpu" and judge_budget("auto", "cuda:0")[0] == "full"
    assert judge_budget("full", "cpu") == ("full", full)


@pytest.mark.slow
def test_train_judge_budget_sets_the_judge_and_options_override_it(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="labels", count=2, size=32, shards=1, val=0)
    result = CliRunner().invoke(cli, ["train-judge", str(shards), "--budget", "full", "--steps", "8", "--batch-size",
                                      "1", "--device", "cpu", "-o", str(tmp_path / "judge")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "judge" / "judge.json").read_text())
    assert document["budget"] == "full" and document["base_channels"] == 32
    assert {k: document["training"][k] for k in ("steps", "batch_size", "crop_size")} == {
        "steps": 8, "batch_size": 1, "crop_size": 128}
    assert "budget full, 32 channels, 128-px crops, 8 steps of batch 1" in result.stderr
    assert "expected=" in result.stderr and "in all" in result.stderr  # the bar's estimate after the first steps
