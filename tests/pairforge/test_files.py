"""The shared small concepts: atomic write, file sha256, RGB packing, grayscale test, device rule."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pairforge.device import resolve_device
from pairforge.errors import ConfigError
from pairforge.files import atomic_path, file_sha256, write_atomic
from pairforge.imageio import colored_fraction, pack_rgb


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.json"
    assert write_atomic(target, "é\n") == 3
    assert target.read_bytes() == "é\n".encode()
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_atomic_path_failure_keeps_old_file_and_removes_temporary(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_file_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000  # more than one 1 MiB block
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_pack_rgb_known_values():
    rgb = np.array([[[0, 0, 1], [1, 0, 0]], [[255, 255, 255], [0, 2, 0]]], dtype=np.uint8)
    assert pack_rgb(rgb).tolist() == [[1, 65536], [16777215, 512]]
    assert pack_rgb(np.array([[128, 64, 32]])).tolist() == [128 * 65536 + 64 * 256 + 32]


def test_colored_fraction_tolerance():
    image = np.full((2, 2, 3), 100, np.uint8)
    assert colored_fraction(image) == 0.0
    image[1, 1, 2] = 103
    assert colored_fraction(image) == 0.25
    assert colored_fraction(image, tolerance=3) == 0.0 and colored_fraction(image, tolerance=2) == 0.25
    assert colored_fraction(np.zeros((2, 2), np.uint8)) == 0.0


def test_resolve_device_rule():
    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ConfigError, match="device"):
        resolve_device("tpu")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert str(resolve_device("auto")) == "cpu"
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
