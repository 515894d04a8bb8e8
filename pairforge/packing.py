"""Packing a finished shard set (tars, dataset.json, data card): ``shard`` from a pair folder, and fused builders.

:func:`shard_pair_folder` is all that ``pairforge shard`` does: it decides which files of a
pair folder are packed (its manifest, or for an official pix2pix folder the AB look of its
images), how they are read (``--direction BtoA`` swaps the halves), and writes the shards
(:func:`pairforge.shards.write_shard_set`) and then the card. :func:`build_shard_set` is a
builder's fused ``--shards`` mode: a stage's pairs go straight into shards.

This sits above :mod:`pairforge.shards` (the format: layout, writer, readers, verification),
which knows nothing of pair folders, builders or cards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pairforge import storage
from pairforge.build import ProgressFactory, builder_runner, no_progress, prepare_stage
from pairforge.datacard import render_card, write_card
from pairforge.errors import ConfigError, DatasetError, SampleError, reject_row
from pairforge.imageio import DEFAULT_MAX_PIXELS, read_image_size
from pairforge.matching import collision_lines, source_items
from pairforge.outputs import SHARD_FOLDER, own_output
from pairforge.pairs import MANIFEST_NAME, FoundFile, PairsInfo, discover, read_jsonl
from pairforge.paths import absolute, ensure_output_dir
from pairforge.runner import RunnerConfig
from pairforge.sample import PairSample
from pairforge.shards import DatasetInfo, ShardConfig, ShardSummary, write_shard_set
from pairforge.sources import PairFileReader, SourceItem, StageSpec
from pairforge.storage import Location, child, is_url, safe_url

log = logging.getLogger(__name__)

DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class PairFolderInput:
    """How ``shard`` reads a pair folder.

    Attributes:
        direction: ``AtoB``, or ``BtoA`` when the files hold B|A (the reference's facades,
            cityscapes, maps): the halves are swapped so A is the input, and dataset.json
            describes the swapped pair (kind generic, RGB A).
        force_ab: take every image of a folder without pairs.json as an AB pair, even when
            most do not look like one (width = 2 x height).
        max_pixels: reject images whose header claims more pixels than this.
    """

    direction: str = "AtoB"
    force_ab: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError("direction", self.direction, " | ".join(DIRECTIONS))
        if self.max_pixels < 1:
            raise ConfigError("max_pixels", self.max_pixels, "a positive integer")


@dataclass(frozen=True)
class CardFields:
    """What the user tells the data card that pairforge cannot know (unset: marked to be filled)."""

    license: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ShardSetResult:
    """A finished shard set, for the CLI's closing lines.

    Attributes:
        config: the layout it was written with (``out_dir`` as the caller gave it).
        summary: totals (seen = written + rejected).
        dataset: the dataset.json written.
        card_path: DATA_CARD.md.
        collisions: input names renamed ``key-2``, ``key-3``... because they sanitise to one key.
    """

    config: ShardConfig
    summary: ShardSummary
    dataset: dict[str, Any]
    card_path: Path
    collisions: int = 0


def shard_pair_folder(
    pairs_dir: Path | str,
    config: ShardConfig,
    reading: PairFolderInput = PairFolderInput(),
    runner: RunnerConfig | None = None,
    *,
    card: CardFields = CardFields(),
    command: str = "",
    progress: ProgressFactory = no_progress,
    warn: Callable[[str], Any] = log.warning,
) -> ShardSetResult:
    """Pack a pair folder (pairforge's or an official pix2pix dataset) into a shard set with its data card.

    A folder with pairs.json packs what its manifest.jsonl lists (other images become
    ``not in manifest`` rejects); a folder without one is taken as AB pairs when its images
    mostly look like pairs (or ``reading.force_ab``). The output folder is owned for the run
    (:func:`pairforge.outputs.own_output`) before any work.

    Args:
        pairs_dir: the pair folder: a local path or a URL (``s3://bucket/pairs``, read through
            :mod:`pairforge.storage`; each worker reads its own pair objects).
        config: the shard layout (``out_dir``: the shard folder).
        reading: how the pair files are read.
        runner: where the shard tasks run (default: one worker, in this process).
        card: data-card fields the user gave.
        command: the command line, recorded in the card after the one that made the pairs.
        progress: opens the progress bar.
        warn: receives each warning line for the user (unlisted files, key collisions).

    Raises:
        DatasetError: no such folder, or (without ``force_ab``) a folder of photos rather than pairs.
        OutputError, FolderBusyError, NothingUsableError: as :func:`pairforge.shards.write_shard_set`.
    """
    if not is_url(pairs_dir) and not Path(pairs_dir).exists():
        raise DatasetError(
            f"pair folder {pairs_dir} not found: make one with `pairforge make-edges PHOTOS` or "
            "`pairforge combine A_DIR B_DIR`, or pass an existing pix2pix dataset folder"
        )
    with own_output(config.out_dir, SHARD_FOLDER, {pairs_dir: "pair folder"}):  # before any work; one writer
        read_info = PairsInfo.read(pairs_dir)
        info = read_info or PairsInfo(kind="generic", a_channels=3, command="(official pix2pix layout)")
        found, rejects = discover(pairs_dir)
        if read_info is not None:
            found, unlisted = _manifest_listed(pairs_dir, found)
            rejects += unlisted
            if unlisted:
                warn(f"warning: {len(unlisted)} files in {pairs_dir} are not in its manifest.jsonl (left from an "
                     "earlier build?); not packed, listed in rejects.jsonl")
        elif not reading.force_ab:
            _require_ab_layout(pairs_dir, [entry.path for entry in found])
        items, collisions = source_items(found)
        for line in collision_lines(collisions):
            warn(line)
        reader, dataset_info = _reading(pairs_dir, info, reading)
        result = shard_with_card(items, reader, dataset_info, config, runner or RunnerConfig(), rejects,
                                 [c for c in (info.command, command) if c], card, progress=progress)
    return replace(result, collisions=len(collisions))


def _reading(pairs_dir: Path | str, info: PairsInfo, reading: PairFolderInput) -> tuple[PairFileReader, DatasetInfo]:
    """The reader of the pair files and what dataset.json records about them (``info``: the pairs.json)."""
    if reading.direction == "BtoA":  # A is now the right half: no longer what the recorded stage made
        reader = PairFileReader(a_channels=3, kind="generic", max_pixels=reading.max_pixels, swap=True)
        return reader, DatasetInfo(kind="generic", a_channels=3, palette=None, source={
            "kind": "generic", "stage": {}, "command": info.command, "pairs_dir": str(pairs_dir),
            "direction": "BtoA", "swapped_from_kind": info.kind})
    reader = PairFileReader(a_channels=info.a_channels, kind=info.kind, max_pixels=reading.max_pixels)
    return reader, DatasetInfo(
        kind=info.kind,
        a_channels=info.a_channels,
        palette=info.palette,
        source={"kind": info.kind, "stage": info.stage, "command": info.command},
        root=str(pairs_dir),
    )


def _manifest_listed(pairs_dir: Path | str, found: list[FoundFile]) -> tuple[list[FoundFile], list[dict[str, str]]]:
    """Split found files into those manifest.jsonl lists and reject rows for the rest."""
    manifest = child(pairs_dir, MANIFEST_NAME)
    if not Location(os.fspath(manifest)).is_file():
        return found, []
    listed = {row["path"] for row in read_jsonl(manifest) if "path" in row}
    if is_url(pairs_dir):
        prefix = safe_url(pairs_dir).rstrip("/") + "/"
        relative = [entry.path[len(prefix):] for entry in found]  # discover names objects under safe_url(root)
    else:
        root = Path(absolute(pairs_dir))
        relative = [Path(entry.path).relative_to(root).as_posix() for entry in found]
    kept, rejects = [], []
    for entry, name in zip(found, relative, strict=True):
        if name in listed:
            kept.append(entry)
        else:
            rejects.append(reject_row(entry.path, "not in manifest",
                                      f"not listed in {MANIFEST_NAME}: not made by the build that wrote it"))
    return kept, rejects


def _require_ab_layout(folder: Path | str, paths: list[str]) -> None:
    """Refuse a folder whose images mostly do not look like AB pairs (width = 2 x height), saying what to run instead.

    Every reference pix2pix dataset (facades, edges2shoes, maps...) is 2:1; ordinary photos
    and label maps are not, and cutting them in two makes nonsense pairs.

    Raises:
        DatasetError: naming an odd size, the builder to run instead and ``--force-ab``.
    """
    sizes = []
    for path in paths:
        try:
            sizes.append(read_image_size(path))  # header only; a FIFO or device is never opened for reading
        except SampleError:  # rejected with its reason during the run
            continue
    odd = [size for size in sizes if size[0] != 2 * size[1]]
    if 2 * len(odd) <= len(sizes):  # mostly pairs: the odd ones are rejected one by one with their reason
        return
    if is_url(folder):
        children = set(storage.names(folder))
        has_palette = "palette.json" in children
    else:
        children = {p.name for p in Path(folder).iterdir() if p.is_dir()}
        has_palette = (Path(folder) / "palette.json").exists()
    if {"photos", "labels"} <= children:
        instead = f"`pairforge make-labels {child(folder, 'photos')} --labels {child(folder, 'labels')}`"
        if has_palette:
            instead += f" --palette {child(folder, 'palette.json')}"
    else:
        instead = f"`pairforge make-edges {folder}`, `pairforge make-gray {folder}`, or `pairforge combine A_DIR B_DIR`"
    width, height = odd[0]
    raise DatasetError(
        f"{folder} has no pairs.json and {len(odd)} of its {len(sizes)} images do not look like AB pairs "
        f"(width = 2 x height; e.g. {width}x{height}): they look like photos or label maps, and packing them would cut "
        f"each in two. To make pairs from them run {instead}; to pack them as AB pairs anyway pass --force-ab."
    )


def build_shard_set(
    spec: StageSpec,
    items: Sequence[SourceItem],
    config: ShardConfig,
    runner: RunnerConfig | None = None,
    *,
    photos: str,
    command: str,
    rejects: Sequence[dict[str, str]] = (),
    max_pixels: int | None = None,
    workers_reason: str = "",
    card: CardFields = CardFields(),
    progress: ProgressFactory = no_progress,
) -> ShardSetResult:
    """A builder's fused mode: run one stage over ``items`` straight into a shard set and its data card.

    The output folder is checked writable first, then the stage is built (config validated,
    weights loaded) before any image is decoded; its description is recorded in dataset.json
    (``source.stage``), as :func:`pairforge.build.build_pair_folder` records it in pairs.json.

    Args:
        spec: the stage (``module:Class`` and its config).
        items: the photos (with extras such as label maps), keys unique.
        config: the shard layout.
        runner: where the shard tasks run (default: :func:`pairforge.build.builder_runner` with no ``-j``).
        photos: the input folder (the shard set's root: sample sources are recorded relative to it).
        command: the command line, recorded in dataset.json and the card.
        rejects: inputs rejected before the run (unmatched, unsupported...).
        max_pixels: decoding limit per photo (default: :data:`pairforge.imageio.DEFAULT_MAX_PIXELS`).
        workers_reason: why the runner uses fewer processes (shown on the progress label).
        card: data-card fields the user gave.
        progress: opens the progress bar.

    Raises:
        OutputError, NothingUsableError: as :func:`pairforge.shards.write_shard_set`.
        ConfigError: the stage's config is invalid (before any work).
    """
    if runner is None:
        runner, workers_reason = builder_runner(spec, None, None)
    ensure_output_dir(config.out_dir, SHARD_FOLDER)
    stage = prepare_stage(spec, command, max_pixels)
    info = DatasetInfo(kind=stage.kind, a_channels=stage.a_channels, palette=stage.palette,
                       source={"kind": stage.kind, "stage": stage.description, "command": command}, root=photos)
    return shard_with_card(items, stage.reader, info, config, runner, rejects, [command], card, workers_reason,
                           progress)


def shard_with_card(
    items: Sequence[SourceItem],
    reader: Callable[[SourceItem], PairSample],
    info: DatasetInfo,
    config: ShardConfig,
    runner: RunnerConfig,
    rejects: Sequence[dict[str, str]],
    commands: list[str],
    card: CardFields = CardFields(),
    workers_reason: str = "",
    progress: ProgressFactory = no_progress,
) -> ShardSetResult:
    """Write a shard set (:func:`pairforge.shards.write_shard_set`), then its data card from the dataset.json written.

    Args:
        commands: the command lines that made the data, oldest first (listed in the card).
    """
    label = f"shard ({runner.describe()}{': ' + workers_reason if workers_reason else ''})"
    with progress(len(items), label) as advance:
        summary = write_shard_set(items, reader, info, config, runner, early_rejects=rejects, on_progress=advance)
    text = render_card(summary.dataset, summary.seen, dict(summary.rejected), commands, license=card.license,
                       source=card.source)
    return ShardSetResult(config, summary, summary.dataset, write_card(config.out_dir, text))
