"""Validation during training follows predict's test-time protocol: dropout on, seeded per pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from pairforge.trainer import loop, run
from pairforge.trainer.inference import InferenceConfig, Predictor
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards


@pytest.fixture
def val_shards(tmp_path: Path) -> Path:
    return write_shards(tmp_path / "shards", kind="edges", count=4, size=72, shards=1, val=3)


def test_validation_runs_dropout_on_and_repeats_for_the_same_weights(
    val_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dropout layer is active while validation runs (as `predict` runs the generator), and two
    passes over the same weights give identical numbers (the noise is seeded per pass). Goes red if
    validation runs the generator in eval() mode (dropout off) or draws unseeded noise."""
    modes: list[bool] = []
    passes: list[tuple[dict[str, float], dict[str, float], dict[str, float]]] = []
    validating = [False]
    built: list[nn.Module] = []
    build, original_validate = run.build_generator, loop.validate

    def recording_build(config):  # type: ignore[no-untyped-def]
        network: nn.Module = build(config)
        built.append(network)
        for module in network.modules():
            if isinstance(module, nn.Dropout):
                module.register_forward_pre_hook(lambda m, args: modes.append(m.training) if validating[0] else None)
        return network

    def validating_twice(predictor, batches, *args, **kwargs):  # type: ignore[no-untyped-def]
        pairs = list(batches)
        validating[0] = True
        try:
            first = original_validate(predictor, iter(pairs), *args, **kwargs)
            second = original_validate(predictor, iter(pairs), *args, **kwargs)
        finally:
            validating[0] = False
        off = Predictor(built[0], predictor.run_config,
                        InferenceConfig(dropout=False, batch_size=predictor.config.batch_size,
                                        max_side=predictor.config.max_side, scale="native"))
        passes.append((first, second, original_validate(off, iter(pairs), *args, **kwargs)))
        return first

    monkeypatch.setattr(run, "build_generator", recording_build)
    monkeypatch.setattr(loop, "validate", validating_twice)
    result = train(make_tiny_config(val_shards, tmp_path / "runs", steps=3, val_every=2))
    assert len(passes) == 2  # at step 2 and at the end
    assert modes and all(modes), modes
    for first, second, dropout_off in passes:
        assert set(first) == {"val_l1", "val_psnr", "val_ssim"}
        assert first == second
        assert first["val_l1"] != dropout_off["val_l1"]  # dropout does change the outputs: the check above bites
    assert result.validation == passes[-1][0]


@pytest.mark.slow
def test_validation_leaves_training_unchanged(val_shards: Path, tmp_path: Path) -> None:
    """Validating every step gives the very same training losses as never validating: the seeded
    test-time noise does not reseed the training RNG (the dropout noise of the next steps)."""
    rows = {}
    for val_every in (0, 1):
        result = train(make_tiny_config(val_shards, tmp_path / str(val_every), steps=3, val_every=val_every))
        lines = (Path(result.run_dir) / "metrics.jsonl").read_text().splitlines()
        rows[val_every] = [{k: v for k, v in json.loads(line).items() if k.startswith("loss_")} for line in lines
                           if json.loads(line).get("split") != "val"]
    assert len(rows[1]) == 3 and rows[0] == rows[1]
