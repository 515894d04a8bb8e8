"""pairforge.tars writes the same bytes as ``webdataset.TarWriter(..., mtime=0)`` (it exists only to keep
torch out of the shard workers).

Both write tarfile's PAX format: plain USTAR headers for the short ASCII names of ordinary keys, and a PAX
header for a member name over 100 bytes (a long file name; USTAR raised "name is too long" there).
"""

from __future__ import annotations

import io

import pytest

from pairforge.tars import ShardReading, ShardTarWriter, count_samples, read_shard

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


# -- reading: what a shard holds, and what a damaged one could not deliver (issue 20) ------------------


SAMPLES = [
    {"__key__": "a" * 150, "a.png": b"x" * 700, "b.jpg": b"y" * 10, "json": "{}"},  # a PAX header (long name)
    {"__key__": "é-unicode", "a.png": b"p" * 1200, "b.jpg": b"q" * 3, "json": "{}"},
    *({"__key__": f"k{index:03d}", "a.png": bytes([index]) * (300 + 40 * index), "b.jpg": b"j" * 99, "json": "{}"}
      for index in range(12)),
]


def _counted(path) -> ShardReading:  # type: ignore[no-untyped-def]
    reading = ShardReading(str(path), len(SAMPLES))
    count_samples(reading)
    return reading


def _read(path) -> tuple[ShardReading, list[str]]:  # type: ignore[no-untyped-def]
    reading = ShardReading(str(path), len(SAMPLES))
    keys = [key for key, fields in read_shard(reading) if {"a.png", "b.jpg", "json"} <= fields.keys()]
    return reading, keys


@pytest.mark.parametrize("writer", [_ours, _webdataset])
def test_count_and_read_agree_with_tarfile_on_whole_shards(tmp_path, writer) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.tar"
    path.write_bytes(writer(SAMPLES))
    reading, keys = _read(path)
    assert keys == [sample["__key__"] for sample in SAMPLES] and reading.samples == len(SAMPLES)
    assert reading.problem() == "" and _counted(path).samples == len(SAMPLES) and _counted(path).error == ""
    picked = ShardReading(str(path), len(SAMPLES))
    assert [key for key, _ in read_shard(picked, lambda index, key: index in (1, 5))] == ["é-unicode", "k003"]
    assert picked.samples == len(SAMPLES)


def test_a_truncated_shard_is_counted_the_same_by_both_readers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = _ours(SAMPLES)
    end_block = data.rindex(b"k011.json") + 2 * 512  # the last member's header and data, then the end block
    assert data[end_block : end_block + 512] == bytes(512)
    for cut in [*range(0, end_block + 512, 509), end_block, end_block + 511]:
        path = tmp_path / "cut.tar"
        path.write_bytes(data[:cut])
        reading, keys = _read(path)
        counted = _counted(path)
        assert len(keys) == counted.samples == reading.samples < len(SAMPLES), cut  # only whole samples count
        assert counted.error and reading.error, cut
        assert reading.problem().startswith(f"shard {path}: {len(SAMPLES) - reading.samples} of {len(SAMPLES)} "
                                            "samples could not be read"), (cut, reading.problem())
    path.write_bytes(data[: data.index(b"k003.a.png") + 512 + 100])  # inside a member's data: named
    assert _counted(path).error == _read(path)[0].error == "the file ends inside sample k003 (truncated)"
    path.write_bytes(data[: end_block + 512])  # cut after the end-of-archive block: nothing is lost
    assert _counted(path).samples == len(SAMPLES) and _read(path)[0].problem() == ""


def test_a_damaged_header_stops_the_count_with_the_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(_ours(SAMPLES))
    third = data.index(b"k000.a.png")  # the name field of the third sample's first header
    assert third % 512 == 0
    data[third + 1] ^= 0x01
    path = tmp_path / "bad.tar"
    path.write_bytes(bytes(data))
    counted = _counted(path)
    # the sample in progress (the second: its members might go on after the damage) is not counted
    assert counted.error == f"damaged tar header at byte {third}" and counted.samples == 1
    reading, keys = _read(path)
    assert (reading.error, reading.samples, keys) == (counted.error, 1, [SAMPLES[0]["__key__"]])
