"""Worker start-up of the runner's local process pool (issue 11 §5).

The runner forks its local workers from a forkserver that has already imported
the image code (``pairforge.runner._process_pool``). Is that worth keeping over
Dask's own process pool (``dask.compute(..., scheduler="processes")``, which
spawns fresh interpreters)? This script times, each in a fresh interpreter (as
the CLI runs), two trivial partitions on 2 workers from the first call to the
results: the pool's start-up and the workers' imports, nothing else.

    python benchmarks/bench_runner.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

MODES = ("pairforge-forkserver-preload", "dask-default-spawn")


def start_up(mode: str) -> float:
    """Seconds to run 2 trivial partitions that need the image code, on 2 local workers."""
    import dask

    import pairforge.build  # noqa: F401  (a command has it imported when it runs partitions)
    from pairforge.runner import RunnerConfig, run_partitions
    from pairforge.shards import stats_path_for

    tasks = [Path(f"/shards/train-{index:06d}.tar") for index in range(2)]
    start = time.perf_counter()
    if mode == "pairforge-forkserver-preload":
        run_partitions(stats_path_for, tasks, RunnerConfig(workers=2))
    else:
        calls = [dask.delayed(stats_path_for, pure=False)(task) for task in tasks]
        dask.compute(*calls, scheduler="processes", num_workers=2, chunksize=1)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per mode (alternating)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(start_up(args.child)))
        return
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            completed = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                       check=True)
            seconds[mode].append(json.loads(completed.stdout))
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    print(json.dumps({
        "machine": machine(),
        "seconds_to_first_results_2_workers": {mode: [round(v, 3) for v in values] for mode, values in seconds.items()},
        "median_s": {mode: round(value, 3) for mode, value in medians.items()},
        "spawn_over_forkserver": round(medians["dask-default-spawn"] / medians["pairforge-forkserver-preload"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
