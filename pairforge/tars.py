"""WebDataset tars: deterministic writing, and reading that says what it could not read.

Same layout as ``webdataset.TarWriter(..., mtime=0)``: one regular file per
sample field, ``<key>.<field>``, fixed owner, mode and mtime, so identical
input gives byte-identical tars. It uses only the standard library because a
shard worker that imports webdataset also imports torch, which costs every
worker process about a second before its first sample.

:func:`read_shard` is the core's reader of one local shard (``check``, ``inspect`` and the
shard-set verification): it groups members into samples as WebDataset does, skips the data
of samples it is not asked for by seeking, and records in a :class:`ShardReading` how many
samples were complete and why it stopped early (a truncated or damaged tar), so a caller can
name the shard and count what it lost instead of stopping or staying silent.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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


@dataclass
class ShardReading:
    """How reading one shard went.

    Attributes:
        path: the shard tar.
        expected: samples dataset.json records in it (None when unknown).
        samples: samples whose members were all present (read, or skipped when not wanted).
        error: why reading stopped early ("" when it reached the end of the tar).
    """

    path: str
    expected: int | None = None
    samples: int = 0
    error: str = ""

    @property
    def missing(self) -> int:
        """Samples dataset.json records that the tar did not deliver."""
        return max(0, self.expected - self.samples) if self.expected is not None else 0

    def lost(self) -> str:
        """What could not be read ("" when the shard was read whole): ``3 of 8 samples could not be read (...)``."""
        if not self.missing and not self.error:
            return ""
        if self.expected is None:
            return f"reading stopped after {self.samples} samples ({self.error})"
        cause = f" ({self.error})" if self.error else " (the tar ends early)"
        return f"{self.missing} of {self.expected} samples could not be read{cause}"

    def problem(self) -> str:
        """:meth:`lost` as one line naming the shard ("" when it was read whole)."""
        lost = self.lost()
        return f"shard {self.path}: {lost}" if lost else ""


def sample_key(name: str) -> tuple[str, str]:
    """``dir/key.a.png -> ("dir/key", "a.png")``: the key is the name up to the first dot of its last part,
    as WebDataset groups members into samples."""
    folder, _, base = name.rpartition("/")
    key, _, field = base.partition(".")
    return (f"{folder}/{key}" if folder else key), field


def read_shard(reading: ShardReading,
               wanted: Callable[[int, str], bool] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples of one local shard tar, in order: ``(key, {field: bytes})``.

    Args:
        reading: the shard (``path``, ``expected``); updated as the tar is read.
        wanted: ``wanted(index, key)`` says which samples to read; the others are counted but
            their data is skipped (seeking, not reading). Default: every sample.

    A tar that cannot be opened, whose data ends inside a sample (truncated) or whose headers
    are damaged stops the iteration; the complete samples before it are yielded and counted
    in ``reading.samples``, the reason goes to ``reading.error``. Nothing is raised.
    """
    try:
        with open(reading.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            with tarfile.open(fileobj=handle, mode="r:") as tar:
                yield from _samples(tar, size, reading, wanted)
    except (OSError, tarfile.TarError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        reading.error = reading.error or reason


def _samples(tar: tarfile.TarFile, size: int, reading: ShardReading,
             wanted: Callable[[int, str], bool] | None) -> Iterator[tuple[str, dict[str, bytes]]]:
    key: str | None = None
    fields: dict[str, bytes] = {}
    keep = False
    for member in tar:
        if not member.isfile():
            continue
        if member.offset_data + member.size > size:
            reading.error = f"the file ends inside sample {sample_key(member.name)[0]} (truncated)"
            return  # the incomplete sample is not counted
        name, field = sample_key(member.name)
        if name != key:
            if key is not None:
                reading.samples += 1
                if keep:
                    yield key, fields
            key, fields = name, {}
            keep = wanted is None or wanted(reading.samples, name)
        if keep:
            data = tar.extractfile(member)
            fields[field] = data.read() if data is not None else b""
    if key is not None:
        reading.samples += 1
        if keep:
            yield key, fields
