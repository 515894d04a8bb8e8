"""Where a shard set's bytes come from: :class:`Location`, the one seam between the reader and storage.

Every byte the core reads from a shard set goes through a :class:`Location`: dataset.json,
the stats files, the tars (as a byte stream), the size and kind of a file, the listing of a
folder and a shard's sha256. The reader (:mod:`pairforge.shardset`, :func:`pairforge.tars.read_shard`,
:func:`pairforge.tars.count_samples`, :func:`pairforge.shards.verify_shard_set`) never calls
``open`` or ``os.stat`` on a shard set itself.

Today a location is a local path, or a URL / ``pipe:`` command (:func:`pairforge.paths.is_remote`),
which is opened as a read-only stream with WebDataset's ``gopen`` (what ``train`` and
``evaluate`` have always accepted). Remote storage (fsspec URLs, issue 23) plugs in here and in
the atomic writer (:mod:`pairforge.files`), nowhere else: the remote branch of each method below
is the place.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pairforge.files import file_sha256, read_regular
from pairforge.paths import is_remote


@dataclass(frozen=True)
class Location:
    """A file or folder of a shard set, named by a location string (a local path, a URL or ``pipe:``).

    Attributes:
        url: the location as the user or dataset.json named it (``str(location)`` gives it back).
    """

    url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", os.fspath(self.url))

    def __str__(self) -> str:
        return self.url

    @property
    def remote(self) -> bool:
        """A URL or ``pipe:`` command: readable as a stream only (no size, listing or seeking today)."""
        return is_remote(self.url)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1] if self.remote else Path(self.url).name

    @property
    def parent(self) -> Location:
        if self.remote:
            return Location(self.url.rstrip("/").rsplit("/", 1)[0])
        return Location(str(Path(self.url).parent))

    def child(self, name: str) -> Location:
        """``name`` inside this folder (local paths joined as :class:`pathlib.Path` joins them)."""
        if self.remote:
            return Location(f"{self.url.rstrip('/')}/{name}")
        return Location(str(Path(self.url) / name))

    def is_dir(self) -> bool:
        return not self.remote and os.path.isdir(self.url)

    def is_file(self) -> bool:
        return not self.remote and os.path.isfile(self.url)

    def stat(self) -> os.stat_result:
        """Size and kind of a local file (follows links).

        Raises:
            OSError: missing or unreadable, or a remote location (not answered today).
        """
        if self.remote:
            raise OSError(f"{self.url}: not a local file")
        return os.stat(self.url)

    def list(self) -> list[str]:
        """Names in this local folder, sorted (remote: none are listed today)."""
        if self.remote:
            return []
        return sorted(os.listdir(self.url))

    def read_bytes(self) -> bytes:
        """The whole file: a metadata file (dataset.json, a stats file).

        A local file must be a regular file (:func:`pairforge.files.read_regular`: a FIFO in its
        place is an error, not a read that waits forever).

        Raises:
            OSError: missing, unreadable or not a regular file.
        """
        if not self.remote:
            return read_regular(self.url)
        with self.open() as stream:
            return stream.read()

    def open(self, buffering: int = -1) -> BinaryIO:
        """A binary read stream; a local file's is seekable, a remote one's may not be.

        Raises:
            OSError: the file cannot be opened (remote: whatever ``gopen`` raises).
        """
        if not self.remote:
            return open(self.url, "rb", buffering=buffering)  # noqa: SIM115 (the caller closes it)
        from webdataset import gopen  # imports torch: only for URLs

        return gopen(self.url, "rb")

    def sha256(self) -> str:
        """Hex sha256 of the whole file, read in 1 MiB blocks."""
        if not self.remote:
            return file_sha256(self.url)
        digest = hashlib.sha256()
        with self.open() as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
