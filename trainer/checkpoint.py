"""Run folders and checkpoints: safetensors weights, ``weights_only`` state, and ``load_generator``.

A checkpoint folder ``runs/<00001>-<name>/checkpoints/step-00001000/`` holds::

    generator.safetensors        generator weights and buffers
    generator_ema.safetensors    EMA generator (when --ema is on)
    discriminator.safetensors    discriminator (when the GAN term is on)
    state.pt                     optimizers, RNG, data-stream positions, step
                                 (plain tensors and containers: torch.load(weights_only=True))
    config.json                  the run's resolved config (same as the run folder's)

Nothing here unpickles code: weights are safetensors and state is read with
``torch.load(..., weights_only=True)``. Every reader of a checkpoint (``train --resume``,
predict, evaluate, export, serve) goes through the checked loaders here
(:func:`load_state`, :func:`load_weights`, :func:`load_config`, :func:`load_generator`):
a damaged or refused file is one :class:`CheckpointError` naming the file and the cause.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pairforge.errors import DatasetError, PairforgeError

logger = logging.getLogger(__name__)



class CheckpointError(DatasetError):
    """A checkpoint that is missing, damaged, or refused because loading it could run code."""


RUN_PATTERN = re.compile(r"^(\d{5})-")
STEP_PATTERN = re.compile(r"^step-(\d{9})$")


def new_run_folder(output: str | Path, name: str) -> Path:
    """Create ``output/<next number>-<name>/`` (numbers count up from 00001)."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in output.iterdir() if (m := RUN_PATTERN.match(p.name))]
    number = max(numbers, default=0) + 1
    while True:
        folder = output / f"{number:05d}-{name}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def _tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().contiguous().cpu() for name, tensor in unwrap(module).state_dict().items()}


def save_checkpoint(
    run_dir: Path,
    step: int,
    networks: dict[str, nn.Module],
    state: dict[str, Any],
    config: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write ``checkpoints/step-<step>/`` atomically and drop all but the newest ``keep``.

    Args:
        run_dir: the run folder.
        step: optimizer steps done.
        networks: name -> module (saved as ``<name>.safetensors``).
        state: optimizer states, RNG states, counters (tensors, numbers, strings, containers).
        config: the run config (copied into the checkpoint so the folder stands alone).
        keep: checkpoints to keep.

    Returns:
        the checkpoint folder.
    """
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    temporary = root / f".step-{step:09d}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    for name, module in networks.items():
        save_file(_tensors(module), str(temporary / f"{name}.safetensors"))
    torch.save(state, temporary / "state.pt")
    (temporary / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if final.exists():  # the same step saved again (e.g. interrupted right after a periodic save)
        previous = root / f".step-{step:09d}.old"
        shutil.rmtree(previous, ignore_errors=True)
        final.rename(previous)
        temporary.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        temporary.rename(final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_PATTERN.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: p.name)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the newest checkpoint of a run folder.

    Raises:
        CheckpointError: neither a checkpoint nor a run with checkpoints.
    """
    path = Path(path)
    if (path / "state.pt").is_file() and (path / "generator.safetensors").is_file():
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise CheckpointError(f"{path}: no checkpoint found (expected a run folder or a checkpoints/step-* folder)")
    return checkpoints[-1]


def load_weights(module: nn.Module, file: str | Path) -> None:
    """Load a safetensors file into ``module`` (strict).

    Raises:
        CheckpointError: a missing, truncated or foreign file, or weights that do not fit the network.
    """
    if not os.path.isfile(file):
        raise CheckpointError(f"{file}: missing")
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # SafetensorError, OSError...: a damaged file
        raise CheckpointError(f"{file}: cannot load this damaged safetensors file ({type(exc).__name__}: {_first_line(exc)})") from None
    try:
        unwrap(module).load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{file}: cannot load these weights into the network ({_first_line(exc)})") from None


def load_state(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's state.pt, read with ``torch.load(weights_only=True)``: no code runs.

    Raises:
        CheckpointError: a pickle that would build arbitrary objects (refused, never run), or a
            truncated/garbage file.
    """
    path = Path(checkpoint) / "state.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        state = torch_load_plain(path)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}. Use checkpoints written by `pairforge train`.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a pairforge training state (a {type(state).__name__}, not a dict)")
    return state


def load_config(checkpoint: str | Path) -> dict[str, Any]:
    """The run config stored in a checkpoint (or run) folder.

    Raises:
        CheckpointError: missing or not valid JSON.
    """
    path = Path(checkpoint) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable ({_first_line(exc)})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a run config")
    return config


def torch_load_plain(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code.

    Raises:
        ValueError: why the file was refused, in our words: torch's own message advises
            ``weights_only=False``, which a user must never be told for a file like this.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        blocked = re.search(r"unsupported GLOBAL (\S+)", text, re.IGNORECASE)
        if blocked:
            raise ValueError(f"refused -- it asks to load {blocked.group(1)}, which could run code (only tensors "
                             "and plain containers are loaded)") from None
        raise ValueError("refused -- not readable as tensors and plain containers: a damaged or non-PyTorch "
                         "file, or a pickle whose loading could run code") from None
    except Exception as exc:  # torch.load raises many types on damaged files
        raise ValueError(f"unreadable -- truncated or not a PyTorch file ({type(exc).__name__}: "
                         f"{_first_line(exc)[:200]})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_generator(path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained generator for inference.

    Args:
        path: a run folder (its newest checkpoint is used) or a checkpoint folder.
        device: where to put the generator.
        ema: use the EMA weights when the run kept them (falls back to the raw weights).

    Returns:
        ``(generator, config)``: the generator in eval mode, and the run's config dict
        (``config["dataset"]`` has kind, a_channels, b_channels, palette and source;
        ``config["data"]`` the colorspace and label_input; ``config["model"]`` the
        architecture; ``config["augment"]["crop_size"]`` the training size). Feed it with
        :func:`pairforge.trainer.transforms.prepare_input` and read its output with
        :func:`pairforge.trainer.transforms.output_to_rgb`.

    Raises:
        CheckpointError: no checkpoint at ``path``, a refused ``state.pt`` (checked even though
            inference does not need it: a run that holds a malicious file is not trusted), or
            unreadable weights/config.
    """
    from pairforge.trainer.config import ModelConfig
    from pairforge.trainer.networks import build_generator

    checkpoint = resolve_checkpoint(path)
    load_state(checkpoint)
    config = load_config(checkpoint)
    try:
        # only the generator is rebuilt: discriminator-only checks must not refuse a run (runs made before
        # `--discriminator image` became the 286x286 PatchGAN record "image" at crops below its minimum)
        generator = build_generator(ModelConfig(**{**config["model"], "discriminator": "patch"}))
    except PairforgeError:
        raise
    except Exception as exc:  # a config.json edited by hand or from another tool
        raise CheckpointError(f"{checkpoint / 'config.json'}: no usable model section ({_first_line(exc)})") from None
    weights = checkpoint / "generator_ema.safetensors"
    if not (ema and weights.is_file()):
        weights = checkpoint / "generator.safetensors"
    load_weights(generator, weights)
    logger.info("loaded %s", weights)
    return generator.to(device).eval(), config
