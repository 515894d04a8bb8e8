"""CLI conventions every command follows: -q/-v anywhere, help on every option, honest defaults."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pairforge.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


ALL = [path for path, _ in _commands(cli)]


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_quiet_and_verbose_are_accepted_after_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "-q", "-v", "--help"])
    assert result.exit_code == 0, result.output
    assert "-q, --quiet" in result.output and "-v, --verbose" in result.output


@pytest.fixture
def restore_logging() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in ("", "pairforge")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_verbose_adds_debug_logs_quiet_hides_progress(tmp_path: Path, shard_set: Path, restore_logging: None) -> None:
    runner = CliRunner()
    plain = runner.invoke(cli, ["inspect", str(shard_set), "-n", "2"])
    verbose = runner.invoke(cli, ["inspect", str(shard_set), "-n", "2", "-v"])
    before = runner.invoke(cli, ["-v", "inspect", str(shard_set), "-n", "2"])
    assert plain.exit_code == verbose.exit_code == before.exit_code == 0
    assert "sampled keys" not in plain.output  # a debug log of inspect
    assert "sampled keys" in verbose.output and "sampled keys" in before.output
    loud = runner.invoke(cli, ["shard", str(shard_set.parent / "pairs"), "-o", str(tmp_path / "s1"), "-j", "1"])
    quiet = runner.invoke(cli, ["shard", str(shard_set.parent / "pairs"), "-o", str(tmp_path / "s2"), "-j", "1", "-q"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "img/s" in loud.stderr and "img/s" not in quiet.stderr  # the progress bar
    assert "written" in quiet.stdout  # the summary stays


def test_every_train_option_has_help() -> None:
    from pairforge.commands.train import train_command

    missing = [param.name for param in train_command.params
               if isinstance(param, click.Option) and not param.hidden and not param.help]
    assert missing == []


def test_threshold_default_is_shown_as_a_fraction() -> None:
    text = CliRunner().invoke(cli, ["make-edges", "--help"]).output
    assert "25/255 \u2248 0.098" in text and "0.09803921568627451" not in text


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pair folder (made by make-gray on bundled photos) and its shard set."""
    import cv2
    import skimage.data

    root = tmp_path_factory.mktemp("cli")
    photos = root / "photos"
    photos.mkdir()
    for index, photo in enumerate([skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]):
        cv2.imwrite(str(photos / f"p{index}.png"), cv2.cvtColor(cv2.resize(photo, (48, 48)), cv2.COLOR_RGB2BGR))
    runner = CliRunner()
    made = runner.invoke(cli, ["make-gray", str(photos), "-o", str(root / "pairs"), "--size", "32", "-j", "1", "-q"])
    assert made.exit_code == 0, made.output
    sharded = runner.invoke(cli, ["shard", str(root / "pairs"), "-o", str(root / "shards"), "-j", "1", "-q"])
    assert sharded.exit_code == 0, sharded.output
    return root / "shards"


@pytest.mark.slow
def test_quiet_hides_the_judge_progress_bar(tmp_path: Path) -> None:
    from tests.trainer.conftest import write_shards

    shards = write_shards(tmp_path / "shards", kind="labels", count=2, size=32, shards=1, val=0)
    common = ["train-judge", str(shards), "--steps", "2", "--batch-size", "1", "--crop-size", "16",
              "--channels", "4", "--device", "cpu"]
    loud = CliRunner().invoke(cli, [*common, "-o", str(tmp_path / "j1")])
    quiet = CliRunner().invoke(cli, [*common, "-o", str(tmp_path / "j2"), "-q"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "%|" in loud.stderr and "%|" not in quiet.stderr
    assert "saved" in quiet.stdout


def test_help_imports_no_heavy_library() -> None:
    """`pairforge --help` stays fast: torch, dask, scikit-image/SciPy, aiohttp load in command bodies only."""
    import subprocess
    import sys

    heavy = ("torch", "dask", "skimage", "scipy", "aiohttp", "kornia", "webdataset")
    code = ("import sys; from pairforge.cli import cli; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"imported at start-up: {loaded}"
