"""The CUDA path of the trainer: bf16 autocast, channels_last, augmentation on the device (skipped without CUDA)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pairforge.trainer.augment import PairAugment
from pairforge.trainer.config import AugmentConfig
from pairforge.trainer.loop import train


@pytest.mark.gpu
def test_bf16_training_steps_on_cuda(shard_factory, tiny_config, tmp_path) -> None:
    root = shard_factory(kind="edges", count=8, shards=2, size=64)
    config = tiny_config(root, tmp_path / "runs", steps=6, device="cuda", data__batch_size=4, log_every=1)
    result = train(config)
    assert result.steps == 6
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss_g_l1"] for row in rows if "loss_g_l1" in row]
    assert losses and all(math.isfinite(value) for value in losses)
    run_config = json.loads((result.run_dir / "config.json").read_text())
    assert run_config["precision"] in ("auto", "bf16")


@pytest.mark.gpu
def test_augmentation_runs_on_the_device() -> None:
    a = torch.randint(0, 256, (4, 1, 80, 80), device="cuda").float()
    b = torch.randint(0, 256, (4, 3, 80, 80), device="cuda").float()
    sizes = torch.tensor([[80, 80]] * 4)
    augment = PairAugment(AugmentConfig(load_size=72, crop_size=64))
    out_a, out_b = augment(a, b, sizes, torch.Generator().manual_seed(0))
    assert out_a.device.type == "cuda" and out_b.shape[-2:] == (64, 64)
