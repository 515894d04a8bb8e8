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

import errno
import io
import json
import logging
import os
import pickle
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from pairforge.errors import DatasetError, PairforgeError
from pairforge.files import DiskFullError, format_bytes, free_bytes, is_disk_full
from pairforge.locks import FolderBusyError, hold
from pairforge.paths import describe_path

logger = logging.getLogger(__name__)


class CheckpointError(DatasetError):
    """A checkpoint that is missing, damaged, or refused because loading it could run code."""


class CheckpointDiskFull(DiskFullError):
    """The disk filled up while a checkpoint was written; nothing of it is kept, older checkpoints are untouched.

    Args:
        path: the checkpoint file being written (``checkpoints/step-<step>/<file>``).
        code: ``errno.ENOSPC`` or ``errno.EDQUOT``.
        needed: bytes the whole checkpoint needs.
    """

    def __init__(self, path: str | os.PathLike[str], code: int = errno.ENOSPC, needed: int | None = None) -> None:
        super().__init__(path, code, needed)
        root = Path(path).parent.parent
        free = free_bytes(root)
        what = "quota exceeded" if code == errno.EDQUOT else "no space left on the device"
        space = [f"{format_bytes(free)} free in {describe_path(root)}"] if free is not None else []
        space += [f"about {format_bytes(needed)} needed for the checkpoint"] if needed else []
        self.message = (f"{what} while writing {describe_path(path)}" + (f" ({', '.join(space)})" if space else "")
                        + "; nothing of this checkpoint was kept")


RUN_PATTERN = re.compile(r"^(\d{5})-")
STEP_PATTERN = re.compile(r"^step-(\d{9})$")
TEMPORARY_PATTERN = re.compile(r"^\.step-\d{9}\.(tmp|old)$")
"""What an interrupted :func:`save_checkpoint` can leave in ``checkpoints/``."""
NUMBERING_WAIT_S = 30.0
"""How long a new run waits for another ``train`` that is picking its run number in the same folder."""


def new_run_folder(output: str | Path, name: str) -> Path:
    """Create ``output/<next number>-<name>/`` (numbers count up from 00001).

    Two ``train`` commands starting at once in one output folder never get the same number:
    the number is picked and its folder created while holding the output folder's lock (held
    for milliseconds; the other waits its turn), and ``mkdir`` itself refuses an existing folder.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with _numbering(output):
        numbers = [int(m.group(1)) for p in output.iterdir() if (m := RUN_PATTERN.match(p.name))]
        number = max(numbers, default=0) + 1
        while True:
            folder = output / f"{number:05d}-{name}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                number += 1


@contextmanager
def _numbering(output: Path) -> Iterator[None]:
    """Hold ``output``'s lock while a run number is picked, waiting up to :data:`NUMBERING_WAIT_S` for it."""
    deadline = time.monotonic() + NUMBERING_WAIT_S
    while True:
        try:
            with hold(output, "runs folder"):
                yield
            return
        except FolderBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


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


def _tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (a tensor or nested containers of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def checkpoint_size(networks: dict[str, nn.Module], state: dict[str, Any]) -> int:
    """About the bytes a checkpoint of ``networks`` and ``state`` takes on disk (tensors plus 64 KiB)."""
    return sum(_tensor_bytes(unwrap(m).state_dict()) for m in networks.values()) + _tensor_bytes(state) + (64 << 10)


def _payloads(networks: dict[str, nn.Module], state: dict[str, Any], config: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of each checkpoint file, one at a time (at most one file's bytes in memory)."""
    for name, module in networks.items():
        yield f"{name}.safetensors", safetensors_bytes(_tensors(module))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    yield "state.pt", buffer.getvalue()
    yield "config.json", json.dumps(config, indent=2, sort_keys=True).encode("utf-8")


def save_checkpoint(
    run_dir: Path,
    step: int,
    networks: dict[str, nn.Module],
    state: dict[str, Any],
    config: dict[str, Any],
    keep: int = 3,
) -> Path:
    """Write ``checkpoints/step-<step>/`` atomically and drop all but the newest ``keep``.

    The files are serialised in memory and written with plain file writes into
    ``.step-<step>.tmp/``, which is renamed into place when complete. (torch's and
    safetensors' own file writers lose the cause of a failed write: a full disk would surface as
    ``enforce fail at inline_container.cc``.) Whatever goes wrong, the temporary folder is
    removed and the existing checkpoints are untouched.

    Args:
        run_dir: the run folder.
        step: optimizer steps done.
        networks: name -> module (saved as ``<name>.safetensors``).
        state: optimizer states, RNG states, counters (tensors, numbers, strings, containers).
        config: the run config (copied into the checkpoint so the folder stands alone).
        keep: checkpoints to keep.

    Returns:
        the checkpoint folder.

    Raises:
        CheckpointDiskFull: no space (or quota) for the checkpoint, found before writing (the free
            space is below its size) or while writing; names the file, the free space and the size.
    """
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    temporary = root / f".step-{step:09d}.tmp"
    needed = checkpoint_size(networks, state)
    shutil.rmtree(temporary, ignore_errors=True)
    free = free_bytes(root)
    file = final / (f"{next(iter(networks))}.safetensors" if networks else "state.pt")
    if free is not None and free < needed:  # refused before writing a byte
        raise CheckpointDiskFull(file, errno.ENOSPC, needed)
    try:
        temporary.mkdir()
        for name, data in _payloads(networks, state, config):
            file = final / name
            with open(temporary / name, "wb") as stream:
                stream.write(data)
    except BaseException as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if is_disk_full(exc):
            raise CheckpointDiskFull(file, exc.errno, needed) from None
        raise
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


def remove_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove what interrupted saves left in ``checkpoints/`` (``.step-*.tmp``, ``.step-*.old``); the paths removed.

    Only call this while owning the run folder (no save of another process can be under way).
    """
    root = Path(run_dir) / "checkpoints"
    removed = [p for p in root.iterdir() if TEMPORARY_PATTERN.match(p.name)] if root.is_dir() else []
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_PATTERN.match(p.name) and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: p.name)


def step_folders(run_dir: str | Path) -> list[Path]:
    """Every ``checkpoints/step-*`` folder of a run, complete or not, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if STEP_PATTERN.match(p.name) and p.is_dir()), key=lambda p: p.name)


def step_of(folder: str | Path) -> int:
    """The step a ``step-<step>`` checkpoint folder holds."""
    match = STEP_PATTERN.match(Path(folder).name)
    if match is None:
        raise CheckpointError(f"{folder}: not a checkpoint folder (expected checkpoints/step-NNNNNNNNN)")
    return int(match.group(1))


def resume_target(path: str | Path) -> tuple[Path, Path | None]:
    """``(run folder, chosen checkpoint)`` of what ``--resume`` names: a run folder (None: its newest
    checkpoint) or one of its ``checkpoints/step-*`` folders."""
    path = Path(path)
    if STEP_PATTERN.match(path.name) and path.parent.name == "checkpoints":
        return path.parent.parent, path
    return path, None


def damage(folder: str | Path, names: Iterable[str]) -> str | None:
    """Why the checkpoint ``folder`` cannot be resumed from (None when it is intact).

    Reads ``state.pt`` (weights only) and every ``<name>.safetensors`` in full.
    """
    folder = Path(folder)
    try:
        load_state(folder)
        for name in names:
            file = folder / f"{name}.safetensors"
            if not file.is_file():
                raise CheckpointError(f"{file}: missing")
            try:
                load_file(str(file))
            except Exception as exc:  # SafetensorError, OSError...
                raise CheckpointError(f"{file}: damaged ({_first_line(exc)})") from None
    except CheckpointError as exc:
        return str(exc)
    return None


def newest_intact(run_dir: str | Path, names: Iterable[str], before: int | None = None) -> Path | None:
    """The newest checkpoint of ``run_dir`` (below step ``before``, when given) that :func:`damage` finds intact."""
    names = list(names)
    for folder in reversed(step_folders(run_dir)):
        if before is not None and step_of(folder) >= before:
            continue
        if damage(folder, names) is None:
            return folder
    return None


def set_aside(folder: Path, label: str) -> Path:
    """Rename ``folder`` to ``<name>.<label>`` (``.<label>-2`` ... when taken) so nothing reads it as current; the new path."""
    target = folder.with_name(f"{folder.name}.{label}")
    number = 2
    while target.exists():
        target = folder.with_name(f"{folder.name}.{label}-{number}")
        number += 1
    folder.rename(target)
    return target


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
