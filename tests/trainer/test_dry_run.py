"""train --dry-run: resolved device, precision, steps, epochs and lr schedule; a warning for small images."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pairforge.cli import cli


def test_dry_run_resolves_everything_and_warns_about_upscaling(shard_factory) -> None:
    root = shard_factory(kind="edges", count=5, shards=1, size=40, val=0)
    result = CliRunner().invoke(cli, ["train", str(root), "--dry-run", "--batch-size", "2", "--epochs", "3",
                                      "--decay-epochs", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)["resolved"]
    assert resolved["device"] == "cpu" and resolved["precision"] == "fp32"
    assert resolved["steps_per_epoch"] == 3 and resolved["total_steps"] == 15 and resolved["total_epochs"] == 5
    assert resolved["lr_schedule"] == ("lr 0.0002 constant for 9 steps (3 epochs), then linear decay to 0 over "
                                       "6 steps (2 epochs)")
    assert resolved["stored_size"] == "40x40"
    assert "the crop (256 px) is larger than the stored images (40x40 px)" in result.stderr
    advice = "--load-size 36 --crop-size 32 --generator unet"
    assert advice in result.stderr
    fitting = CliRunner().invoke(cli, ["train", str(root), "--dry-run", *advice.split()])
    assert fitting.exit_code == 0, fitting.output
    assert "warning" not in fitting.stderr
