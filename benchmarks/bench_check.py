"""Benchmark ``pairforge check``: runner throughput against a one-core floor measured in the same run.

Floor: a tight in-process loop over the same pairs doing exactly the per-pair work (decode the AB file,
split it, :meth:`PairMeasurer.measure`), one core, no runner. Runner: :func:`run_check` (partitions on
Dask, then the dataset-level judgement: outliers, near-duplicate index, clusters) with 1 and N workers.
Target: N workers >= 0.75 x N x floor. Floor and runner alternate (best of ``--repeat``) because the
machine may be shared. On a shared machine wall-clock ratios only say how much CPU the scheduler gave
this session (Linux autogroup gives a session's processes one share, however many workers it starts),
so the script also reports CPU seconds per pair: the floor's, and the runner's (every partition's CPU
in its worker, plus the main process: graph, judging, near-duplicate search). Their ratio is the
efficiency a free machine turns into N x efficiency x floor.

    .venv/bin/python benchmarks/bench_check.py --work-dir /tmp/bench_check --pairs 1500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, random_crop, skimage_photos  # noqa: E402

from pairforge.check.check import (  # noqa: E402
    CheckConfig,
    MeasurePartition,
    judge,
    measure_config_for,
    open_source,
)
from pairforge.check.measures import PairMeasurer  # noqa: E402
from pairforge.imageio import read_image  # noqa: E402
from pairforge.pairs import split_ab  # noqa: E402
from pairforge.runner import RunnerConfig, run_partitions  # noqa: E402


def make_pairs(root: Path, count: int, size: int) -> None:
    """Gray (colorization) pairs from random crops of scikit-image photos, AB PNG."""
    rng = np.random.default_rng(0)
    photos = skimage_photos()
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "pairs.json").write_text(json.dumps({"format": "pairforge.pairs/1", "kind": "gray", "a_channels": 1,
                                                 "stage": {"space": "luma"}}))
    for index in range(count):
        b = random_crop(rng, photos[index % len(photos)], size, size)
        a = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2GRAY)
        ab = np.concatenate([np.repeat(a[..., None], 3, axis=2), b], axis=1)
        cv2.imwrite(str(root / "train" / f"p{index:06d}.png"), cv2.cvtColor(ab, cv2.COLOR_RGB2BGR))


def floor(source, measure) -> float:  # type: ignore[no-untyped-def]
    """Pairs per second of decode + measures, in-process, one core."""
    measurer = PairMeasurer(measure)
    refs = [ref for task in source.tasks for ref in task]
    start = time.perf_counter()
    for ref in refs:
        a, b = split_ab(read_image(ref.path), source.a_channels)
        measurer.measure(a, b)
    return len(refs) / (time.perf_counter() - start)


class TimedPartition:
    """A partition function that also reports the CPU seconds it used in its worker."""

    def __init__(self, function) -> None:  # type: ignore[no-untyped-def]
        self.function = function

    def __call__(self, task):  # type: ignore[no-untyped-def]
        start = time.process_time()
        result = self.function(task)
        return result, time.process_time() - start


def runner_rate(source, config, workers: int, measure) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(pairs/s wall, CPU s per pair, of which in partitions) of run_check's work: partitions, then judge()."""
    start, main_cpu = time.perf_counter(), time.process_time()
    timed = run_partitions(TimedPartition(MeasurePartition(measure, source.a_channels)), list(source.tasks),
                           RunnerConfig(workers=workers, partition_size=128))
    rows = sorted((row for part, _ in timed for row in part.rows), key=lambda row: (row["split"], row["key"]))
    result = judge(source, config, rows, [row for part, _ in timed for row in part.unreadable])
    wall = time.perf_counter() - start
    in_partitions = sum(seconds for _, seconds in timed)
    main = time.process_time() - main_cpu - (0.0 if workers > 1 else in_partitions)
    return result.checked / wall, (in_partitions + main) / result.checked, in_partitions / result.checked


def floor_cpu(source, measure) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(pairs/s wall, CPU s per pair) of the floor loop."""
    start = time.process_time()
    rate = floor(source, measure)
    refs = sum(len(task) for task in source.tasks)
    return rate, (time.process_time() - start) / refs


def _floor_process(args: tuple[str, int]) -> tuple[float, float]:
    """One floor loop over all pairs of the folder, in its own process."""
    root, _ = args
    config = CheckConfig()
    source = open_source(root, config, partition_size=128)
    return floor_cpu(source, measure_config_for(source))


def concurrent_floors(root: Path, processes: int) -> tuple[float, float]:
    """``processes`` independent floor loops started together (no runner): summed pairs/s, mean CPU per pair.

    The fair comparison for N runner workers on a shared machine: what N plain processes get.
    """
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_floor_process, [(str(root), index) for index in range(processes)])
    return sum(rate for rate, _ in results), sum(cpu for _, cpu in results) / processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_check"))
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    root = args.work_dir / "pairs"
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    make_pairs(root, args.pairs, args.size)
    config = CheckConfig(out_dir=str(args.work_dir / "check"))
    source = open_source(root, config, partition_size=128)
    measure = measure_config_for(source)
    floors, ones, many, parallel = [], [], [], []
    for _ in range(args.repeat):
        floors.append(floor_cpu(source, measure))
        parallel.append(concurrent_floors(root, args.workers))
        ones.append(runner_rate(source, config, 1, measure))
        many.append(runner_rate(source, config, args.workers, measure))
    best_floor, best_one, best_many = (max(run[0] for run in runs) for runs in (floors, ones, many))
    cpu_floor, cpu_one, cpu_many = (min(run[1] for run in runs) for runs in (floors, ones, many))
    report = {
        "machine": machine(),
        "pairs": args.pairs,
        "size": f"{args.size}x{args.size} (AB {2 * args.size}x{args.size} PNG)",
        "floor_pairs_per_s": round(best_floor, 1),
        "runner_1_worker": round(best_one, 1),
        f"runner_{args.workers}_workers": round(best_many, 1),
        "1_worker_over_floor": round(best_one / best_floor, 3),
        f"{args.workers}_workers_over_{args.workers}x_floor": round(best_many / (args.workers * best_floor), 3),
        "cpu_ms_per_pair": {"floor": round(1000 * cpu_floor, 2), "1": round(1000 * cpu_one, 2),
                            str(args.workers): round(1000 * cpu_many, 2)},
        "cpu_ms_per_pair_in_partitions": {"1": round(1000 * min(run[2] for run in ones), 2),
                                          str(args.workers): round(1000 * min(run[2] for run in many), 2)},
        f"{args.workers}_independent_floor_processes_pairs_per_s": round(max(run[0] for run in parallel), 1),
        f"{args.workers}_workers_over_{args.workers}_independent_floors": round(
            best_many / max(run[0] for run in parallel), 3),
        f"cpu_efficiency_{args.workers}_workers (floor cpu / runner cpu)": round(cpu_floor / cpu_many, 3),
        "all_runs_pairs_per_s": {"floor": [round(v[0], 1) for v in floors], "1": [round(v[0], 1) for v in ones],
                                 str(args.workers): [round(v[0], 1) for v in many]},
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
