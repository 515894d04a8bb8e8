"""The shared small concepts: atomic write, file sha256, RGB packing, grayscale test, device rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

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


def test_only_pairforge_temporaries_and_unlisted_images_are_removed(tmp_path: Path) -> None:
    """A rebuilt pair folder drops stale pairs and pairforge's own temporaries, never the user's other files."""
    from pairforge.build import remove_unlisted
    from pairforge.files import is_temporary_name, temporary_name

    names = ["kept.png", "stale.png", "notes.txt", ".notes.tmpl", ".cache.tmp.json", ".x.png.tmp-12",
             temporary_name(tmp_path / "y.png").name, ".pairforge-write-test-0a1b"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert remove_unlisted(tmp_path, {"kept.png"}) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.tmp.json", ".notes.tmpl", "kept.png", "notes.txt"]
    assert is_temporary_name(temporary_name(tmp_path / "t.tar").name) and not is_temporary_name("x.png.tmp1")


def test_disk_full_names_the_file_removes_the_temporary_and_keeps_the_old_file(tmp_path: Path) -> None:
    import errno
    import pickle

    from pairforge.errors import PairforgeError
    from pairforge.files import DiskFullError

    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(DiskFullError) as caught, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    error = caught.value
    assert isinstance(error, PairforgeError) and isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert str(error).startswith(f"no space left on the device while writing {target} (")
    assert " free in " in str(error) and "Traceback" not in str(error)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
