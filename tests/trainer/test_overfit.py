"""The whole stack can learn: on 4 pairs, L1 to the target falls at least 5x."""

from __future__ import annotations

import json

import pytest
import torch

from pairforge.trainer.checkpoint import load_generator
from pairforge.trainer.data import iterate_split, load_dataset_info
from pairforge.trainer.loop import train
from pairforge.trainer.transforms import Encoding, encode_input, encode_target

STEPS = 150


@pytest.mark.slow
def test_overfits_four_pairs(shard_factory, tiny_config, tmp_path) -> None:
    root = shard_factory(kind="edges", count=4, shards=1, val=0, size=64)
    config = tiny_config(
        root, tmp_path / "runs", steps=STEPS, seed=1,
        data__batch_size=4, augment__mode="none", optim__lr=2e-3, optim__decay_epochs=0,
        model__generator_channels=16, model__dropout=False, model__norm="instance",
    )
    result = train(config)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    first = rows[0]["loss_g_l1"]
    # measured independently: the saved generator on the four pairs
    generator, run_config = load_generator(result.run_dir)
    encoding = Encoding.from_config(run_config)
    info = load_dataset_info(str(root))
    (batch,) = list(iterate_split(info.splits["train"], encoding, 4))
    with torch.no_grad():
        output = generator(encode_input(batch["a"].float(), encoding))
    final = (output - encode_target(batch["b"].float(), encoding)).abs().mean().item()
    assert final * 5 <= first, (first, final)
