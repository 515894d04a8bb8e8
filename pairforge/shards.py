"""The shard set: WebDataset tars, their stats files, ``dataset.json``.

```
shards/
  train-000000.tar ...          samples: <key>.a.png, <key>.b.jpg|png, <key>.json
  train-000000.stats.json       written after its tar is complete: count, bytes, sha256
  dataset.json                  kind, channels, palette, counts per split, shard list, checksums
  DATA_CARD.md
```
Tars are written under a temporary name and renamed when complete, with a fixed
mtime and samples in key order, so the same input gives byte-identical shards
whatever the worker count; a rerun skips shards whose stats and checksum match.

Every reader of a shard set (``train``, ``evaluate``, ``inspect``, ``check``) opens it with
:func:`pairforge.shardset.open_shard_set`, which reads dataset.json (:func:`read_dataset_file`)
and calls :func:`verify_shard_set`: a shard whose size, sample count or stats file differs from
dataset.json (or whose sha256 does, when asked) is refused with its name and the way out,
unless the user allows a modified set explicitly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pairforge import __version__, storage
from pairforge.errors import ConfigError, DatasetError, SampleError
from pairforge.files import atomic_path, file_sha256, is_temporary_name
from pairforge.imageio import encode_jpeg, encode_png
from pairforge.keys import assign_split, split_position
from pairforge.pairs import (
    summary_rows,
    write_json,
)
from pairforge.paths import absolute, describe_path, ensure_output_dir, relative_source
from pairforge.runner import RunnerConfig
from pairforge.sample import PairSample
from pairforge.sources import SourceItem, iter_samples
from pairforge.storage import Location, child, is_url, safe_url
from pairforge.tally import run_writers
from pairforge.tars import ShardReading, ShardTarWriter, count_samples

log = logging.getLogger(__name__)

SHARDS_FORMAT = "pairforge.shards/1"
DATASET_NAME = "dataset.json"
_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_\-]+)-(?P<index>\d{6})\.(tar|stats\.json)$")


@dataclass(frozen=True)
class ShardConfig:
    """How a shard set is laid out.

    Attributes:
        out_dir: the shard folder.
        samples_per_shard: at most this many samples per tar (one Dask task each).
        max_shard_bytes: also start a new shard before the inputs of one exceed
            this many bytes (estimated from input file sizes, so the plan is
            known before any decoding and does not depend on workers).
        lossless: store B as PNG instead of JPEG.
        quality: JPEG quality of B.
        val_fraction / test_fraction: split by hash of the key when the input
            has no split folders.
        splits_file: a split file (``check --fix-splits``) overriding the splits it lists.
    """

    out_dir: str = "shards"
    samples_per_shard: int = 1000
    max_shard_bytes: int | None = None
    lossless: bool = False
    quality: int = 95
    val_fraction: float = 0.05
    test_fraction: float = 0.0
    splits_file: str | None = None

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise ConfigError("samples_per_shard", self.samples_per_shard, "a positive integer")
        if self.max_shard_bytes is not None and self.max_shard_bytes < 1024:
            raise ConfigError("max_shard_bytes", self.max_shard_bytes, "at least 1024 bytes, or unset")
        if not 1 <= self.quality <= 100:
            raise ConfigError("quality", self.quality, "an integer from 1 to 100")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(name, value, "a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("val_fraction", self.val_fraction, "val + test fractions below 1")

    @property
    def b_format(self) -> str:
        return "png" if self.lossless else "jpg"


@dataclass(frozen=True)
class ShardTask:
    """One shard to write: its name, split, items (sorted by key) and plan fingerprint."""

    name: str
    split: str
    items: tuple[SourceItem, ...]
    plan: str


@dataclass(frozen=True)
class DatasetInfo:
    """What the shards hold, as recorded in ``dataset.json``: given to the writer, read back by the trainer.

    Attributes:
        kind: edges, gray, labels or generic.
        a_channels: channels of A (1 or 3).
        palette: label palette (labels datasets) or None.
        source: how the pairs were made (dataset.json ``source``).
        root: (writing) the input folder: each sample's json records its source relative to
            it (so shard bytes do not depend on how the folder was spelled), and dataset.json
            records the root once, as ``source.root``.
        b_channels: channels of B (3).
        splits: (reading) split name -> shard URLs.
        counts: (reading) split name -> number of samples.
        raw: (reading) the whole dataset.json.
        base: (reading) the folder of dataset.json (shard names in it are relative to this).
    """

    kind: str = "generic"
    a_channels: int = 3
    palette: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    root: str | None = None
    b_channels: int = 3
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    base: str = ""

    @classmethod
    def from_dataset(cls, data: dict[str, Any], base: str | os.PathLike[str]) -> DatasetInfo:
        """The info of a loaded dataset.json whose folder is ``base`` (shard paths resolved against it)."""
        splits: dict[str, tuple[str, ...]] = {}
        counts: dict[str, int] = {}
        for name, split in data.get("splits", {}).items():
            splits[name] = tuple(Location(base).child(shard).url for shard in split.get("shards", []))
            counts[name] = int(split.get("count", 0))
        return cls(
            kind=str(data.get("kind", "generic")),
            a_channels=int(data.get("a_channels", 3)),
            b_channels=int(data.get("b_channels", 3)),
            palette=data.get("palette"),
            splits=splits,
            counts=counts,
            source=data.get("source") or {},
            raw=data,
            base=str(base),
        )

    def to_dict(self) -> dict[str, Any]:
        """The part of a run config that inference needs."""
        return {
            "kind": self.kind,
            "a_channels": self.a_channels,
            "b_channels": self.b_channels,
            "b_format": self.raw.get("b_format"),
            "palette": self.palette,
            "source": self.source,
            "counts": self.counts,
            "splits": {name: list(urls) for name, urls in self.splits.items()},
        }


def assign_splits(items: Sequence[SourceItem], config: ShardConfig) -> list[SourceItem]:
    """Give items without a split one, by hash of the key.

    When a val (or test) fraction is asked but the hash sends no item there, the train item
    nearest to that split's hash range moves over, as long as train keeps at least one item:
    a small set still gets a validation sample. The choice depends only on the keys.
    """
    assigned = [
        item if item.split else replace(item, split=assign_split(item.key, config.val_fraction, config.test_fraction))
        for item in items
    ]
    unsplit = [index for index, item in enumerate(items) if not item.split]
    for split, fraction in (("val", config.val_fraction), ("test", config.test_fraction)):
        if fraction <= 0 or any(assigned[index].split == split for index in unsplit):
            continue
        train = [index for index in unsplit if assigned[index].split == "train"]
        if len(train) >= 2:
            nearest = min(train, key=lambda index: (split_position(items[index].key), items[index].key))
            assigned[nearest] = replace(assigned[nearest], split=split)
            log.info("%s fraction %.3g gave no sample; moved %s to %s", split, fraction, items[nearest].key, split)
    return assigned


def plan_shards(items: Sequence[SourceItem], config: ShardConfig, recipe: str) -> list[ShardTask]:
    """Cut items into shards: per split, in key order, by count and estimated bytes.

    Args:
        items: inputs with splits assigned.
        config: shard sizes.
        recipe: a description of how samples are made (reader and options); it
            enters every shard's plan fingerprint so a changed recipe rebuilds.
    """
    by_split: dict[str, list[SourceItem]] = {}
    for item in items:
        by_split.setdefault(item.split, []).append(item)
    tasks: list[ShardTask] = []
    for split in sorted(by_split):
        current: list[SourceItem] = []
        current_bytes = 0
        groups: list[list[SourceItem]] = []
        for item in sorted(by_split[split], key=lambda i: i.key):
            size = item.input_bytes()
            full = len(current) >= config.samples_per_shard
            too_big = config.max_shard_bytes is not None and current and current_bytes + size > config.max_shard_bytes
            if full or too_big:
                groups.append(current)
                current, current_bytes = [], 0
            current.append(item)
            current_bytes += size
        if current:
            groups.append(current)
        for index, group in enumerate(groups):
            digest = hashlib.sha256(recipe.encode("utf-8", "surrogateescape"))
            for item in group:
                digest.update(item.fingerprint().encode("utf-8", "surrogateescape"))
            tasks.append(ShardTask(f"{split}-{index:06d}.tar", split, tuple(group), digest.hexdigest()))
    return tasks


@dataclass(frozen=True)
class WriteShard:
    """Partition function: write one shard tar (or reuse it when complete and unchanged)."""

    reader: Callable[[SourceItem], PairSample]
    out_dir: str
    a_channels: int
    b_format: str
    quality: int
    root: str | None = None
    """Input root: sample sources are recorded relative to it."""

    def __call__(self, task: ShardTask) -> ShardResult:
        tar_path = child(self.out_dir, task.name)  # a Path, or a URL (written through a local temporary)
        stats_path = stats_path_for(tar_path)
        previous = _load_stats(stats_path)
        if previous and previous.get("plan") == task.plan and Location(os.fspath(tar_path)).is_file():
            if file_sha256(tar_path) == previous.get("sha256"):
                return ShardResult(previous, reused=True)
        _remove(stats_path)
        rejects: list[dict[str, str]] = []
        count = 0
        with atomic_path(tar_path) as tmp_path, open(tmp_path, "wb") as file, _HashingWriter(file) as stream:
            writer = ShardTarWriter(stream)
            for item, outcome in iter_samples(self.reader, list(task.items)):
                if not isinstance(outcome, PairSample):
                    rejects.append(outcome.row(item.path, item.key))
                    continue
                writer.write(self._encode(item, outcome))
                count += 1
            writer.close()
        stats = {
            "name": task.name,
            "split": task.split,
            "count": count,
            "bytes": stream.size,
            "sha256": stream.digest.hexdigest(),
            "plan": task.plan,
            "rejects": rejects,
        }
        write_json(stats_path, stats)
        return ShardResult(stats, reused=False)

    def _encode(self, item: SourceItem, sample: PairSample) -> dict[str, Any]:
        a = sample.a
        if self.a_channels == 1 and a.ndim == 3:
            a = a[..., 0]
        b = encode_png(sample.b) if self.b_format == "png" else encode_jpeg(sample.b, self.quality)
        height, width = sample.size
        meta = {
            "key": item.key,
            "source": relative_source(sample.meta.get("source", item.path), self.root),
            "height": height,
            "width": width,
            "kind": sample.meta.get("kind", "generic"),
            "split": item.split,
        }
        return {
            "__key__": item.key,
            "a.png": encode_png(a),
            f"b.{self.b_format}": b,
            "json": json.dumps(meta, sort_keys=True).encode("utf-8"),
        }


@dataclass(frozen=True)
class ShardResult:
    """What writing one shard reports: its stats file's contents, and whether an earlier tar was kept."""

    stats: dict[str, Any]
    reused: bool

    @property
    def written(self) -> int:
        return self.stats["count"]

    @property
    def rejects(self) -> list[dict[str, str]]:
        return self.stats["rejects"]


@dataclass
class ShardSummary:
    """Totals of a shard run, and the dataset.json it wrote (for the data card and the CLI)."""

    seen: int
    written: int
    reused_shards: int
    shards: int
    rejected: Counter
    counts: dict[str, int]
    out_dir: str
    dataset: dict[str, Any] = field(default_factory=dict)

    def as_rows(self) -> list[tuple[str, int]]:
        rows = summary_rows(self.seen, self.written, self.rejected)
        rows += [(f"split {split}", count) for split, count in sorted(self.counts.items())]
        rows += [("shards", self.shards), ("shards reused", self.reused_shards)]
        return rows


def write_shard_set(
    items: Sequence[SourceItem],
    reader: Callable[[SourceItem], PairSample],
    info: DatasetInfo,
    config: ShardConfig,
    runner: RunnerConfig,
    early_rejects: Sequence[dict[str, str]] = (),
    on_progress: Callable[[int], Any] | None = None,
) -> ShardSummary:
    """Write (or complete) a shard set from input items.

    Args:
        items: inputs with unique keys; those without a split get one by hash.
        reader: picklable reader producing each pair.
        info: kind, channels, palette and provenance for ``dataset.json``.
        config: shard layout.
        runner: where the shard tasks run (one task per shard).
        early_rejects: inputs rejected before the run, kept in the rejects file.
        on_progress: called with the number of inputs finished per completed shard.

    Raises:
        OutputError: the folder cannot be written (checked before any work).
        NothingUsableError: no input gave a sample (after writing rejects.jsonl).
    """
    out_dir = ensure_output_dir(absolute(config.out_dir), "shard folder")
    root = safe_url(absolute(info.root)) if info.root else None
    items = assign_splits(items, config)
    assignment = None
    if config.splits_file:
        from pairforge.splitfile import SplitAssignment

        assignment = SplitAssignment.load(config.splits_file)
        items, moved, unlisted = assignment.apply(items)
        log.info("split file %s: %d moved, %d not listed", config.splits_file, moved, unlisted)
    recipe = json.dumps(
        {"reader": repr(reader), "a_channels": info.a_channels, "b": config.b_format, "quality": config.quality},
        sort_keys=True,
    )
    tasks = plan_shards(items, config, recipe)
    _remove_stale(out_dir, {task.name for task in tasks})
    function = WriteShard(reader, str(out_dir), info.a_channels, config.b_format, config.quality, root)
    results, tally = run_writers(function, tasks, runner, out_dir, len(items), early_rejects, on_progress,
                                 unit="shards", resume="finished shards are complete and kept: run the same command "
                                 "again to write the others (it reuses the finished ones)")
    if not is_url(out_dir):  # a URL's temporaries are local to the worker that wrote them
        _remove_temporaries(out_dir)  # of workers killed mid-shard whose task was rerun elsewhere
    if root is not None:
        info = replace(info, source={**info.source, "root": root})
    dataset = dataset_json(info, [result.stats for result in results], config.b_format)
    if assignment is not None:
        dataset["split_assignment"] = assignment.describe(moved, unlisted)
    write_json(child(out_dir, DATASET_NAME), dataset)  # last: the shard set is complete
    summary = ShardSummary(
        seen=tally.seen,
        written=tally.written,
        reused_shards=sum(1 for result in results if result.reused),
        shards=len(dataset["shards"]),
        rejected=tally.rejected,
        counts={split: entry["count"] for split, entry in dataset["splits"].items()},
        out_dir=str(out_dir),
        dataset=dataset,
    )
    tally.require_some(out_dir)
    return summary


def dataset_json(info: DatasetInfo, results: Sequence[dict[str, Any]], b_format: str) -> dict[str, Any]:
    """Assemble ``dataset.json`` from per-shard stats (shards with no sample are left out)."""
    shards = [
        {key: stats[key] for key in ("name", "split", "count", "bytes", "sha256")}
        for stats in results
        if stats["count"] > 0
    ]
    splits: dict[str, dict[str, Any]] = {}
    for shard in shards:
        entry = splits.setdefault(shard["split"], {"count": 0, "shards": []})
        entry["count"] += shard["count"]
        entry["shards"].append(shard["name"])
    return {
        "format": SHARDS_FORMAT,
        "kind": info.kind,
        "a_channels": info.a_channels,
        "b_channels": 3,
        "b_format": b_format,
        "palette": info.palette,
        "splits": splits,
        "shards": shards,
        "source": info.source,
        "created_by": f"pairforge {__version__}",
    }


def decode_shard_sample(sample: Mapping[str, Any], gray_a: bool, swap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Decode the ``a.png`` and ``b.jpg``/``b.png`` members of one shard sample.

    Args:
        sample: member name -> bytes (a WebDataset sample, or the files of one key of a tar).
        gray_a: decode A as one channel (gray and edges sets; labels and generic A are RGB).
        swap: ``--direction BtoA``: the stored B is decoded as A (with ``gray_a``) and the stored A as B.

    Returns:
        A as ``(H, W)`` (``gray_a``) or ``(H, W, 3)`` RGB uint8, and B as ``(H, W, 3)`` RGB uint8.

    Raises:
        SampleError: a missing member, an undecodable image or A and B of different sizes.
    """
    a_bytes = sample.get("a.png")
    b_bytes = sample.get("b.jpg", sample.get("b.png"))
    if a_bytes is None or b_bytes is None:
        raise SampleError("incomplete sample", f"missing {'a.png' if a_bytes is None else 'b.jpg/b.png'}")
    if swap:
        a_bytes, b_bytes = b_bytes, a_bytes
    a = cv2.imdecode(np.frombuffer(a_bytes, np.uint8), cv2.IMREAD_GRAYSCALE if gray_a else cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(b_bytes, np.uint8), cv2.IMREAD_COLOR)
    if a is None or a.size == 0:
        raise SampleError("corrupt image", "a.png does not decode")
    if b is None or b.size == 0:
        raise SampleError("corrupt image", "the B image does not decode")
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    b = cv2.cvtColor(b, cv2.COLOR_BGR2RGB)
    if a.shape[:2] != b.shape[:2]:
        raise SampleError("size mismatch", f"A {a.shape[:2]} and B {b.shape[:2]} differ in size")
    return a, b


def read_dataset(shards_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the ``dataset.json`` of a shard folder (see :func:`read_dataset_file`)."""
    return read_dataset_file(Location(shards_dir).child(DATASET_NAME).url, shards_dir)


def read_dataset_file(path: str | os.PathLike[str], shards: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load a ``dataset.json`` with a clear error when it is missing, unreadable or of another format.

    Args:
        path: the dataset.json file (read through :class:`pairforge.storage.Location`).
        shards: what the user named (a folder, pattern or URL), for the error message.

    Raises:
        DatasetError: missing, unreadable, not JSON, or not a pairforge shard set.
    """
    location = Location(path)
    if not location.is_file():
        if location.remote and not location.pipe:
            location.parent.list()  # a missing bucket, refused credentials: StorageError says so
        raise DatasetError(
            f"{location}: dataset.json not found (is {shards or location.parent} a shard folder written by "
            "`pairforge shard`?)"
        )
    try:
        data = json.loads(location.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{location}: unreadable dataset.json ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SHARDS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{location}: format {found!r} is not {SHARDS_FORMAT!r}")
    return data


ALLOW_MODIFIED_OPTION = "--allow-modified-shards"
"""The option of train, evaluate, inspect and check that uses a modified shard set as it is."""


@dataclass(frozen=True)
class ShardMismatch:
    """A shard (or dataset.json itself) that differs from what dataset.json records.

    Attributes:
        name: the shard's file name (``dataset.json`` for a split whose count does not add up).
        path: its path.
        reason: what differs, with both values.
        missing_bytes: bytes short of the recorded size (0 when not shorter).
        samples: complete samples the tar holds (None when it could not be counted).
    """

    name: str
    path: str
    reason: str
    missing_bytes: int = 0
    samples: int | None = None

    @property
    def url(self) -> str:
        """The shard as the trainer names it (its path)."""
        return self.path

    def used_as_is(self) -> str:
        """The warning of a command that reads the shard anyway (``--allow-modified-shards``)."""
        return (f"shard {self.path} differs from dataset.json ({self.reason}); used as it is "
                f"({ALLOW_MODIFIED_OPTION}): every sample it holds is read, and samples it cannot deliver "
                "are skipped and counted")


class ModifiedShardsError(DatasetError):
    """A shard set whose files differ from its dataset.json: refused unless the user allows it.

    Args:
        folder: the shard set.
        mismatches: what differs (at least one).
        dataset: its dataset.json (for the command that rebuilds it).
    """

    def __init__(self, folder: str | os.PathLike[str], mismatches: Sequence[ShardMismatch],
                 dataset: Mapping[str, Any]) -> None:
        self.mismatches = list(mismatches)
        first = self.mismatches[0]
        more = f" (and {len(self.mismatches) - 1} more)" if len(self.mismatches) > 1 else ""
        super().__init__(
            f"shard set {describe_path(folder)} changed after it was written: {first.name}: {first.reason}{more}; "
            f"rebuild it with {rebuild_command(folder, dataset)} (a rerun rewrites only what differs), or pass "
            f"{ALLOW_MODIFIED_OPTION} to use it as it is (recorded in the output)"
        )


def rebuild_command(folder: str | os.PathLike[str], dataset: Mapping[str, Any]) -> str:
    """The command that rewrites a shard set: its builder's ``--shards`` run, else ``pairforge shard``."""
    source = dataset.get("source") or {}
    command = str(source.get("command") or "")
    if "--shards" in command.split():
        return f"`{command}`"
    pairs = source.get("pairs_dir") or source.get("root") or "PAIRS"
    return f"`pairforge shard {describe_path(pairs)} -o {describe_path(folder)}`"


def verify_shard_set(
    dataset: Mapping[str, Any],
    folder: str | os.PathLike[str],
    names: Collection[str] | None = None,
    full: bool = False,
    allow_modified: bool = False,
) -> list[ShardMismatch]:
    """Compare a shard set's files with its dataset.json: the one check of every command that reads shards.

    For each shard (or those in ``names``): it exists as a regular file, its size in bytes and
    its sample count (tar headers only: the data is skipped) are those dataset.json records,
    and its stats file, when present, records the same shard (sha256, bytes, count). With
    ``full`` the whole file is hashed against dataset.json's sha256. Each split's count must
    also be the sum of its shards' counts. A set in a bucket (an fsspec URL) is checked the
    same way, through :class:`~pairforge.storage.Location`; a ``pipe:`` command is not
    (a stream has no size to compare).

    Args:
        dataset: the loaded dataset.json (:func:`read_dataset`).
        folder: where its shards are.
        names: check only these shard names (the splits a command reads) [default: all].
        full: also compare every shard's sha256 (reads every byte).
        allow_modified: return the differences instead of refusing them.

    Returns:
        The differences (empty for an intact set); with ``allow_modified`` the caller warns
        with :meth:`ShardMismatch.used_as_is` and counts what it cannot read.

    Raises:
        ModifiedShardsError: something differs and ``allow_modified`` is false.
    """
    if Location(folder).pipe:
        return []
    entries = [entry for entry in dataset.get("shards", []) if isinstance(entry, dict) and "name" in entry]
    chosen = [entry for entry in entries if names is None or entry["name"] in names]
    mismatches = _split_mismatches(dataset, folder, {entry["name"] for entry in chosen}, entries)
    for entry in chosen:
        problem = _shard_mismatch(Location(folder).child(entry["name"]), entry, full)
        if problem is not None:
            mismatches.append(problem)
    if mismatches and not allow_modified:
        raise ModifiedShardsError(folder, mismatches, dataset)
    return mismatches


def _split_mismatches(dataset: Mapping[str, Any], folder: str | os.PathLike[str], chosen: set[str],
                      entries: list[dict[str, Any]]) -> list[ShardMismatch]:
    """Splits (among those holding a chosen shard) whose recorded count is not the sum of their shards'."""
    counts = {entry["name"]: int(entry.get("count", 0)) for entry in entries}
    problems = []
    for split, record in sorted((dataset.get("splits") or {}).items()):
        listed = list(record.get("shards", []))
        if not chosen & set(listed):
            continue
        unknown = [name for name in listed if name not in counts]
        total = sum(counts.get(name, 0) for name in listed)
        if unknown:
            reason = f"split {split!r} lists {unknown[0]}, which its shard list does not describe"
        elif int(record.get("count", -1)) != total:
            reason = f"split {split!r} records {record.get('count')} samples, its shards {total}"
        else:
            continue
        problems.append(ShardMismatch(DATASET_NAME, Location(folder).child(DATASET_NAME).url, reason))
    return problems


def _shard_mismatch(location: Location, entry: Mapping[str, Any], full: bool) -> ShardMismatch | None:
    """What differs between one shard and its dataset.json entry (None when nothing does)."""
    name = entry["name"]
    path = location.url
    try:
        info = location.stat()
    except OSError:
        return ShardMismatch(name, path, "missing (listed in dataset.json)", samples=0)
    if not stat.S_ISREG(info.st_mode):
        return ShardMismatch(name, path, "not a regular file", samples=0)
    reasons = []
    recorded_bytes = int(entry.get("bytes", -1))
    if recorded_bytes >= 0 and info.st_size != recorded_bytes:
        reasons.append(f"{info.st_size} bytes, dataset.json records {recorded_bytes}")
    recorded_count = int(entry.get("count", -1))
    reading = ShardReading(path, recorded_count if recorded_count >= 0 else None)
    count_samples(reading)  # headers only
    if reading.error:
        reasons.append(f"unreadable after {reading.samples} samples ({reading.error})")
    elif recorded_count >= 0 and reading.samples != recorded_count:
        reasons.append(f"{reading.samples} samples, dataset.json records {recorded_count}")
    stats = _load_stats(location.parent.child(stats_name_for(location.name))) if not reasons else None
    for field_name in ("sha256", "bytes", "count") if stats is not None else ():
        if field_name in stats and field_name in entry and stats[field_name] != entry[field_name]:
            reasons.append(f"its stats file records {field_name} {stats[field_name]}, dataset.json "
                           f"{entry[field_name]} (a shard of another set?)")
            break
    if full and not reasons and entry.get("sha256") and location.sha256() != entry["sha256"]:
        reasons.append("sha256 differs from dataset.json")
    if not reasons:
        return None
    return ShardMismatch(name, path, "; ".join(reasons), max(0, recorded_bytes - info.st_size), reading.samples)


class _HashingWriter:
    """A write-only stream that hashes and counts what passes through (no second read of the tar)."""

    def __init__(self, file: Any) -> None:
        self.file, self.digest, self.size = file, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.size

    def __enter__(self) -> _HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.flush()


def stats_name_for(tar_name: str) -> str:
    """``train-000000.tar -> train-000000.stats.json``."""
    return tar_name[: -len(".tar")] + ".stats.json"


def stats_path_for(tar_path: Any) -> Any:
    """The stats file of a shard (a Path, or a URL for a shard at a URL)."""
    if is_url(tar_path):
        return os.fspath(tar_path)[: -len(".tar")] + ".stats.json"
    return tar_path.with_name(stats_name_for(tar_path.name))


def _load_stats(path: Path | Location) -> dict[str, Any] | None:
    """A stats file's record (None when it is missing, unreadable or not JSON)."""
    try:
        return json.loads(Location(str(path)).read_bytes())
    except (OSError, ValueError):
        return None


def _remove(path: Any) -> None:
    if is_url(path):
        storage.remove(path)
    else:
        path.unlink(missing_ok=True)


def _remove_temporaries(out_dir: Path) -> None:
    """Delete ``.<shard>.tar.tmp<pid>`` files (a worker killed while writing leaves one; older
    versions named them ``.tar.tmp-<pid>``)."""
    for path in out_dir.iterdir():
        if is_temporary_name(path.name) and ".tar.tmp" in path.name:
            log.info("removing leftover temporary %s", path.name)
            path.unlink(missing_ok=True)


def _remove_stale(out_dir: Any, keep: set[str]) -> None:
    """Delete shards and stats of an earlier, different plan, and leftover temporaries."""
    if is_url(out_dir):
        entries = storage.names(out_dir)
    else:
        _remove_temporaries(out_dir)
        entries = [path.name for path in out_dir.iterdir()]
    for entry in entries:
        match = _SHARD_NAME.match(entry)
        if match and f"{match['split']}-{match['index']}.tar" not in keep:
            log.info("removing %s from an earlier plan", entry)
            _remove(child(out_dir, entry))

