"""N steps + resume + M steps gives the weights of N + M steps in one run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pairforge.trainer.checkpoint import list_checkpoints, load_state
from pairforge.trainer.loop import train
from pairforge.trainer.run import resume_config


def _weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(list_checkpoints(run_dir)[-1] / f"{name}.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_is_exact(shard_factory, tiny_config, tmp_path: Path, workers: int) -> None:
    shards = shard_factory(kind="edges", count=6, shards=2)
    options = dict(deterministic=True, data__num_workers=workers, optim__ema=0.9, augment__mode="strong")
    straight = train(tiny_config(shards, tmp_path / "straight", steps=7, **options))
    first = train(tiny_config(shards, tmp_path / "split", steps=7, **options), stop_at=4)
    assert load_state(list_checkpoints(first.run_dir)[-1])["step"] == 4
    resumed = train(resume_config(first.run_dir), resume=first.run_dir)
    assert resumed.run_dir == first.run_dir and resumed.steps == 7
    for name in ("generator", "discriminator", "generator_ema"):
        expected, actual = _weights(straight.run_dir, name), _weights(resumed.run_dir, name)
        assert expected.keys() == actual.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=f"{name}.{key}")
    # and the run did learn something between the checkpoints
    halfway = load_file(str(first.run_dir / "checkpoints" / "step-000000004" / "generator.safetensors"))
    assert any(not torch.equal(halfway[k], _weights(resumed.run_dir, "generator")[k]) for k in halfway)
