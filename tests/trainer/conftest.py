"""Small shard sets written in tmp_path by pairforge's own shard writer."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data

from pairforge.files import file_sha256
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.runner import RunnerConfig
from pairforge.sample import PairSample
from pairforge.shards import DatasetInfo, ShardConfig, write_shard_set
from pairforge.sources import SourceItem
from pairforge.tars import ShardTarWriter
from pairforge.trainer.config import TrainConfig

PALETTE = {
    "name": "test",
    "classes": [
        {"id": 0, "name": "sky", "color": [70, 130, 180]},
        {"id": 1, "name": "cat", "color": [220, 20, 60]},
        {"id": 2, "name": "grass", "color": [107, 142, 35]},
    ],
    "ignore": {"id": 255, "name": "void", "color": [0, 0, 0]},
}


def _photos(size: int) -> list[np.ndarray]:
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return [cv2.resize(p[: min(p.shape[:2]), : min(p.shape[:2])], (size, size), interpolation=cv2.INTER_AREA) for p in photos]


def make_pair(photo: np.ndarray, kind: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) for a kind: edges (Canny), gray, labels (colour-quantised palette map), generic."""
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    if kind == "edges":
        return 255 - cv2.Canny(gray, 60, 120), photo
    if kind == "gray":
        return gray, photo
    if kind == "labels":
        colors = np.array([c["color"] for c in PALETTE["classes"]] + [PALETTE["ignore"]["color"]], np.uint8)
        ids = np.digitize(gray, [60, 120, 200])
        return colors[ids], photo
    return np.ascontiguousarray(photo[:, ::-1]), photo


@dataclass(frozen=True)
class FixedPairs:
    """Shard reader of the fixtures: each item's key -> its ready-made (A, B), recorded as ``kind``."""

    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    kind: str

    def __call__(self, item: SourceItem) -> PairSample:
        a, b = self.pairs[item.key]
        return PairSample(item.key, a, b, {"kind": self.kind, "source": item.path})


def write_pair_shards(root: Path, pairs: dict[str, tuple[str, np.ndarray, np.ndarray]], kind: str,
                      source: dict[str, Any], samples_per_shard: int = 1000) -> Path:
    """Shards, stats files and dataset.json written by pairforge's own shard writer (in-process, B as PNG).

    Args:
        pairs: key -> (split, A, B); each sample records ``<index>.png`` as its source.
        source: dataset.json's ``source``.
    """
    items = [SourceItem(key, f"{index}.png", split) for index, (key, (split, _, _)) in enumerate(pairs.items())]
    reader = FixedPairs({key: (a, b) for key, (_, a, b) in pairs.items()}, kind)
    a_channels = 1 if all(a.ndim == 2 for _, a, _ in pairs.values()) else 3
    info = DatasetInfo(kind=kind, a_channels=a_channels, palette=PALETTE if kind == "labels" else None, source=source)
    write_shard_set(items, reader, info, ShardConfig(out_dir=str(root), samples_per_shard=samples_per_shard,
                                                     lossless=True), RunnerConfig(workers=1))
    return root


def corrupt_b(root: Path, keys: tuple[str, ...]) -> None:
    """Replace the B of ``keys`` by bytes that are not a PNG, keeping dataset.json and the stats files true."""
    dataset = json.loads((root / "dataset.json").read_text())
    for entry in dataset["shards"]:
        path = root / entry["name"]
        with tarfile.open(path) as tar:
            samples: dict[str, dict[str, bytes | str]] = {}
            for member in tar.getmembers():
                key, name = member.name.split(".", 1)
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                samples.setdefault(key, {"__key__": key})[name] = b"\x89PNG\r\n\x1a\n-not-really-a-png" if (
                    key in keys and name.startswith("b.")) else data
        if not set(samples) & set(keys):
            continue
        with open(path, "wb") as stream, ShardTarWriter(stream) as writer:
            for sample in samples.values():
                writer.write(sample)
        entry.update(bytes=path.stat().st_size, sha256=file_sha256(path))
        stats_path = root / entry["name"].replace(".tar", ".stats.json")
        stats = json.loads(stats_path.read_text())
        stats.update(bytes=entry["bytes"], sha256=entry["sha256"])
        stats_path.write_text(json.dumps(stats))
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2))


def write_shards(
    root: Path,
    kind: str = "edges",
    count: int = 8,
    size: int = 72,
    shards: int = 2,
    val: int = 2,
    corrupt_keys: tuple[str, ...] = (),
) -> Path:
    """Write ``count`` train pairs over ``shards`` tars (+ ``val`` pairs) and dataset.json."""
    photos = _photos(size)
    pairs: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for split, number in (("train", count), ("val", val)):
        for index in range(number):
            photo = np.roll(photos[index % len(photos)], 7 * index, axis=1)
            pairs[f"{split}_{index:05d}"] = (split, *make_pair(photo, kind, index))
    write_pair_shards(root, pairs, kind, {"kind": kind, "stage": {}, "command": "test fixture"},
                      samples_per_shard=-(-count // shards))
    corrupt_b(root, corrupt_keys)
    return root


@pytest.fixture
def shard_factory(tmp_path: Path) -> Callable[..., Path]:
    """Call with write_shards keywords; each call gets its own folder."""
    counter = iter(range(1000))

    def factory(**kwargs: object) -> Path:
        return write_shards(tmp_path / f"shards{next(counter)}", **kwargs)

    return factory


@pytest.fixture
def edge_shards(shard_factory: Callable[..., Path]) -> Path:
    return shard_factory(kind="edges")


def make_tiny_config(shards: Path, output: Path, steps: int = 2, **overrides: Any) -> TrainConfig:
    """A 64x64, 8-channel config; ``overrides`` are config fields, as ``part__field=value`` or ``field=value``."""
    options: dict[str, Any] = {
        "shards": str(shards), "num_workers": 0, "batch_size": 2, "shuffle_buffer": 8, "max_val_samples": 4,
        "generator": "unet", "generator_channels": 8, "discriminator_channels": 8, "crop_size": 64, "steps": steps,
        "output": str(output), "log_every": 1, "sample_every": 0, "val_every": 0, "checkpoint_every": 0,
    }
    options.update({key.split("__")[-1]: value for key, value in overrides.items()})
    options.setdefault("load_size", options["crop_size"] + 8)
    return TrainConfig.from_options(**options)


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    """make_tiny_config(shards, output, steps=2, part__field=value, ...)."""
    return make_tiny_config


def write_stage_shards(root: Path, photos: list[np.ndarray], size: int = 64) -> Path:
    """Shards whose A was made by the real Canny edges stage, with its describe() recorded."""
    stage = EdgesStage(EdgesConfig(detector="canny", fit=FitConfig(size=size)))
    pairs: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}
    for split, chosen in (("train", photos), ("val", photos[:2])):
        for index, photo in enumerate(chosen):
            pair = stage(photo, f"{split}_{index}")
            pairs[f"{split}_{index}"] = (split, pair.a, pair.b)
    return write_pair_shards(root, pairs, "edges", {"kind": "edges", "stage": stage.describe(), "command": "test"})
