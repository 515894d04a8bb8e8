"""The one dataset.json reader, DatasetInfo and shard-sample decoder shared by inspect, evaluate and train."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pairforge.errors import DatasetError, SampleError
from pairforge.imageio import encode_png
from pairforge.shards import SHARDS_FORMAT, DatasetInfo, decode_shard_sample, read_dataset_file


def _sample() -> tuple[np.ndarray, np.ndarray, dict[str, bytes]]:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    b = np.zeros((3, 4, 3), np.uint8)
    b[..., 0], b[0, 0, 2] = 200, 7  # red, one pixel with blue: RGB order must survive
    return a, b, {"a.png": encode_png(a), "b.png": encode_png(b)}


def test_decode_known_pixels_gray_and_rgb_and_swap():
    a, b, sample = _sample()
    got_a, got_b = decode_shard_sample(sample, gray_a=True)
    assert np.array_equal(got_a, a) and np.array_equal(got_b, b)
    rgb_a, _ = decode_shard_sample(sample, gray_a=False)
    assert rgb_a.shape == (3, 4, 3) and np.array_equal(rgb_a[..., 1], a)
    swapped_a, swapped_b = decode_shard_sample(sample, gray_a=False, swap=True)
    assert np.array_equal(swapped_a, b) and np.array_equal(swapped_b, np.repeat(a[..., None], 3, axis=2))


def test_decode_errors_name_the_problem():
    a, _, sample = _sample()
    with pytest.raises(SampleError, match="incomplete sample: missing b.jpg/b.png"):
        decode_shard_sample({"a.png": sample["a.png"]}, gray_a=True)
    with pytest.raises(SampleError, match="a.png does not decode"):
        decode_shard_sample({**sample, "a.png": b"junk"}, gray_a=True)
    with pytest.raises(SampleError, match="size mismatch"):
        decode_shard_sample({**sample, "a.png": encode_png(a[:2])}, gray_a=True)


def test_read_dataset_file_and_info(tmp_path):
    path = tmp_path / "dataset.json"
    with pytest.raises(DatasetError, match="dataset.json not found"):
        read_dataset_file(path)
    path.write_text("{")
    with pytest.raises(DatasetError, match="unreadable dataset.json"):
        read_dataset_file(path)
    path.write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(DatasetError, match="format 'other/1'"):
        read_dataset_file(path)
    data = {"format": SHARDS_FORMAT, "kind": "gray", "a_channels": 1,
            "splits": {"train": {"shards": ["train-000000.tar"], "count": 5}}}
    path.write_text(json.dumps(data))
    info = DatasetInfo.from_dataset(read_dataset_file(path), tmp_path)
    assert (info.kind, info.a_channels, info.b_channels) == ("gray", 1, 3)
    assert info.splits == {"train": (str(tmp_path / "train-000000.tar"),)} and info.counts == {"train": 5}
    assert info.to_dict()["splits"] == {"train": [str(tmp_path / "train-000000.tar")]}
