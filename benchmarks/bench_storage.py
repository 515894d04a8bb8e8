"""Benchmark shard sets in a bucket (issue 23): writing shards to an S3 server vs to local disk, and
train's data wait when it streams its shards from the server vs from local disk.

Starts a local S3-compatible server (moto in server mode, from the dev extras) on 127.0.0.1, then in
one run, alternating the two targets ``--repeats`` times:

- ``pairforge shard PAIRS -o LOCAL -j W`` vs ``pairforge shard PAIRS -o s3://bench/shards -j W``
  (the CLI end to end in a subprocess; the same local pair folder as benchmarks/bench_shard.py);
- ``pairforge train`` for ``--steps`` steps on those shards, read from local disk vs from the
  bucket, with ``--train-workers`` DataLoader workers: images/s and the fraction of the
  time the loop waited for data (summary.json's ``data_wait_fraction``).

Target: shard throughput to the server >= 0.8 of the throughput to local disk with 2 workers.

    python benchmarks/bench_storage.py --work-dir /tmp/bench_storage
    python benchmarks/bench_storage.py --pairs 300 --steps 10 --repeats 1   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_shard import make_pairs  # noqa: E402
from common import machine, run_measured  # noqa: E402

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """moto's S3 server on a free port, a bucket ``bench``, and the environment a user would set."""
    port = free_port()
    handle = open(log, "wb")  # noqa: SIM115 (closed with the process)
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=handle,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="bench")
    return server, env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def remove(target: str) -> None:
    if target.startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem()
        path = target[len("s3://"):]
        if fs.exists(path):
            fs.rm(path, recursive=True)
    else:
        shutil.rmtree(target, ignore_errors=True)


def shard(pairs: Path, target: str, workers: int, per_shard: int) -> float:
    command = [sys.executable, "-m", "pairforge", "-q", "shard", str(pairs), "-o", target, "-j", str(workers),
               "--samples-per-shard", str(per_shard), "--val-fraction", "0"]
    seconds, _, _ = run_measured(command)
    return seconds


def train(shards: str, out: Path, steps: int, workers: int, channels: int, crop: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pairforge", "-q", "train", shards, "-o", str(out), "--steps", str(steps),
               "--device", "cpu", "--num-workers", str(workers), "--batch-size", "4", "--generator", "unet", "--crop-size", str(crop),
               "--load-size", str(crop + crop // 8), "--generator-channels", str(channels),
               "--discriminator-channels", str(channels), "--val-every", "0",
               "--sample-every", "0", "--checkpoint-every", "0", "--log-every", "10"]
    run_measured(command)
    return json.loads(next(out.glob("*/summary.json")).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--per-shard", type=int, default=250)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs of each target (median reported)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per train run (0: skip training)")
    parser.add_argument("--train-workers", type=int, default=1)
    parser.add_argument("--train-channels", type=int, default=16, help="first-layer filters of both networks")
    parser.add_argument("--train-crop", type=int, default=256, help="crop size (a small net and crop stress the data)")
    parser.add_argument("--skip-shard", action="store_true", help="write both shard sets once, untimed (to measure training only)")
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_storage_"))
    work.mkdir(parents=True, exist_ok=True)
    pairs = work / "pairs"
    make_pairs(pairs, args.pairs)
    server, _ = start_server(work / "moto.log")
    try:
        print(machine())
        times: dict[str, list[float]] = {"local": [], "bucket": []}
        server_cpu: list[float] = []
        targets = {"local": str(work / "shards"), "bucket": "s3://bench/shards"}
        for _ in range(0 if args.skip_shard else args.repeats):
            for name, target in targets.items():
                remove(target)
                before = cpu_seconds(server.pid)
                times[name].append(shard(pairs, target, args.workers, args.per_shard))
                used = cpu_seconds(server.pid) - before
                if name == "bucket":
                    server_cpu.append(used)
                print(f"shard -> {name}: {args.pairs / times[name][-1]:.1f} pairs/s, {times[name][-1]:.1f} s "
                      f"(S3 server process used {used:.1f} CPU s)", flush=True)
        if args.skip_shard:
            for target in targets.values():
                shard(pairs, target, args.workers, args.per_shard)
        else:
            local, bucket = (args.pairs / statistics.median(times[name]) for name in ("local", "bucket"))
            print(f"\nshard, {args.workers} workers, {args.pairs} pairs, median of {args.repeats}: local disk "
                  f"{local:.1f} pairs/s, S3 server {bucket:.1f} pairs/s, bucket / local {bucket / local:.2f} "
                  f"(target >= 0.8); the server itself used {statistics.median(server_cpu):.1f} CPU s per bucket run "
                  f"on the same {os.cpu_count()} cores")
        if args.steps:
            runs: dict[str, list[dict]] = {"local": [], "bucket": []}
            for _ in range(args.repeats):
                for name, target in targets.items():
                    summary = train(target, work / f"runs-{name}", args.steps, args.train_workers,
                                    args.train_channels, args.train_crop)
                    runs[name].append(summary)
                    print(f"train from {name}: {summary['images_per_s']:.2f} images/s, data wait "
                          f"{100 * summary['data_wait_fraction']:.1f}%", flush=True)
            speed = {name: statistics.median(r["images_per_s"] for r in rows) for name, rows in runs.items()}
            wait = {name: statistics.median(r["data_wait_fraction"] for r in rows) for name, rows in runs.items()}
            print(f"train, {args.train_workers} loader workers, {args.steps} steps, median of {args.repeats}: "
                  f"local {speed['local']:.2f} images/s (data wait {100 * wait['local']:.1f}%), bucket "
                  f"{speed['bucket']:.2f} images/s (data wait {100 * wait['bucket']:.1f}%), bucket / local "
                  f"{speed['bucket'] / speed['local']:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
