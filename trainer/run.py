"""A training run's life outside the step: options resolved and checked, the run folder started or
continued (--resume, --init-from), its checkpoints, metrics file and lock.

What :func:`~pairforge.trainer.loop.train` calls before the first step and around the loop:

- :func:`resolve_config`, :func:`resume_config`: the run's options, paths made absolute, what a
  ``--resume`` may change (and the :class:`ResumeError` naming what it may not);
- :func:`build_models`, :func:`start_run`: fresh networks, then a new numbered run folder (weights
  from ``--init-from`` if given) or the continued one (weights, optimizers, RNG states and data
  position restored from a checkpoint), owned by this process while it trains;
- :func:`save`, :class:`MetricsWriter`, :func:`stopped`: the checkpoint of a step, metrics.jsonl
  (appended row by row), and the one-line error of a run that cannot write.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pairforge import __version__, kinds
from pairforge.device import resolve_device as core_resolve_device
from pairforge.errors import ConfigError, PairforgeError
from pairforge.files import (
    LOCK_NAME,
    DiskFullError,
    file_sha256,
    format_bytes,
    free_bytes,
    is_disk_full,
    write_atomic,
)
from pairforge.locks import hold
from pairforge.paths import absolute, describe_path, is_remote
from pairforge.trainer import checkpoint, ddp
from pairforge.trainer.config import (
    PATH_OPTIONS,
    RESUME_SAFE_OPTIONS,
    TrainConfig,
    option_flag,
    option_names,
)
from pairforge.trainer.data import (
    DatasetInfo,
    ShardProblem,
    StreamState,
    check_shards,
    load_dataset_info,
    verify_shards,
)
from pairforge.trainer.networks import build_discriminator, build_generator
from pairforge.trainer.schedule import Schedule, describe_schedule, resumed_schedule
from pairforge.trainer.step import Handles, Models
from pairforge.trainer.transforms import Encoding

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``summary.json``)."""

    run_dir: Path
    steps: int
    total_steps: int
    elapsed_s: float
    images_per_s: float
    data_wait_fraction: float
    skipped_samples: int
    last_losses: dict[str, float]
    validation: dict[str, float]
    checkpoint: Path | None
    parameter_checksums: list[float]
    skipped_shards: int = 0
    """Shards whose size or checksum differs from dataset.json (reported one by one before training)."""
    skipped_bytes: int = 0
    """Bytes those shards lack against dataset.json."""


class TrainingInterrupted(PairforgeError):
    """SIGINT/SIGTERM stopped training; a checkpoint of the current step was saved."""


class TrainingStopped(PairforgeError):
    """Training could not go on (the disk filled up); the message names the file and the last good checkpoint."""


class ResumeError(PairforgeError):
    """``--resume`` that would not continue the run exactly: changed options or shards, fewer steps, another
    process count. The message names each difference and the way out."""


class InitFromError(PairforgeError):
    """``--init-from`` weights that do not fit the new run's networks (the layer and the likely option named)."""


# -- options: resolved, and what a --resume may change ----------------------------------------------


def resolve_device(choice: str) -> torch.device:
    """The run's device: ``--device`` resolved, on this process's DDP rank (``LOCAL_RANK``)."""
    return core_resolve_device(choice, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_config(config: TrainConfig) -> tuple[TrainConfig, DatasetInfo, Encoding]:
    """Read dataset.json and fill in what follows from it (network channels, crop size).

    Local paths become absolute here, so the run's config.json works from any folder
    (``train --resume /abs/run`` elsewhere). Flags that do not fit the dataset's kind are
    refused.

    Returns:
        the resolved config, the dataset facts, and the pixel encoding.

    Raises:
        ConfigError: ``--colorspace lab`` on a dataset whose A is not the photo's lightness, or
            ``--label-input color`` on a dataset without label maps.
    """
    config = absolute_paths(config)
    info = load_dataset_info(config.data.shards, config.data.dataset_json, config.data.val_shards)
    if config.data.colorspace == "lab" and not kinds.of(info.kind).lightness:
        raise ConfigError(
            "colorspace", "lab",
            f"rgb for this {info.kind} dataset: lab feeds the network the lightness L of B (the photo) and ignores A, "
            "so it only fits gray (colorization) datasets made by `pairforge make-gray`",
        )
    if config.data.label_input == "color" and not kinds.of(info.kind).palette:
        raise ConfigError(
            "label_input", "color",
            f"onehot (the default) for this {info.kind} dataset: --label-input chooses how label maps are fed and "
            "only applies to labels datasets made by `pairforge make-labels`",
        )
    encoding = Encoding.from_config({"dataset": info.to_dict(), "data": dataclasses.asdict(config.data)})
    model = dataclasses.replace(
        config.model,
        in_channels=encoding.in_channels,
        out_channels=encoding.out_channels,
        crop_size=config.augment.crop_size,
    )
    return dataclasses.replace(config, model=model), info, encoding


def config_document(config: TrainConfig, info: DatasetInfo, schedule: Schedule) -> dict[str, Any]:
    """The run's config.json: the resolved config, the dataset facts and the step counts."""
    document = config.to_dict()
    document["dataset"] = {**info.to_dict(), "fingerprint": dataset_fingerprint(info)}
    document["schedule"] = dataclasses.asdict(schedule)
    document["created_by"] = f"pairforge {__version__}"
    return document


def dataset_fingerprint(info: DatasetInfo) -> str:
    """sha256 of what makes a shard set this dataset: kind, channels, palette, split counts and each
    shard's name, count, size and checksum as dataset.json records them (not where it lies)."""
    shards = sorted(
        (str(entry.get("name", "")), str(entry.get("split", "")), entry.get("count"), entry.get("bytes"),
         entry.get("sha256"))
        for entry in info.raw.get("shards", []) if isinstance(entry, dict)
    )
    identity = {"kind": info.kind, "a_channels": info.a_channels, "b_channels": info.b_channels,
                "palette": info.palette, "counts": info.counts, "shards": shards}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its local shard/dataset.json/output paths made absolute (URLs and ``pipe:`` kept)."""

    return _map_paths(config, absolute)


def resume_config(
    run_dir: str | Path, steps: int | None = None, given: dict[str, Any] | None = None
) -> TrainConfig:
    """The config a run was started with, checked against the options given again with ``--resume``.

    Runs written before paths were stored absolute hold paths relative to the folder training
    started in; that folder is recovered from the run folder's place under ``output``, so the
    run resumes from anywhere.

    Args:
        run_dir: the run folder, or one of its ``checkpoints/step-*`` folders (continue from that one).
        steps: a new total step count (``--steps``): not below the run's planned end; above it
            extends the run (see :func:`~pairforge.trainer.schedule.extend_schedule`).
        given: the options the user gave (only those given, named as in
            :meth:`TrainConfig.from_options`; ``shards`` for SHARDS). Those of
            :data:`~pairforge.trainer.config.RESUME_SAFE_OPTIONS` replace the recorded values
            (the change is kept in config.json's ``history`` when training resumes); every other one
            must equal the recorded value. SHARDS elsewhere is accepted when it is the same dataset
            (the fingerprint of its dataset.json matches the recorded one: a moved shard set).

    Raises:
        CheckpointError: no readable config.json in ``run_dir``.
        ResumeError: given options that differ from the recorded ones (all named in one message),
            ``steps`` below the run's planned end, or a run made by ``pairforge import`` (nothing to
            continue: ``--init-from`` starts from its weights).
    """
    run_dir, chosen = checkpoint.resume_target(run_dir)
    document = checkpoint.load_config(run_dir)
    if document.get("reference"):  # made by `pairforge import`: weights, no training state
        raise ResumeError(
            f"{describe_path(run_dir)} was imported from {document['reference'].get('checkpoint')} and holds no "
            f"training to continue; start a new run from its weights: pairforge train SHARDS --init-from "
            f"{describe_path(run_dir)}")
    config = _recorded_config(run_dir, document)
    if given:
        config = _apply_given(run_dir, document, config, dict(given))
    if steps is not None:
        _check_steps(run_dir, chosen, steps)
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, steps=steps))
    return config


def _recorded_config(run_dir: Path, document: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of a run's config.json, its relative paths (older runs) made absolute."""
    try:
        config = TrainConfig.from_dict(document)
    except (TypeError, KeyError) as exc:
        raise checkpoint.CheckpointError(f"{run_dir / 'config.json'}: not a pairforge run config ({exc})") from None
    started_in = _start_folder(Path(absolute(run_dir)), config.output)
    return _rebase(config, started_in) if started_in is not None else config


def _apply_given(run_dir: Path, document: dict[str, Any], config: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """``config`` with the safe options of ``given`` applied; :class:`ResumeError` for any other that differs."""
    for name in PATH_OPTIONS:
        if given.get(name) and not is_remote(given[name]):
            given[name] = absolute(given[name])
    shards = given.pop("shards", None)
    safe = {name: given.pop(name) for name in list(given) if name in RESUME_SAFE_OPTIONS}
    conflicts = [(name, config.option(name), value) for name, value in given.items()
                 if not _same_value(name, config.option(name), value)]
    if shards and not _same_path(shards, config.data.shards):
        if _moved_dataset(document, shards, config):
            safe["shards"] = shards
        else:
            conflicts.append(("shards", config.data.shards, shards))
    if conflicts:
        raise ResumeError(_conflict_message(run_dir, conflicts))
    return config.replace_options(**safe)


def option_conflicts(recorded: TrainConfig, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """``(option, recorded, given)`` for each option that would change what a resumed run computes.

    Left out: :data:`~pairforge.trainer.config.RESUME_SAFE_OPTIONS`, ``steps`` (checked against
    the run's step and schedule), ``init_from`` (only read when a run starts) and ``shards``
    (a dataset is compared by identity, see :func:`dataset_fingerprint`).
    """
    conflicts = []
    for name in option_names():
        if name in RESUME_SAFE_OPTIONS or name in ("steps", "init_from", "shards"):
            continue
        before, after = recorded.option(name), config.option(name)
        if not _same_value(name, before, after):
            conflicts.append((name, before, after))
    return conflicts


def _same_value(name: str, recorded: Any, given: Any) -> bool:
    return _same_path(recorded, given) if name in PATH_OPTIONS else recorded == given


def _same_path(first: str | None, second: str | None) -> bool:
    if not first or not second:
        return not first and not second
    if is_remote(first) or is_remote(second):
        return first == second
    return os.path.realpath(first) == os.path.realpath(second)


def _moved_dataset(document: dict[str, Any], shards: str, config: TrainConfig) -> bool:
    """Whether ``shards`` holds the dataset the run recorded (same fingerprint), e.g. the shard set moved."""
    recorded = (document.get("dataset") or {}).get("fingerprint")
    if not recorded:
        return False
    try:
        info = load_dataset_info(shards, config.data.dataset_json, config.data.val_shards)
    except (PairforgeError, OSError):
        return False
    return dataset_fingerprint(info) == recorded


def _shown(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"{name}={value}"
    return "none" if value is None or value == "" else str(value)


def _conflict_message(run_dir: Path, conflicts: list[tuple[str, Any, Any]]) -> str:
    items = ", ".join(f"{option_flag(name)} (recorded {_shown(name, before)}, given {_shown(name, after)})"
                      for name, before, after in conflicts)
    many = len(conflicts) > 1
    return (f"--resume continues {describe_path(run_dir)} exactly as recorded in its config.json, but "
            f"{'these options differ' if many else 'this option differs'}: {items}. Drop {'them' if many else 'it'} "
            f"to continue the run, or start a new run with the new values (pairforge train SHARDS ... --init-from "
            f"{describe_path(run_dir)} starts it from this run's weights)")


def _check_steps(run_dir: Path, chosen: Path | None, steps: int) -> None:
    """Refuse ``--steps`` below the planned end of the run resumed (when its checkpoint state can be read)."""
    try:
        saved = checkpoint.load_state(chosen or checkpoint.resolve_checkpoint(run_dir))
    except checkpoint.CheckpointError:
        return  # the resume itself says what is wrong with the checkpoint
    if saved.get("schedule"):
        refuse_shorter(run_dir, int(saved["step"]), Schedule(**saved["schedule"]).total_steps, steps)


def refuse_shorter(run_dir: Path, step: int, planned: int, steps: int) -> None:
    """:class:`ResumeError` when a run at ``step`` of ``planned`` would be resumed for only ``steps`` in all.

    A shorter run is not the run that was planned: its learning rate decays to 0 at ``planned``.
    """
    if steps >= planned:
        return
    finish = f"resume without --steps to finish it, or give --steps above {planned} to extend it"
    if steps < step:
        raise ResumeError(f"--steps {steps} is below step {step}, which {describe_path(run_dir)} has already reached "
                          f"(of {planned} planned): a run cannot go back; {finish}. predict, evaluate and export "
                          "take any of its checkpoints (checkpoints/step-*)")
    raise ResumeError(f"--steps {steps} would shorten {describe_path(run_dir)} (at step {step} of {planned} planned): "
                      f"its learning rate is planned to decay to 0 at step {planned}, so a shorter run is not the run "
                      f"it was; {finish}, or start a new run (--init-from {describe_path(run_dir)} starts from its "
                      "weights)")


def _start_folder(run_dir: Path, output: str) -> Path | None:
    """Where a run with a relative ``output`` was started: ``run_dir`` minus ``output/<run>``."""
    if os.path.isabs(output) or is_remote(output):
        return None
    parts = Path(output).parts
    parent = run_dir.parent
    if len(parts) > len(parent.parts) or parent.parts[len(parent.parts) - len(parts):] != parts:
        return None
    return Path(*parent.parts[: len(parent.parts) - len(parts)])


def _rebase(config: TrainConfig, folder: Path) -> TrainConfig:
    """Relative paths of an older run config, read against the folder its training started in."""

    return _map_paths(config, lambda value: value if os.path.isabs(value) else str(folder / value))


def _map_paths(config: TrainConfig, local: Callable[[str], str]) -> TrainConfig:
    """``config`` with ``local`` applied to its local shard/dataset.json/output paths (empty ones,
    URLs and ``pipe:`` commands kept)."""

    def fix(value: str | None) -> str | None:
        return value if not value or is_remote(value) else local(value)

    data = dataclasses.replace(
        config.data, shards=fix(config.data.shards) or "", dataset_json=fix(config.data.dataset_json),
        val_shards=fix(config.data.val_shards),
    )
    return dataclasses.replace(config, data=data, output=fix(config.output) or config.output,
                               init_from=fix(config.init_from))


# -- the run folder: new, or continued exactly ------------------------------------------------------


@dataclass
class TrainState:
    """What a step moves besides the weights (saved in checkpoints with the optimizers)."""

    step: int
    schedule: Schedule
    augment_rng: torch.Generator
    """The CPU generator of the augmentation geometry (dropout draws from the global torch RNG)."""
    stream: StreamState
    """Where the data stream stands; :class:`_Batches` advances it."""


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the loop to stop after the current step.

    The first signal sets :attr:`signal`; the loop saves a checkpoint and raises
    :class:`TrainingInterrupted`. A second signal interrupts at once (the checkpoint save
    is atomic, so nothing half-written is left). Only installed in the main thread of a
    single-process run (torchrun handles signals of DDP runs).
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        import signal

        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(number).name
        logger.warning("%s: finishing this step and saving a checkpoint (again to stop at once)", self.signal)

    def __exit__(self, *exc: object) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)


def set_kernel_flags(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def check_data(info: DatasetInfo, config: TrainConfig, verify: bool) -> list[ShardProblem]:
    """Refuse missing shards and shards that differ from dataset.json (unless the run allows them: each
    is then logged as used as it is); warns about a missing val split."""
    urls = info.splits["train"] + info.splits.get("val", ())
    check_shards(urls)
    problems = verify_shards(info, urls, full=verify, allow_modified=config.data.allow_modified_shards)
    for problem in problems:
        logger.warning("%s", problem.used_as_is())
    if not info.counts.get("val") and not config.data.val_shards:
        logger.warning("the shard set has no val samples: training runs without validation scores")
    return problems


def build_models(config: TrainConfig, device: torch.device) -> Models:
    """Fresh networks (initialised from the global torch RNG) and their Adam optimizers."""
    generator = build_generator(config.model).to(device)
    discriminator = build_discriminator(config.model).to(device) if config.loss.use_gan else None
    # channels_last on every device: fastest on GPUs, and ~5% faster than NCHW for these
    # networks on the CPU too (oneDNN), measured at 256x256 batch 1
    generator = generator.to(memory_format=torch.channels_last)
    if discriminator is not None:
        discriminator = discriminator.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(generator).requires_grad_(False) if config.optim.ema > 0 else None
    betas = (config.optim.beta1, config.optim.beta2)
    # fused Adam: one kernel for all parameters instead of a Python loop of small ops
    # (about a tenth of a CPU step at batch 1); same update rule
    fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=config.optim.lr, betas=betas, **fused)
    optimizer_d = (
        torch.optim.Adam(discriminator.parameters(), lr=config.optim.lr, betas=betas, **fused) if discriminator else None
    )
    return Models(generator, discriminator, ema, optimizer_g, optimizer_d)


def training_handles(models: Models, compile: bool, context: ddp.Distributed, device: torch.device) -> Handles:
    """The networks as the train step calls them: DDP-wrapped in a DDP run, compiled with ``compile``."""
    generator: nn.Module = models.generator
    discriminator: nn.Module | None = models.discriminator
    if context.enabled:
        device_ids = [device.index] if device.type == "cuda" else None
        generator = nn.parallel.DistributedDataParallel(generator, device_ids=device_ids)
        if discriminator is not None:
            discriminator = nn.parallel.DistributedDataParallel(discriminator, device_ids=device_ids)
    discriminator_for_g = models.discriminator
    if compile:
        generator = torch.compile(generator)
        if discriminator is not None:
            discriminator = torch.compile(discriminator)
            # without DDP both steps call the same compiled D
            discriminator_for_g = discriminator if not context.enabled else torch.compile(models.discriminator)
    return Handles(generator, discriminator, discriminator_for_g)


def start_run(
    config: TrainConfig, info: DatasetInfo, schedule: Schedule, resume: str | Path | None, models: Models,
    state: TrainState, context: ddp.Distributed, device: torch.device, owned: contextlib.ExitStack,
) -> tuple[Path, dict[str, Any]]:
    """A new run folder, or ``resume``'s continued exactly; returns the folder and its config.json (written).

    A new run loads ``--init-from`` weights into ``models`` before its folder exists (a refused
    source leaves nothing behind). A resumed run is owned first (:func:`_own`), checked against
    its recorded options and dataset, then restored into ``models`` and ``state``
    (:func:`restore`); later checkpoints and metrics rows are set aside, and the resume is
    recorded in config.json's ``history``.
    """
    document = config_document(config, info, schedule)
    if resume is None:
        if config.init_from:  # before the run folder exists: a refused source leaves nothing behind
            document["init_source"] = initialize_from(config.init_from, models, config)
        run_dir = _new_run_folder(config, context, owned)
        _write_config(run_dir, document, context)
        return run_dir, document
    run_dir, chosen = checkpoint.resume_target(resume)
    _own(run_dir, context, owned)
    document, changes = _resumed_document(run_dir, checkpoint.load_config(run_dir), config, info, document)
    saved, found = restore(run_dir, models, state, context, device, chosen)
    planned = Schedule(**saved["schedule"]).total_steps if saved.get("schedule") else state.schedule.total_steps
    refuse_shorter(run_dir, state.step, planned, state.schedule.total_steps)
    _extend_schedule(state, saved, config.optim.lr)  # --steps beyond the planned end extends the run
    document["schedule"] = dataclasses.asdict(state.schedule)
    entry: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": state.step,
                             "checkpoint": found.name, "by": f"pairforge {__version__}"}
    if changes:
        entry["changed"] = changes
    if state.schedule.total_steps != planned:
        entry["total_steps"] = [planned, state.schedule.total_steps]
    if context.is_main:
        checkpoint.remove_temporaries(run_dir)
        if aside := _set_aside_later(run_dir, state.step):
            entry["set_aside"] = aside
    document["history"] = [*document.get("history", []), entry]
    _write_config(run_dir, document, context)
    return run_dir, document


def _new_run_folder(config: TrainConfig, context: ddp.Distributed, owned: contextlib.ExitStack) -> Path:
    """A new numbered run folder, created and owned by rank 0 (see :func:`_own`)."""
    folder = None
    if context.is_main:
        with _naming_a_full_disk(Path(config.output) / LOCK_NAME):
            folder = checkpoint.new_run_folder(config.output, config.name)
        _hold(folder, owned)
    return ddp.broadcast(folder, context)


def _own(run_dir: Path, context: ddp.Distributed, owned: contextlib.ExitStack) -> None:
    """Rank 0 owns ``run_dir`` until the run ends (``owned`` closes): a second ``train --resume`` of it
    is refused, naming this process. The OS releases the lock however the process ends."""
    if context.is_main:
        _hold(run_dir, owned)
    ddp.barrier(context)


def _hold(run_dir: Path, owned: contextlib.ExitStack) -> None:
    with _naming_a_full_disk(run_dir / LOCK_NAME):
        owned.enter_context(hold(run_dir, "run folder"))


@contextlib.contextmanager
def _naming_a_full_disk(path: Path) -> Iterator[None]:
    """Turn a full disk while writing ``path`` (an OSError that names no file) into a :class:`DiskFullError` naming it."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(exc.filename or path, exc.errno) from None
        raise


def _write_config(run_dir: Path, document: dict[str, Any], context: ddp.Distributed) -> None:
    if context.is_main:
        write_atomic(run_dir / "config.json", json.dumps(document, indent=2, sort_keys=True))


def _resumed_document(
    run_dir: Path, recorded: dict[str, Any], config: TrainConfig, info: DatasetInfo, document: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """config.json of a resumed run, and the recorded options it changes (:data:`RESUME_SAFE_OPTIONS`, a
    moved shard set) as ``{option: [recorded, now]}``.

    Whatever the run recorded beyond its config (``init_source``, ``reference``, ``history``,
    ``created_by``) is kept.

    Raises:
        ResumeError: ``config`` would change what the run computes, or its shards are another dataset.
    """
    before = _recorded_config(run_dir, recorded)
    conflicts = option_conflicts(before, config)
    dataset = recorded.get("dataset") or {}
    same_place = _same_path(before.data.shards, config.data.shards)
    if dataset.get("fingerprint"):
        same_data = dataset["fingerprint"] == dataset_fingerprint(info)
    else:  # a run recorded before fingerprints: the same folder with the same counts
        same_data = same_place and dataset.get("counts") == info.counts
    if not same_data:
        changed = "; its dataset.json changed since the run started" if same_place else ""
        conflicts.append(("shards", f"{before.data.shards} ({_counts(dataset.get('counts') or {})})",
                          f"{config.data.shards} ({_counts(info.counts)}{changed})"))
    if conflicts:
        raise ResumeError(_conflict_message(run_dir, conflicts))
    changes = {name: [before.option(name), config.option(name)] for name in (*RESUME_SAFE_OPTIONS, "shards")
               if not _same_value(name, before.option(name), config.option(name))}
    merged = {**recorded, **document}
    merged["created_by"] = recorded.get("created_by", document["created_by"])
    return merged, changes


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{split} {count}" for split, count in sorted(counts.items())) or "no counts recorded"


def restore(
    run_dir: Path, models: Models, state: TrainState, context: ddp.Distributed, device: torch.device,
    chosen: Path | None = None,
) -> tuple[dict[str, Any], Path]:
    """Load a checkpoint of ``run_dir`` (its newest, or ``chosen``) into ``models`` and ``state``.

    Weights, optimizers, this rank's RNG states and data position, and the step.

    Returns:
        the checkpoint's state dict (its ``schedule`` is the run's plan) and its folder.

    Raises:
        CheckpointError: no checkpoint, or a damaged one: the message names the newest intact
            checkpoint and the ``--resume`` that continues from it.
        ResumeError: the run was trained with another number of processes.
    """
    folders = checkpoint.step_folders(run_dir)
    found = chosen or (folders[-1] if folders else None)
    if found is None:
        raise checkpoint.CheckpointError(
            f"{run_dir}: no checkpoint to resume from (checkpoints/step-* is empty or missing); start a new run")
    try:
        saved = checkpoint.load_state(found)
        for name, network in models.networks().items():
            checkpoint.load_weights(network, found / f"{name}.safetensors")
    except checkpoint.CheckpointError as exc:
        raise _damaged(run_dir, found, exc, list(models.networks())) from None
    ranks = len(saved.get("data") or [])
    if ranks != context.world_size:
        raise ResumeError(
            f"{run_dir} was trained by {ranks} process(es) and this resume has {context.world_size}: the data "
            "order and the steps per epoch depend on it; resume with "
            + (f"torchrun --nproc_per_node {ranks} (in all)" if ranks > 1 else "a single process (no torchrun)"))
    models.optimizer_g.load_state_dict(saved["optimizer_g"])
    if models.optimizer_d is not None:
        models.optimizer_d.load_state_dict(saved["optimizer_d"])
    rng = saved["rng"][context.rank]
    torch.set_rng_state(rng["torch"])
    state.augment_rng.set_state(rng["augment"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)
    state.stream = StreamState(**saved["data"][context.rank])
    state.step = int(saved["step"])
    logger.info("resumed %s at step %d", found, state.step)
    return saved, found


def _damaged(run_dir: Path, found: Path, error: Exception, names: list[str]) -> checkpoint.CheckpointError:
    """The error for a checkpoint that cannot be resumed from, naming the newest intact one and how to use it."""
    intact = checkpoint.newest_intact(run_dir, names, before=checkpoint.step_of(found))
    if intact is None:
        return checkpoint.CheckpointError(
            f"{error}. {describe_path(run_dir)} has no intact checkpoint before {found.name} to resume from: start "
            "a new run (--init-from takes the weights of a run or checkpoint)")
    return checkpoint.CheckpointError(
        f"{error}. The newest intact checkpoint of {describe_path(run_dir)} is {intact.name} (step "
        f"{checkpoint.step_of(intact)}): continue from it with: pairforge train --resume "
        f"{describe_path(absolute(intact))} (the steps after it are trained again; {found.name} is then set aside "
        f"as {found.name}.abandoned)")


def _set_aside_later(run_dir: Path, step: int) -> list[str]:
    """Rank 0, resuming at ``step``: what came after it belongs to an abandoned continuation.

    Checkpoints after ``step`` (a damaged newest one, or all those after an older checkpoint
    chosen with ``--resume RUN/checkpoints/step-N``) are renamed ``step-N.abandoned``, and
    metrics rows after ``step`` (and torn lines) move to ``metrics-abandoned.jsonl``: nothing is
    deleted, and the run's files again describe one continuous run. Returns what was set aside.
    """
    aside = [checkpoint.set_aside(folder, "abandoned").name for folder in checkpoint.step_folders(run_dir)
             if checkpoint.step_of(folder) > step]
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        kept, moved = [], []
        for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                later = int(json.loads(line).get("step", 0)) > step
            except (ValueError, TypeError, AttributeError):
                later = True  # a torn line (the disk filled up, or a kill mid-write)
            (moved if later else kept).append(line)
        if moved:
            append_lines(run_dir / "metrics-abandoned.jsonl", moved)
            write_atomic(metrics, "".join(line + "\n" for line in kept))
            aside.append(f"{len(moved)} metrics rows (to metrics-abandoned.jsonl)")
    if aside:
        logger.warning("resuming at step %d: set aside what came after it: %s", step, ", ".join(aside))
    return aside


def _extend_schedule(state: TrainState, saved: dict[str, Any], lr: float) -> bool:
    """Follow the checkpoint's schedule, stretched when ``--steps`` asks for more steps; whether it stretched."""
    extended = resumed_schedule(saved.get("schedule"), state.step, state.schedule)
    state.schedule = extended
    if not saved.get("schedule") or extended.total_steps == Schedule(**saved["schedule"]).total_steps:
        return False
    logger.warning("extending the run from %d to %d steps, lr continuous: %s", Schedule(**saved["schedule"]).total_steps,
                   extended.total_steps, describe_schedule(extended, lr))
    return True


# -- --init-from: another run's weights -------------------------------------------------------------


def initialize_from(source: str | Path, models: Models, config: TrainConfig) -> dict[str, Any]:
    """Start fresh ``models`` from the weights of a run or checkpoint folder (``train --init-from``).

    The generator (its training weights, ``generator.safetensors``, not an EMA copy) must fit; the
    discriminator is loaded when the source has one that fits, and stays freshly initialised
    otherwise (the reason is recorded). Optimizers, schedule and data
    are the new run's own. The one difference bridged is a 3-channel input layer for a
    1-channel A (the reference's edges2shoes reads edge maps as RGB; pairforge stores them as
    one channel): its weights are summed over the three colour channels, which computes exactly
    what the source computes on the gray image repeated as RGB.

    Args:
        source: a run folder (its newest checkpoint is used), a ``checkpoints/step-*`` folder, or a
            run made by ``pairforge import``.
        models: freshly built networks of the new run (the EMA generator, if any, gets the
            generator's weights).
        config: the new run's resolved config.

    Returns:
        what config.json records as ``init_source``: the checkpoint, its step, and per network the
        file's sha256 (or why the network starts fresh), plus any adapted layer.

    Raises:
        CheckpointError: no checkpoint, or a damaged or refused one.
        InitFromError: the generator does not fit (the layer, both shapes and the likely options named).
    """
    found = checkpoint.resolve_checkpoint(source)
    saved = checkpoint.load_state(found)  # refuses a pickle that could run code, as every reader does
    source_config = checkpoint.load_config(found)
    record: dict[str, Any] = {"path": absolute(source), "checkpoint": absolute(found), "step": int(saved.get("step", 0))}
    networks = {"generator": models.generator}
    if models.discriminator is not None:
        networks["discriminator"] = models.discriminator
    for name, network in networks.items():
        file = found / f"{name}.safetensors"
        if not file.is_file():
            if name == "generator":
                raise checkpoint.CheckpointError(f"{file}: missing")
            record[name] = {"fresh": "the source has no discriminator (an imported generator, or --no-gan)"}
            continue
        tensors = _read_tensors(file)
        try:
            tensors, adapted = _fit_weights(tensors, network, name, source_config, config, found)
        except InitFromError as exc:
            if name == "generator":
                raise
            logger.warning("--init-from: the discriminator starts fresh: %s", exc)
            record[name] = {"fresh": str(exc)}
            continue
        checkpoint.unwrap(network).load_state_dict(tensors, strict=True)
        record[name] = {"file": absolute(file), "sha256": file_sha256(file), **({"adapted": adapted} if adapted else {})}
    if models.discriminator is None:
        record["discriminator"] = {"fresh": "this run trains without a discriminator (--no-gan)"}
    if models.ema is not None:
        models.ema.load_state_dict(models.generator.state_dict())
    logger.info("initialised from %s (step %d)", found, record["step"])
    return record


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except Exception as exc:  # SafetensorError, OSError: a damaged file
        raise checkpoint.CheckpointError(f"{file}: cannot load this damaged safetensors file ({exc})") from None


ARCHITECTURE_OPTIONS = {
    "generator": ("generator", "generator_channels", "norm", "dropout", "crop_size"),
    "discriminator": ("discriminator", "discriminator_channels", "n_layers", "norm", "conditional", "crop_size"),
}
"""The options that shape each network's weights (``crop_size``: the depth of ``unet`` and ``image``/``global``)."""


def _fit_weights(
    tensors: dict[str, torch.Tensor], network: nn.Module, name: str, source: dict[str, Any], config: TrainConfig,
    found: Path,
) -> tuple[dict[str, torch.Tensor], str]:
    """``tensors`` shaped for ``network`` (and a note on the adapted layer, or ""), or :class:`InitFromError`."""
    expected = checkpoint.unwrap(network).state_dict()
    differing = [k for k in expected if k not in tensors or tuple(tensors[k].shape) != tuple(expected[k].shape)]
    extra = [k for k in tensors if k not in expected]
    if not differing and not extra:
        return tensors, ""
    source_model = source.get("model") or {}
    first = next(k for k, v in expected.items() if v.ndim == 4)  # the input layer
    source_in, new_in = int(source_model.get("in_channels", 0)), config.model.in_channels
    if differing == [first] and not extra and source_in == 3 and new_in == 1:
        weight = tensors[first]
        gray = weight[:, :3].sum(1, keepdim=True)
        adapted = torch.cat([gray, weight[:, 3:]], 1)  # a conditional D also sees B after A
        if tuple(adapted.shape) == tuple(expected[first].shape):
            return {**tensors, first: adapted}, (f"{first}: the source's 3 input channels summed into 1 (this run's A "
                                                  "is one gray channel; the source read it as RGB)")
    if differing and differing[0] in tensors:
        key = differing[0]
        what = f"layer {key} is {tuple(tensors[key].shape)} in the source and {tuple(expected[key].shape)} here"
    elif differing:
        what = f"this run has {len(differing)} layers the source lacks (the first: {differing[0]})"
    else:
        what = f"the source has {len(extra)} layers this run lacks (the first: {extra[0]})"
    hints = [_as_flag(option, source_model[option]) for option in ARCHITECTURE_OPTIONS[name]
             if option in source_model and source_model[option] != config.option(option)]
    source_out = int(source_model.get("out_channels", 0))
    if source_out and source_out != config.model.out_channels:
        hints.append(f"--colorspace {'lab' if source_out == 2 else 'rgb'} (the source predicts {source_out} channels)")
    if source_in and source_in != new_in:
        hints.append(f"data whose input has {source_in} channels as the source's (this run's has {new_in})")
    advice = ("the source was trained with " + ", ".join(hints) + ": give the same" if hints
              else "the source's config.json does not say how it differs")
    raise InitFromError(f"--init-from {describe_path(found)}: its {name} does not fit this run's: {what}; {advice}")


def _as_flag(option: str, value: Any) -> str:
    """How to ask for ``option`` = ``value`` on the command line (``--norm instance``, ``--no-dropout``)."""
    flag = option_flag(option)
    if isinstance(value, bool):  # the boolean options are flags that turn something off
        return f"without {flag}" if value else flag
    return f"{flag} {value}"


# -- what a run writes as it goes: checkpoints, metrics.jsonl --------------------------------------


def save(
    run_dir: Path, models: Models, state: TrainState, document: dict[str, Any], keep: int, context: ddp.Distributed,
    device: torch.device,
) -> Path | None:
    """Save the step's checkpoint: rank 0 writes it, with every rank's RNG states and data position
    (:func:`restore` reads it back); returns its folder on rank 0."""
    use_cuda = device.type == "cuda"
    rank_state = {
        "data": state.stream.to_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "augment": state.augment_rng.get_state(),
            "cuda": torch.cuda.get_rng_state(device) if use_cuda else None,
        },
    }
    ranks = ddp.gather(rank_state, context)
    if not context.is_main:
        return None
    saved = {
        "step": state.step,
        "optimizer_g": models.optimizer_g.state_dict(),
        "optimizer_d": models.optimizer_d.state_dict() if models.optimizer_d else None,
        "rng": [r["rng"] for r in ranks],
        "data": [r["data"] for r in ranks],
        "schedule": dataclasses.asdict(state.schedule),
    }
    return checkpoint.save_checkpoint(run_dir, state.step, models.networks(), saved, document, keep)


def stopped(run_dir: Path, writer: MetricsWriter | None, state: TrainState, error: DiskFullError) -> TrainingStopped:
    """The one-line error for a run that cannot write (a full disk): the file, the step, the last good checkpoint."""
    if writer is not None:
        with contextlib.suppress(OSError):
            writer.close()
    intact = checkpoint.list_checkpoints(run_dir)
    where = describe_path(absolute(run_dir))
    if intact:
        after = (f"the last good checkpoint, {describe_path(intact[-1])} (step {checkpoint.step_of(intact[-1])}), is "
                 f"untouched: free some space, then continue with: pairforge train --resume {where}")
    else:
        after = "no checkpoint was saved yet: free some space, then start the run again"
    if isinstance(error, checkpoint.CheckpointDiskFull):
        head = str(error)
    else:  # DiskFullError's own advice ("run the command again") is replaced by the way to continue
        file = Path(error.filename)
        free = free_bytes(file.parent)
        head = (f"{'quota exceeded' if error.errno == errno.EDQUOT else 'no space left on the device'} while writing "
                f"{describe_path(file)}" + (f" ({format_bytes(free)} free in {describe_path(file.parent)})"
                                            if free is not None else ""))
    return TrainingStopped(f"{head}; training stopped at step {state.step} of {state.schedule.total_steps}, and "
                           f"{after}")


def append_lines(path: Path, lines: list[str]) -> None:
    """Append ``lines`` to ``path``; a full disk is a :class:`DiskFullError` naming the file."""
    with _naming_a_full_disk(path), open(path, "a", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)


class MetricsWriter:
    """Appends rows to metrics.jsonl (and TensorBoard when asked and installed)."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.handle = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("--tensorboard: tensorboard is not installed; writing metrics.jsonl only")
            else:
                self.board = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        with _naming_a_full_disk(self.path):
            self.handle.write(json.dumps({"time": time.time(), **row}) + "\n")
            self.handle.flush()
        if self.board is not None:
            prefix = "val/" if row.get("split") == "val" else "train/"
            for name, value in row.items():
                if name not in ("step", "split") and isinstance(value, (int, float)):
                    self.board.add_scalar(prefix + name, value, row["step"])

    def close(self) -> None:
        self.handle.close()
        if self.board is not None:
            self.board.close()


class MetricsWindow:
    """Loss sums and timings since the last metrics row."""

    def __init__(self, wait_s: float) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.start_s = time.perf_counter()
        self.wait_s = wait_s

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1

    def close(self, images_per_step: int, wait_s: float) -> dict[str, float]:
        """Mean losses, images/s and data wait of the window; starts the next one."""
        now = time.perf_counter()
        elapsed = max(now - self.start_s, 1e-9)
        means = {
            **{name: float(value) / self.steps for name, value in self.sums.items()},
            "images_per_s": self.steps * images_per_step / elapsed,
            "data_wait_fraction": (wait_s - self.wait_s) / elapsed,
        }
        self.sums, self.steps, self.start_s, self.wait_s = {}, 0, now, wait_s
        return means
