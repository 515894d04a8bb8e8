"""Predicting a folder of images with a trained generator: outputs, the gallery page, predict.json.

What ``pairforge predict`` writes::

    <output>/<name>.png (or <name>_<k>.png)   outputs, each the size of its input
    <output>/inputs/, targets/, thumbs/        the gallery's images
    <output>/index.html                        input | output(s) | target per row, with the run's facts
    <output>/predict.json                      counts and how the generator ran
    <output>/rejects.jsonl                     inputs that were skipped, with the reason (only when some were)

Every input is predicted or skipped with its reason (the builders' listing rule and image
readers); when none is predicted the command fails after writing these records.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pairforge import kinds
from pairforge.errors import PairforgeError, SampleError
from pairforge.files import write_atomic
from pairforge.imageio import read_image, write_image
from pairforge.keys import sanitize_key, unique_keys
from pairforge.pairs import NothingUsableError, list_images, reason_class
from pairforge.paths import absolute
from pairforge.storage import is_url, safe_url
from pairforge.trainer.checkpoint import resolve_checkpoint
from pairforge.trainer.gallery import GalleryRow, save_thumbnail, write_gallery
from pairforge.trainer.inference import Predictor

logger = logging.getLogger(__name__)

Stage = Callable[[np.ndarray, str], Any]
"""A pair builder (``pairforge.pipelines``): photo, key -> a pair with ``.a`` and ``.b``."""


@dataclass(frozen=True)
class PredictJob:
    """What to predict, and how it was asked for (recorded in predict.json and index.html).

    Attributes:
        run: the run or checkpoint folder as given.
        inputs: an image or a folder of images (searched recursively).
        output: folder for outputs and the gallery.
        samples: outputs per input (dropout draws ``0 .. samples - 1``).
        targets: folder of targets matched to inputs by file stem.
        stage: rebuild A from each input photo with this stage (``--from-photos``); its B
            (the fitted photo) becomes the target.
        ema: the EMA weights were asked for (shown on the page when the run kept them).
    """

    run: str
    inputs: Path | str
    output: Path
    samples: int = 1
    targets: Path | None = None
    stage: Stage | None = None
    ema: bool = True


@dataclass
class PredictSummary:
    """What a prediction did: counts, the skipped inputs with their reasons, and the page."""

    inputs: int = 0
    predicted: int = 0
    rejects: list[dict[str, str]] = field(default_factory=list)
    page: Path | None = None


@dataclass(frozen=True)
class PredictInputs:
    """What :func:`input_files` found: the images with their output names, the rejects, the renamed names.

    Attributes:
        files: ``(output name, path)`` of each image, in sorted order.
        rejects: reject rows of the files turned away when listing.
        renamed: output name -> the inputs (below INPUTS) that share it, named ``name``, ``name-2``, ...
    """

    files: list[tuple[str, Path]]
    rejects: list[dict[str, str]]
    renamed: dict[str, list[str]]


def input_files(inputs: Path | str) -> PredictInputs:
    """The inputs under INPUTS (a file, or a folder searched recursively) with their output names, and the rejects.

    The builders' listing rule (:func:`pairforge.pairs.list_images`), for a folder and for a file
    given alone: hidden files and files without an image extension are rejects; anything else
    listed is read later, when an unreadable file, a FIFO or an animated image becomes a reject.
    Output names are the builders' sample keys (:func:`pairforge.keys.unique_keys`): the path
    below INPUTS without its extension, ``/`` as ``__``, sanitised; names that collide (``x.png``
    and ``x.jpg``) get ``-2``, ``-3``..., so no output overwrites another.
    """
    found, rejects = list_images(inputs)
    if is_url(inputs):  # a folder in a bucket: its objects are URLs below it
        prefix = safe_url(inputs).rstrip("/") + "/"
        shown = [url[len(prefix):] for url in found]
    else:
        root = Path(absolute(inputs))
        shown = [path.name if path == root else path.relative_to(root).as_posix() for path in found]
    stems = [Path(name).with_suffix("").as_posix() for name in shown]
    names, collisions = unique_keys(stems)
    renamed = {base: [name for name, stem in zip(shown, stems, strict=True) if sanitize_key(stem) == base]
               for base in collisions}
    return PredictInputs(list(zip(names, found, strict=True)), rejects, renamed)


def checkpoint_label(path: str, ema: bool) -> str:
    """``step 1000 (runs/00001-x/checkpoints/step-000001000), EMA weights`` for pages and summaries."""
    try:
        found = resolve_checkpoint(path)
    except PairforgeError:
        return str(path)
    step = found.name.split("-", 1)[-1]
    label = f"step {int(step)} ({found})" if step.isdigit() else str(found)
    return label + (", EMA weights" if ema else "")


def predict_folder(predictor: Predictor, run_config: dict[str, Any], job: PredictJob,
                   files: Sequence[tuple[str, Path]], advance: Callable[[int], None] = lambda n: None,
                   rejects: Sequence[dict[str, str]] = ()) -> PredictSummary:
    """Predict every file, write outputs, the gallery, predict.json and rejects.jsonl.

    Every input is either predicted or a reject with its reason (inputs = predicted + skipped).

    Args:
        predictor: the generator at test time.
        run_config: the run's config.json (kind, model, EMA).
        job: what to predict and where.
        files: ``(name, path)`` pairs (:attr:`PredictInputs.files`).
        advance: called with the number of inputs done after each batch (a progress bar).
        rejects: inputs already turned away when listing (:attr:`PredictInputs.rejects`).

    Returns:
        the summary; unreadable inputs, inputs the network would process at more than the
        pixel limit and inputs the stage rejects are skipped with a reason.

    Raises:
        InputMismatchError: an input the model cannot take (e.g. colour for an edges model).
        NothingUsableError: no input at all (nothing is written). When every input is rejected
            the records and the page are written and the summary returned:
            :func:`require_predictions` then fails, as a builder does.
    """
    if not files and not rejects:
        raise NothingUsableError(str(job.output), 0, {}, job.output / "rejects.jsonl")
    job.output.mkdir(parents=True, exist_ok=True)
    kind = run_config["dataset"].get("kind")
    target_files = {p.stem: p for p in job.targets.iterdir() if p.is_file()} if job.targets else {}
    summary = PredictSummary(inputs=len(files) + len(rejects), rejects=list(rejects))
    rows: list[GalleryRow] = []
    batch_size = predictor.config.batch_size
    for start in range(0, len(files), batch_size):
        chunk = []
        for name, path in files[start : start + batch_size]:
            try:
                image, target = _prepare(predictor, job.stage, target_files, name, path)
            except SampleError as exc:
                summary.rejects.append(exc.row(str(path)))
                continue
            chunk.append((name, image, target))
        photos = [target for _, _, target in chunk] if job.stage is not None else None
        outputs = [predictor.predict([image for _, image, _ in chunk], sample=k, photos=photos)
                   for k in range(job.samples)] if chunk else []
        for index, (name, image, target) in enumerate(chunk):
            rows.append(_write_row(job.output, name, image, [o[index] for o in outputs], target, kind))
        advance(len(files[start : start + batch_size]))
    summary.predicted = len(rows)
    summary.page = write_gallery(job.output, rows, title=f"pairforge predict: {Path(job.run).name}",
                                 facts=_facts(predictor, run_config, job, summary.rejects))
    _write_records(predictor, job, summary)
    return summary


def require_predictions(summary: PredictSummary, output: Path) -> None:
    """The builders' rule: fail when no input was predicted (every one rejected), naming the reasons.

    Raises:
        NothingUsableError: ``summary.predicted`` is 0.
    """
    if not summary.predicted:
        reasons = Counter(reason_class(row["reason"]) for row in summary.rejects)
        raise NothingUsableError(str(output), summary.inputs, dict(reasons), output / "rejects.jsonl")


def _prepare(predictor: Predictor, stage: Stage | None, target_files: dict[str, Path], name: str,
             path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(A, target or None) of one input, A checked against the model (kind and processed size)."""
    max_pixels = predictor.config.max_pixels
    image = read_image(path, max_pixels)
    target = None
    if stage is not None:
        pair = stage(image, name)  # at the photo's own resolution
        image, target = pair.a, pair.b
    elif Path(path).stem in target_files:
        try:
            target = read_image(target_files[Path(path).stem], max_pixels)
        except SampleError as exc:
            raise SampleError(exc.reason, f"its target {target_files[Path(path).stem]}"
                                          + (f": {exc.detail}" if exc.detail else "")) from None
    predictor.check_input(image, str(path))
    return image, target


def _write_row(output: Path, name: str, image: np.ndarray, outputs: list[np.ndarray], target: np.ndarray | None,
               kind: str | None) -> GalleryRow:
    """Write one input's images (full size and display copies) and return its gallery row."""
    images = {f"inputs/{name}.png": image}
    names = [f"{name}.png"] if len(outputs) == 1 else [f"{name}_{k + 1}.png" for k in range(len(outputs))]
    images.update(zip(names, outputs, strict=True))
    target_rel = f"targets/{name}.png" if target is not None else None
    if target_rel is not None:
        images[target_rel] = target
    thumbs: dict[str, str] = {}
    for rel, picture in images.items():
        write_image(output / rel, picture)
        # label maps and edge maps: lossless, nearest-neighbour upscaling (no new colours)
        exact = rel.startswith("inputs/") and kinds.of(kind).drawn
        thumb = f"thumbs/{rel.replace('/', '__')}.{'png' if exact else 'jpg'}"
        save_thumbnail(picture, output / thumb, nearest=exact)
        thumbs[rel] = thumb
    return GalleryRow(name, f"inputs/{name}.png", tuple(names), target_rel, thumbs)


def _facts(predictor: Predictor, run_config: dict[str, Any], job: PredictJob,
           rejects: list[dict[str, str]]) -> dict[str, str]:
    """The facts at the top of index.html: run, checkpoint, model, inputs, options, skipped inputs."""
    config = predictor.config
    facts = {
        "run": run_config.get("run_dir") or job.run,
        "checkpoint": checkpoint_label(job.run, job.ema and bool(run_config.get("optim", {}).get("ema"))),
        "model": f"{run_config['model'].get('generator')} trained on {run_config['dataset'].get('kind')} pairs",
        "inputs": f"{job.inputs}" + (" (photos; A rebuilt with the dataset's stage)" if job.stage else ""),
        "options": f"dropout {'on' if config.dropout else 'off'}, seed {config.seed}, {job.samples} output(s) per "
                   f"input, device {config.device}, tiles above {config.max_side} px (overlap {config.overlap})",
    }
    if rejects:
        facts["skipped"] = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejects)
    return facts


def _write_records(predictor: Predictor, job: PredictJob, summary: PredictSummary) -> None:
    """predict.json, and rejects.jsonl when inputs were skipped (a previous run's is removed)."""
    write_atomic(job.output / "predict.json", json.dumps({
        "run": str(job.run), "inputs": str(job.inputs), "from_photos": job.stage is not None,
        "samples": job.samples, "predicted": summary.predicted, "skipped": len(summary.rejects),
        **predictor.describe()}, indent=2))
    rejects = job.output / "rejects.jsonl"
    if summary.rejects:
        write_atomic(rejects, "".join(json.dumps(row) + "\n" for row in summary.rejects))
    else:
        rejects.unlink(missing_ok=True)
    logger.info("predicted %d of %d inputs -> %s", summary.predicted, summary.inputs, job.output)
