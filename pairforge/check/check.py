"""``pairforge check``: find misaligned pairs, split leakage and broken samples in a pair folder or shard set.

Every pair is read once, on the Dask runner, by :class:`MeasurePartition`
(decode -> :class:`~pairforge.check.measures.PairMeasurer`); partitions return small
rows, never pixels. The main process then judges the rows as a dataset:
shift above the limit that explains B better than no shift (clearly:
misaligned; a little: alignment uncertain), agreement outliers (robust fence below the median),
content problems, exact and near-duplicate clusters (multi-index hashing, see
:mod:`pairforge.check.neardup`) and clusters spanning splits (leakage).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pairforge import kinds
from pairforge.check.measures import DHASH_WORDS, MeasureConfig, PairMeasurer, hash_words
from pairforge.check.neardup import clusters as connected_clusters
from pairforge.check.neardup import near_pairs
from pairforge.descriptions import upgrade
from pairforge.errors import ConfigError, DatasetError, SampleError
from pairforge.imageio import DEFAULT_MAX_PIXELS, read_image
from pairforge.keys import assign_split, chunk, unique_keys_per_split
from pairforge.pairs import PairsInfo, discover, split_ab, write_json, write_jsonl
from pairforge.runner import RunnerConfig, run_partitions
from pairforge.shards import DATASET_NAME, ShardMismatch, decode_shard_sample
from pairforge.shardset import open_shard_set
from pairforge.sources import capture
from pairforge.storage import is_url
from pairforge.tars import ShardReading, read_shard

log = logging.getLogger(__name__)

CHECK_FORMAT = "pairforge.check/1"
PROBLEMS = (
    "unreadable", "misaligned", "low agreement", "leakage", "exact duplicate", "near duplicate",
    "alignment uncertain", "near-empty A", "near-constant A", "near-constant B", "outside palette",
    "class missing from val", "size outlier", "aspect outlier",
)
"""Every problem the check reports, most serious first (the report's default order)."""


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the check.

    Attributes:
        out_dir: where report.html, check.json and flagged.jsonl go.
        max_shift: flag pairs whose estimated shift exceeds this many pixels.
        outlier_z: agreement below ``median - outlier_z * 1.4826 * MAD`` is an outlier.
        min_margin: ... and at least this far below the median (datasets with a tiny spread).
        near_distance: largest pHash Hamming distance (of 64 bits) between near-duplicates.
        verify_distance: ... whose 256-bit dHash (of the matched view) must also be within this
            distance (chosen on distinct images of one domain and on re-encodes, resizes and crops,
            benchmarks/RESULTS.md).
        near_constant_std: A or B with a gray-level standard deviation below this is near-constant.
        hash_min_std: B's below this standard deviation are left out of near-duplicate search
            (a flat image's pHash is noise); exact duplicates still count.
        min_edge_density: edge maps (A of edges datasets) with fewer edge pixels are near-empty.
        aspect_tolerance: aspect ratios further than this factor from the median are outliers.
        area_factor: pixel counts beyond this factor of the median are size outliers.
        min_pairs_for_outliers: fewer measured pairs than this: no agreement fence.
        label_min_gain: labels datasets: a shift counts only when it raises the alignment
            score (robust z units, :func:`~pairforge.check.measures.label_alignment`) by at least
            this much over the best score within 1 px of no shift (label maps of texture or
            shading match B loosely everywhere, so a shift that explains B no better is not
            evidence).
        min_evidence: edges, gray, generic: likewise, a shift counts only when it removes at
            least this share of the structure disagreement left at no shift and its 1-px
            neighbours (:func:`~pairforge.check.measures.shift_evidence`; on periodic scenes phase
            correlation can lock onto a period of the pattern, which explains B no better).
        uncertain_evidence: edges, gray, generic: a shift above ``max_shift`` whose evidence
            reaches this but not ``min_evidence`` is reported as ``alignment uncertain``; below
            it, the estimate is no evidence of a shift at all. Labels have no such band: the
            labels search's gain on clean facades reaches just under ``label_min_gain``
            (benchmarks/RESULTS.md), so a band there would report clean pairs.
        val_fraction / test_fraction: the splits ``shard`` would give a flat pair folder.
        gallery: flagged pairs drawn in the report (A | B | overlay thumbnails).
    """

    out_dir: str = "check"
    max_shift: float = 1.5
    outlier_z: float = 3.5
    min_margin: float = 0.05
    near_distance: int = 10
    verify_distance: int = 64
    near_constant_std: float = 2.0
    hash_min_std: float = 8.0
    min_edge_density: float = 0.002
    aspect_tolerance: float = 0.25
    area_factor: float = 4.0
    min_pairs_for_outliers: int = 10
    label_min_gain: float = 0.9
    min_evidence: float = 0.2
    uncertain_evidence: float = 0.1
    val_fraction: float = 0.05
    test_fraction: float = 0.0
    gallery: int = 500

    def __post_init__(self) -> None:
        if not 0 < self.max_shift <= 100:
            raise ConfigError("max_shift", self.max_shift, "pixels in (0, 100]")
        if not 0 <= self.near_distance <= 24:
            raise ConfigError("near_distance", self.near_distance, "an integer from 0 to 24 (of 64 bits)")
        if not 0 <= self.verify_distance <= 256:
            raise ConfigError("verify_distance", self.verify_distance, "an integer from 0 to 256 (of 256 bits)")
        if self.outlier_z <= 0:
            raise ConfigError("outlier_z", self.outlier_z, "a positive number")
        if not 0 < self.min_evidence < 1:
            raise ConfigError("min_evidence", self.min_evidence, "a share in (0, 1)")
        if not 0 < self.uncertain_evidence <= self.min_evidence:
            raise ConfigError("uncertain_evidence", self.uncertain_evidence, f"a share in (0, {self.min_evidence}]")
        if self.gallery < 0:
            raise ConfigError("gallery", self.gallery, "0 or more pairs")
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(name, getattr(self, name), "a fraction in [0, 1)")


@dataclass(frozen=True)
class DatasetSource:
    """What is being checked: a pair folder or a shard set, and how its pairs are made."""

    root: str
    layout: str
    """``pairs`` or ``shards``."""
    kind: str
    a_channels: int
    palette: dict[str, Any] | None
    stage: dict[str, Any]
    tasks: tuple[Any, ...]
    early_unreadable: tuple[dict[str, Any], ...] = ()
    expected: int = 0
    pairs_dir: str = ""
    """The pair folder a shard set was made from (dataset.json), for the ``shard --splits`` hint."""
    modified: tuple[ShardMismatch, ...] = ()
    """Shards that differ from dataset.json, checked as they are (``--allow-modified-shards``)."""

    @property
    def class_names(self) -> list[str]:
        return [str(entry.get("name", entry.get("id"))) for entry in (self.palette or {}).get("classes", [])]

    @property
    def class_colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(tuple(int(c) for c in entry["color"]) for entry in (self.palette or {}).get("classes", []))  # type: ignore[misc]


@dataclass(frozen=True)
class PairRef:
    """One AB file of a pair folder."""

    key: str
    split: str
    path: str


@dataclass(frozen=True)
class ShardRef:
    """One shard tar and the number of samples dataset.json promises."""

    name: str
    split: str
    path: str
    expected: int


def open_source(root: str | os.PathLike[str], config: CheckConfig, partition_size: int = 256,
                allow_modified: bool = False) -> DatasetSource:
    """Describe a pair folder or shard set (a folder with dataset.json) and cut it into tasks.

    A shard set is opened by the core reader (:func:`pairforge.shardset.open_shard_set`), which
    compares it with its dataset.json first.

    Raises:
        DatasetError: the folder does not exist, its metadata is malformed, or it holds shard
            tars without a dataset.json.
        ModifiedShardsError: a shard differs from dataset.json and ``allow_modified`` is false.
    """
    url = is_url(root)
    if not url:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder: pass a pair folder (make-*, combine) or a shard set (shard)")
    if url or (Path(root) / DATASET_NAME).exists():
        shard_set = open_shard_set(root, allow_modified=allow_modified)
        dataset, modified = shard_set.dataset, shard_set.modified
        source = dataset.get("source") or {}
        tasks = tuple(ShardRef(s.name, s.split, s.url, s.expected) for s in shard_set.shards())
        return DatasetSource(str(root), "shards", dataset.get("kind", "generic"), int(dataset.get("a_channels", 3)),
                             dataset.get("palette"), upgrade(source.get("stage"), str(source.get("kind", ""))), tasks,
                             expected=sum(task.expected for task in tasks), pairs_dir=str(source.get("pairs_dir") or ""),
                             modified=tuple(modified))
    _refuse_shards_without_dataset(root)
    info = PairsInfo.read(root) or PairsInfo(kind="generic", a_channels=3)
    found, rejects = discover(root)
    keys, _ = unique_keys_per_split([(entry.split, entry.stem) for entry in found])
    refs = [
        PairRef(key, entry.split or assign_split(key, config.val_fraction, config.test_fraction), entry.path)
        for key, entry in zip(keys, found, strict=True)
    ]
    early = tuple({"key": None, "split": "", "path": reject["path"], "problem": "unreadable",
                   "reason": reject["reason"], "detail": reject.get("detail", ""), "count": 1} for reject in rejects)
    tasks = tuple(tuple(part) for part in chunk(refs, partition_size))
    return DatasetSource(str(root), "pairs", info.kind, info.a_channels, info.palette, dict(info.stage), tasks, early,
                         expected=len(refs) + len(early), pairs_dir=str(root))


def _refuse_shards_without_dataset(root: Path) -> None:
    """A folder of shard tars without dataset.json is a broken shard set, not a pair folder with 0 images."""
    tars = sorted(path.name for path in root.glob("*.tar"))
    if tars and not PairsInfo.read(root):
        raise DatasetError(
            f"{root} holds {len(tars)} shard tar(s) ({tars[0]}, ...) but no {DATASET_NAME}: it is not a complete shard "
            "set (its writer was interrupted, or dataset.json was removed); rebuild it with `pairforge shard PAIRS "
            f"-o {root}`, or check the pair folder it was made from"
        )


@dataclass
class PartitionRows:
    """What one partition sends back: one row per measured pair, unreadable rows, label counts."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return len(self.rows) + sum(row["count"] for row in self.unreadable)


@dataclass(frozen=True)
class MeasurePartition:
    """Partition function: read every pair of one task (files or one shard) and measure it."""

    measure: MeasureConfig
    a_channels: int
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, task: Any) -> PartitionRows:
        measurer = PairMeasurer(self.measure)
        result = PartitionRows()
        for ref, outcome in iter_pairs(task, self.a_channels, self.max_pixels):
            if isinstance(outcome, SampleError):
                result.unreadable.append({"key": ref["key"], "split": ref["split"], "path": ref["path"],
                                          "problem": "unreadable", "reason": outcome.reason,
                                          "detail": outcome.detail, "count": ref.get("count", 1)})
                continue
            a, b = outcome
            measured = capture(lambda pair: measurer.measure(*pair), (a, b))
            if isinstance(measured, SampleError):
                result.unreadable.append({"key": ref["key"], "split": ref["split"], "path": ref["path"],
                                          "problem": "unreadable", "reason": measured.reason,
                                          "detail": measured.detail, "count": 1})
                continue
            row = {"key": ref["key"], "split": ref["split"], "path": ref["path"], **measured.__dict__,
                   "shift": round(measured.shift, 3),
                   # 17 + 17 hashes as packed bytes: a tenth of the memory of Python int lists
                   "phashes": np.array(measured.phashes, dtype=np.uint64).tobytes(),
                   "dhashes": hash_words(measured.dhashes, DHASH_WORDS).tobytes()}
            result.rows.append(row)
        return result


Decoded = tuple[np.ndarray, np.ndarray]


def iter_pairs(task: Any, a_channels: int, max_pixels: int = DEFAULT_MAX_PIXELS,
               wanted: set[str] | None = None) -> Iterator[tuple[dict[str, Any], Decoded | SampleError]]:
    """Decode the pairs of one task: a tuple of :class:`PairRef` or one :class:`ShardRef`.

    Yields ``(reference, (A, B) or SampleError)``; a reference is ``{"key", "split", "path"}``
    plus ``"count"`` when one error stands for several samples (a shard that cannot be read).
    """
    if isinstance(task, ShardRef):
        yield from _iter_shard(task, a_channels, wanted)
        return
    for ref in task:
        if wanted is not None and f"{ref.split}/{ref.key}" not in wanted:
            continue
        reference = {"key": ref.key, "split": ref.split, "path": ref.path}
        try:
            yield reference, split_ab(read_image(ref.path, max_pixels), a_channels)
        except SampleError as exc:
            yield reference, exc


def _iter_shard(shard: ShardRef, a_channels: int,
                wanted: set[str] | None) -> Iterator[tuple[dict[str, Any], Decoded | SampleError]]:
    reading = ShardReading(shard.path, shard.expected)
    chosen = None if wanted is None else (lambda index, key: f"{shard.split}/{key}" in wanted)
    for key, fields in read_shard(reading, chosen):
        yield from _decode_sample(shard, key, fields, a_channels, wanted)
    if wanted is None and reading.lost():
        yield ({"key": None, "split": shard.split, "path": shard.path, "count": max(1, reading.missing)},
               SampleError("unreadable shard", reading.lost()))


def _decode_sample(shard: ShardRef, key: str, fields: dict[str, bytes], a_channels: int,
                   wanted: set[str] | None) -> Iterator[tuple[dict[str, Any], Decoded | SampleError]]:
    if wanted is not None and f"{shard.split}/{key}" not in wanted:
        return
    reference = {"key": key, "split": shard.split, "path": f"{shard.path}#{key}"}
    try:
        yield reference, decode_shard_sample(fields, gray_a=a_channels == 1)
    except SampleError as exc:
        yield reference, exc


@dataclass
class CheckResult:
    """Everything the check found; ``seen == checked + unreadable`` always."""

    source: DatasetSource
    config: CheckConfig
    rows: list[dict[str, Any]]
    unreadable: list[dict[str, Any]]
    flagged: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    fences: dict[str, Any]
    class_stats: dict[str, Any]
    seconds: float = 0.0
    runner: str = ""

    @property
    def seen(self) -> int:
        return self.checked + self.unreadable_count

    @property
    def checked(self) -> int:
        return len(self.rows)

    @property
    def unreadable_count(self) -> int:
        return sum(row["count"] for row in self.unreadable)

    def problem_counts(self) -> Counter:
        return Counter(row["problem"] for row in self.flagged)

    def flagged_pairs(self) -> int:
        return len({(row["split"], row["key"]) for row in self.flagged if row["key"] is not None})

    def summary_rows(self) -> list[tuple[str, Any]]:
        counts = self.problem_counts()
        rows: list[tuple[str, Any]] = [("seen", self.seen), ("checked", self.checked),
                                       ("unreadable", self.unreadable_count),
                                       ("pairs flagged", self.flagged_pairs())]
        rows += [(f"  {problem}", counts[problem]) for problem in PROBLEMS if counts.get(problem)]
        leaking = sum(1 for cluster in self.clusters if cluster["leakage"])
        rows += [("duplicate clusters", len(self.clusters)), ("  spanning splits (leakage)", leaking)]
        return rows


def measured_kind(kind: str) -> str:
    """The kind whose measures check a dataset: its own, or ``generic`` (shift alone) for a kind
    no measure knows (a builder registered after the check was written)."""
    return kinds.of(kind).check_measure


def measure_config_for(source: DatasetSource, edge_recipe: Any = None) -> MeasureConfig:
    """The per-pair measures fit to the dataset's kind, palette and recorded stage."""
    from pairforge.check.measures import EdgeRecipe

    space = str(source.stage.get("config", {}).get("space", "luma")) if kinds.of(source.kind).lightness else "luma"
    if edge_recipe is None:
        # Canny checking a dataset made by another recorded detector (HED) is a proxy
        edge_recipe = EdgeRecipe(proxy=kinds.measured(source.kind).edge_map and source.stage.get("config", {}).get("detector") not in (None, "canny"))
    return MeasureConfig(kind=measured_kind(source.kind), gray_space=space if space in ("luma", "lab") else "luma",
                         palette_colors=source.class_colors if kinds.measured(source.kind).palette else (),
                         edge_recipe=edge_recipe)


def run_check(
    source: DatasetSource,
    config: CheckConfig,
    runner: RunnerConfig,
    measure: MeasureConfig | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Callable[[int], Any] | None = None,
) -> CheckResult:
    """Measure every pair on the runner, then judge the dataset (no files written; see :func:`write_outputs`)."""
    import time

    start = time.perf_counter()
    measure = measure or measure_config_for(source)
    function = MeasurePartition(measure, source.a_channels, max_pixels)
    results = run_partitions(function, list(source.tasks), runner,
                             on_result=(lambda part: on_progress(part.seen)) if on_progress else None)
    rows = sorted((row for part in results for row in part.rows), key=lambda row: (row["split"], row["key"]))
    unreadable = list(source.early_unreadable) + [row for part in results for row in part.unreadable]
    result = judge(source, config, rows, unreadable)
    result.seconds = time.perf_counter() - start
    result.runner = runner.describe()
    if source.layout == "pairs":
        assert result.seen == source.expected, f"lost pairs: {result.seen} seen of {source.expected}"
    return result


def judge(source: DatasetSource, config: CheckConfig, rows: list[dict[str, Any]],
          unreadable: list[dict[str, Any]]) -> CheckResult:
    """Turn measured rows into flags, duplicate clusters and class statistics."""
    flagged: list[dict[str, Any]] = [
        {"key": row["key"], "split": row["split"], "problem": "unreadable",
         "value": f"{row['reason']}: {row['detail']}" if row.get("detail") else row["reason"],
         "threshold": None, "path": row["path"], "count": row["count"]}
        for row in unreadable
    ]

    def flag(row: dict[str, Any], problem: str, value: Any, threshold: Any, **extra: Any) -> None:
        flagged.append({"key": row["key"], "split": row["split"], "problem": problem, "value": value,
                        "threshold": threshold, "path": row["path"], **extra})

    fences: dict[str, Any] = {"max_shift": config.max_shift}
    agreement_fence = _agreement_fence(rows, config)
    fences["agreement"] = agreement_fence
    aspect, area = _size_medians(rows)
    fences.update({"median_aspect": aspect, "median_pixels": area})
    if kinds.measured(source.kind).palette:
        needed = uncertain = config.label_min_gain
    else:
        needed, uncertain = config.min_evidence, config.uncertain_evidence
    fences.update(shift_evidence=needed, uncertain_evidence=uncertain)
    for row in rows:
        if row["shift"] > config.max_shift:
            alignment = _alignment_problem(row["evidence"], needed, uncertain)
            if alignment:
                flag(row, alignment, round(row["shift"], 2), config.max_shift, shift=[row["shift_x"], row["shift_y"]],
                     confidence=row["confidence"], evidence=row["evidence"], evidence_needed=needed)
        if agreement_fence is not None and row["agreement"] is not None and row["agreement"] < agreement_fence["fence"]:
            flag(row, "low agreement", row["agreement"], round(agreement_fence["fence"], 4))
        if kinds.measured(source.kind).edge_map and row["edge_density"] < config.min_edge_density:
            flag(row, "near-empty A", row["edge_density"], config.min_edge_density)
        elif row["std_a"] < config.near_constant_std:
            flag(row, "near-constant A", row["std_a"], config.near_constant_std)
        if row["std_b"] < config.near_constant_std:
            flag(row, "near-constant B", row["std_b"], config.near_constant_std)
        outside = (row.get("class_pixels") or {}).get(-1, 0)
        if outside:
            flag(row, "outside palette", outside, 0)
        ratio = row["width"] / row["height"]
        if aspect and abs(math.log(ratio / aspect)) > math.log(1 + config.aspect_tolerance):
            flag(row, "aspect outlier", round(ratio, 3), [round(aspect / (1 + config.aspect_tolerance), 3),
                                                          round(aspect * (1 + config.aspect_tolerance), 3)])
        pixels = row["width"] * row["height"]
        if area and abs(math.log(pixels / area)) > math.log(config.area_factor):
            flag(row, "size outlier", pixels, [round(area / config.area_factor), round(area * config.area_factor)])
    clusters = _duplicate_clusters(rows, config)
    for cluster in clusters:
        for member in cluster["members"]:
            row = rows[member["index"]]
            if cluster["leakage"]:
                problem = "leakage"
            else:
                problem = "exact duplicate" if member["exact"] else "near duplicate"
            flag(row, problem, member["distance"], 0 if problem == "exact duplicate" else config.near_distance,
                 cluster=cluster["id"], splits=cluster["splits"])
    class_stats = _class_stats(source, rows)
    for name in class_stats.get("missing_from_val", []):
        flagged.append({"key": None, "split": "val", "problem": "class missing from val", "value": name,
                        "threshold": 1, "path": None})
    rank = {problem: index for index, problem in enumerate(PROBLEMS)}
    flagged.sort(key=lambda row: (rank.get(row["problem"], len(rank)), row["split"] or "", row["key"] or "",
                                  str(row.get("path"))))
    return CheckResult(source, config, rows, unreadable, flagged, clusters, fences, class_stats)


def _alignment_problem(evidence: float, needed: float, uncertain: float) -> str | None:
    """``misaligned`` when a shift explains B better than no shift by the needed margin; ``alignment
    uncertain`` when it does by at least ``uncertain``; else no problem (no shift does about as well,
    e.g. a period of a facade's window grid)."""
    if evidence >= needed:
        return "misaligned"
    if evidence >= uncertain:
        return "alignment uncertain"
    return None


def _agreement_fence(rows: list[dict[str, Any]], config: CheckConfig) -> dict[str, float] | None:
    values = np.array([row["agreement"] for row in rows if row["agreement"] is not None], dtype=np.float64)
    if len(values) < config.min_pairs_for_outliers:
        return None
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    margin = max(config.outlier_z * 1.4826 * mad, config.min_margin)
    return {"median": round(median, 4), "mad": round(mad, 4), "fence": median - margin}


def _size_medians(rows: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    if not rows:
        return None, None
    widths = np.array([row["width"] for row in rows], dtype=np.float64)
    heights = np.array([row["height"] for row in rows], dtype=np.float64)
    return float(np.median(widths / heights)), float(np.median(widths * heights))


def _duplicate_clusters(rows: list[dict[str, Any]], config: CheckConfig) -> list[dict[str, Any]]:
    """Exact (same decoded B pixels) and near-duplicate (pHash views) clusters of B."""
    if not rows:
        return []
    by_hash: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_hash.setdefault(row["pixel_hash"], []).append(index)
    exact_first, exact_second = [], []
    for members in by_hash.values():
        exact_first += [members[0]] * (len(members) - 1)
        exact_second += members[1:]
    hashed = [index for index, row in enumerate(rows) if row["std_b"] >= config.hash_min_std]
    phashes = [_hashes(rows[index]["phashes"]) for index in hashed]
    dhashes = [_hashes(rows[index]["dhashes"], DHASH_WORDS) for index in hashed]
    queries = np.array([values[0] for values in phashes], dtype=np.uint64)
    views = np.concatenate(phashes) if phashes else np.zeros(0, dtype=np.uint64)
    owners = np.repeat(np.arange(len(hashed)), [len(values) for values in phashes])
    verify = (np.array([values[0] for values in dhashes], dtype=np.uint64).reshape(-1, DHASH_WORDS),
              np.concatenate(dhashes) if dhashes else np.zeros((0, DHASH_WORDS), dtype=np.uint64),
              config.verify_distance)
    near_first, near_second, near_distance = near_pairs(queries, views, owners, config.near_distance, verify=verify)
    lookup = np.array(hashed, dtype=np.int64)
    first = np.concatenate([np.array(exact_first, dtype=np.int64), lookup[near_first]])
    second = np.concatenate([np.array(exact_second, dtype=np.int64), lookup[near_second]])
    distance = np.concatenate([np.zeros(len(exact_first), dtype=np.int64), near_distance])
    closest: dict[int, int] = {}
    for a, b, d in zip(first.tolist(), second.tolist(), distance.tolist(), strict=True):
        for node in (a, b):
            closest[node] = min(closest.get(node, d), d)
    found = []
    for number, group in enumerate(connected_clusters(len(rows), first, second), start=1):
        splits = sorted({rows[index]["split"] for index in group})
        copies = Counter(rows[index]["pixel_hash"] for index in group)
        # exact: another member has the same decoded pixels (pHash distance 0 alone is a resize or re-encode)
        members = [{"index": index, "key": rows[index]["key"], "split": rows[index]["split"],
                    "distance": closest[index], "exact": copies[rows[index]["pixel_hash"]] > 1} for index in group]
        found.append({"id": number, "size": len(group), "splits": splits, "leakage": len(splits) > 1,
                      "exact": len(copies) == 1, "members": members})
    found.sort(key=lambda cluster: (not cluster["leakage"], -cluster["size"], cluster["id"]))
    return found


def _hashes(value: bytes | Sequence[int], words: int = 1) -> np.ndarray:
    """View hashes of one row as uint64, ``(views,)`` or ``(views, words)`` (rows carry them packed as bytes)."""
    if isinstance(value, bytes):
        array = np.frombuffer(value, dtype=np.uint64)
        return array if words == 1 else array.reshape(-1, words)
    return np.asarray(value, dtype=np.uint64) if words == 1 else hash_words(value, words)


def _class_stats(source: DatasetSource, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per split and class: pixels and images (labels datasets), and classes never seen in val."""
    if not kinds.of(source.kind).palette or not source.class_names:
        return {}
    names = source.class_names
    splits: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        counts = splits.setdefault(row["split"] or "all", {name: [0, 0] for name in names})
        for index, pixels in (row.get("class_pixels") or {}).items():
            if index < 0:
                continue
            counts[names[index]][0] += pixels
            counts[names[index]][1] += 1
    stats: dict[str, Any] = {"classes": names, "splits": {
        split: {name: {"pixels": value[0], "images": value[1]} for name, value in counts.items()}
        for split, counts in sorted(splits.items())}}
    if "val" in splits:
        elsewhere = {name for split, counts in splits.items() if split != "val" for name, v in counts.items() if v[1]}
        stats["missing_from_val"] = [name for name in names if name in elsewhere and not splits["val"][name][1]]
    return stats


def fix_splits(result: CheckResult) -> tuple[list[dict[str, str]], int]:
    """A split for every checked pair that keeps each duplicate cluster in one split.

    Returns:
        (assignment rows ``{"key", "from", "split"}``, pairs moved).
    """
    from pairforge.splitfile import cluster_split

    target: dict[int, str] = {}
    for cluster in result.clusters:
        split = cluster_split([member["split"] for member in cluster["members"]])
        for member in cluster["members"]:
            target[member["index"]] = split
    rows = [{"key": row["key"], "from": row["split"], "split": target.get(index, row["split"])}
            for index, row in enumerate(result.rows)]
    return rows, sum(1 for row in rows if row["from"] != row["split"])


def check_json(result: CheckResult) -> dict[str, Any]:
    """The machine-readable summary written as check.json."""
    from pairforge import __version__

    source = result.source
    measured = {name: _distribution([row[name] for row in result.rows if row[name] is not None])
                for name in ("shift", "confidence", "evidence", "agreement", "edge_density", "std_a", "std_b")}
    return {
        "format": CHECK_FORMAT,
        "created_by": f"pairforge {__version__}",
        "source": {"path": source.root, "layout": source.layout, "kind": source.kind,
                   "measured_as": measured_kind(source.kind), "a_channels": source.a_channels,
                   "modified_shards": [{"name": m.name, "reason": m.reason} for m in source.modified]},
        "counts": {"seen": result.seen, "checked": result.checked, "unreadable": result.unreadable_count,
                   "flagged_pairs": result.flagged_pairs(),
                   "splits": dict(sorted(Counter(row["split"] or "all" for row in result.rows).items()))},
        "problems": dict(sorted(result.problem_counts().items())),
        "thresholds": {name: value for name, value in result.config.__dict__.items() if name != "out_dir"},
        "fences": result.fences,
        "measures": measured,
        "clusters": [{**{k: v for k, v in cluster.items() if k != "members"},
                      "members": [{k: v for k, v in member.items() if k != "index"} for member in cluster["members"]]}
                     for cluster in result.clusters],
        "classes": result.class_stats,
        "runner": result.runner,
        "seconds": round(result.seconds, 2),
    }


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=np.float64)
    quantiles = np.quantile(array, [0.01, 0.5, 0.99])
    return {"count": len(array), "min": round(float(array.min()), 5), "p01": round(float(quantiles[0]), 5),
            "median": round(float(quantiles[1]), 5), "p99": round(float(quantiles[2]), 5),
            "max": round(float(array.max()), 5)}


def write_outputs(result: CheckResult) -> dict[str, Path]:
    """Write check.json and flagged.jsonl into the output folder; returns their paths."""
    out_dir = Path(result.config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "check.json", "flagged": out_dir / "flagged.jsonl"}
    write_json(paths["json"], check_json(result))
    write_jsonl(paths["flagged"], result.flagged)
    return paths
