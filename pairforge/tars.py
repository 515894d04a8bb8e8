"""Deterministic WebDataset tar writing.

Same layout as ``webdataset.TarWriter(..., mtime=0)``: one regular file per
sample field, ``<key>.<field>``, fixed owner, mode and mtime, so identical
input gives byte-identical tars. It uses only the standard library because a
shard worker that imports webdataset also imports torch, which costs every
worker process about a second before its first sample.
"""

from __future__ import annotations

import io
import tarfile
from typing import BinaryIO

MTIME = 0
MODE = 0o444
OWNER = "bigdata"


class ShardTarWriter:
    """Write samples (``{"__key__": str, "a.png": bytes, ...}``) to a tar stream.

    Fields are written in sorted order; the key must contain no dot.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._tar = tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT)  # as webdataset; long keys get a PAX header

    def write(self, sample: dict[str, bytes | str]) -> None:
        key = sample["__key__"]
        if not isinstance(key, str) or "." in key or "/" in key:
            raise ValueError(f"invalid sample key {key!r}: keys contain no dots or slashes")
        for field in sorted(name for name in sample if not name.startswith("__")):
            data = sample[field]
            if isinstance(data, str):
                data = data.encode("utf-8")
            info = tarfile.TarInfo(f"{key}.{field}")
            info.size = len(data)
            info.mtime = MTIME
            info.mode = MODE
            info.uname = info.gname = OWNER
            info.uid = info.gid = 0
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> ShardTarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
