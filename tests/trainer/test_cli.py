"""`pairforge train` end to end through Click."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pairforge.cli import cli

TINY = ["--crop-size", "64", "--load-size", "72", "--generator", "unet", "--generator-channels", "8",
        "--discriminator-channels", "8", "--num-workers", "0"]


def test_dry_run_prints_the_resolved_config(shard_factory) -> None:
    root = shard_factory(kind="labels", count=2, shards=1)
    result = CliRunner().invoke(cli, ["train", str(root), "--dry-run", *TINY])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)  # the resolved facts and warnings go to stderr
    assert config["dataset"]["kind"] == "labels"
    assert config["model"]["in_channels"] == 4  # three classes + ignore, one-hot


@pytest.mark.slow
def test_train_then_resume_writes_the_run_folder(shard_factory, tmp_path) -> None:
    root = shard_factory(kind="edges", count=4, shards=2)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["train", str(root), "-o", str(runs), "--steps", "2", "--name", "t", *TINY])
    assert result.exit_code == 0, result.output
    run_dir = runs / "00001-t"
    assert "steps      2 / 2" in result.output
    for name in ("config.json", "metrics.jsonl", "report.html", "summary.json"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and "data:image/png;base64" in html
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--steps", "3"])
    assert resumed.exit_code == 0, resumed.output
    assert (run_dir / "checkpoints" / "step-000000003" / "generator.safetensors").is_file()


def test_bad_input_is_a_one_line_error(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["train", str(tmp_path)])
    assert result.exit_code != 0 and "dataset.json not found" in result.output
    assert "Traceback" not in result.output
