"""Resume across a code change: a run started by one checkout and resumed by another is bit-exact.

A small gray (colorization) shard set is built with the BEFORE checkout's CLI (synth facades ->
make-gray -> shard), then, all with the same options (a 64-px U-Net, which has dropout, batch norm, a val
split, checkpoints every 4 steps, --deterministic):

- ``before``: the BEFORE code trains the whole run;
- ``after``: the AFTER code trains the whole run;
- ``mixed``: the BEFORE code trains to step ``--stop-at`` (``train(..., stop_at=N)``, as an
  interrupted run: a checkpoint at that step), then the AFTER code continues it with
  ``pairforge train --resume``.

The training rows of metrics.jsonl (every loss) and every tensor of the final checkpoint must be
identical in all three. Validation rows are compared between ``after`` and the resumed part of
``mixed`` (and are reported, not required, against ``before``: a change to the validation protocol
changes them by design).

Usage::

    .venv/bin/python benchmarks/resume_across_change.py --before ../before/.venv/bin/python \\
        --after .venv/bin/python --work-dir /tmp/resume_across

(``../before`` is a second checkout of the BEFORE commit with its own venv; both pythons may be
given relative to the current folder.)

Exit status 0 when everything required is identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

OPTIONS = {
    "generator": "unet", "generator_channels": 8, "discriminator_channels": 8, "crop_size": 64, "load_size": 72,
    "batch_size": 2, "steps": 12, "num_workers": 0, "shuffle_buffer": 8, "log_every": 1, "val_every": 4,
    "checkpoint_every": 4, "sample_every": 0, "max_val_samples": 4, "seed": 3, "deterministic": True,
}
FLAGS = ["--generator", "unet", "--generator-channels", "8", "--discriminator-channels", "8", "--crop-size", "64",
         "--load-size", "72", "--batch-size", "2", "--steps", "12", "--num-workers", "0", "--shuffle-buffer", "8",
         "--log-every", "1", "--val-every", "4", "--checkpoint-every", "4", "--sample-every", "0",
         "--max-val-samples", "4", "--seed", "3", "--deterministic"]
TIMING = ("time", "images_per_s", "data_wait_fraction")


WORK = Path("/tmp")
"""Where every subprocess runs: never a checkout, whose pairforge/ would shadow the interpreter's own."""


def cli(python: str, *args: str) -> None:
    subprocess.run([python, "-m", "pairforge.cli", *args, "-q"], check=True, cwd=WORK)


def build_data(python: str, work: Path) -> Path:
    cli(python, "synth", "facades", "-o", str(work / "facades"), "--count", "24", "--size", "80")
    cli(python, "make-gray", str(work / "facades" / "photos"), "-o", str(work / "pairs"), "--size", "72",
        "--val-fraction", "0.25")
    cli(python, "shard", str(work / "pairs"), "-o", str(work / "shards"))
    return work / "shards"


def train_until(python: str, shards: Path, output: Path, stop_at: int) -> None:
    """The BEFORE code trains until ``stop_at`` (a checkpoint there, as if interrupted)."""
    code = ("import json, sys; from pairforge.trainer.config import TrainConfig; "
            "from pairforge.trainer.loop import train; options = json.loads(sys.argv[1]); "
            "train(TrainConfig.from_options(**options), stop_at=int(sys.argv[2]))")
    options = {**OPTIONS, "shards": str(shards), "output": str(output)}
    completed = subprocess.run([python, "-c", code, json.dumps(options), str(stop_at)], capture_output=True, text=True,
                               cwd=WORK)
    if "interrupted" not in completed.stderr + completed.stdout and completed.returncode != 0:
        raise SystemExit(f"the interrupted run failed:\n{completed.stderr}")


def only_run(output: Path) -> Path:
    [run] = [path for path in output.iterdir() if path.is_dir()]
    return run


def rows(run: Path, split: str | None) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    chosen = [json.loads(line) for line in lines]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in chosen if row.get("split") == split]


def weights(run: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    final = sorted((run / "checkpoints").glob("step-*[0-9]"))[-1]
    return {f"{file.name}:{name}": tensor for file in sorted(final.glob("*.safetensors"))
            for name, tensor in load_file(str(file)).items()}


def same_weights(first: dict, second: dict) -> bool:
    import torch

    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def dropout_layers(run: Path) -> int:
    """How many dropout layers the run's generator has (the test-time noise this check must cover)."""
    from torch import nn

    from pairforge.trainer.config import TrainConfig
    from pairforge.trainer.networks import build_generator

    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    return sum(isinstance(module, nn.Dropout) for module in build_generator(config.model).modules())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="python of the BEFORE checkout's venv")
    parser.add_argument("--after", default=sys.executable, help="python of the AFTER checkout's venv")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/resume_across"))
    parser.add_argument("--stop-at", type=int, default=4)
    args = parser.parse_args()
    args.before, args.after = (str(Path(python).absolute()) if "/" in python else python
                               for python in (args.before, args.after))
    global WORK
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    WORK = args.work_dir = args.work_dir.resolve()
    shards = build_data(args.before, args.work_dir)
    for name, python in (("before", args.before), ("after", args.after)):
        cli(python, "train", str(shards), "-o", str(args.work_dir / name), *FLAGS)
    train_until(args.before, shards, args.work_dir / "mixed", args.stop_at)
    for name, python in (("before", args.before), ("after", args.after)):  # which code each interpreter runs
        where = subprocess.run([python, "-c", "import pairforge.trainer.loop as m; print(m.__file__)"], cwd=WORK,
                               capture_output=True, text=True, check=True).stdout.strip()
        print(f"{name}: {where}")
    mixed = only_run(args.work_dir / "mixed")
    cli(args.after, "train", "--resume", str(mixed))
    before, after = only_run(args.work_dir / "before"), only_run(args.work_dir / "after")

    checks = {
        "train rows: before == after": rows(before, None) == rows(after, None),
        "train rows: before == mixed": rows(before, None) == rows(mixed, None),
        "final weights: before == after": same_weights(weights(before), weights(after)),
        "final weights: before == mixed": same_weights(weights(before), weights(mixed)),
        "val rows after the resume: after == mixed": (
            [r for r in rows(after, "val") if r["step"] > args.stop_at]
            == [r for r in rows(mixed, "val") if r["step"] > args.stop_at]),
    }
    dropout = dropout_layers(after)
    if not dropout:
        raise SystemExit("the generator has no dropout layers: this check needs one that has (a larger --crop-size)")
    train_rows = rows(before, None)
    print(f"{len(train_rows)} training rows, losses {sorted(k for k in train_rows[-1] if k.startswith('loss_'))}; "
          f"{len(weights(before))} tensors in the final checkpoint; {dropout} dropout layers in G; interrupted at step "
          f"{args.stop_at}")
    for name, ok in checks.items():
        print(f"{'identical' if ok else 'DIFFERENT'}  {name}")
    same_val = rows(before, "val") == rows(after, "val")
    print(f"(reported) val rows before == after: {same_val}")
    for first, second in zip(rows(before, "val"), rows(after, "val"), strict=False):
        print(f"  step {first['step']}: before val_l1 {first.get('val_l1'):.6f}, after {second.get('val_l1'):.6f}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
