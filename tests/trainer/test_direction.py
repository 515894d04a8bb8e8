"""--direction BtoA: shard-time swap and train-time swap, recorded in the run and followed by predict/evaluate."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import ConfigError
from pairforge.trainer.config import DataConfig
from pairforge.trainer.data import decode_pair
from pairforge.trainer.inference import load_checked_generator
from pairforge.trainer.loop import train
from pairforge.trainer.transforms import Encoding
from tests.trainer.conftest import make_tiny_config, write_shards


def test_decode_pair_swaps_for_btoa(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="edges", count=2, size=40, shards=1, val=0)
    sample = next(iter(wds.tarfile_to_samples()(iter([{"url": str(shards / "train-000000.tar")}]))))
    dataset = json.loads((shards / "dataset.json").read_text())
    forward = Encoding.from_config({"dataset": dataset, "data": {}})
    backward = Encoding.from_config({"dataset": dataset, "data": {"direction": "BtoA"}})
    a, b = decode_pair(sample, forward)
    swapped_a, swapped_b = decode_pair(sample, backward)
    assert a.shape[0] == 1 and backward.in_channels == 3 and backward.kind == "generic"
    assert np.array_equal(swapped_a, b)  # the photo is the input
    assert np.array_equal(swapped_b, np.repeat(a, 3, axis=0))  # the edge map is the target
    with pytest.raises(ConfigError, match="direction"):
        DataConfig(direction="sideways")


def test_train_btoa_is_recorded_and_followed(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="edges", count=2, size=40, shards=1, val=2)
    result = train(make_tiny_config(shards, tmp_path / "runs", steps=1, data__direction="BtoA", augment__crop_size=32))
    generator, config = load_checked_generator(result.run_dir)
    assert config["data"]["direction"] == "BtoA" and config["model"]["in_channels"] == 3
    out = tmp_path / "eval"
    evaluated = CliRunner().invoke(cli, ["evaluate", str(result.run_dir), str(shards), "-o", str(out), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["settings"]["direction"] == "BtoA" and report["settings"]["norm_stats"] == "per-image"
    assert "direction BtoA" in evaluated.output and "training scale" in evaluated.output
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "p.png"), np.full((40, 40, 3), 90, np.uint8))
    predicted = CliRunner().invoke(cli, ["predict", str(result.run_dir), str(photos), "-o", str(tmp_path / "p")])
    assert predicted.exit_code == 0, predicted.output  # a colour photo is valid input for a BtoA edges run


def test_shard_btoa_swaps_halves_and_describes_the_swapped_pair(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 3, size=32)
    out = tmp_path / "shards"
    result = CliRunner().invoke(cli, ["shard", str(tmp_path / "pairs"), "-o", str(out), "--direction", "BtoA",
                                      "--lossless", "--val-fraction", "0"])
    assert result.exit_code == 0, result.output
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["kind"] == "generic" and dataset["a_channels"] == 3
    assert dataset["source"]["direction"] == "BtoA"
    source = sorted((tmp_path / "pairs").glob("*.png"))[0]
    ab = cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB)
    with tarfile.open(out / "train-000000.tar") as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]
    key = source.stem
    a = cv2.cvtColor(cv2.imdecode(np.frombuffer(members[f"{key}.a.png"], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    b = cv2.cvtColor(cv2.imdecode(np.frombuffer(io.BytesIO(members[f"{key}.b.png"]).read(), np.uint8),
                                  cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(a, ab[:, 32:]) and np.array_equal(b, ab[:, :32])
