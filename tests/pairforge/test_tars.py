"""pairforge.tars writes the same bytes as ``webdataset.TarWriter(..., mtime=0)`` (it exists only to keep
torch out of the shard workers).

Known difference, outside what pairforge writes today: webdataset writes tarfile's default PAX format,
ours USTAR. For a member name over 100 bytes or with non-ASCII characters, webdataset adds a PAX header
while ours writes the UTF-8 name as is (non-ASCII) or raises ValueError (over 100 bytes). Sample keys
are ASCII (keys.sanitize_key); the length case is reported, not changed here (shard bytes stay).
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
