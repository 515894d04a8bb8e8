"""Shard reading: dataset.json, sources (folder, brace pattern, pipe:), corrupt samples, bad shards."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from pairforge.errors import DatasetError
from pairforge.trainer.data import (
    PairStream,
    StreamState,
    check_shards,
    load_dataset_info,
    make_loader,
)
from pairforge.trainer.loop import train
from pairforge.trainer.transforms import Encoding, palette_colors


def _encoding(root: Path, label_input: str = "onehot") -> Encoding:
    info = load_dataset_info(str(root))
    return Encoding.from_config({"dataset": info.to_dict(), "data": {"label_input": label_input}})


def _take(stream: PairStream, batches: int, workers: int = 0) -> list[dict]:
    iterator = iter(make_loader(stream, workers, pin_memory=False))
    return [next(iterator) for _ in range(batches)]


def test_dataset_json_gives_kind_channels_and_splits(shard_factory) -> None:
    root = shard_factory(kind="labels", count=4, shards=2)
    info = load_dataset_info(str(root))
    assert info.kind == "labels" and info.a_channels == 3 and info.palette["name"] == "test"
    assert [Path(u).name for u in info.splits["train"]] == ["train-000000.tar", "train-000001.tar"]
    assert info.counts == {"train": 4, "val": 2}


def test_brace_pattern_and_pipe_sources(shard_factory) -> None:
    root = shard_factory(kind="edges", count=4, shards=2)
    pattern = load_dataset_info(f"{root}/train-{{000000..000001}}.tar")
    assert len(pattern.splits["train"]) == 2 and pattern.kind == "edges"
    piped = load_dataset_info(f"pipe:cat {root}/train-000000.tar", dataset_json=str(root / "dataset.json"))
    check_shards(piped.splits["train"])
    batches = _take(PairStream(piped.splits["train"], _encoding(root), 1, seed=0), 2)
    assert all(batch["a"].dtype == torch.uint8 and batch["a"].shape[1] == 1 for batch in batches)
    with pytest.raises(DatasetError, match="dataset-json"):
        load_dataset_info(f"pipe:cat {root}/train-000000.tar")


def test_epoch_has_each_sample_once_and_batches_are_uint8(shard_factory) -> None:
    root = shard_factory(kind="gray", count=6, shards=3, size=40)
    info = load_dataset_info(str(root))
    stream = PairStream(info.splits["train"], _encoding(root), 2, seed=1, workers=2, shuffle_buffer=4)
    batches = _take(stream, 3, workers=2)
    keys = [key for batch in batches for key in batch["keys"]]
    assert sorted(keys) == [f"train_{i:05d}" for i in range(6)]
    batch = batches[0]
    assert batch["a"].shape == (2, 1, 40, 40) and batch["b"].shape == (2, 3, 40, 40)
    assert batch["b"].dtype == torch.uint8 and batch["sizes"].tolist() == [[40, 40], [40, 40]]


def test_corrupt_sample_is_skipped_warned_and_counted(shard_factory, tiny_config, tmp_path, caplog) -> None:
    root = shard_factory(kind="edges", count=6, shards=1, corrupt_keys=("train_00002",))
    info = load_dataset_info(str(root))
    with caplog.at_level(logging.WARNING):
        batches = _take(PairStream(info.splits["train"], _encoding(root), 5, seed=0), 2)
    epoch_keys = [k for b in batches for k, e in zip(b["keys"], b["epochs"].tolist(), strict=True) if e == 0]
    assert sorted(epoch_keys) == [f"train_{i:05d}" for i in (0, 1, 3, 4, 5)]
    assert batches[1]["skipped"] >= 1
    assert any("train_00002" in record.getMessage() for record in caplog.records)
    result = train(tiny_config(root, tmp_path / "runs", steps=3, data__batch_size=2))
    assert result.skipped_samples == 1


def test_missing_or_unreadable_shard_fails_before_the_first_step(shard_factory, tiny_config, tmp_path) -> None:
    root = shard_factory(kind="edges", count=4, shards=2)
    (root / "train-000001.tar").unlink()
    with pytest.raises(DatasetError, match="train-000001.tar"):
        train(tiny_config(root, tmp_path / "runs"))
    (root / "train-000001.tar").write_bytes(b"this is not a tar file" * 40)
    with pytest.raises(DatasetError, match="train-000001.tar"):
        train(tiny_config(root, tmp_path / "runs"))
    assert not list((tmp_path / "runs").glob("*/metrics.jsonl"))


def test_label_onehot_inputs_are_palette_ids(shard_factory) -> None:
    root = shard_factory(kind="labels", count=2, shards=1)
    encoding = _encoding(root)
    info = load_dataset_info(str(root))
    (batch,) = _take(PairStream(info.splits["train"], encoding, 2, seed=0), 1)
    assert batch["a"].shape[1] == 1
    assert set(np.unique(batch["a"].numpy()).tolist()) <= set(range(len(palette_colors(info.palette))))
    color = _encoding(root, "color")
    (batch,) = _take(PairStream(info.splits["train"], color, 2, seed=0), 1)
    colors = {tuple(c) for c in batch["a"].permute(0, 2, 3, 1).reshape(-1, 3).tolist()}
    assert colors <= set(palette_colors(info.palette))


def test_stream_state_resume_skips_consumed_samples(shard_factory) -> None:
    root = shard_factory(kind="edges", count=6, shards=2)
    info = load_dataset_info(str(root))
    encoding = _encoding(root)
    state = StreamState.fresh(2)
    stream = PairStream(info.splits["train"], encoding, 1, seed=4, workers=2, state=state)
    reference = _take(stream, 5, workers=2)
    for batch in reference[:3]:
        state.update(batch)
    resumed = _take(PairStream(info.splits["train"], encoding, 1, seed=4, workers=2, state=state), 2, workers=2)
    assert [b["keys"] for b in resumed] == [b["keys"] for b in reference[3:5]]
