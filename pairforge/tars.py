"""Shard tars: deterministic writing, and reading that says what it could not read.

:class:`ShardTarWriter` writes one regular file per sample field, ``<key>.<field>``, with fixed
owner, mode and mtime, so identical input gives byte-identical tars. Its tars are POSIX.1-2001
(PAX) tars: a member whose name fits ustar (ASCII, at most 100 bytes) gets a plain ustar header,
a longer or non-ASCII key adds a PAX ``path`` record. With webdataset 1.0.2 this is byte for
byte what ``webdataset.TarWriter(stream, mtime=0)`` writes for the same fields (pinned in
tests/pairforge/test_tars.py): its ``format`` argument defaults to USTAR but is never passed to
``tarfile.open``, so Python's default, PAX, applies. Should webdataset start honouring that
default, its tars would differ from ours only for long or non-ASCII keys (USTAR refuses a name
over 100 bytes that it cannot split at a slash). It uses only the standard library because a
shard worker that imports webdataset also imports torch, which costs every worker process about
a second before its first sample.

:func:`read_shard` is the core's reader of one shard's samples (``check``, ``inspect``,
``evaluate``, ``train --dry-run``; the train stream opens its tars through the same
:class:`~pairforge.storage.Location`): it groups members into samples as WebDataset does, skips
the data of samples it is not asked for by seeking, and records in a :class:`ShardReading` how
many samples were complete and why it stopped early (a truncated or damaged tar), so a caller
can name the shard and count what it lost instead of stopping or staying silent.
:func:`count_samples` counts a shard's samples from its headers alone, several times faster
than ``tarfile`` (the shard-set verification that every reader runs first).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pairforge.storage import Location

MTIME = 0
MODE = 0o444
OWNER = "bigdata"
BLOCK = 512
"""Tar header and padding unit."""


class ShardTarWriter:
    """Write samples (``{"__key__": str, "a.png": bytes, ...}``) to a tar stream.

    Fields are written in sorted order; the key must contain no dot.
    """

    def __init__(self, stream: BinaryIO) -> None:
        # PAX (Python's default, and what webdataset 1.0.2's TarWriter really writes): long keys fit
        self._tar = tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT)

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
    """The samples of one shard tar, in order: ``(key, {field: bytes})``.

    Args:
        reading: the shard (``path``: a local path or URL, opened by
            :meth:`pairforge.storage.Location.open`; ``expected``); updated as the tar is read.
        wanted: ``wanted(index, key)`` says which samples to read; the others are counted but
            their data is skipped (seeking, not reading, where the stream can seek). Default:
            every sample.

    A tar that cannot be opened, whose data ends inside a member, that lacks its end-of-archive
    block (cut at a member boundary) or whose next header is damaged stops the iteration: the
    samples before it are yielded and counted in ``reading.samples``, the sample in progress is
    not, and the reason goes to ``reading.error``. Nothing is raised. A stream that cannot seek
    (a ``pipe:`` command) is read through; there a tar cut at a member boundary reads as whole
    and shows as samples missing against ``expected``.
    """
    try:
        with Location(reading.path).open() as handle:
            if getattr(handle, "seekable", lambda: False)():  # a URL's stream may not say
                size = handle.seek(0, 2)
                handle.seek(0)
                with tarfile.open(fileobj=handle, mode="r:") as tar:
                    yield from _samples(tar, handle, size, reading, wanted)
            else:
                with tarfile.open(fileobj=handle, mode="r|") as tar:
                    yield from _samples(tar, None, None, reading, wanted)
    except (OSError, tarfile.TarError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        reading.error = reading.error or reason


def _samples(tar: tarfile.TarFile, handle: BinaryIO | None, size: int | None, reading: ShardReading,
             wanted: Callable[[int, str], bool] | None) -> Iterator[tuple[str, dict[str, bytes]]]:
    key: str | None = None
    fields: dict[str, bytes] = {}
    keep = False
    for member in tar:
        if not member.isfile():
            continue
        name, field = sample_key(member.name)
        if name != key:
            if key is not None:
                reading.samples += 1
                if keep:
                    yield key, fields
            key, fields = name, {}
            keep = wanted is None or wanted(reading.samples, name)
        if size is not None and member.offset_data + member.size > size:
            reading.error = f"the file ends inside sample {name} (truncated)"
            return
        if keep:
            data = tar.extractfile(member)
            fields[field] = data.read() if data is not None else b""
    if handle is None:  # a stream: tarfile read it to its end-of-archive block, or raised
        if key is not None:
            reading.samples += 1
            if keep:
                yield key, fields
        return
    handle.seek(tar.offset)  # tarfile stops quietly at a missing or damaged header: tell them from the end
    end = handle.read(BLOCK)
    if len(end) < BLOCK:
        reading.error = "the tar ends early (no end-of-archive block)"
    elif end.count(0) != BLOCK:
        reading.error = f"damaged tar header at byte {tar.offset}"
    elif key is not None:
        reading.samples += 1
        if keep:
            yield key, fields


def count_samples(reading: ShardReading) -> None:
    """Count the complete samples of one local shard from its tar headers alone (no data is read).

    The same count :func:`read_shard` gives, at a fraction of its cost: a header is one
    512-byte read, its data is skipped. Plain ustar, PAX (``x``, ``g``) and GNU long-name
    (``L``) headers are understood; a header whose checksum is wrong, data that runs past the
    end of the file or a missing end-of-archive block stops the count with the reason in
    ``reading.error`` (the sample in progress is not counted).
    """
    try:
        with Location(reading.path).open(buffering=0) as handle:
            _count(handle, handle.seek(0, 2), reading)
    except OSError as exc:
        reading.error = exc.strerror or str(exc)


def _count(handle: BinaryIO, size: int, reading: ShardReading) -> None:
    offset, key, long_name = 0, None, None
    while True:
        handle.seek(offset)
        header = handle.read(BLOCK)
        if len(header) < BLOCK:
            reading.error = "the tar ends early (no end-of-archive block)"
            return
        if header.count(0) == BLOCK:  # the end-of-archive block: the sample in progress is whole
            reading.samples += key is not None
            return
        if not _checksum_ok(header):
            reading.error = f"damaged tar header at byte {offset}"
            return
        length = _octal(header[124:136])
        kind = header[156:157]
        data = offset + BLOCK
        if kind in (b"0", b"\0", b"7"):  # a regular file: a member of a sample
            member_key = sample_key(long_name or _ustar_name(header))[0]
            long_name = None
            if member_key != key:
                reading.samples += key is not None
                key = member_key
        if data + length > size:
            reading.error = f"the file ends inside sample {key} (truncated)"
            return
        if kind in (b"x", b"L"):
            handle.seek(data)
            payload = handle.read(length)
            long_name = _pax_path(payload) if kind == b"x" else payload.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif kind not in (b"0", b"\0", b"7", b"g"):  # folders, links: not sample members
            long_name = None
        offset = data + -(-length // BLOCK) * BLOCK


def _checksum_ok(header: bytes) -> bool:
    try:
        recorded = _octal(header[148:156])
    except ValueError:
        return False
    computed = sum(header) - sum(header[148:156]) + 8 * 32
    return recorded == computed


def _octal(field: bytes) -> int:
    text = field.rstrip(b"\0 ").strip() or b"0"
    return int(text, 8)


def _ustar_name(header: bytes) -> str:
    name = header[:100].split(b"\0", 1)[0]
    prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    full = prefix + b"/" + name if prefix else name
    return full.decode("utf-8", "surrogateescape")


def _pax_path(payload: bytes) -> str | None:
    """The ``path`` record of a PAX extended header (records are ``<length> <key>=<value>\\n``)."""
    position = 0
    while position < len(payload):
        space = payload.find(b" ", position)
        if space < 0:
            break
        length = int(payload[position:space] or b"0")
        if length <= 0:
            break
        record = payload[space + 1 : position + length - 1]
        name, _, value = record.partition(b"=")
        if name == b"path":
            return value.decode("utf-8", "surrogateescape")
        position += length
    return None
