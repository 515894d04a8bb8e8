"""Importing generators trained by the reference PyTorch pix2pix (``latest_net_G.pth``) as pairforge runs.

The reference saves ``torch.save(net.state_dict())``: U-Nets as nested ``model.model.1.model.…``
keys (the same module layout as pairforge's :class:`~pairforge.trainer.networks.UnetGenerator`),
ResNets as ``model.N.…`` with each residual block's layers under ``conv_block`` (``block`` here).
The file is read with ``torch.load(weights_only=True)`` (a pickle that would build objects or run
code is refused); the architecture (U-Net depth, ResNet blocks, channels, width, batch vs instance
norm, ResNet dropout) is read from the keys and shapes, and any mismatch with what the user asked
for is one error naming the keys and the likely ``--generator``/``--norm``.

The result is a run folder (``config.json`` and ``checkpoints/step-000000000/``) that predict,
evaluate and export use like any run trained here; it is written under a temporary name and
renamed when complete, so a failed import leaves nothing behind.

What the file cannot say comes from the user: the kind of input, a labels model's palette
(``--palette``), or all of the data's facts at once from a shard set (``--like SHARDS``: kind,
palette, A channels, the recipe that made A). The input encoding is read from the weights: a
labels generator with 3 input channels takes the colour-coded label map, as the reference feeds
it (``label_input="color"``); one with a channel per palette class takes one-hot classes. It is
recorded in the run, so predict, evaluate and serve feed it the way it was trained. A generator
that cannot take the data's input is refused with one line naming both sides.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pairforge import __version__, kinds
from pairforge.errors import ConfigError, PairforgeError
from pairforge.files import write_atomic
from pairforge.palettes import Palette, palette_colors
from pairforge.shards import read_dataset_file
from pairforge.trainer.checkpoint import save_checkpoint, torch_load_plain
from pairforge.trainer.config import ModelConfig, TrainConfig
from pairforge.trainer.networks import build_generator

logger = logging.getLogger(__name__)

IMPORT_GENERATORS = ("unet_256", "unet_128", "unet", "resnet_9blocks", "resnet_6blocks")
IMPORT_NORMS = ("batch", "instance")
_UNET_LEVEL = re.compile(r"^model\.model\.(?:1\.model\.(?:3\.model\.)*)?\d+\.")
_RESNET_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.")


class ReferenceImportError(PairforgeError):
    """A reference checkpoint that cannot be read or does not fit the asked-for network."""


@dataclass(frozen=True)
class ImportOptions:
    """What the user tells ``pairforge import`` (None: read it from the checkpoint or the data).

    Attributes:
        generator: one of IMPORT_GENERATORS.
        norm: ``batch`` or ``instance``.
        kind: what the model's input is: ``edges``, ``gray``, ``labels`` (label maps; fed as the
            colour image, as the reference does, or one-hot when the generator has a channel
            per palette class) or ``generic``. None: the kind of ``like``, ``labels`` with a
            ``palette``, else ``generic``.
        direction: the direction the reference trained (recorded; predict feeds the input as
            is; with ``like``, a generic shard set of the reference's own AB files that
            ``shard`` did not swap is read in this direction).
        dropout: whether the generator has dropout (U-Net files do not say; the reference's
            pix2pix default is on).
        crop_size: training crop size (the reference's default 256).
        palette: a labels model's palette (``--palette cityscapes|FILE.json``).
        like: a shard folder (or its dataset.json) holding the kind of data the model was
            trained on: its kind, palette, A channels and A's recipe are recorded in the run.
    """

    generator: str | None = None
    norm: str | None = None
    kind: str | None = None
    direction: str = "AtoB"
    dropout: bool | None = None
    crop_size: int | None = None
    palette: Palette | None = None
    like: str | None = None

    def __post_init__(self) -> None:
        if self.generator is not None and self.generator not in IMPORT_GENERATORS:
            raise ConfigError("generator", self.generator, " | ".join(IMPORT_GENERATORS))
        if self.norm is not None and self.norm not in IMPORT_NORMS:
            raise ConfigError("norm", self.norm, " | ".join(IMPORT_NORMS))
        if self.kind is not None and self.kind not in kinds.names():
            raise ConfigError("kind", self.kind, " | ".join(kinds.names()))
        if self.direction not in ("AtoB", "BtoA"):
            raise ConfigError("direction", self.direction, "AtoB | BtoA")
        if self.palette is not None and self.like is not None:
            raise ConfigError("palette", self.palette.name, "either --palette or --like (the shard set's palette), "
                                                            "not both")
        if self.palette is not None and self.kind is not None and not kinds.of(self.kind).palette:
            raise ConfigError("kind", self.kind, "labels (or no --kind) with --palette, which is for label models")


@dataclass(frozen=True)
class Architecture:
    """What a reference state dict holds, read from its keys and shapes."""

    generator: str
    norm: str
    in_channels: int
    out_channels: int
    base_channels: int
    dropout: bool | None
    depth: int = 0


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a reference ``.pth`` file, loaded without running code.

    A ``module.`` prefix (DataParallel) is removed.

    Raises:
        ReferenceImportError: missing, empty, truncated or not a PyTorch file; a pickle that
            needs more than tensors (it could run code); not a state dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceImportError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReferenceImportError(f"{path}: empty file")
    try:
        loaded = torch_load_plain(path)
    except ValueError as exc:
        raise ReferenceImportError(
            f"{path}: {exc}. Expected a plain state dict as the reference saves (torch.save(net.state_dict()))."
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded:
        raise ReferenceImportError(
            f"{path}: not a state dict (found {type(loaded).__name__}); expected the dict of tensors the "
            "reference saves as latest_net_G.pth"
        )
    bad = [str(k) for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ReferenceImportError(
            f"{path}: not a state dict of tensors (entries {', '.join(bad[:5])} are not tensors)"
        )
    state = {k.removeprefix("module."): v for k, v in loaded.items()}
    return state


def _unet_depth(state: dict[str, torch.Tensor]) -> int:
    """U-Net levels: ``model.model.0`` is level 0, ``model.model.1.model.1`` level 1, then ``….model.3.model.…``."""
    levels = [k.split(".").count("model") - 2 for k in state if _UNET_LEVEL.match(k)]
    return max(levels) + 1 if levels else 0


def infer_architecture(state: dict[str, torch.Tensor]) -> Architecture:
    """The generator a reference state dict belongs to.

    Raises:
        ReferenceImportError: neither the reference U-Net nor its ResNet layout.
    """
    has_batch_norm = any(k.endswith("running_mean") for k in state) and any(
        k.endswith("num_batches_tracked") or k.endswith("running_var") for k in state
    )
    blocks = sorted({int(m.group(1)) for k in state if (m := _RESNET_BLOCK.match(k))})
    if blocks:
        first = state.get("model.1.weight")
        last_index = max(int(k.split(".")[1]) for k in state if re.match(r"^model\.\d+\.weight$", k))
        if first is None or first.ndim != 4:
            raise ReferenceImportError("ResNet layout without its first convolution model.1.weight")
        second_conv = state.get(f"model.{blocks[0]}.conv_block.6.weight")
        dropout = second_conv is not None and second_conv.ndim == 4  # [pad, conv, norm, relu, dropout, pad, conv, ...]
        generator = {9: "resnet_9blocks", 6: "resnet_6blocks"}.get(len(blocks))
        if generator is None:
            raise ReferenceImportError(
                f"a ResNet generator with {len(blocks)} residual blocks; pairforge builds 6 or 9 (resnet_6blocks, "
                "resnet_9blocks)"
            )
        norm = "batch" if has_batch_norm else "instance"
        return Architecture(generator, norm, int(first.shape[1]), int(state[f"model.{last_index}.weight"].shape[0]),
                            int(first.shape[0]), dropout)
    outer = state.get("model.model.0.weight")
    up = state.get("model.model.3.weight")
    if outer is None or up is None or outer.ndim != 4 or up.ndim != 4:
        sample = ", ".join(sorted(state)[:6])
        raise ReferenceImportError(
            "not a reference pix2pix generator: expected U-Net keys (model.model.0.weight, model.model.1.model...) "
            f"or ResNet keys (model.N.conv_block...); found {sample}, ..."
        )
    depth = _unet_depth(state)
    generator = {8: "unet_256", 7: "unet_128"}.get(depth, "unet")
    norm = "batch" if has_batch_norm else "instance"
    return Architecture(generator, norm, int(outer.shape[1]), int(up.shape[1]), int(outer.shape[0]), None, depth)


def to_pairforge_keys(state: dict[str, torch.Tensor], norm: str) -> dict[str, torch.Tensor]:
    """Rename reference keys to pairforge's module names (``conv_block`` -> ``block``).

    Instance-norm files of old PyTorch versions may carry running statistics, which an
    instance norm without tracked statistics does not have; they are dropped (as the reference
    does when loading).
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if norm == "instance" and key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        renamed[re.sub(r"\.conv_block\.", ".block.", key)] = value
    return renamed


def _model_config(architecture: Architecture, options: ImportOptions) -> ModelConfig:
    generator = options.generator or architecture.generator
    norm = options.norm or architecture.norm
    crop = options.crop_size or {"unet_256": 256, "unet_128": 128}.get(generator)
    if crop is None:
        crop = 2 ** architecture.depth if generator == "unet" and architecture.depth else 256
    dropout = options.dropout if options.dropout is not None else (
        architecture.dropout if architecture.dropout is not None else True
    )
    return ModelConfig(
        generator=generator, in_channels=architecture.in_channels, out_channels=architecture.out_channels,
        generator_channels=architecture.base_channels, norm=norm, dropout=dropout, crop_size=crop,
    )


def _mismatch_message(path: Path, error: str, expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                      architecture: Architecture, config: ModelConfig) -> str:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    parts = [f"{path}: the weights do not fit --generator {config.generator} --norm {config.norm}"]
    if missing:
        parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:6])}"
                     f"{' ...' if len(unexpected) > 6 else ''}")
    if shapes:
        parts.append("shape mismatches: " + ", ".join(
            f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in shapes[:4]))
    if not (missing or unexpected or shapes):
        parts.append(error.splitlines()[0])
    parts.append(f"the file looks like --generator {architecture.generator} --norm {architecture.norm}")
    return "; ".join(parts)


def _like_dataset(like: str) -> dict[str, Any]:
    """The dataset.json of ``--like`` (a shard folder, or the file itself).

    Raises:
        DatasetError: missing, unreadable or not a pairforge shard set's dataset.json.
    """
    path = Path(like)
    return read_dataset_file(path / "dataset.json" if path.is_dir() else path, like)


def _label_input(source: Path, in_channels: int, palette: dict[str, Any] | None, origin: str) -> str:
    """How a labels generator takes its input, from its input channels: ``color`` or ``onehot``.

    Raises:
        ReferenceImportError: neither the colour map (3) nor a channel per palette class.
    """
    if in_channels == 3:
        return "color"  # the reference's encoding: the colour-coded label image as RGB
    if not palette:
        raise ReferenceImportError(
            f"{source}: the generator takes {in_channels} input channel(s), but a labels model without a palette "
            "takes the colour label map (3 channels, as the reference feeds it); for a one-hot generator give its "
            "palette (--palette cityscapes|FILE.json, or --like a shard set made with it)"
        )
    channels = len(palette_colors(palette))  # one-hot: the classes, then the ignore class when present
    if in_channels == channels:
        return "onehot"
    classes = len(palette.get("classes", []))
    named = f"{classes} label classes" + (" and an ignore class" if channels > classes else "")
    raise ReferenceImportError(
        f"{source}: the generator takes {in_channels} input channel(s), but {origin} has {named}, so a labels model "
        f"takes 3 (the colour label map, as the reference feeds it) or {channels} (one-hot): import it with the "
        "palette it was trained with (--palette FILE.json), or --like a shard set of the data it was trained on"
    )


def _check_input_channels(source: Path, in_channels: int, like: str, kind: str, side: str, channels: int) -> None:
    """Refuse a generator whose input channels differ from the channels of the data's input side.

    Raises:
        ReferenceImportError: naming the generator's channels, the shard set's, and what to do.
    """
    if in_channels == channels:
        return
    hint = (" (the reference's models take 3-channel images: `pairforge shard` of the reference's own AB folder "
            "keeps 3 channels)" if in_channels == 3 else "")
    raise ReferenceImportError(
        f"{source}: the generator takes {in_channels}-channel input, but {like} holds {kind} pairs whose input ({side}) "
        f"has {channels} channel(s): import it --like a shard set of the data it was trained on{hint}"
    )


def run_config_document(model: ModelConfig, options: ImportOptions, source: Path) -> dict[str, Any]:
    """config.json of an imported run: the same sections as a trained run's.

    The ``dataset`` section is the ``--like`` shard set's (kind, A channels, palette, source; no
    counts: the model was not trained on it), or made from ``--kind``/``--palette``. The input
    encoding (``data.label_input``, ``data.direction``) is chosen so the generator is fed as
    it was trained: see :class:`ImportOptions`.

    Raises:
        ReferenceImportError: output channels pairforge does not run, or input channels that do
            not fit the kind, palette or ``--like`` shard set.
        DatasetError: ``--like`` is not a shard set.
    """
    like = _like_dataset(options.like) if options.like else None
    if like is not None and options.kind is not None and options.kind != like.get("kind"):
        raise ReferenceImportError(
            f"--kind {options.kind}, but {options.like} holds {like.get('kind')} pairs: drop --kind (--like sets it) "
            f"or use --like with a shard set of {options.kind} pairs"
        )
    kind = options.kind or (str(like.get("kind", "generic")) if like else "labels" if options.palette else "generic")
    colorspace = "lab" if kinds.of(kind).lightness and model.in_channels == 1 and model.out_channels == 2 else "rgb"
    if model.out_channels not in (2, 3) or (model.out_channels == 2 and colorspace != "lab"):
        raise ReferenceImportError(
            f"{source}: a generator with {model.out_channels} output channels; pairforge runs RGB (3) or, with "
            "--kind gray and a 1-channel input, the reference's Lab colorization (2 = ab)"
        )
    if like is not None:
        palette = like.get("palette") if kinds.of(kind).palette else None
        origin = f"the shard set {options.like}"
    else:
        palette = options.palette.to_json() if options.palette else None
        origin = f"the palette {options.palette.name!r}" if options.palette else "--kind labels"
    label_input, direction = "color", "AtoB"
    if kinds.of(kind).palette:
        label_input = _label_input(source, model.in_channels, palette, origin)
    elif like is not None:
        swapped = (like.get("source") or {}).get("direction") == "BtoA"  # `shard --direction BtoA` swapped A and B
        if kinds.of(kind) is kinds.GENERIC and (options.direction == "BtoA") != swapped:
            direction = "BtoA"  # the reference's own AB files, read the way it trained on them
        side = "B" if direction == "BtoA" else "A"
        channels = int(like.get("b_channels" if direction == "BtoA" else "a_channels", 3))
        _check_input_channels(source, model.in_channels, str(options.like), kind, side, channels)
    elif model.in_channels not in (1, 3):
        raise ReferenceImportError(f"{source}: a generator with {model.in_channels} input channels (expected 1 or 3)")
    config = TrainConfig.from_options(shards="", colorspace=colorspace, label_input=label_input, direction=direction,
                                      load_size=model.crop_size, name="imported", **dataclasses.asdict(model))
    document = config.to_dict()
    if like is not None:
        document["dataset"] = {
            "kind": kind,
            "a_channels": int(like.get("a_channels", 3)),
            "b_channels": int(like.get("b_channels", 3)),
            "b_format": like.get("b_format"),
            "palette": palette,
            "source": like.get("source") or {},
            "counts": {},
            "splits": {},
        }
    else:
        stage = kinds.reference_stage(kind, lab=colorspace == "lab")
        document["dataset"] = {
            "kind": kind,
            "a_channels": 3 if kinds.of(kind).palette else model.in_channels,
            "b_channels": 3,
            "b_format": None,
            "palette": palette,
            "source": {"kind": kind, "stage": stage, "command": "pairforge import"},
            "counts": {},
            "splits": {},
        }
    document["reference"] = {
        "checkpoint": str(source.resolve()),
        "trained_direction": options.direction,
        "like": options.like,
        "note": "imported from the reference PyTorch pix2pix (trained_direction: its --direction); data.label_input "
                "and data.direction say how the input is fed",
    }
    document["schedule"] = {}
    document["created_by"] = f"pairforge {__version__} (import)"
    return document


def import_reference(path: str | Path, output: str | Path, options: ImportOptions | None = None) -> Path:
    """Turn a reference ``latest_net_G.pth`` into a pairforge run folder.

    Args:
        path: the reference checkpoint (a state dict).
        output: the run folder to create (must not exist, or be empty).
        options: what the file cannot say (kind, direction) and optional overrides.

    Returns:
        the run folder.

    Raises:
        ReferenceImportError: unreadable or refused file, unknown layout, keys or shapes that
            do not fit, or an existing non-empty output folder. Nothing is written then.
    """
    options = options or ImportOptions()
    path, output = Path(path), Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ReferenceImportError(f"{output}: already exists and is not empty; choose a new run folder")
    state = read_state_dict(path)
    architecture = infer_architecture(state)
    try:
        model = _model_config(architecture, options)
    except ConfigError as exc:
        raise ReferenceImportError(f"{path}: {exc}") from None
    renamed = to_pairforge_keys(state, model.norm)
    generator = build_generator(model)
    expected = generator.state_dict()
    if model.norm == "batch":  # files from old PyTorch versions have no num_batches_tracked
        for key, value in expected.items():
            if key.endswith("num_batches_tracked") and key not in renamed:
                renamed[key] = value
    try:
        generator.load_state_dict(renamed, strict=True)
    except RuntimeError as exc:
        raise ReferenceImportError(_mismatch_message(path, str(exc), expected, renamed, architecture, model)) from None
    document = run_config_document(model, options, path)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.parent / f".{output.name}.import-tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        save_checkpoint(temporary, 0, {"generator": generator}, {"step": 0, "imported_from": str(path)}, document, keep=1)
        write_atomic(temporary / "config.json", json.dumps(document, indent=2, sort_keys=True))
        if output.exists():
            output.rmdir()
        temporary.rename(output)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    logger.info("imported %s as %s (%s)", path, output, dataclasses.asdict(architecture))
    return output
