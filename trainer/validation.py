"""Validation during training: the run's generator scored on the val split as ``predict`` runs it.

:func:`validate` is called by the loop (:mod:`~pairforge.trainer.loop`) every ``--val-every`` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pairforge.trainer import metrics as quality
from pairforge.trainer import report
from pairforge.trainer.inference import Predictor
from pairforge.trainer.transforms import Encoding, decode_output, visualize_input

if TYPE_CHECKING:
    from pairforge.trainer.loop import Inputs


def validate(
    predictor: Predictor, batches: Iterator[dict[str, Any]], inputs: Inputs,
    autocast: contextlib.AbstractContextManager[Any], fallback: tuple[torch.Tensor, torch.Tensor] | None,
    grid_path: Path,
) -> dict[str, float]:
    """Scores of ``predictor``'s generator over validation ``batches``, and a sample grid of four pairs.

    Validation runs the generator as ``predict`` does, through the same :class:`Predictor`: the
    paper's test time, dropout on and batch norm with each image's statistics, the dropout noise
    seeded by the predictor's seed (predict's default, 0) afresh for each batch. So two passes
    over the same weights give the same numbers, and successive validation scores compare the
    model, not the dropout draw. The training RNG is set aside meanwhile: validating never changes
    what training computes. The scores compare decoded [0, 1] RGB, as ``pairforge evaluate`` does.
    Without validation pairs the grid shows ``fallback`` (encoded training pairs) and there are no scores.

    Returns:
        mean ``val_l1``, ``val_psnr``, ``val_ssim`` (empty without validation pairs).
    """
    encoding = inputs.encoding
    scores: dict[str, list[torch.Tensor]] = {"val_l1": [], "val_psnr": [], "val_ssim": []}
    grid: list[torch.Tensor] = []
    cuda = [predictor.device] if predictor.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        for batch in batches:
            x, y = inputs.for_testing(batch["a"], batch["b"], batch["sizes"])
            with autocast:
                out = predictor.generate(x)
            out = out.float()
            predicted, target = decode_output(out, encoding, x), decode_output(y, encoding, x)
            scores["val_l1"].append(quality.l1(predicted, target))  # [0, 1] RGB, as `evaluate`'s l1
            scores["val_psnr"].append(quality.psnr(predicted, target))
            scores["val_ssim"].append(quality.ssim(predicted, target))
            if len(grid) < 4:
                grid.extend(_grid_rows(x, predicted, target, encoding))
        if not grid and fallback is not None:
            x, y = fallback
            with autocast:
                out = predictor.generate(x).float()
            grid = _grid_rows(x, decode_output(out, encoding, x), decode_output(y, encoding, x), encoding)
    if grid:
        report.write_sample_grid(grid_path, grid[:4])
    return {name: float(torch.cat(values).mean()) for name, values in scores.items() if values}


def _grid_rows(x: torch.Tensor, predicted: torch.Tensor, target: torch.Tensor, encoding: Encoding) -> list[torch.Tensor]:
    """One (input, output, target) row of the sample grid per pair, on the CPU."""
    return list(torch.stack([visualize_input(x, encoding), predicted, target], 1).cpu().unbind(0))
