"""A refactor costs no speed: the same commands timed with two checkouts, alternated, in one run.

BEFORE and AFTER are the pythons of two checkouts' venvs (a second checkout of the commit before
the change, and this one). The inputs are built once (scikit-image photo crops; ``synth facades``
for labels), then every round runs each command with BEFORE, then with AFTER (the order flips every
round so drift in the machine's load falls on both), each in a fresh folder:

- ``make-gray`` and ``make-edges --detector canny`` (photos -> pair folder, 1 worker);
- ``shard`` (pair folder -> shard set, 1 worker);
- ``check`` (the shard set);
- ``train`` (a tiny U-Net, a few steps, 1 DataLoader worker off: the loop, the step, the reader).

Prints the median seconds of each side and AFTER/BEFORE per command (below 1: faster), as JSON.
Ratios, not absolute times: the machine is shared.

    .venv/bin/python benchmarks/bench_before_after.py --before ../before/.venv/bin/python --rounds 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, random_crop, skimage_photos
from PIL import Image

TRAIN = ["--steps", "8", "--generator", "unet", "--generator-channels", "8", "--discriminator-channels", "8",
         "--crop-size", "64", "--load-size", "72", "--batch-size", "2", "--num-workers", "0", "--val-every", "0",
         "--sample-every", "0", "--checkpoint-every", "8", "--device", "cpu", "--seed", "1"]


def commands(work: Path, out: Path) -> dict[str, list[str]]:
    """Each benchmarked command, writing under ``out`` (inputs under ``work``)."""
    return {
        "make-gray": ["make-gray", str(work / "photos"), "-o", str(out / "gray"), "-j", "1", "--size", "128"],
        "make-edges canny": ["make-edges", str(work / "photos"), "-o", str(out / "edges"), "-j", "1",
                             "--detector", "canny", "--size", "128"],
        "shard": ["shard", str(work / "pairs"), "-o", str(out / "shards"), "-j", "1"],
        "check": ["check", str(work / "shards"), "-o", str(out / "check"), "-j", "1"],
        "train": ["train", str(work / "shards"), "-o", str(out / "runs"), *TRAIN],
    }


def run(python: str, args: list[str]) -> float:
    """Seconds ``pairforge ARGS`` takes (``check`` exits 1 when it flags pairs: that is a result, not a failure)."""
    start = time.perf_counter()
    # run outside any checkout: `python -m` puts the working folder first on sys.path
    done = subprocess.run([python, "-m", "pairforge.cli", "-q", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    if done.returncode not in ((0, 1) if args[0] == "check" else (0,)):
        raise SystemExit(f"{python} pairforge {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - start


def build_inputs(python: str, work: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    photos, folder = skimage_photos(), work / "photos"
    folder.mkdir(parents=True)
    for index in range(count):
        crop = random_crop(rng, photos[index % len(photos)], 192, 192)
        Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"p{index:04d}.jpg", quality=90)
    run(python, ["make-gray", str(folder), "-o", str(work / "pairs"), "-j", "1", "--size", "128"])
    run(python, ["shard", str(work / "pairs"), "-o", str(work / "shards"), "-j", "1"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="python of the BEFORE checkout's venv")
    parser.add_argument("--after", default=sys.executable, help="python of the AFTER checkout's venv")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--photos", type=int, default=120)
    args = parser.parse_args()
    pythons = {side: str(Path(python).absolute()) if "/" in python else python
               for side, python in (("before", args.before), ("after", args.after))}
    work = Path(tempfile.mkdtemp(prefix="bench_before_after_"))
    try:
        build_inputs(pythons["before"], work, args.photos)
        times: dict[str, dict[str, list[float]]] = {}
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for side in order:
                out = work / f"{side}-{round_}"
                for name, command in commands(work, out).items():
                    times.setdefault(name, {"before": [], "after": []})[side].append(run(pythons[side], command))
                shutil.rmtree(out)
        summary = {
            "machine": machine(), "rounds": args.rounds, "photos": args.photos,
            "median_s": {name: {side: round(statistics.median(values), 3) for side, values in sides.items()}
                         for name, sides in times.items()},
            "after_over_before": {name: round(statistics.median(sides["after"]) / statistics.median(sides["before"]), 3)
                                  for name, sides in times.items()},
        }
        print(json.dumps(summary, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
