"""Benchmark `pairforge shard` (issue 2).

Builds N AB pairs at 256x512 (random crops of scikit-image's photos, JPEG like the
official datasets), then in one run measures:

- the single-core floor: a tight loop that only decodes each AB file and encodes
  its A (PNG) and B (JPEG q95) the same way the shard writer does, on one core;
- `pairforge shard` with 1 and with 2 workers (end to end: the CLI in a
  subprocess, cluster start-up included);
- peak memory (all processes) for N and for 4N pairs with 2 workers.

Targets: 2 workers >= 1.7x 1 worker; 2 workers >= 75% of twice the floor; peak
memory does not grow with the number of pairs.

    python benchmarks/bench_shard.py                 # 5,000 and 20,000 pairs
    python benchmarks/bench_shard.py --pairs 500 --no-memory   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, random_crop, run_measured, skimage_photos  # noqa: E402

from pairforge.imageio import encode_jpeg, encode_png, read_image  # noqa: E402
from pairforge.pairs import split_ab  # noqa: E402


def make_pairs(root: Path, count: int, seed: int = 0) -> None:
    photos = skimage_photos()
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    existing = len(list(root.glob("*.jpg")))
    for index in range(existing, count):
        photo = photos[index % len(photos)]
        b = random_crop(rng, photo, 256, 256)
        gray = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
        a = np.repeat((255 - cv2.Canny(gray, 60, 160))[..., None], 3, axis=2)
        ab = np.concatenate([a, b], axis=1)
        cv2.imwrite(str(root / f"{index:06d}.jpg"), cv2.cvtColor(ab, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def floor(root: Path, limit: int) -> float:
    """Pairs/s of decode + split + encode on one core (no tar, no Dask)."""
    paths = sorted(root.glob("*.jpg"))[:limit]
    start = time.perf_counter()
    for path in paths:
        a, b = split_ab(read_image(path), 3)
        encode_png(a)
        encode_jpeg(b, 95)
    return len(paths) / (time.perf_counter() - start)


def shard(pairs: Path, out: Path, workers: int, per_shard: int) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pairforge", "-q", "shard", str(pairs), "-o", str(out), "-j", str(workers),
               "--samples-per-shard", str(per_shard), "--val-fraction", "0"]
    seconds, peak, _ = run_measured(command)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--memory-factor", type=int, default=4, help="the memory check also runs pairs x this")
    parser.add_argument("--no-memory", action="store_true", help="skip the large memory comparison")
    parser.add_argument("--per-shard", type=int, default=250,
                        help="samples per shard (= per task); 250 gives both workers equal shares")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_shard_"))
    small, big = work / "pairs_small", work / "pairs_big"
    make_pairs(small, args.pairs)
    floor_rate = floor(small, args.pairs)
    one_s, one_peak = shard(small, work / "shards1", 1, args.per_shard)
    two_s, two_peak = shard(small, work / "shards2", 2, args.per_shard)
    identical = all((work / "shards1" / p.name).read_bytes() == p.read_bytes() for p in (work / "shards2").glob("*.tar"))
    result = {
        "machine": machine(),
        "pairs": args.pairs,
        "size": "256x512 AB JPEG",
        "floor_pairs_per_s_1core": round(floor_rate, 1),
        "shard_1_worker_pairs_per_s": round(args.pairs / one_s, 1),
        "shard_2_workers_pairs_per_s": round(args.pairs / two_s, 1),
        "speedup_2_vs_1": round(one_s / two_s, 3),
        "fraction_of_2x_floor": round(args.pairs / two_s / (2 * floor_rate), 3),
        "identical_shards_1_vs_2_workers": identical,
        "peak_rss_mb_2_workers": round(two_peak / 2**20, 1),
    }
    if not args.no_memory:
        make_pairs(big, args.pairs * args.memory_factor)
        big_s, big_peak = shard(big, work / "shards_big", 2, args.per_shard)
        result.update({
            "pairs_big": args.pairs * args.memory_factor,
            "shard_2_workers_pairs_per_s_big": round(args.pairs * args.memory_factor / big_s, 1),
            "peak_rss_mb_2_workers_big": round(big_peak / 2**20, 1),
            "peak_rss_ratio_big_vs_small": round(big_peak / two_peak, 3),
        })
    result["targets"] = {
        "speedup_2_vs_1>=1.7": result["speedup_2_vs_1"] >= 1.7,
        "2_workers>=0.75x(2xfloor)": result["fraction_of_2x_floor"] >= 0.75,
        **({"memory_flat(ratio<=1.15)": result["peak_rss_ratio_big_vs_small"] <= 1.15} if not args.no_memory else {}),
    }
    print(json.dumps(result, indent=2))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    os.environ.get("KEEP") and print(work)


if __name__ == "__main__":
    main()
