"""Exporting a generator to TorchScript or ONNX, with dynamic height and width, and checking the export.

The export computes what ``predict --dropout off`` computes (deterministic): batch norm with
the statistics of each image by default (as the paper and the reference run the generator at
test time), or the running averages with ``norm_stats="running"``; input is the
encoded A (see :func:`~pairforge.trainer.transforms.prepare_input`), output the raw generator
output in [-1, 1]; height and width must be multiples of the generator's size multiple
(written into the sidecar JSON next to the file, with the run's encoding facts).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pairforge.errors import ConfigError, PairforgeError
from pairforge.files import write_atomic
from pairforge.trainer.checkpoint import unwrap
from pairforge.trainer.networks import inference_generator

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")


class ExportError(PairforgeError):
    """The export failed, or does not reproduce the PyTorch output."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_generator` wrote and how well it matches PyTorch.

    Attributes:
        path: the exported model.
        sidecar: JSON with the encoding, channels and size multiple.
        max_abs_error: largest difference from the PyTorch output over the check sizes.
        checked_sizes: (height, width) pairs that were compared.
        verified_with: ``torch.jit``, ``onnxruntime``, or ``onnx.checker`` (structure only).
    """

    path: Path
    sidecar: Path
    max_abs_error: float | None
    checked_sizes: tuple[tuple[int, int], ...]
    verified_with: str


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _frozen(generator: nn.Module, norm_stats: str = "per-image") -> nn.Module:
    """A CPU copy as predict runs it with dropout off (:func:`~pairforge.trainer.networks.inference_generator`)."""
    model = inference_generator(copy.deepcopy(unwrap(generator)).cpu(), norm_stats, dropout=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _dropout_active(model: nn.Module) -> bool:
    """Whether any dropout layer of the exported model is active (in training mode)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.training for m in model.modules())


def _model_facts(model_config: dict[str, Any]) -> dict[str, Any]:
    """The run's model config for the sidecar, with ``dropout`` renamed ``trained_with_dropout``."""
    facts = {k: v for k, v in model_config.items() if k != "dropout"}
    if "dropout" in model_config:
        facts["trained_with_dropout"] = model_config["dropout"]
    return facts


def _run_exported(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return module(x).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x.numpy()})[0]


def export_generator(
    generator: nn.Module,
    run_config: dict[str, Any],
    path: str | Path,
    fmt: str,
    multiple: int,
    check_sizes: tuple[tuple[int, int], ...] = (),
    opset: int = 17,
    norm_stats: str = "per-image",
) -> ExportResult:
    """Write the generator as TorchScript or ONNX and compare it with PyTorch.

    Args:
        generator: the generator (any mode; it is copied and put in eval mode).
        run_config: the run's config dict (the sidecar records its dataset/data/model parts).
        path: output file (``.pt`` for TorchScript, ``.onnx`` for ONNX).
        fmt: ``torchscript`` or ``onnx``.
        multiple: height and width multiple the generator needs.
        check_sizes: (height, width) pairs to compare on; default two different sizes, so
            dynamic height and width are exercised.
        opset: ONNX opset.
        norm_stats: ``per-image`` (each image's batch-norm statistics, as predict) or ``running``.

    Returns:
        the export result (``max_abs_error`` is None when only the ONNX structure could be
        checked because onnxruntime is not installed).

    Raises:
        ConfigError: unknown format or a check size not on the multiple.
        ExportError: the exporter failed.
    """
    sizes = _check_sizes(fmt, multiple, check_sizes)
    model = _frozen(generator, norm_stats)
    in_channels = int(run_config["model"]["in_channels"])
    path = Path(path)
    _write_export(model, torch.zeros(1, in_channels, *sizes[0]), path, fmt, opset)
    max_error, verified_with = _compare_with_pytorch(model, path, fmt, in_channels, sizes)
    sidecar = path.with_suffix(path.suffix + ".json")
    facts = _sidecar_facts(model, run_config, fmt, norm_stats, multiple)
    write_atomic(sidecar, json.dumps({**facts, "max_abs_error": max_error, "verified_with": verified_with},
                                     indent=2, sort_keys=True))
    return ExportResult(path, sidecar, max_error, tuple(sizes), verified_with)


def _check_sizes(
    fmt: str, multiple: int, check_sizes: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """The (height, width) pairs to compare on: ``check_sizes``, or two different ones on the multiple.

    Raises:
        ConfigError: unknown format or a size not on the multiple.
    """
    if fmt not in FORMATS:
        raise ConfigError("format", fmt, " | ".join(FORMATS))
    sizes = check_sizes or ((2 * multiple, 3 * multiple), (3 * multiple, multiple))
    for height, width in sizes:
        if height % multiple or width % multiple:
            raise ConfigError("check_sizes", (height, width), f"multiples of {multiple}")
    return sizes


def _write_export(model: nn.Module, example: torch.Tensor, path: Path, fmt: str, opset: int) -> None:
    """Trace ``model`` on ``example`` to TorchScript, or export it to ONNX with dynamic batch, height and width.

    Raises:
        ExportError: the exporter failed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                traced = torch.jit.trace(model, example, check_trace=False)
                torch.jit.save(traced, str(path))
            else:
                torch.onnx.export(
                    model, (example,), str(path), input_names=["a"], output_names=["b"], opset_version=opset,
                    dynamic_axes={"a": {0: "batch", 2: "height", 3: "width"}, "b": {0: "batch", 2: "height", 3: "width"}},
                    dynamo=False,
                )
    except Exception as exc:  # exporters raise many types
        raise ExportError(f"{fmt} export failed: {type(exc).__name__}: {exc}") from None


def _compare_with_pytorch(
    model: nn.Module, path: Path, fmt: str, in_channels: int, sizes: tuple[tuple[int, int], ...]
) -> tuple[float | None, str]:
    """(largest difference from ``model`` over random inputs of ``sizes``, what ran the exported file).

    Without onnxruntime an ONNX file is only structure-checked: (None, ``onnx.checker``).

    Raises:
        ExportError: the exported model's output has another shape.
    """
    if fmt == "onnx" and not onnxruntime_available():
        import onnx

        onnx.checker.check_model(str(path))
        logger.warning("onnxruntime is not installed: the ONNX file was structure-checked but not run")
        return None, "onnx.checker"
    max_error = 0.0
    generator_rng = torch.Generator().manual_seed(0)
    for height, width in sizes:
        x = torch.rand(2, in_channels, height, width, generator=generator_rng) * 2.0 - 1.0
        with torch.no_grad():
            expected = model(x).numpy()
        produced = _run_exported(path, fmt, x)
        if produced.shape != expected.shape:
            raise ExportError(f"{path}: output shape {produced.shape} differs from PyTorch's {expected.shape}")
        max_error = max(max_error, float(np.abs(produced - expected).max()))
    return max_error, "torch.jit" if fmt == "torchscript" else "onnxruntime"


def _sidecar_facts(
    model: nn.Module, run_config: dict[str, Any], fmt: str, norm_stats: str, multiple: int
) -> dict[str, Any]:
    """What the sidecar JSON says about the exported model's input, output and training run."""
    return {
        "format": fmt,
        "input": "encoded A (pairforge.trainer.transforms.prepare_input), float32 (B, C, H, W)",
        "output": "generator output in [-1, 1] (pairforge.trainer.transforms.output_to_rgb)",
        "mode": f"dropout off, batch norm with {norm_stats} statistics (as predict --dropout off)",
        "norm_stats": norm_stats,
        "direction": run_config.get("data", {}).get("direction", "AtoB"),
        "size_multiple": multiple,
        "in_channels": int(run_config["model"]["in_channels"]),
        "out_channels": int(run_config["model"]["out_channels"]),
        "dataset": {k: run_config["dataset"].get(k) for k in ("kind", "a_channels", "palette")},
        "data": run_config.get("data", {}),
        # what the exported graph does, from its modules; the training-time setting is kept
        # apart under another name so the file never says "dropout: true" beside "dropout off"
        "dropout": _dropout_active(model),
        "model": _model_facts(run_config["model"]),
    }
