"""The training loop: config -> data -> models -> optimizers -> one loop (lr, batch, step, log, save, validate).

Read :func:`_train` and :func:`_loop` top to bottom to follow one step of training. The
objective itself is in :mod:`~pairforge.trainer.step`; resolving options, starting or resuming
the run folder and writing checkpoints are in :mod:`~pairforge.trainer.run`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pairforge.errors import PairforgeError
from pairforge.files import DiskFullError, write_atomic
from pairforge.paths import absolute
from pairforge.trainer import ddp, report
from pairforge.trainer.augment import PairAugment
from pairforge.trainer.config import TrainConfig, resolve_precision
from pairforge.trainer.data import (
    DatasetInfo,
    PairStream,
    ShardProblem,
    StreamState,
    from_worker,
    iterate_split,
    make_loader,
    recorded_shards,
)
from pairforge.trainer.inference import InferenceConfig, Predictor
from pairforge.trainer.run import (
    MetricsWindow,
    MetricsWriter,
    StopRequest,
    TrainingInterrupted,
    TrainResult,
    TrainState,
    append_lines,
    build_models,
    check_data,
    resolve_config,
    resolve_device,
    save,
    set_kernel_flags,
    start_run,
    stopped,
    training_handles,
)
from pairforge.trainer.schedule import lr_factor, make_schedule
from pairforge.trainer.step import Handles, Models, train_step, update_ema
from pairforge.trainer.transforms import Encoding, encode_pair
from pairforge.trainer.validation import validate

Progress = Callable[[int, int, dict[str, Any]], None]

VAL_BATCH = 8
"""Pairs per validation forward pass."""


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: Progress | None = None,
    stop_at: int | None = None,
    verify: bool = False,
) -> TrainResult:
    """Train pix2pix on a shard set (or continue ``resume`` exactly).

    The process owns the run folder while it trains (rank 0 in a DDP run): a second ``train``
    resuming it is refused with the holder named.

    Args:
        config: the run config (for resume, :func:`~pairforge.trainer.run.resume_config` of the run); with
            ``config.init_from`` a new run starts from those weights (:func:`~pairforge.trainer.run.initialize_from`).
        resume: run folder to continue from its newest checkpoint, or one of its
            ``checkpoints/step-*`` folders to continue from that one (later checkpoints and
            metrics rows are set aside, see :func:`~pairforge.trainer.run.start_run`).
        progress: called after every step with (step, total_steps, latest logged row).
        stop_at: stop (with a checkpoint) after this many steps, as if interrupted; the
            schedule still spans the whole run, so ``--resume`` continues it exactly.
        verify: hash every shard against dataset.json's sha256 before training (sizes are
            always compared).

    Returns:
        the run summary.

    Raises:
        DatasetError: missing/unreadable dataset.json or shards (before the first step).
        CheckpointError: ``resume`` holds a damaged or refused checkpoint (the newest intact one
            is named), or ``init_from`` does.
        ResumeError: ``config`` differs from the resumed run's in an option that changes what it
            computes, its shards are another dataset, fewer steps than planned, or another
            process count.
        InitFromError: ``init_from``'s generator does not fit the new run's.
        FolderBusyError: another process owns the run folder.
        TrainingStopped: the disk filled up (the file and the last good checkpoint are named;
            temporaries are removed).
        ConfigError: invalid settings.
        TrainingInterrupted: SIGINT/SIGTERM; the checkpoint of the current step is saved.
    """
    with StopRequest() as stop, contextlib.ExitStack() as owned:
        return _train(config, resume, progress, stop_at, verify, stop, owned)


def _train(
    config: TrainConfig,
    resume: str | Path | None,
    progress: Progress | None,
    stop_at: int | None,
    verify: bool,
    stop: StopRequest,
    owned: contextlib.ExitStack,
) -> TrainResult:
    # -- config, device, process group, data checks ---------------------------------------------------
    config, info, encoding = resolve_config(config)
    device = resolve_device(config.device)
    context = ddp.setup(device.type)
    set_kernel_flags(config.deterministic, device)
    problems = check_data(info, config, verify)
    schedule = make_schedule(config.optim, info.counts.get("train", 0), config.data.batch_size, context.world_size)

    # -- models, optimizers, random states; the run folder (new, or continued from a checkpoint) ---------
    torch.manual_seed(config.seed)  # the initial weights
    models = build_models(config, device)
    torch.manual_seed(config.seed + 1 + context.rank)  # dropout noise differs per rank
    state = TrainState(
        step=0,
        schedule=schedule,
        augment_rng=torch.Generator().manual_seed(config.seed * 1000 + context.rank),
        stream=StreamState.fresh(max(1, config.data.num_workers)),
    )
    run_dir, document = start_run(config, info, schedule, resume, models, state, context, device, owned)
    handles = training_handles(models, config.compile, context, device)

    # -- data, then train ------------------------------------------------------------------------------
    batches = _open_batches(config, info, encoding, state.stream, context, device)
    bf16 = resolve_precision(config.precision, device.type) == "bf16"
    run = _Run(
        config, info, run_dir, document, context, device, problems,
        inputs=Inputs(PairAugment(config.augment, nearest_a=encoding.label_a), encoding, device),
        autocast=torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext(),
        writer=MetricsWriter(run_dir, config.tensorboard) if context.is_main else None,
    )
    end = state.schedule.total_steps if stop_at is None else min(state.schedule.total_steps, stop_at)
    try:
        record = _loop(run, models, handles, state, batches, end, progress, stop)
        if stop.signal is not None:
            raise _interrupted(run, models, state, stop.signal)
        return _finish(run, models, state, batches, record)
    except DiskFullError as exc:
        raise stopped(run.run_dir, run.writer, state, exc) from None


def _loop(
    run: _Run, models: Models, handles: Handles, state: TrainState, batches: _Batches, end: int,
    progress: Progress | None, stop: StopRequest,
) -> _Record:
    """Train from ``state.step`` to ``end`` or a stop signal: lr, batch, step, log, checkpoint, validate."""
    config, context = run.config, run.context
    window = MetricsWindow(batches.wait_s)
    record = _Record(time.perf_counter(), state.step, batches.wait_s)
    models.generator.train()
    if models.discriminator is not None:
        models.discriminator.train()
    while state.step < end and stop.signal is None:
        lr = config.optim.lr * lr_factor(state.step, state.schedule)
        models.set_lr(lr)

        a, b, batch = batches.next()
        if record.samples is None and context.is_main:
            with torch.no_grad():
                record.samples = run.inputs.for_testing(a[:4], b[:4], batch["sizes"][:4])
        if config.data.record_keys:
            record.keys.extend(zip(batch["epochs"].tolist(), batch["keys"], strict=True))
        x, y = run.inputs.for_training(a, b, batch["sizes"], state.augment_rng)
        losses = train_step(models, handles, x, y, config.loss, config.model.conditional, run.autocast)
        if models.ema is not None:
            update_ema(models.ema, models.generator, config.optim.ema)
        state.step += 1
        window.add(losses)

        if state.step % config.log_every == 0 or state.step == end:
            record.row = _log(run, state, window, lr, batches.wait_s)
        if progress is not None and context.is_main:
            progress(state.step, state.schedule.total_steps, record.row)
        if config.checkpoint_every and state.step % config.checkpoint_every == 0 and state.step < end:
            record.checkpoint = _save(run, models, state) or record.checkpoint
        if context.is_main:
            _validate_or_sample(run, models, record, state.step, end)
    return record


def _log(run: _Run, state: TrainState, window: MetricsWindow, lr: float, wait_s: float) -> dict[str, Any]:
    """The metrics row of the steps since the last one (written by rank 0); every rank takes part."""
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    means = window.close(run.config.data.batch_size * run.context.world_size, wait_s)
    row = {
        "step": state.step,
        "epoch": round(state.step / state.schedule.steps_per_epoch, 4),
        "lr": lr,
        **means,
        "skipped_samples": sum(ddp.gather(sum(state.stream.skipped), run.context)),
        "skipped_shards": len(run.problems),
    }
    if run.writer is not None:
        run.writer.write(row)
    return row


def _validate_or_sample(run: _Run, models: Models, record: _Record, step: int, end: int) -> None:
    """Rank 0's periodic work: validation scores or a sample grid, and the HTML report."""
    config = run.config
    if config.val_every and step % config.val_every == 0 and step < end:
        record.validation = _validate(run, models, record, step)
        _write_validation(run, step, record.validation)
    elif config.sample_every and step % config.sample_every == 0 and step < end:
        _validate(run, models, record, step)
    if run.writer is not None and step % max(config.log_every * 10, 1) == 0:
        report.write_report(run.run_dir)


def _interrupted(run: _Run, models: Models, state: TrainState, signal: str) -> TrainingInterrupted:
    """Save the current step's checkpoint; the error that says how to continue."""
    saved = _save(run, models, state)
    if run.writer is not None:
        run.writer.close()
    return TrainingInterrupted(
        f"interrupted by {signal} at step {state.step} of {state.schedule.total_steps}; checkpoint saved to {saved}. "
        f"Continue with: pairforge train --resume {Path(absolute(run.run_dir))}"
    )


def _finish(run: _Run, models: Models, state: TrainState, batches: _Batches, record: _Record) -> TrainResult:
    """The last checkpoint, validation, keys.jsonl, summary.json and report; the run summary."""
    context = run.context
    elapsed = time.perf_counter() - record.start_s
    if context.enabled:
        for network in models.networks().values():
            ddp.sync_buffers(network, context)
    checksums = ddp.gather(_checksum(models.generator), context)
    all_keys = ddp.gather(record.keys, context) if run.config.data.record_keys else []
    record.checkpoint = _save(run, models, state) or record.checkpoint
    if context.is_main:
        record.validation = _validate(run, models, record, state.step) or record.validation
        _write_validation(run, state.step, record.validation)
        if run.config.data.record_keys:
            append_lines(run.run_dir / "keys.jsonl", [json.dumps({"rank": rank, "epoch": epoch, "key": key})
                                                       for rank, keys in enumerate(all_keys) for epoch, key in keys])
    images_per_step = run.config.data.batch_size * context.world_size
    result = TrainResult(
        run_dir=run.run_dir,
        steps=state.step,
        total_steps=state.schedule.total_steps,
        elapsed_s=elapsed,
        images_per_s=(state.step - record.start_step) * images_per_step / max(elapsed, 1e-9),
        data_wait_fraction=(batches.wait_s - record.start_wait_s) / max(elapsed, 1e-9),
        skipped_samples=int(record.row.get("skipped_samples", sum(state.stream.skipped))),
        last_losses={k: v for k, v in record.row.items() if k.startswith("loss_")},
        validation=record.validation,
        checkpoint=record.checkpoint,
        parameter_checksums=checksums,
        skipped_shards=len(run.problems),
        skipped_bytes=sum(problem.missing_bytes for problem in run.problems),
    )
    if context.is_main:
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
        write_atomic(run.run_dir / "summary.json", json.dumps(summary, indent=2))
        report.write_report(run.run_dir)
        if run.writer is not None:
            run.writer.close()
    ddp.barrier(context)
    ddp.teardown(context)
    return result


# -- validation -------------------------------------------------------------------------------------


def _validate(run: _Run, models: Models, record: _Record, step: int) -> dict[str, float]:
    """:func:`validate` on the run's val split with the test-time generator (the EMA one if any), rank 0."""
    generator = models.ema if models.ema is not None else models.generator
    predictor = Predictor(generator, run.document, InferenceConfig(
        batch_size=VAL_BATCH, max_side=max(run.config.augment.crop_size, 8), device=str(run.device), scale="native"))
    val_urls, limit = run.info.splits.get("val", ()), run.config.data.max_val_samples
    source = iterate_split(val_urls, run.inputs.encoding, VAL_BATCH, limit) if val_urls and limit else iter([])
    return validate(predictor, source, run.inputs, run.autocast, record.samples,
                    run.run_dir / "samples" / f"step-{step:09d}.png")


def _write_validation(run: _Run, step: int, validation: dict[str, float]) -> None:
    if validation and run.writer is not None:
        run.writer.write({"step": step, "split": "val", **validation})


# -- what a run holds while it trains ---------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """What stays fixed while a run trains: its config, folder, process group and helpers."""

    config: TrainConfig
    info: DatasetInfo
    run_dir: Path
    document: dict[str, Any]
    """config.json (its schedule is updated in place when a resume extends the run)."""
    context: ddp.Distributed
    device: torch.device
    problems: list[ShardProblem]
    """Shards whose size or checksum differs from dataset.json."""
    inputs: Inputs
    autocast: contextlib.AbstractContextManager[Any]
    writer: MetricsWriter | None
    """metrics.jsonl (rank 0 only)."""


@dataclass(frozen=True)
class Inputs:
    """How a batch of raw pairs becomes the networks' input ``x`` and target ``y``."""

    augment: PairAugment
    encoding: Encoding
    device: torch.device

    def for_training(
        self, a: torch.Tensor, b: torch.Tensor, sizes: torch.Tensor, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded (x, y) with one random geometry per pair drawn from ``rng``; ``(B, C, H, W)`` channels_last."""
        a, b = self.augment(a, b, sizes, rng)
        x, y = encode_pair(a, b, self.encoding)
        # one explicit dense layout (a strided slice would send the CPU convolutions down a
        # much slower path)
        return x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)

    def for_testing(self, a: torch.Tensor, b: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded (x, y) with the evaluation geometry (validation, sample grids), on the device."""
        a, b = self.augment(a.to(self.device).float(), b.to(self.device).float(), sizes, train=False)
        return encode_pair(a, b, self.encoding)


@dataclass
class _Record:
    """What the loop leaves for the end of the run."""

    start_s: float
    start_step: int
    start_wait_s: float
    row: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The last metrics row."""
    validation: dict[str, float] = dataclasses.field(default_factory=dict)
    checkpoint: Path | None = None
    samples: tuple[torch.Tensor, torch.Tensor] | None = None
    """Encoded (x, y) of the first training pairs: the sample grid when there is no val split."""
    keys: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    """(epoch, key) of every trained sample, with ``--record-keys``."""


class _Batches:
    """Pulls batches, moves them to the device and times the wait."""

    def __init__(self, loader: torch.utils.data.DataLoader, device: torch.device, state: StreamState) -> None:
        self.iterator: Iterator[dict[str, Any]] = iter(loader)
        self.device = device
        self.state = state
        self.wait_s = 0.0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        start = time.perf_counter()
        try:
            batch = next(self.iterator)
        except PairforgeError as exc:  # a DataLoader worker's: the storage went away, no samples...
            raise from_worker(exc) from None
        a = batch["a"].to(self.device, non_blocking=True).float()
        b = batch["b"].to(self.device, non_blocking=True).float()
        self.wait_s += time.perf_counter() - start
        self.state.update(batch)
        return a, b, batch


def _open_batches(
    config: TrainConfig, info: DatasetInfo, encoding: Encoding, stream: StreamState, context: ddp.Distributed,
    device: torch.device,
) -> _Batches:
    """This rank's training batches, continuing from ``stream`` (which they advance)."""
    workers = config.data.num_workers
    pairs = PairStream(
        info.splits["train"],
        encoding,
        config.data.batch_size,
        config.seed,
        context.rank,
        context.world_size,
        workers,
        config.data.shuffle_buffer,
        copy.deepcopy(stream),
        expected={url: int(entry.get("count", 0)) for url, entry in recorded_shards(info).items()},
    )
    return _Batches(make_loader(pairs, workers, pin_memory=device.type == "cuda"), device, stream)


def _save(run: _Run, models: Models, state: TrainState) -> Path | None:
    """The step's checkpoint (:func:`~pairforge.trainer.run.save`); its folder on rank 0."""
    return save(run.run_dir, models, state, run.document, run.config.keep_checkpoints, run.context, run.device)


def _checksum(module: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(t.double().sum().item() + t.double().abs().sum().item() for t in module.state_dict().values()))
