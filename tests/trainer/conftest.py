"""Small shard sets written in tmp_path, in the format the shard writer produces."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import skimage.data
import webdataset as wds

from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
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
    root.mkdir(parents=True, exist_ok=True)
    photos = _photos(size)
    meta_shards = []
    splits = {}
    for split, number, shard_count in (("train", count, shards), ("val", val, 1)):
        if number == 0:
            continue
        names = []
        per_shard = -(-number // shard_count)
        for shard_index in range(shard_count):
            name = f"{split}-{shard_index:06d}.tar"
            path = root / name
            written = 0
            with wds.TarWriter(str(path), mtime=0) as sink:
                for index in range(shard_index * per_shard, min(number, (shard_index + 1) * per_shard)):
                    photo = np.roll(photos[index % len(photos)], 7 * index, axis=1)
                    a, b = make_pair(photo, kind, index)
                    key = f"{split}_{index:05d}"
                    a_bytes = cv2.imencode(".png", a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_RGB2BGR))[1].tobytes()
                    b_bytes = cv2.imencode(".png", cv2.cvtColor(b, cv2.COLOR_RGB2BGR))[1].tobytes()
                    if key in corrupt_keys:
                        b_bytes = b"\x89PNG\r\n\x1a\n-not-really-a-png"
                    meta = {"key": key, "source": f"{index}.png", "height": size, "width": size, "kind": kind, "split": split}
                    sink.write({"__key__": key, "a.png": a_bytes, "b.png": b_bytes, "json": json.dumps(meta).encode()})
                    written += 1
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            stats = {"count": written, "bytes": path.stat().st_size, "sha256": digest}
            (root / f"{split}-{shard_index:06d}.stats.json").write_text(json.dumps(stats))
            meta_shards.append({"name": name, "split": split, **stats})
            names.append(name)
        splits[split] = {"count": number, "shards": names}
    dataset = {
        "format": "pairforge.shards/1",
        "kind": kind,
        "a_channels": 1 if kind in ("edges", "gray") else 3,
        "b_channels": 3,
        "b_format": "png",
        "palette": PALETTE if kind == "labels" else None,
        "splits": splits,
        "shards": meta_shards,
        "source": {"kind": kind, "stage": {}, "command": "test fixture"},
        "created_by": "tests",
    }
    (root / "dataset.json").write_text(json.dumps(dataset, indent=2))
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
    root.mkdir(parents=True)
    shards, splits = [], {}
    for split, chosen in (("train", photos), ("val", photos[:2])):
        name = f"{split}-000000.tar"
        with wds.TarWriter(str(root / name), mtime=0) as sink:
            for index, photo in enumerate(chosen):
                pair = stage(photo, f"{split}_{index}")
                a = cv2.imencode(".png", pair.a)[1].tobytes()
                b = cv2.imencode(".png", cv2.cvtColor(pair.b, cv2.COLOR_RGB2BGR))[1].tobytes()
                meta = {"key": f"{split}_{index}", "source": f"{index}.png", "height": size, "width": size,
                        "kind": "edges", "split": split}
                sink.write({"__key__": f"{split}_{index}", "a.png": a, "b.png": b, "json": json.dumps(meta).encode()})
        data = (root / name).read_bytes()
        shards.append({"name": name, "split": split, "count": len(chosen), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
        splits[split] = {"count": len(chosen), "shards": [name]}
    dataset = {"format": "pairforge.shards/1", "kind": "edges", "a_channels": 1, "b_channels": 3, "b_format": "png",
               "palette": None, "splits": splits, "shards": shards,
               "source": {"kind": "edges", "stage": stage.describe(), "command": "test"}, "created_by": "tests"}
    (root / "dataset.json").write_text(json.dumps(dataset))
    return root
