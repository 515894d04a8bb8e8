"""Writing a pair folder: run a reader over input items on the Dask runner, one partition per task."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pairforge.descriptions import recipe, upgrade
from pairforge.errors import ConfigError, DatasetError
from pairforge.files import is_temporary_name, write_atomic
from pairforge.imageio import encode_image, is_image_path
from pairforge.keys import chunk
from pairforge.pairs import (
    MANIFEST_NAME,
    PairsInfo,
    join_ab,
    summary_rows,
    write_jsonl,
)
from pairforge.paths import absolute, describe_path, ensure_output_dir
from pairforge.runner import RunnerConfig, default_workers
from pairforge.sample import PairSample
from pairforge.sources import SourceItem, StageSpec, iter_samples
from pairforge.tally import run_writers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairFolderConfig:
    """How AB files are written.

    Attributes:
        out_dir: the pair folder.
        image_format: ``png`` (default; lossless) or ``jpg``.
        quality: JPEG quality when ``image_format`` is ``jpg``.
        overwrite: replace a pair folder made by a different config (or not by
            pairforge); without it such a folder is refused.
    """

    out_dir: str
    image_format: str = "png"
    quality: int = 95
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.image_format not in ("png", "jpg"):
            raise ConfigError("format", self.image_format, "png | jpg")
        if not 1 <= self.quality <= 100:
            raise ConfigError("quality", self.quality, "an integer from 1 to 100")


@dataclass
class PartitionResult:
    """What one partition reports back: small rows, never pixels."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, str]] = field(default_factory=list)
    a_channels: Counter = field(default_factory=Counter)

    @property
    def written(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class WritePairs:
    """Partition function: read each item, build its pair, write ``<split>/<key>.<ext>``."""

    reader: Callable[[SourceItem], PairSample]
    config: PairFolderConfig

    def __call__(self, items: Sequence[SourceItem]) -> PartitionResult:
        result = PartitionResult()
        out_dir = Path(self.config.out_dir)
        for item, outcome in iter_samples(self.reader, list(items)):
            if not isinstance(outcome, PairSample):
                result.rejects.append(outcome.row(item.path, item.key))
                continue
            data = encode_image(join_ab(outcome.a, outcome.b), self.config.image_format, self.config.quality)
            relative = Path(item.split or ".") / f"{item.key}.{self.config.image_format}"
            target = out_dir / relative
            write_atomic(target, data)
            height, width = outcome.size
            result.a_channels[outcome.a_channels] += 1
            result.rows.append(
                {
                    "key": item.key,
                    "split": item.split,
                    "path": relative.as_posix(),
                    "source": item.path,
                    "height": height,
                    "width": width,
                    "kind": outcome.meta.get("kind", "generic"),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    **{k: v for k, v in outcome.meta.items() if k not in ("source", "kind")},
                }
            )
        return result


@dataclass
class BuildSummary:
    """Totals of a pair-folder build, for the CLI's closing table."""

    seen: int
    written: int
    rejected: Counter
    out_dir: str
    counts: dict[str, int]

    def as_rows(self) -> list[tuple[str, int]]:
        return summary_rows(self.seen, self.written, self.rejected)


def build_pairs(
    items: Sequence[SourceItem],
    reader: Callable[[SourceItem], PairSample],
    info: PairsInfo,
    config: PairFolderConfig,
    runner: RunnerConfig,
    early_rejects: Sequence[dict[str, str]] = (),
    on_progress: Callable[[int], Any] | None = None,
) -> BuildSummary:
    """Build a pair folder from input items.

    Args:
        items: the inputs, keys already unique.
        reader: picklable reader producing each pair (see :mod:`pairforge.sources`).
        info: ``pairs.json`` contents (counts are filled in here).
        config: output folder and format.
        runner: where the partitions run.
        early_rejects: inputs rejected before the run (unmatched, unsupported type...).
        on_progress: called with the number of inputs finished, as partitions complete.

    Returns:
        Totals; ``seen == written + rejected`` always.

    Raises:
        OutputError: the folder cannot be written (checked before any work).
        DatasetError: the folder holds pairs of a different config (and not ``config.overwrite``).
        NothingUsableError: no input gave a pair (after writing the manifests and rejects).
    """
    out_dir = Path(absolute(config.out_dir))
    config = replace(config, out_dir=str(out_dir))
    check_reuse(out_dir, info, config.overwrite)
    ensure_output_dir(out_dir, "pair folder")
    partitions = [list(part) for part in chunk(list(items), runner.partition_size)]
    results, tally = run_writers(WritePairs(reader, config), partitions, runner, out_dir, len(items), early_rejects,
                                 on_progress, unit="partitions of pairs", resume="the pair folder has no "
                                 "manifest yet: run the same command again to finish it before `pairforge shard`")
    rows = sorted((row for r in results for row in r.rows), key=lambda row: (row["split"], row["key"]))
    write_jsonl(out_dir / MANIFEST_NAME, rows)
    counts = Counter(row["split"] or "all" for row in rows)
    channels = Counter()
    for r in results:
        channels.update(r.a_channels)
    a_channels = channels.most_common(1)[0][0] if channels else info.a_channels
    PairsInfo(**{**info.to_json(), "counts": dict(counts), "a_channels": a_channels}).write(out_dir)
    summary = BuildSummary(tally.seen, tally.written, tally.rejected, str(out_dir), dict(counts))
    removed = remove_unlisted(out_dir, {row["path"] for row in rows})
    if removed:
        log.info("removed %d files of an earlier build that the new manifest does not list", removed)
    tally.require_some(out_dir)
    log.info("wrote %d pairs to %s (%d rejected)", summary.written, out_dir, len(tally.rejects))
    return summary


def check_reuse(out_dir: Path, info: PairsInfo, overwrite: bool) -> None:
    """Refuse to write into a non-empty folder made by a different config (unless ``overwrite``).

    Same kind and same stage description (builder, its parameters, weights) is the same
    config: the folder is brought up to date. Anything else would leave the earlier pairs
    beside the new ones, and ``shard`` would mix them.

    Raises:
        DatasetError: saying what the folder holds and how to go on.
    """
    if overwrite or not out_dir.is_dir() or not any(_visible_entries(out_dir)):
        return
    try:
        existing = PairsInfo.read(out_dir)
    except DatasetError:
        existing = None
    if existing is not None and existing.kind == info.kind and _same_recipe(existing, info):
        return
    if existing is None:
        what = "files that pairforge did not make (no pairs.json)"
    else:
        made_by = f" by `{existing.command}`" if existing.command else ""
        what = f"{existing.kind} pairs made{made_by} with a different config"
    raise DatasetError(
        f"{describe_path(out_dir)} already holds {what}; writing here would mix two datasets. "
        "Pass --overwrite to replace them, or choose another folder with -o."
    )


def _same_recipe(existing: PairsInfo, info: PairsInfo) -> bool:
    """Both stage descriptions make the same pairs (where they ran aside; any pairforge version)."""
    return recipe(existing.stage, existing.kind) == recipe(info.stage, info.kind)


def _visible_entries(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if not name.startswith(".")]


def remove_unlisted(out_dir: Path, listed: set[str]) -> int:
    """Delete pair images under ``out_dir`` that ``listed`` (manifest paths) does not name, and temporaries.

    Only image files and pairforge's own temporaries go; other files stay (``shard``
    reports them as unsupported). Returns how many files were removed.
    """
    removed = 0
    for directory, dirnames, filenames in os.walk(out_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(directory) / name
            relative = path.relative_to(out_dir).as_posix()
            if is_temporary_name(name) or (not name.startswith(".") and is_image_path(path) and relative not in listed):
                path.unlink(missing_ok=True)
                removed += 1
    return removed



ProgressFactory = Callable[[int, str], AbstractContextManager[Callable[[int], Any]]]
"""``progress(total, label)``: a context manager yielding ``advance(n)`` (the CLI's bar)."""


def no_progress(total: int, label: str) -> AbstractContextManager[Callable[[int], Any]]:
    """A :data:`ProgressFactory` that shows nothing (callers from Python)."""
    return nullcontext(lambda n: None)


@dataclass
class BuilderResult:
    """What a builder made in a pair folder, for the CLI's closing lines.

    Attributes:
        kind: the stage's kind.
        out_dir: the pair folder written.
        summary: its totals.
    """

    kind: str
    out_dir: Path
    summary: BuildSummary

    def as_rows(self) -> list[tuple[str, int]]:
        return self.summary.as_rows()


def builder_runner(spec: StageSpec, workers: int | None, scheduler: str | None) -> tuple[RunnerConfig, str]:
    """The runner for a builder and why it uses fewer processes than cores ("" when it does not).

    ``workers=None`` takes the stage class's workers hint (torch stages: one process), else
    every core; an explicit ``workers`` or a ``scheduler`` always wins.
    """
    from pairforge import registry

    hint, reason = registry.workers_hint(spec.stage_class(), spec.config)
    chosen = workers if workers is not None else (hint or default_workers())
    uses_hint = workers is None and hint is not None and not scheduler and bool(reason)
    return RunnerConfig(workers=chosen, scheduler=scheduler), reason if uses_hint else ""


@dataclass(frozen=True)
class PreparedStage:
    """A builder stage built and ready to run: what pairs.json / dataset.json record of it, and its reader.

    Attributes:
        kind, a_channels: the stage's.
        palette: its label palette as JSON (labels stages), else None.
        description: its ``describe()`` (``{"builder", "config", "provenance"}``, the command line in
            the provenance), recorded in pairs.json / dataset.json.
        reader: the picklable reader that runs it on each input item.
    """

    kind: str
    a_channels: int
    palette: dict[str, Any] | None
    description: dict[str, Any]
    reader: Callable[[SourceItem], PairSample]


def prepare_stage(spec: StageSpec, command: str, max_pixels: int | None = None) -> PreparedStage:
    """Build the stage of ``spec`` (validating its config, loading weights) before any image is decoded;
    ``command`` (the command line) goes into its description's provenance.

    Raises:
        ConfigError: the stage's config is invalid.
    """
    from pairforge.registry import name_of as registry_name
    from pairforge.sources import StageReader, cached_stage

    # validates the config (and loads weights) before any work starts; an in-process run reuses it
    stage = cached_stage(spec)
    palette = stage.palette.to_json() if hasattr(stage, "palette") else None
    description = upgrade(stage.describe(), registry_name(type(stage)))
    description["provenance"] = {**description.get("provenance", {}), "command": command}
    reader = StageReader(spec, max_pixels) if max_pixels is not None else StageReader(spec)
    return PreparedStage(stage.kind, stage.a_channels, palette, description, reader)


def build_pair_folder(
    spec: StageSpec,
    items: Sequence[SourceItem],
    output: PairFolderConfig,
    runner: RunnerConfig | None = None,
    *,
    command: str,
    rejects: Sequence[dict[str, str]] = (),
    max_pixels: int | None = None,
    workers_reason: str = "",
    progress: ProgressFactory = no_progress,
) -> BuilderResult:
    """Run one builder stage over ``items`` into a pair folder (the fused ``--shards`` mode:
    :func:`pairforge.packing.build_shard_set`).

    The output folder is checked writable first, then the stage is built (its config
    validated, weights loaded) before any image is decoded; its ``describe()`` (plus
    ``builder``: the stage's ``module:Class``) is recorded in pairs.json.

    Args:
        spec: the stage (``module:Class`` and its config).
        items: the photos (with extras such as label maps), keys unique.
        output: the pair folder and its format.
        runner: where partitions run (default: :func:`builder_runner` with no ``-j``).
        command: the command line, recorded in pairs.json.
        rejects: inputs rejected before the run (unmatched, unsupported...).
        max_pixels: decoding limit per photo (default: :data:`pairforge.imageio.DEFAULT_MAX_PIXELS`).
        workers_reason: why the runner uses fewer processes (shown on the progress label).
        progress: opens the progress bar (the CLI's; none by default).

    Raises:
        OutputError, DatasetError, NothingUsableError: as :func:`build_pairs`.
        ConfigError: the stage's config is invalid (before any work).
    """
    if runner is None:
        runner, workers_reason = builder_runner(spec, None, None)
    where = runner.describe()
    ensure_output_dir(output.out_dir, "pair folder")
    stage = prepare_stage(spec, command, max_pixels)
    info = PairsInfo(kind=stage.kind, a_channels=stage.a_channels, palette=stage.palette, stage=stage.description,
                     command=command)
    label = f"{stage.kind} pairs ({where}{'; ' + workers_reason if workers_reason else ''})"
    with progress(len(items), label) as advance:
        summary = build_pairs(items, stage.reader, info, output, runner, early_rejects=rejects, on_progress=advance)
    return BuilderResult(stage.kind, Path(output.out_dir), summary)
