"""Speed of `synth facades` on one core: render only, and render + write (JPEG photo, PNG label map).

Target (issue 12): >= 50 facades/s per core at 256x256. One process, OpenCV limited to one thread,
so the figure is per core; `synth facades` is one such loop. Rates are given per wall second and per
second of CPU time; on a shared machine only the second is the speed of a core.

    .venv/bin/python benchmarks/bench_facades.py --count 300 --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from pairforge.pipelines.synthetic.facades import FacadesConfig, render_facade, write_facades  # noqa: E402

TARGET = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    config = FacadesConfig(count=args.count, seed=args.seed, size=args.size)
    render_facade(0, config)  # warm-up (imports, allocator)
    started, cpu_started = time.perf_counter(), time.process_time()
    for index in range(args.count):
        render_facade(index, config)
    render_rate = args.count / (time.perf_counter() - started)
    render_cpu_rate = args.count / max(time.process_time() - cpu_started, 1e-9)
    cpu_started = time.process_time()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_facades(Path(folder) / "facades", config)
        write_rate = args.count / (time.perf_counter() - started)
    cpu_rate = args.count / max(time.process_time() - cpu_started, 1e-9)
    result = {
        "machine": machine(),
        "count": args.count,
        "size": args.size,
        "render_per_s_wall": round(render_rate, 1),
        "render_per_cpu_s": round(render_cpu_rate, 1),
        "render_and_write_per_s_wall": round(write_rate, 1),
        "render_and_write_per_cpu_s": round(cpu_rate, 1),
        "target_per_core_s": TARGET,
        # per core = per second of CPU time of this one-thread process (on a shared machine the wall rate
        # also counts the time other processes hold the core)
        "meets_target": cpu_rate >= TARGET,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
