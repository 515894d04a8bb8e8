"""The FCN-score judge (`pairforge train-judge`): seconds per step and what each budget buys.

On `synth facades` label maps (256x256, the size the judge's default 128-px crops are made for):
renders, labels and shards them with the public commands, then trains one judge per setting with
``train_judge`` (the function the command runs) on the train split and scores it on the held-out val
split with ``judge_sensitivity``: per-pixel / per-class accuracy and class IoU on the real photos (the
FCN-score's upper bound) and on blurred and region-mean-filled copies (a judge that keeps its scores on
those cannot rank a blurry generator below a sharp one). Seconds per step: the median wall time over the
steps after the first five (no start-up), and the process's CPU time per step over the same steps, which
is what one idle core would take (torch runs on ``--threads`` threads; on a machine shared with other
work the wall time grows and the CPU time stays).

    python benchmarks/bench_judge.py                          # the budgets of `train-judge --budget`
    python benchmarks/bench_judge.py --settings 32:128:8:300 --settings 16:64:8:2000   # channels:crop:batch:steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def make_shards(root: Path, count: int, size: int) -> Path:
    """synth facades -> make-labels -> shard (80 % train / 20 % val), with the public commands."""
    def run(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "pairforge", *args, "-q"], check=True, stdout=subprocess.DEVNULL)

    run("synth", "facades", "-o", str(root / "facades"), "--count", str(count), "--seed", "5", "--size", str(size))
    run("make-labels", str(root / "facades" / "photos"), "--labels", str(root / "facades" / "labels"), "--palette",
        str(root / "facades" / "palette.json"), "--size", str(size), "-o", str(root / "pairs"), "-j", "1")
    run("shard", str(root / "pairs"), "-o", str(root / "shards"), "--val-fraction", "0.2", "-j", "1")
    return root / "shards"


def measure(shards: Path, channels: int, crop: int, batch: int, steps: int, seed: int) -> dict[str, object]:
    from pairforge.trainer.judge import JudgeConfig, judge_sensitivity, train_judge
    from pairforge.trainer.scoring import load_split, palette_classes

    train = load_split(str(shards), "train")
    dataset, train_pairs = train.dataset, train.pairs
    val_pairs = load_split(str(shards), "val").pairs
    classes, to_ids = palette_classes(dataset["palette"])
    stamps: list[tuple[float, float]] = []
    config = JudgeConfig(base_channels=channels, steps=steps, batch_size=batch, crop_size=crop, seed=seed)
    start = time.perf_counter()
    judge = train_judge([(b, to_ids(a)) for _, a, b in train_pairs], classes, config,
                        lambda step, loss: stamps.append((time.perf_counter(), time.process_time())))
    total = time.perf_counter() - start
    wall, cpu = (np.array(column) for column in zip(*stamps, strict=True))
    per_step = float(np.median(np.diff(wall)[5:])) if steps > 7 else total / steps
    cpu_per_step = float((cpu[-1] - cpu[5]) / (steps - 6)) if steps > 7 else float(cpu[-1] - cpu[0]) / max(steps - 1, 1)
    seen = judge_sensitivity(judge, [(b, to_ids(a)) for _, a, b in val_pairs])
    return {"channels": channels, "crop": crop, "batch": batch, "steps": steps, "s_per_step": round(per_step, 4),
            "cpu_s_per_step": round(cpu_per_step, 4),
            "train_s": round(total, 1), "train_pairs": len(train_pairs), "val_pairs": len(val_pairs),
            **{name: {k: round(v, 3) for k, v in scores.items()} for name, scores in seen.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", action="append", metavar="CHANNELS:CROP:BATCH:STEPS",
                        help="a judge to train (repeat); default: the budgets of train-judge --budget")
    parser.add_argument("--count", type=int, default=300, help="facades rendered (80 %% train, 20 %% val)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one CPU core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, help="keep the data here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    settings = [tuple(int(v) for v in text.split(":")) for text in args.settings or []]
    if not settings:
        from pairforge.trainer.config import JUDGE_BUDGETS

        settings = [(b.base_channels, b.crop_size, b.batch_size, b.steps) for b in JUDGE_BUDGETS.values()]
    with tempfile.TemporaryDirectory() as scratch:
        root = args.work_dir or Path(scratch)
        shards = root / "shards" if (root / "shards" / "dataset.json").is_file() else make_shards(root, args.count,
                                                                                                    args.size)
        for channels, crop, batch, steps in settings:
            row = measure(shards, channels, crop, batch, steps, args.seed)
            print(json.dumps({**row, "threads": args.threads, "load_average": round(os.getloadavg()[0], 1)}),
                  flush=True)
    print(json.dumps({"machine": machine(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
