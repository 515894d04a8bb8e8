"""Reading a shard set: the one reader behind ``train``, ``evaluate``, ``inspect``, ``check`` and ``--dry-run``.

Three steps, one function each, all through one byte seam (:class:`pairforge.storage.Location`):

* :func:`open_shard_set` reads dataset.json (:func:`pairforge.shards.read_dataset_file`) and
  compares the shards with it (:func:`pairforge.shards.verify_shard_set`): a modified set is
  refused unless the user allows it.
* :meth:`ShardSet.shards` lists the shards, per split, as :class:`ShardEntry` (name, split,
  location, the sample count dataset.json records).
* :func:`pairforge.tars.read_shard` iterates one shard's samples as ``(key, {field: bytes})``
  and records in a :class:`~pairforge.tars.ShardReading` what it could not read (a damaged
  sample is the caller's to decode and report; a cut or damaged tar stops the shard and is
  counted against dataset.json). The train stream keeps WebDataset's pipeline (shuffle,
  rank and worker splitting) but opens its tars with :func:`open_tar`.

A shard set in a bucket (an fsspec URL such as ``s3://bucket/shards``) is read and verified as a
local one is, through :class:`~pairforge.storage.Location`; a ``pipe:`` command (``train``'s and
``evaluate``'s brace patterns) is read as a stream and not verified.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pairforge.errors import DatasetError
from pairforge.shards import (
    DATASET_NAME,
    DatasetInfo,
    ShardMismatch,
    read_dataset_file,
    verify_shard_set,
)
from pairforge.storage import Location
from pairforge.tars import BLOCK, ShardReading


@dataclass(frozen=True)
class ShardEntry:
    """One shard of a set, as dataset.json records it.

    Attributes:
        name: its file name (``train-000000.tar``).
        split: its split.
        url: its location (the set's folder joined with the name).
        expected: the samples dataset.json records in it.
    """

    name: str
    split: str
    url: str
    expected: int

    def reading(self) -> ShardReading:
        """A fresh :class:`~pairforge.tars.ShardReading` of this shard for :func:`~pairforge.tars.read_shard`."""
        return ShardReading(self.url, self.expected)


@dataclass(frozen=True)
class ShardSet:
    """An opened shard set: where it is, its dataset.json, and the shards that differ from it.

    Attributes:
        location: the folder of dataset.json (shard names are relative to it).
        dataset: the loaded dataset.json.
        modified: shards that differ from dataset.json, used as they are (``--allow-modified-shards``).
    """

    location: Location
    dataset: dict[str, Any]
    modified: tuple[ShardMismatch, ...] = ()

    @property
    def info(self) -> DatasetInfo:
        """dataset.json as :class:`~pairforge.shards.DatasetInfo` (split -> shard locations)."""
        return DatasetInfo.from_dataset(self.dataset, self.location.url)

    def shards(self, split: str | None = None) -> list[ShardEntry]:
        """The shards dataset.json lists (of ``split`` only, when given), in its order."""
        return list_shards(self.dataset, self.location, split)

    def verify(self, names: Collection[str] | None = None, full: bool = False,
               allow_modified: bool = False) -> list[ShardMismatch]:
        """:func:`pairforge.shards.verify_shard_set` on this set (``names``: only those shards)."""
        return verify_shard_set(self.dataset, self.location.url, names, full=full, allow_modified=allow_modified)


def open_shard_set(folder: str | os.PathLike[str], *, dataset_json: str | os.PathLike[str] | None = None,
                   named: str | os.PathLike[str] | None = None, verify: bool = True,
                   allow_modified: bool = False) -> ShardSet:
    """Open a shard set: read its dataset.json and (``verify``) compare every shard with it.

    Args:
        folder: the shard folder.
        dataset_json: read this dataset.json instead of FOLDER/dataset.json (the set is then
            the folder that holds it).
        named: what the user named (a folder, pattern or URL), for error messages [default: FOLDER].
        verify: compare the shards with dataset.json now (``train`` and ``evaluate`` verify
            only the shards of the splits they read, later, with :func:`verify_shards`).
        allow_modified: return the shards that differ in ``modified`` instead of refusing them.

    Raises:
        DatasetError: dataset.json is missing, unreadable or of another format.
        ModifiedShardsError: a shard differs from dataset.json and ``allow_modified`` is false.
    """
    meta = Location(dataset_json) if dataset_json is not None else Location(folder).child(DATASET_NAME)
    dataset = read_dataset_file(meta.url, named if named is not None else folder)
    shard_set = ShardSet(meta.parent, dataset)
    if not verify:
        return shard_set
    return ShardSet(shard_set.location, dataset, tuple(shard_set.verify(allow_modified=allow_modified)))


def list_shards(dataset: Mapping[str, Any], folder: str | os.PathLike[str] | Location,
                split: str | None = None) -> list[ShardEntry]:
    """The shards a loaded dataset.json lists, located in ``folder`` (see :meth:`ShardSet.shards`)."""
    base = folder if isinstance(folder, Location) else Location(folder)
    entries = []
    for shard in dataset.get("shards", []):
        name = shard["name"]
        shard_split = shard.get("split") or name.rsplit("-", 1)[0]
        if split is None or shard_split == split:
            entries.append(ShardEntry(name, shard_split, base.child(name).url, int(shard["count"])))
    return entries


def recorded_shards(info: DatasetInfo) -> dict[str, dict[str, Any]]:
    """Shard location -> its dataset.json entry (``count``, ``bytes``, ``sha256``), for sets read from a folder."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in info.raw.get("shards", []) if info.base else []:
        if isinstance(entry, dict) and "name" in entry:
            entries[Location(info.base).child(entry["name"]).url] = entry
    return entries


def verify_shards(info: DatasetInfo, urls: tuple[str, ...], full: bool = False,
                  allow_modified: bool = False) -> list[ShardMismatch]:
    """:func:`pairforge.shards.verify_shard_set` on the shards of ``urls`` that dataset.json lists.

    Sizes, sample counts and stats files are always compared; sha256 when ``full``.

    Raises:
        ModifiedShardsError: a shard differs and ``allow_modified`` is false.
    """
    recorded = recorded_shards(info)
    names = {recorded[url]["name"] for url in urls if url in recorded}
    if not names:
        return []
    return verify_shard_set(info.raw, info.base, names, full=full, allow_modified=allow_modified)


def open_tar(url: str) -> BinaryIO:
    """One shard tar as a binary stream (what the train stream hands to WebDataset).

    Raises:
        OSError (or what a URL's opener raises): it cannot be opened.
    """
    return Location(url).open()


def check_shards(urls: tuple[str, ...]) -> None:
    """Open each shard and read its first tar header, before any training step.

    Raises:
        DatasetError: naming the first shard that is missing or unreadable.
    """
    for url in urls:
        location = Location(url)
        try:
            if not location.remote and not location.is_file():
                raise DatasetError(f"shard {url}: missing")
            with location.open() as stream:
                header = stream.read(BLOCK)
        except DatasetError:
            raise
        except Exception as exc:  # a URL's opener raises many kinds (OSError, ValueError, pipe errors)
            raise DatasetError(f"shard {url}: unreadable ({exc})") from None
        if len(header) < BLOCK:
            raise DatasetError(f"shard {url}: unreadable (empty or shorter than one tar header)")
        try:
            tarfile.TarInfo.frombuf(header, tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError as exc:
            raise DatasetError(f"shard {url}: not a tar file ({exc})") from None


def dataset_json_beside(url: str) -> Path | None:
    """The dataset.json next to a local shard (None for a URL): where a brace pattern's set is described."""
    location = Location(url)
    return None if location.remote else Path(location.parent.child(DATASET_NAME).url)
