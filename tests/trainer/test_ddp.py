"""Two-process torchrun (gloo, CPU): identical weights, and each train sample seen once per epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("shards, workers", [(4, 2), (1, 1)], ids=["split-by-shard", "split-by-sample"])
def test_two_ranks_agree_and_cover_the_epoch_once(shard_factory, tmp_path: Path, shards: int, workers: int) -> None:
    count = 8
    root = shard_factory(kind="edges", count=count, shards=shards)
    steps = count // 2  # batch 1 on 2 ranks: one epoch
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "pairforge", "-q", "train", str(root), "-o", str(tmp_path / "runs"), "--crop-size", "64",
        "--load-size", "72", "--generator", "unet", "--generator-channels", "8", "--discriminator-channels", "8",
        "--steps", str(steps), "--num-workers", str(workers), "--record-keys", "--deterministic", "--device", "cpu",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    first, second = summary["parameter_checksums"]
    assert first == second
    rows = [json.loads(line) for line in (run_dir / "keys.jsonl").read_text().splitlines()]
    assert {row["rank"] for row in rows} == {0, 1}
    epoch_keys = [row["key"] for row in rows if row["epoch"] == 0]
    assert sorted(epoch_keys) == [f"train_{i:05d}" for i in range(count)]
    # only rank 0 wrote: one config, one checkpoint folder per save
    assert len(list((run_dir / "checkpoints").iterdir())) == 1
