"""Benchmark the pair builders `make-gray`, `make-labels` and `make-edges --detector canny` (issue 3).

Builds N photos at 1024x768 (random crops of scikit-image's photos, JPEG q90),
one 8-bit class-id PNG label map per photo (blocky classes) and a palette
JSON, then in one run measures, for each builder:

- the single-core floor: a tight loop over the photos doing exactly the
  per-image work of the builder and nothing else -- ``read_image`` (and
  ``read_label_image``) + the stage itself (resize to 256 + its core
  operation) + ``join_ab`` + ``encode_png`` -- in a child process pinned to one
  core with one BLAS/OpenMP thread (no runner, no Dask, no file writes);
- the command end to end with 1 and with 2 workers, as a user runs it
  (``python -m pairforge -q make-gray PHOTOS -o OUT -j N --size 256``), start-up
  included: pairs/s = pairs written / wall seconds.

Target: each run >= 75% of floor x workers. HED's images/s at 256x256 on the
CPU comes from ``benchmarks/bench_hed.py``, run as a subprocess and embedded
under ``"hed"`` (``--hed skip`` leaves it out).

Pair builders split the photos into partitions of 256, so runs with fewer than
512 photos leave the second worker idle: use the default 2,000 for figures.

    python benchmarks/bench_pipelines.py                                # 2,000 photos, all builders
    python benchmarks/bench_pipelines.py --photos 100 --hed quick       # a check that it works
    python benchmarks/bench_pipelines.py --builders edges --work-dir /tmp/bp --keep
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, random_crop, run_measured, skimage_photos  # noqa: E402

from pairforge.runner import RunnerConfig  # noqa: E402

BUILDERS = ("gray", "labels", "edges")
PHOTO_HEIGHT, PHOTO_WIDTH = 768, 1024
PHOTO_QUALITY = 90
LABEL_CLASSES = 8
TARGET_FRACTION = 0.75
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def make_corpus(root: Path, count: int, seed: int = 0) -> None:
    """``root/photos/<i>.jpg``, ``root/labels/<i>.png`` and ``root/palette.json``; files already there are kept.

    Each photo and label map depends only on (seed, index), so a cached corpus
    grown later is the same as one made in one go.
    """
    from pairforge.palettes import auto_palette

    photos_dir, labels_dir = root / "photos", root / "labels"
    photos_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    sources = skimage_photos()
    for index in range(count):
        photo_path, label_path = photos_dir / f"{index:06d}.jpg", labels_dir / f"{index:06d}.png"
        if photo_path.exists() and label_path.exists():
            continue
        rng = np.random.default_rng([seed, index])
        photo = random_crop(rng, sources[index % len(sources)], PHOTO_HEIGHT, PHOTO_WIDTH)
        rows, columns = int(rng.integers(3, 13)), int(rng.integers(4, 17))
        grid = rng.integers(0, LABEL_CLASSES, size=(rows, columns), dtype=np.uint8)
        label = cv2.resize(grid, (PHOTO_WIDTH, PHOTO_HEIGHT), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(label_path), label)
        cv2.imwrite(str(photo_path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, PHOTO_QUALITY])
    palette_path = root / "palette.json"
    if not palette_path.exists():
        palette_path.write_text(json.dumps(auto_palette(range(LABEL_CLASSES)).to_json(), indent=2))


def build_stage(builder: str, corpus: Path, size: int) -> Any:
    """The stage object the builder's command runs, configured as the command configures it."""
    from pairforge.pipelines.geometry import FitConfig

    fit = FitConfig(size=size, fit="crop")
    if builder == "gray":
        from pairforge.pipelines.gray import GrayConfig, GrayStage

        return GrayStage(GrayConfig(fit=fit))
    if builder == "labels":
        from pairforge.palettes import load_palette
        from pairforge.pipelines.labels import LabelsConfig, LabelsStage

        return LabelsStage(LabelsConfig(palette=load_palette(corpus / "palette.json"), fit=fit))
    from pairforge.pipelines.edges import EdgesConfig, EdgesStage

    return EdgesStage(EdgesConfig(detector="canny", fit=fit))


def floor_loop(builder: str, corpus: Path, size: int, limit: int) -> dict[str, float | int]:
    """Decode + stage (resize + core operation) + join + PNG encode of each photo, in this process."""
    from pairforge.errors import SampleError
    from pairforge.imageio import encode_png, read_image, read_label_image
    from pairforge.pairs import join_ab

    stage = build_stage(builder, corpus, size)
    photos = sorted((corpus / "photos").glob("*.jpg"))[:limit]
    done = rejected = 0
    start = time.perf_counter()
    for path in photos:
        try:
            image = read_image(path)
            if builder == "labels":
                sample = stage(image, path.stem, label=read_label_image(corpus / "labels" / f"{path.stem}.png"))
            else:
                sample = stage(image, path.stem)
            encode_png(join_ab(sample.a, sample.b))
            done += 1
        except SampleError:
            rejected += 1
    seconds = time.perf_counter() - start
    return {"images": len(photos), "pairs": done, "rejected": rejected, "seconds": seconds}


def floor(builder: str, corpus: Path, size: int, limit: int) -> dict[str, float | int]:
    """Run :func:`floor_loop` in a child process pinned to one core, one thread per library."""
    cpu = min(os.sched_getaffinity(0))
    command = [sys.executable, __file__, "--floor-of", builder, "--corpus", str(corpus), "--size", str(size),
               "--floor-photos", str(limit)]
    completed = subprocess.run(command, env={**os.environ, **SINGLE_THREAD_ENV}, capture_output=True, text=True,
                               preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), check=False)
    if completed.returncode:
        raise RuntimeError(f"floor loop for {builder} failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout)
    # Rejected photos cost work too: the floor counts every image handled.
    result["pairs_per_s"] = result["images"] / result["seconds"]
    return result


def command_for(builder: str, corpus: Path, out: Path, workers: int | str, size: int) -> list[str]:
    """The CLI command line a user would type for this builder."""
    base = [sys.executable, "-m", "pairforge", "-q", f"make-{builder}", str(corpus / "photos"), "-o", str(out),
            "-j", str(workers), "--size", str(size)]
    if builder == "labels":
        return base + ["--labels", str(corpus / "labels"), "--palette", str(corpus / "palette.json")]
    if builder == "edges":
        return base + ["--detector", "canny"]
    return base


def run_builder(builder: str, corpus: Path, out: Path, workers: int, size: int, keep: bool) -> dict[str, float | int]:
    """Time one end-to-end command; count what it wrote from its manifest and rejects."""
    shutil.rmtree(out, ignore_errors=True)
    seconds, peak, _ = run_measured(command_for(builder, corpus, out, workers, size))
    written = sum(1 for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip())
    rejected = sum(1 for line in (out / "rejects.jsonl").read_text().splitlines() if line.strip())
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"seconds": round(seconds, 2), "written": written, "rejected": rejected,
            "pairs_per_s": round(written / seconds, 1), "peak_rss_mb": round(peak / 2**20, 1)}


def hed_figure(mode: str) -> dict[str, object] | str:
    """HED images/s at 256x256 on the CPU from bench_hed.py, or why there is none."""
    if mode == "skip":
        return "not run (--hed skip): see python benchmarks/bench_hed.py --device cpu --size 256"
    command = [sys.executable, str(Path(__file__).with_name("bench_hed.py")), "--device", "cpu", "--size", "256"]
    command += ["--quick"] if mode == "quick" else []
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode:
        return f"bench_hed.py failed (exit {completed.returncode}): {completed.stderr.strip()[-500:]}"
    return json.loads(completed.stdout)


def floor_child(args: argparse.Namespace) -> None:
    print(json.dumps(floor_loop(args.floor_of, args.corpus, args.size, args.floor_photos)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=2000, help="photos in the corpus (1024x768 JPEG)")
    parser.add_argument("--builders", default=",".join(BUILDERS), help="comma-separated: gray,labels,edges")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to run each builder with")
    parser.add_argument("--size", type=int, default=256, help="output side (--size of the commands)")
    parser.add_argument("--floor-photos", type=int, default=0, help="photos in the floor loop (0: all)")
    parser.add_argument("--hed", choices=("full", "quick", "skip"), default="full",
                        help="run bench_hed.py on the CPU at 256x256 (quick: its --quick)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the photo corpus here (reused by later runs with the same --photos)")
    parser.add_argument("--keep", action="store_true", help="keep the pair folders the commands wrote (and a temp work dir)")
    parser.add_argument("--floor-of", choices=BUILDERS, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_of:
        floor_child(args)
        return

    builders = [name.strip() for name in args.builders.split(",") if name.strip()]
    unknown = sorted(set(builders) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown builders {unknown}: choose from {', '.join(BUILDERS)}")
    worker_counts = [int(count) for count in args.workers.split(",")]
    floor_photos = args.floor_photos or args.photos

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_pipelines_"))
    corpus = work / f"corpus-{args.photos}"
    start = time.perf_counter()
    make_corpus(corpus, args.photos)
    corpus_seconds = time.perf_counter() - start

    result: dict[str, object] = {
        "machine": machine(),
        "photos": args.photos,
        "photo": f"{PHOTO_WIDTH}x{PHOTO_HEIGHT} JPEG q{PHOTO_QUALITY} (random crops of scikit-image photos)",
        "labels": f"{PHOTO_WIDTH}x{PHOTO_HEIGHT} 8-bit class-id PNG, {LABEL_CLASSES} blocky classes",
        "output": f"{args.size}x{args.size} crop, AB PNG",
        "partitions": math.ceil(args.photos / RunnerConfig().partition_size),
        "corpus_seconds": round(corpus_seconds, 1),
        "floor_photos": min(floor_photos, args.photos),
        "builders": {},
    }
    targets: dict[str, bool] = {}
    for builder in builders:
        floor_result = floor(builder, corpus, args.size, floor_photos)
        floor_rate = floor_result["pairs_per_s"]
        entry: dict[str, object] = {
            "command": " ".join(["pairforge", "-q", *command_for(builder, corpus, work / "OUT", "N", args.size)[4:]]),
            "floor_pairs_per_s_1core": round(floor_rate, 1),
            "floor_rejected": floor_result["rejected"],
        }
        for workers in worker_counts:
            run = run_builder(builder, corpus, work / f"out-{builder}-{workers}", workers, args.size, args.keep)
            fraction = run["pairs_per_s"] / (floor_rate * workers)
            run["fraction_of_floor_x_workers"] = round(fraction, 3)
            entry[f"{workers}_worker{'s' if workers > 1 else ''}"] = run
            targets[f"{builder}_{workers}w>={TARGET_FRACTION}x(floor x {workers})"] = fraction >= TARGET_FRACTION
        runs = [entry.get(f"{w}_worker{'s' if w > 1 else ''}") for w in (1, 2)]
        if all(runs):
            entry["speedup_2_vs_1"] = round(runs[1]["pairs_per_s"] / runs[0]["pairs_per_s"], 3)  # type: ignore[index]
        result["builders"][builder] = entry  # type: ignore[index]
    result["hed_cpu_256"] = hed_figure(args.hed)
    result["targets"] = targets
    print(json.dumps(result, indent=2))
    if args.work_dir is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif args.work_dir is None:
        print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
