"""The command layer: one TrainConfig builder for flat options, Click checks, -q silences every bar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import ConfigError
from pairforge.trainer.config import DataConfig, TrainConfig
from pairforge.trainer.loop import train
from tests.trainer.conftest import _photos, make_pair, make_tiny_config, write_shards


def test_from_options_sets_each_named_field_and_keeps_the_defaults() -> None:
    config = TrainConfig.from_options(shards="s", lr=1e-3, generator="unet", crop_size=64, load_size=72, flip=False,
                                      use_gan=False, augment="strong", seed=3, num_workers=0, conditional=False)
    assert config.optim.lr == 1e-3 and config.model.generator == "unet" and config.seed == 3
    assert config.augment.crop_size == config.model.crop_size == 64 and config.augment.load_size == 72
    assert config.augment.flip is False and config.augment.mode == "strong" and config.loss.use_gan is False
    assert config.model.conditional is False and config.data.num_workers == 0 and config.data.shards == "s"
    defaults = TrainConfig()
    assert config.loss.lambda_l1 == defaults.loss.lambda_l1 and config.optim.beta1 == defaults.optim.beta1
    assert config.model.norm == defaults.model.norm and config.log_every == defaults.log_every


def test_from_options_refuses_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="invalid option='learning_rate'"):
        TrainConfig.from_options(learning_rate=1e-3)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.from_options(batch_size=0)


def test_train_options_are_config_fields_with_the_config_defaults() -> None:
    """Each train option is named as its config field, and its default is the config's (the paper's)."""
    from pairforge.commands.train import train_command

    not_config = {"shards", "resume", "steps", "dry_run", "verify", "num_workers"}
    with train_command.make_context("train", []) as context:
        defaults = {name: value for name, value in context.params.items() if name not in not_config}
    assert {"lr", "generator", "flip", "use_gan", "conditional", "dropout", "compile", "augment"} <= set(defaults)
    assert TrainConfig.from_options(shards="s", **defaults) == TrainConfig(data=DataConfig(shards="s"))


def test_train_flags_map_to_their_fields(shard_factory) -> None:
    root = shard_factory(kind="edges", count=2, shards=1, size=40, val=0)
    result = CliRunner().invoke(cli, ["train", str(root), "--dry-run", "--no-flip", "--no-gan", "--unconditional",
                                      "--no-dropout", "--compile", "--augment", "strong", "--crop-size", "32",
                                      "--load-size", "36", "--generator", "unet"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)
    assert config["augment"]["flip"] is False and config["augment"]["mode"] == "strong"
    assert config["loss"]["use_gan"] is False and config["model"]["conditional"] is False
    assert config["model"]["dropout"] is False and config["compile"] is True
    assert config["augment"]["crop_size"] == config["model"]["crop_size"] == 32
    plain = json.loads(CliRunner().invoke(cli, ["train", str(root), "--dry-run"]).stdout)
    assert plain["augment"]["flip"] and plain["loss"]["use_gan"] and plain["model"]["conditional"]
    assert plain["model"]["dropout"] and plain["compile"] is False


@pytest.mark.parametrize("option", ["--batch-size", "--log-every", "--steps"])
def test_train_counts_below_one_are_usage_errors(option: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", str(tmp_path), option, "0", "--dry-run"])
    assert result.exit_code == 2 and option in result.output and "0 is not in the range x>=1" in result.output


def test_demo_tasks_are_checked_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "demo"), "--tasks", "edges,depth"])
    assert result.exit_code == 2 and "'depth': expected a comma list of edges, gray" in result.output
    assert not (tmp_path / "demo").exists()


@pytest.fixture(scope="module")
def run_and_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("thin")
    shards = write_shards(root / "shards", kind="edges", count=2, size=48, shards=1, val=2)
    run = Path(train(make_tiny_config(shards, root / "runs", steps=1, augment__crop_size=32)).run_dir)
    inputs = root / "edges"
    inputs.mkdir()
    for index, photo in enumerate(_photos(48)[:2]):
        cv2.imwrite(str(inputs / f"e{index}.png"), make_pair(photo, "edges", index)[0])
    return run, shards, inputs


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_quiet_hides_the_progress_bar(command: str, run_and_inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run, shards, inputs = run_and_inputs
    args = {"predict": [str(run), str(inputs)], "evaluate": [str(run), str(shards)]}[command]
    runner = CliRunner()
    loud = runner.invoke(cli, [command, *args, "-o", str(tmp_path / "loud"), "--device", "cpu"])
    quiet = runner.invoke(cli, ["-q", command, *args, "-o", str(tmp_path / "quiet"), "--device", "cpu"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    bar = f"{command}" + (" " if command == "evaluate" else ":")
    assert bar in loud.stderr and "img/s" in loud.stderr  # the bar is there without -q ...
    assert "img/s" not in quiet.stderr and "%|" not in quiet.stderr  # ... and gone with it
    summary = "predicted" if command == "predict" else "pairs ->"
    assert summary in quiet.stdout  # the summary stays


@pytest.mark.slow
def test_quiet_hides_the_training_bar(run_and_inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, shards, _ = run_and_inputs
    tiny = ["--steps", "2", "--load-size", "40", "--crop-size", "32", "--generator", "unet", "--generator-channels",
            "8", "--discriminator-channels", "8", "--num-workers", "0", "--max-val-samples", "0", "--device", "cpu"]
    runner = CliRunner()
    loud = runner.invoke(cli, ["train", str(shards), "-o", str(tmp_path / "loud"), *tiny])
    quiet = runner.invoke(cli, ["-q", "train", str(shards), "-o", str(tmp_path / "quiet"), *tiny])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "train: 100%" in loud.stderr and "step/s" in loud.stderr
    assert "step/s" not in quiet.stderr and "%|" not in quiet.stderr
    assert "checkpoint" in quiet.stdout  # the closing summary stays
