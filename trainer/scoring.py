"""Scoring runs on a split of a shard set: the pairs, the run checks, one run's report, the comparison.

What ``pairforge evaluate`` writes per run (``metrics.json``, ``metrics.csv``, ``metrics.html``
with the best and worst examples) and, for several runs, ``compare.csv`` and ``compare.html``.
The per-sample scores themselves are :func:`pairforge.trainer.evaluation.evaluate_pairs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pairforge import kinds
from pairforge.errors import DatasetError, PairforgeError, SampleError
from pairforge.shards import ShardMismatch, decode_shard_sample
from pairforge.shardset import check_shards, recorded_shards, verify_shards
from pairforge.tars import ShardReading, read_shard
from pairforge.trainer.compare import PictureRow, table_rows, write_comparison
from pairforge.trainer.data import load_dataset_info
from pairforge.trainer.evaluation import EvaluationReport, Segmenter, evaluate_pairs, write_report
from pairforge.trainer.gallery import example_rows_html
from pairforge.trainer.inference import InferenceConfig, Predictor
from pairforge.trainer.transforms import colors_to_ids, palette_colors

logger = logging.getLogger(__name__)

Pair = tuple[str, np.ndarray, np.ndarray]
"""(key, A, B) uint8: A gray (edges, gray) or RGB (labels, generic), B RGB."""
SHOWN = 4
"""Samples shown for every run in compare.html."""


@dataclass(frozen=True)
class Scorers:
    """The task scores' tools (see :func:`~pairforge.trainer.evaluation.evaluate_pairs`); None skips a score."""

    edge_detector: Callable[[np.ndarray], np.ndarray] | None = None
    segmenter: Segmenter | None = None
    label_ids: Callable[[np.ndarray], np.ndarray] | None = None
    num_classes: int = 0


@dataclass
class RunScore:
    """One scored run: its table label, report, files, outputs (in pair order) and how it ran."""

    run: str
    label: str
    report: EvaluationReport
    paths: dict[str, Path]
    outputs: list[np.ndarray]
    predictor: Predictor

    def scale_words(self) -> str:
        if self.predictor.config.scale == "native":
            return "the stored resolution (--scale native)"
        return f"the training scale (shorter side {self.predictor.train_size} px, outputs resized back)"


@dataclass
class SplitPairs:
    """One split of a shard set, read for scoring.

    Attributes:
        dataset: the dataset facts (:meth:`pairforge.shards.DatasetInfo.to_dict`).
        pairs: the readable pairs.
        unreadable: samples dataset.json records that could not be read (corrupt samples,
            and samples missing from shards that end early).
        notes: one line per shard or sample that could not be read, and per modified shard used.
        modified: shards that differ from dataset.json, used as they are.
        allow_modified: whether such shards were allowed (``--allow-modified-shards``).
    """

    dataset: dict[str, Any]
    pairs: list[Pair]
    unreadable: int = 0
    notes: list[str] = field(default_factory=list)
    modified: list[ShardMismatch] = field(default_factory=list)
    allow_modified: bool = False

    def record(self) -> dict[str, Any]:
        """What evaluate's metrics.json says about the data it read."""
        return {"pairs": len(self.pairs), "unreadable_samples": self.unreadable, "unreadable": list(self.notes),
                "allow_modified_shards": self.allow_modified,
                "modified_shards": [{"name": m.name, "reason": m.reason} for m in self.modified]}


def load_split(shards: str, split: str, limit: int | None = None, allow_modified: bool = False) -> SplitPairs:
    """dataset.json facts and the (key, A, B) uint8 pairs of one split (A RGB for labels, else gray).

    The split's shards are verified against dataset.json first
    (:func:`pairforge.shards.verify_shard_set`). A sample that does not decode and the
    samples a shard lacks against dataset.json (a truncated tar) are skipped, each named in
    one line of ``notes`` and counted in ``unreadable``.

    Raises:
        DatasetError: no dataset.json, no such split, missing or unreadable shards.
        ModifiedShardsError: a shard differs from dataset.json and ``allow_modified`` is false.
    """
    info = load_dataset_info(shards)
    urls = info.splits.get(split)
    if not urls:
        raise DatasetError(f"{shards}: no {split!r} split (dataset.json has {sorted(info.splits)})")
    check_shards(urls)
    result = SplitPairs(info.to_dict(), [], modified=verify_shards(info, urls, allow_modified=allow_modified),
                        allow_modified=allow_modified)
    for mismatch in result.modified:
        result.notes.append(mismatch.used_as_is())
    expected = {url: int(entry.get("count", 0)) for url, entry in recorded_shards(info).items()}
    gray_a = info.a_channels == 1 and not kinds.of(info.kind).palette
    for url in urls:
        if limit is not None and len(result.pairs) >= limit:
            break
        reading = ShardReading(url, expected.get(url))
        for key, fields in read_shard(reading):  # a local file, or a URL read as a stream
            if limit is not None and len(result.pairs) >= limit:
                break
            try:
                a, b = decode_shard_sample(fields, gray_a)
            except SampleError as exc:
                result.unreadable += 1
                result.notes.append(f"shard {url}: sample {key} skipped ({exc})")
                continue
            result.pairs.append((key, a, b))
        else:
            if reading.problem():
                result.unreadable += reading.missing
                result.notes.append(reading.problem())
    return result


def palette_classes(palette: dict[str, Any] | None) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """(classes scored, colour-coded A -> ids) for a labels palette (the ignore class maps past the end).

    Raises:
        DatasetError: no palette (not a labels dataset).
    """
    if not palette:
        raise DatasetError("this dataset has no label palette (the FCN-score needs a labels dataset)")
    colors = palette_colors(palette)
    return len(palette.get("classes", [])), lambda a: colors_to_ids(a, colors)


def judge_scorers(dataset: dict[str, Any], shards: str, judge_dir: str | None, device: str) -> dict[str, Any]:
    """For a labels dataset: the judge (``judge_dir``, or SHARDS/judge when present) and the label ids."""
    if not kinds.of(dataset.get("kind")).palette:
        return {}
    from pairforge.trainer.judge import load_judge

    num_classes, label_ids = palette_classes(dataset.get("palette"))
    folder = Path(judge_dir) if judge_dir else Path(shards) / "judge"
    segmenter = None
    if judge_dir or (folder / "judge.json").is_file():
        segmenter = load_judge(folder, device)[0].segment
    return {"segmenter": segmenter, "label_ids": label_ids, "num_classes": num_classes}


def check_run_against_shards(run_path: str, run_config: dict[str, Any], dataset: dict[str, Any], shards: str) -> None:
    """Refuse a run trained on another kind of data than SHARDS (kind, A channels, label palette).

    Raises:
        DatasetError: what differs, and what to do.
    """
    trained = run_config.get("dataset", {})

    def facts(info: dict[str, Any]) -> str:
        text = f"{info.get('kind')} pairs, A with {info.get('a_channels')} channel(s)"
        classes = len((info.get("palette") or {}).get("classes", []))
        if classes:
            return text + f", {classes} label classes"
        return text + (", no label palette" if kinds.of(info.get("kind")).palette else "")

    problems = []
    if trained.get("kind") != dataset.get("kind"):
        problems.append(f"kind {trained.get('kind')!r} vs {dataset.get('kind')!r}")
    if trained.get("a_channels") != dataset.get("a_channels"):
        problems.append(f"A channels {trained.get('a_channels')} vs {dataset.get('a_channels')}")
    trained_colors = [c.get("color") for c in (trained.get("palette") or {}).get("classes", [])]
    data_colors = [c.get("color") for c in (dataset.get("palette") or {}).get("classes", [])]
    if trained_colors != data_colors:
        problems.append("the label palettes differ")
    if problems and "reference" in run_config:
        checkpoint = run_config["reference"].get("checkpoint") or "CHECKPOINT"
        raise DatasetError(
            f"{run_path} is a reference model imported for {facts(trained)}, but {shards} holds {facts(dataset)} "
            f"({'; '.join(problems)}): if it was trained on data like this, import it again with "
            f"`pairforge import {checkpoint} -o NEW_RUN --like {shards}`")
    if problems:
        raise DatasetError(
            f"{run_path} was trained on {facts(trained)}, but {shards} holds {facts(dataset)} "
            f"({'; '.join(problems)}): evaluate it on a shard set of its own kind, or train a run on this one")


def run_label(path: str, taken: Sequence[str]) -> str:
    """A short unique name for a run or checkpoint in tables (``00001-l1``, ``00001-l1/step-000001000``)."""
    folder = Path(path).resolve()
    label = folder.name if not folder.name.startswith("step-") else f"{folder.parent.parent.name}/{folder.name}"
    unique, index = label, 2
    while unique in taken:
        unique, index = f"{label} ({index})", index + 1
    return unique


def evaluate_run(run_path: str, label: str, generator: nn.Module, run_config: dict[str, Any], config: InferenceConfig,
                 pairs: Sequence[Pair], kind: str, scorers: Scorers, folder: Path, title: str,
                 advance: Callable[[int], None] = lambda n: None, data: SplitPairs | None = None) -> RunScore:
    """Predict every pair with one run, score the outputs and write its report to ``folder``.

    A run trained BtoA gets the stored B as its input (and is scored without the task scores of
    ``kind``, which are defined for A -> B); colorization runs take L from the target photo.

    Raises:
        PairforgeError: the run cannot take the shards' inputs (prefixed with ``run_path``).
    """
    try:
        predictor = Predictor(generator, run_config, config)
        run_pairs = _swapped(pairs, predictor.encoding.a_channels) if predictor.encoding.swapped else list(pairs)
        for _, a, _ in run_pairs[:1]:
            predictor.check_input(a, "the shards' input images")
    except PairforgeError as exc:
        raise PairforgeError(f"{run_path}: {exc}") from exc
    outputs: list[np.ndarray] = []
    for start in range(0, len(run_pairs), config.batch_size):
        chunk = run_pairs[start : start + config.batch_size]
        outputs += predictor.predict([a for _, a, _ in chunk], photos=[b for _, _, b in chunk])
        advance(len(chunk))
    run_kind = "generic" if predictor.encoding.swapped else kind
    report = evaluate_pairs(((k, a, b, o) for (k, a, b), o in zip(run_pairs, outputs, strict=True)), run_kind,
                            scorers.edge_detector, scorers.segmenter, scorers.label_ids, scorers.num_classes)
    report.settings = predictor.describe()
    if data is not None:  # what could not be read is part of the result
        report.data = data.record()
    images = {key: (a, o, b) for (key, a, b), o in zip(run_pairs, outputs, strict=True)}  # input, output, target
    # the best and worst rows (by L1) with their input | output | target images, above the per-sample table
    examples = example_rows_html(folder, report.rows, images, nearest_input=kinds.of(kind).drawn)
    paths = write_report(report, folder, title=title, examples=examples)
    return RunScore(run_path, label, report, paths, outputs, predictor)


def _swapped(pairs: Sequence[Pair], a_channels: int) -> list[Pair]:
    """(key, B as the input, A as the target) for a run trained BtoA."""
    return [(k, b if a_channels == 3 else b[..., 0], a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2))
            for k, a, b in pairs]


def summary_lines(scores: Sequence[RunScore]) -> list[str]:
    """The runs' mean scores as aligned text lines, a row per run (as compare.csv)."""
    header, rows = table_rows({score.label: score.report.summary() for score in scores})
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(cell).rjust(width) if i else str(cell).ljust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True))) for row in [header, *rows]]


def write_run_comparison(folder: Path, scores: Sequence[RunScore], pairs: Sequence[Pair], kind: str,
                         title: str) -> dict[str, Path]:
    """compare.csv and compare.html: a row of scores per run, and the first samples through every run."""
    shown = pairs[:SHOWN]
    picture_rows = [PictureRow("input", tuple(a for _, a, _ in shown)),
                    *(PictureRow(score.label, tuple(score.outputs[: len(shown)])) for score in scores),
                    PictureRow("ground truth", tuple(b for _, _, b in shown))]
    return write_comparison(folder, {score.label: score.report.summary() for score in scores}, picture_rows,
                            keys=[key for key, _, _ in shown], title=title,
                            nearest_rows=("input",) if kinds.of(kind).drawn else ())
