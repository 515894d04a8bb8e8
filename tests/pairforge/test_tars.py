"""pairforge.tars writes the same bytes as ``webdataset.TarWriter(..., mtime=0)`` (it exists only to keep
torch out of the shard workers).

Both write tarfile's PAX format: plain USTAR headers for the short ASCII names of ordinary keys, and a PAX
header for a member name over 100 bytes (a long file name; USTAR raised "name is too long" there).
"""

from __future__ import annotations

import io

import pytest

from pairforge.tars import ShardTarWriter

wds = pytest.importorskip("webdataset")


def _ours(samples: list[dict]) -> bytes:
    stream = io.BytesIO()
    with ShardTarWriter(stream) as writer:
        for sample in samples:
            writer.write(sample)
    return stream.getvalue()


def _webdataset(samples: list[dict]) -> bytes:
    stream = io.BytesIO()
    writer = wds.TarWriter(stream, mtime=0)
    for sample in samples:
        writer.write(sample)
    writer.close()
    return stream.getvalue()


def test_bytes_equal_webdataset_tarwriter() -> None:
    samples = [
        # a member over one 10 KiB tar record, one of exactly 512 bytes, an empty one, UTF-8 json text
        {"__key__": "astronaut", "a.png": b"\x89PNG" + bytes(range(256)) * 60, "b.jpg": b"\xff\xd8" + b"j" * 510,
         "json": '{"source": "photos/é.jpg"}'},
        {"__key__": "k" * 90, "a.png": b"", "b.png": b"x" * 511, "json": "{}"},
    ]
    ours = _ours(samples)
    assert ours == _webdataset(samples)
    assert len(ours) % 10240 == 0 and b"astronaut.a.png" in ours


def test_a_changed_field_changes_the_bytes() -> None:
    """The comparison can fail: one byte of one member differs in the tar."""
    sample = {"__key__": "k", "a.png": b"abc"}
    assert _ours([sample]) != _webdataset([{**sample, "a.png": b"abd"}])


def test_long_keys_equal_webdataset_too() -> None:
    samples = [{"__key__": "a" * 150, "a.png": b"x" * 700, "json": "{}"}, {"__key__": "short", "a.png": b"y"}]
    assert _ours(samples) == _webdataset(samples)


def test_shard_of_a_pair_with_a_long_file_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A 113-character photo name went through make-gray, then crashed `shard` with a traceback."""
    import cv2
    import skimage.data
    from click.testing import CliRunner

    from pairforge.cli import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    image = cv2.cvtColor(cv2.resize(skimage.data.astronaut(), (64, 64)), cv2.COLOR_RGB2BGR)
    for index in range(2):
        cv2.imwrite(str(photos / f"{'a' * 110}{index}.jpg"), image)
    runner = CliRunner()
    result = runner.invoke(cli, ["make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1",
                                 "--val-fraction", "0"])
    assert result.exit_code == 0, result.output
    dataset = __import__("json").loads((tmp_path / "shards" / "dataset.json").read_text())
    assert dataset["splits"]["train"]["count"] == 2
