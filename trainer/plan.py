"""What a training run will do, resolved before it starts: ``pairforge train --dry-run``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from pairforge.errors import PairforgeError
from pairforge.storage import Location
from pairforge.tars import ShardReading, read_shard
from pairforge.trainer import checkpoint
from pairforge.trainer.config import TrainConfig, resolve_precision
from pairforge.trainer.loop import resolve_config, resolve_device
from pairforge.trainer.schedule import describe_schedule, make_schedule, resumed_schedule


def describe_plan(config: TrainConfig, resume: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """The resolved config of a run (``train --dry-run``) with what it implies, and warnings about it.

    Returns:
        (the config as JSON with ``dataset`` and ``resolved``: device, precision, world size,
        steps per epoch, total steps and epochs, steps already done, the lr schedule; warnings).

    Raises:
        PairforgeError: the config does not fit the dataset or the machine, or RESUME has no
            readable checkpoint state.
    """
    resolved, info, _ = resolve_config(config)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(resolved.device)
    precision = resolve_precision(resolved.precision, device.type)
    schedule = make_schedule(resolved.optim, info.counts.get("train", 0), resolved.data.batch_size, world_size)
    done = 0
    if resume is not None:  # what the loop will do: continue, or extend with a continuous lr
        try:
            state = checkpoint.load_state(checkpoint.resolve_checkpoint(Path(resume)))
        except (PairforgeError, OSError) as exc:
            raise PairforgeError(f"{resume}: {exc}") from exc
        done = int(state["step"])
        schedule = resumed_schedule(state.get("schedule"), done, schedule)
    document = resolved.to_dict()
    document["dataset"] = info.to_dict()
    document["resolved"] = {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "precision": precision,
        "world_size": world_size,
        "train_samples": info.counts.get("train", 0),
        "steps_per_epoch": schedule.steps_per_epoch,
        "total_steps": schedule.total_steps,
        "steps_done": done,
        "total_epochs": round(schedule.total_steps / schedule.steps_per_epoch, 4),
        "schedule": dataclasses.asdict(schedule),
        "lr_schedule": describe_schedule(schedule, resolved.optim.lr),
    }
    warnings = []
    size = stored_size(info.splits.get("train", ()))
    augment = resolved.augment
    if size is not None:
        document["resolved"]["stored_size"] = f"{size[1]}x{size[0]}"
        wanted = augment.load_size if augment.mode != "none" else augment.crop_size
        if min(size) < augment.crop_size:
            warnings.append(
                f"the crop ({augment.crop_size} px) is larger than the stored images ({size[1]}x{size[0]} px): "
                f"training upscales them {wanted / min(size):.2f}x to {wanted} px first; for these data "
                f"keep the paper's 286/256 ratio at this size: {fitting_options(min(size), resolved.model.generator)}")
    return document, warnings


def stored_size(urls: tuple[str, ...]) -> tuple[int, int] | None:
    """(height, width) of the first sample of the first local shard, from its .json (None if unknown)."""
    for url in urls[:1]:
        if Location(url).remote:
            return None
        for _, fields in read_shard(ShardReading(url)):  # the core reader: never raises, stops at damage
            try:
                meta = json.loads(fields.get("json", b"{}"))
                if isinstance(meta, dict) and "height" in meta and "width" in meta:
                    return int(meta["height"]), int(meta["width"])
            except (ValueError, TypeError):
                return None
    return None


def fitting_options(side: int, generator: str) -> str:
    """Load/crop sizes (and generator) for images of ``side`` px: crop a multiple of 32 within them."""
    crop = max(32, side // 32 * 32)
    text = f"--load-size {round(crop * 286 / 256)} --crop-size {crop}"
    fixed = {"unet_256": 256, "unet_128": 128}.get(generator)
    return text + (" --generator unet" if fixed is not None and fixed != crop else "")
