"""The training loop: config -> data -> models -> optimizers -> one loop (lr, step, log, eval, save)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
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

from pairforge import __version__
from pairforge.device import resolve_device as core_resolve_device
from pairforge.errors import ConfigError, PairforgeError
from pairforge.paths import absolute, is_remote
from pairforge.trainer import checkpoint, ddp, report
from pairforge.trainer import metrics as quality
from pairforge.trainer.augment import PairAugment
from pairforge.trainer.config import TrainConfig
from pairforge.trainer.data import (
    DatasetInfo,
    PairStream,
    StreamState,
    check_shards,
    iterate_split,
    load_dataset_info,
    make_loader,
    recorded_shards,
    verify_shards,
)
from pairforge.trainer.losses import discriminator_loss, generator_gan_loss, l1_loss
from pairforge.trainer.networks import build_discriminator, build_generator, inference_generator
from pairforge.trainer.schedule import (
    Schedule,
    describe_schedule,
    extend_schedule,
    lr_factor,
    make_schedule,
)
from pairforge.trainer.transforms import (
    Encoding,
    decode_output,
    encode_input,
    encode_target,
    visualize_input,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, Any]], None]


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


class _StopRequest:
    """SIGINT/SIGTERM handlers that ask the loop to stop after the current step.

    The first signal sets :attr:`signal`; the loop saves a checkpoint and raises
    :class:`TrainingInterrupted`. A second signal interrupts at once (the checkpoint save
    is atomic, so nothing half-written is left). Only installed in the main thread of a
    single-process run (torchrun handles signals of DDP runs).
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
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
    if config.data.colorspace == "lab" and info.kind != "gray":
        raise ConfigError(
            "colorspace", "lab",
            f"rgb for this {info.kind} dataset: lab feeds the network the lightness L of B (the photo) and ignores A, "
            "so it only fits gray (colorization) datasets made by `pairforge make-gray`",
        )
    if config.data.label_input == "color" and info.kind != "labels":
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
    document["dataset"] = info.to_dict()
    document["schedule"] = dataclasses.asdict(schedule)
    document["created_by"] = f"pairforge {__version__}"
    return document


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its local shard/dataset.json/output paths made absolute (URLs and ``pipe:`` kept)."""

    def fix(value: str | None) -> str | None:
        return value if not value or is_remote(value) else absolute(value)

    data = dataclasses.replace(
        config.data, shards=fix(config.data.shards) or "", dataset_json=fix(config.data.dataset_json),
        val_shards=fix(config.data.val_shards),
    )
    return dataclasses.replace(config, data=data, output=fix(config.output) or config.output)


def resume_config(run_dir: str | Path, steps: int | None = None) -> TrainConfig:
    """The config a run was started with, optionally with a new total step count.

    Runs written before paths were stored absolute hold paths relative to the folder training
    started in; that folder is recovered from the run folder's place under ``output``, so the
    run resumes from anywhere.

    Raises:
        CheckpointError: no readable config.json in ``run_dir``.
    """
    document = checkpoint.load_config(run_dir)
    try:
        config = TrainConfig.from_dict(document)
    except (TypeError, KeyError) as exc:
        raise checkpoint.CheckpointError(f"{Path(run_dir) / 'config.json'}: not a pairforge run config ({exc})") from None
    started_in = _start_folder(Path(absolute(run_dir)), config.output)
    if started_in is not None:
        config = _rebase(config, started_in)
    if steps is not None:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, steps=steps))
    return config


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

    def fix(value: str | None) -> str | None:
        return value if not value or is_remote(value) or os.path.isabs(value) else str(folder / value)

    data = dataclasses.replace(
        config.data, shards=fix(config.data.shards) or "", dataset_json=fix(config.data.dataset_json),
        val_shards=fix(config.data.val_shards),
    )
    return dataclasses.replace(config, data=data, output=fix(config.output) or config.output)


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_parameter, parameter in zip(ema.parameters(), model.parameters(), strict=True):
        ema_parameter.lerp_(parameter.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def _checksum(module: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(t.double().sum().item() + t.double().abs().sum().item() for t in module.state_dict().values()))


class _Batches:
    """Pulls batches, moves them to the device and times the wait."""

    def __init__(self, loader: torch.utils.data.DataLoader, device: torch.device, state: StreamState) -> None:
        self.iterator: Iterator[dict[str, Any]] = iter(loader)
        self.device = device
        self.state = state
        self.wait_s = 0.0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        start = time.perf_counter()
        batch = next(self.iterator)
        a = batch["a"].to(self.device, non_blocking=True).float()
        b = batch["b"].to(self.device, non_blocking=True).float()
        self.wait_s += time.perf_counter() - start
        self.state.update(batch)
        return a, b, batch


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: Progress | None = None,
    stop_at: int | None = None,
    verify: bool = False,
) -> TrainResult:
    """Train pix2pix on a shard set (or continue ``resume`` exactly).

    Args:
        config: the run config (for resume, :func:`resume_config` of the run).
        resume: run folder to continue from its newest checkpoint.
        progress: called after every step with (step, total_steps, latest logged row).
        stop_at: stop (with a checkpoint) after this many steps, as if interrupted; the
            schedule still spans the whole run, so ``--resume`` continues it exactly.
        verify: hash every shard against dataset.json's sha256 before training (sizes are
            always compared).

    Returns:
        the run summary.

    Raises:
        DatasetError: missing/unreadable dataset.json or shards (before the first step).
        CheckpointError: ``resume`` holds a damaged or refused checkpoint.
        ConfigError: invalid settings.
        TrainingInterrupted: SIGINT/SIGTERM; the checkpoint of the current step is saved.
    """
    with _StopRequest() as stop:
        return _train(config, resume, progress, stop_at, verify, stop)


def _train(
    config: TrainConfig,
    resume: str | Path | None,
    progress: Progress | None,
    stop_at: int | None,
    verify: bool,
    stop: _StopRequest,
) -> TrainResult:
    # -- config, device, process group ------------------------------------------------------
    config, info, encoding = resolve_config(config)
    device = resolve_device(config.device)
    context = ddp.setup(device.type)
    use_cuda = device.type == "cuda"
    bf16 = config.precision == "bf16" or (config.precision == "auto" and use_cuda)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif use_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    check_shards(info.splits["train"] + info.splits.get("val", ()))
    problems = verify_shards(info, info.splits["train"] + info.splits.get("val", ()), full=verify)
    for problem in problems:
        logger.warning("shard %s: %s; its unreadable part is skipped and counted", problem.url, problem.reason)
    if not info.counts.get("val") and not config.data.val_shards:
        logger.warning("the shard set has no val samples: training runs without validation scores")
    schedule = make_schedule(config.optim, info.counts.get("train", 0), config.data.batch_size, context.world_size)
    document = config_document(config, info, schedule)

    # -- run folder (rank 0 creates it) -------------------------------------------------------
    if resume is not None:
        run_dir = Path(resume)
    else:
        run_dir = ddp.broadcast(
            checkpoint.new_run_folder(config.output, config.name) if context.is_main else None, context
        )
    if context.is_main:
        (run_dir / "config.json").write_text(json.dumps(document, indent=2, sort_keys=True))

    # -- models and optimizers ----------------------------------------------------------------
    torch.manual_seed(config.seed)
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
    torch.manual_seed(config.seed + 1 + context.rank)  # dropout noise differs per rank
    augment_rng = torch.Generator().manual_seed(config.seed * 1000 + context.rank)
    workers = config.data.num_workers
    stream_state = StreamState.fresh(max(1, workers))
    step = 0
    if resume is not None:
        found = checkpoint.resolve_checkpoint(run_dir)
        state = checkpoint.load_state(found)
        checkpoint.load_weights(generator, found / "generator.safetensors")
        if discriminator is not None:
            checkpoint.load_weights(discriminator, found / "discriminator.safetensors")
        if ema is not None:
            checkpoint.load_weights(ema, found / "generator_ema.safetensors")
        optimizer_g.load_state_dict(state["optimizer_g"])
        if optimizer_d is not None:
            optimizer_d.load_state_dict(state["optimizer_d"])
        rng = state["rng"][context.rank]
        torch.set_rng_state(rng["torch"])
        augment_rng.set_state(rng["augment"])
        if use_cuda and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], device)
        stream_state = StreamState(**state["data"][context.rank])
        step = int(state["step"])
        logger.info("resumed %s at step %d", found, step)
        planned = Schedule(**state["schedule"]) if state.get("schedule") else None
        if planned is not None and schedule.total_steps > planned.total_steps:  # --steps extends the run
            schedule = extend_schedule(planned, step, schedule.total_steps)
            document["schedule"] = dataclasses.asdict(schedule)
            if context.is_main:
                (run_dir / "config.json").write_text(json.dumps(document, indent=2, sort_keys=True))
            logger.warning("extending the run from %d to %d steps, lr continuous: %s", planned.total_steps,
                           schedule.total_steps, describe_schedule(schedule, config.optim.lr))

    train_generator: nn.Module = generator
    train_discriminator: nn.Module | None = discriminator
    if context.enabled:
        device_ids = [device.index] if use_cuda else None
        train_generator = nn.parallel.DistributedDataParallel(generator, device_ids=device_ids)
        if discriminator is not None:
            train_discriminator = nn.parallel.DistributedDataParallel(discriminator, device_ids=device_ids)
    plain_discriminator = discriminator
    if config.compile:
        train_generator = torch.compile(train_generator)
        if train_discriminator is not None:
            train_discriminator = torch.compile(train_discriminator)
            plain_discriminator = train_discriminator if not context.enabled else torch.compile(discriminator)

    # -- data -----------------------------------------------------------------------------------
    stream = PairStream(
        info.splits["train"],
        encoding,
        config.data.batch_size,
        config.seed,
        context.rank,
        context.world_size,
        workers,
        config.data.shuffle_buffer,
        copy.deepcopy(stream_state),
        expected={url: int(entry.get("count", 0)) for url, entry in recorded_shards(info).items()},
    )
    batches = _Batches(make_loader(stream, workers, pin_memory=use_cuda), device, stream_state)
    augment = PairAugment(config.augment, nearest_a=encoding.label_a)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    writer = _Writer(run_dir, config.tensorboard) if context.is_main else None
    seen_keys: list[tuple[int, str]] = []

    def step_batch(a: torch.Tensor, b: torch.Tensor, sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step: D on real and fake pairs, then G on GAN + L1."""
        a, b = augment(a, b, sizes, augment_rng)
        x, y = encode_input(a, encoding, b), encode_target(b, encoding)
        # one explicit dense layout (a strided slice would send the CPU convolutions down a
        # much slower path)
        x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        with autocast:
            fake = train_generator(x)
        losses: dict[str, torch.Tensor] = {}
        if train_discriminator is not None and plain_discriminator is not None and optimizer_d is not None:
            _set_requires_grad(discriminator, True)
            optimizer_d.zero_grad(set_to_none=True)
            with autocast:
                real_in = torch.cat([x, y], 1) if config.model.conditional else y
                fake_in = torch.cat([x, fake.detach()], 1) if config.model.conditional else fake.detach()
                loss_d = discriminator_loss(train_discriminator(real_in), train_discriminator(fake_in), config.loss.gan_mode)
            loss_d.backward()
            optimizer_d.step()
            _set_requires_grad(discriminator, False)
            losses["loss_d"] = loss_d.detach()
        optimizer_g.zero_grad(set_to_none=True)
        with autocast:
            loss_g = l1_loss(fake, y) * config.loss.lambda_l1
            losses["loss_g_l1"] = loss_g.detach() / max(config.loss.lambda_l1, 1e-12)
            if plain_discriminator is not None:
                fake_in = torch.cat([x, fake], 1) if config.model.conditional else fake
                loss_gan = generator_gan_loss(plain_discriminator(fake_in), config.loss.gan_mode)
                loss_g = loss_g + loss_gan
                losses["loss_g_gan"] = loss_gan.detach()
        loss_g.backward()
        optimizer_g.step()
        return losses

    def evaluate(label: str) -> dict[str, float]:
        """Validation metrics and a sample grid (rank 0)."""
        # the test-time generator (per-image batch-norm statistics, dropout off), as predict runs it
        model = inference_generator(ema if ema is not None else generator)
        scores: dict[str, list[torch.Tensor]] = {"val_l1": [], "val_psnr": [], "val_ssim": []}
        grid: list[torch.Tensor] = []
        val_urls = info.splits.get("val", ())
        source = (
            iterate_split(val_urls, encoding, 8, config.data.max_val_samples)
            if val_urls and config.data.max_val_samples
            else iter([])
        )
        with torch.no_grad():
            for batch in source:
                a, b = augment(batch["a"].to(device).float(), batch["b"].to(device).float(), batch["sizes"], train=False)
                x, y = encode_input(a, encoding, b), encode_target(b, encoding)
                with autocast:
                    out = model(x)
                out = out.float()
                predicted, target = decode_output(out, encoding, x), decode_output(y, encoding, x)
                scores["val_l1"].append(quality.l1(predicted, target))  # [0, 1] RGB, as `evaluate`'s l1
                scores["val_psnr"].append(quality.psnr(predicted, target))
                scores["val_ssim"].append(quality.ssim(predicted, target))
                if len(grid) < 4:
                    grid.extend(torch.stack([visualize_input(x, encoding), predicted, target], 1).cpu().unbind(0))
        if not grid and sample_batch is not None:
            with torch.no_grad(), autocast:
                out = model(sample_batch[0]).float()
            predicted = decode_output(out, encoding, sample_batch[0])
            target = decode_output(sample_batch[1], encoding, sample_batch[0])
            grid = list(torch.stack([visualize_input(sample_batch[0], encoding), predicted, target], 1).cpu().unbind(0))
        if grid:
            report.write_sample_grid(run_dir / "samples" / f"{label}.png", grid[:4])
        return {name: float(torch.cat(values).mean()) for name, values in scores.items() if values}

    def save() -> Path | None:
        states = ddp.gather(
            {
                "data": stream_state.to_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "augment": augment_rng.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if use_cuda else None,
                },
            },
            context,
        )
        if not context.is_main:
            return None
        networks: dict[str, nn.Module] = {"generator": generator}
        if discriminator is not None:
            networks["discriminator"] = discriminator
        if ema is not None:
            networks["generator_ema"] = ema
        state = {
            "step": step,
            "optimizer_g": optimizer_g.state_dict(),
            "optimizer_d": optimizer_d.state_dict() if optimizer_d else None,
            "rng": [s["rng"] for s in states],
            "data": [s["data"] for s in states],
            "schedule": dataclasses.asdict(schedule),
        }
        return checkpoint.save_checkpoint(run_dir, step, networks, state, document, config.keep_checkpoints)

    # -- the loop ---------------------------------------------------------------------------------
    total = schedule.total_steps
    images_per_step = config.data.batch_size * context.world_size
    sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
    sums: dict[str, torch.Tensor] = {}
    window_steps, window_start, window_wait = 0, time.perf_counter(), batches.wait_s
    run_start, run_start_step, run_wait_start = time.perf_counter(), step, batches.wait_s
    row: dict[str, Any] = {}
    validation: dict[str, float] = {}
    last_checkpoint: Path | None = None
    generator.train()
    if discriminator is not None:
        discriminator.train()
    end = total if stop_at is None else min(total, stop_at)
    while step < end and stop.signal is None:
        lr = config.optim.lr * lr_factor(step, schedule)
        for optimizer in (optimizer_g, optimizer_d):
            if optimizer is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr

        a, b, batch = batches.next()
        if sample_batch is None and context.is_main:
            with torch.no_grad():
                fixed_a, fixed_b = augment(a[:4], b[:4], batch["sizes"][:4], train=False)
                sample_batch = (encode_input(fixed_a, encoding, fixed_b), encode_target(fixed_b, encoding))
        if config.data.record_keys:
            seen_keys.extend(zip(batch["epochs"].tolist(), batch["keys"], strict=True))
        losses = step_batch(a, b, batch["sizes"])
        if ema is not None:
            _update_ema(ema, generator, config.optim.ema)
        step += 1
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + value
        window_steps += 1

        if step % config.log_every == 0 or step == end:
            if use_cuda:
                torch.cuda.synchronize(device)
            now = time.perf_counter()
            elapsed = max(now - window_start, 1e-9)
            row = {
                "step": step,
                "epoch": round(step / schedule.steps_per_epoch, 4),
                "lr": lr,
                **{name: float(value) / window_steps for name, value in sums.items()},
                "images_per_s": window_steps * images_per_step / elapsed,
                "data_wait_fraction": (batches.wait_s - window_wait) / elapsed,
                "skipped_samples": sum(ddp.gather(sum(stream_state.skipped), context)),
                "skipped_shards": len(problems),
            }
            if writer is not None:
                writer.write(row)
            sums, window_steps, window_start, window_wait = {}, 0, now, batches.wait_s
        if progress is not None and context.is_main:
            progress(step, total, row)

        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < end:
            last_checkpoint = save() or last_checkpoint
        if context.is_main:
            if config.val_every and step % config.val_every == 0 and step < end:
                validation = evaluate(f"step-{step:09d}")
                if validation and writer is not None:
                    writer.write({"step": step, "split": "val", **validation})
            elif config.sample_every and step % config.sample_every == 0 and step < end:
                evaluate(f"step-{step:09d}")
            if writer is not None and step % max(config.log_every * 10, 1) == 0:
                report.write_report(run_dir)

    # -- the end ------------------------------------------------------------------------------------
    if stop.signal is not None:
        saved = save()
        if writer is not None:
            writer.close()
        raise TrainingInterrupted(
            f"interrupted by {stop.signal} at step {step} of {total}; checkpoint saved to {saved}. "
            f"Continue with: pairforge train --resume {Path(absolute(run_dir))}"
        )
    elapsed = time.perf_counter() - run_start
    if context.enabled:
        ddp.sync_buffers(generator, context)
        if discriminator is not None:
            ddp.sync_buffers(discriminator, context)
        if ema is not None:
            ddp.sync_buffers(ema, context)
    checksums = ddp.gather(_checksum(generator), context)
    all_keys = ddp.gather(seen_keys, context) if config.data.record_keys else []
    saved = save()
    last_checkpoint = saved or last_checkpoint
    if context.is_main:
        validation = evaluate(f"step-{step:09d}") or validation
        if validation and writer is not None:
            writer.write({"step": step, "split": "val", **validation})
        if config.data.record_keys:
            with open(run_dir / "keys.jsonl", "a") as handle:
                for rank, keys in enumerate(all_keys):
                    for epoch, key in keys:
                        handle.write(json.dumps({"rank": rank, "epoch": epoch, "key": key}) + "\n")
    steps_done = step - run_start_step
    result = TrainResult(
        run_dir=run_dir,
        steps=step,
        total_steps=total,
        elapsed_s=elapsed,
        images_per_s=steps_done * images_per_step / max(elapsed, 1e-9),
        data_wait_fraction=(batches.wait_s - run_wait_start) / max(elapsed, 1e-9),
        skipped_samples=int(row.get("skipped_samples", sum(stream_state.skipped))),
        last_losses={k: v for k, v in row.items() if k.startswith("loss_")},
        validation=validation,
        checkpoint=last_checkpoint,
        parameter_checksums=checksums,
        skipped_shards=len(problems),
        skipped_bytes=sum(problem.missing_bytes for problem in problems),
    )
    if context.is_main:
        summary = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        report.write_report(run_dir)
        if writer is not None:
            writer.close()
    ddp.barrier(context)
    ddp.teardown(context)
    return result


class _Writer:
    """Appends rows to metrics.jsonl (and TensorBoard when asked and installed)."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.handle = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in close()
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("--tensorboard: tensorboard is not installed; writing metrics.jsonl only")
            else:
                self.board = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
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
