"""How often ``pairforge check`` flags pairs shifted against their photo, and clean ones, per tile size.

Made for label maps, the hard case; ``--kind edges|gray|generic`` measures the other kinds on the same tiles.

Label maps (``--maps``): Felzenszwalb segments of scikit-image photos, each segment given one of six
classes (``tests/pairforge/checkdata.py``, the test fixtures); or k-means colour clusters (6, Lab) of the
photos; or SLIC superpixels (one per ~30x30 px, six classes); or the ``facades`` corpora: 232 px windows of
``synth facades`` (256 px) and 128 px windows of 152 px ones, with their own label maps. Periodic scenes:
``facades``, ``facades128`` and ``periodic96|128`` (overlapping tiles of scikit-image's brick wall and
checkerboard). Edges are the fixtures' Canny, or HED with ``--edges-detector hed`` (the dataset then records
HED, so the check measures against B's gradients, as for a HED dataset), or ``sketch``: half of Canny's
contours (another hand than the check's Canny; no detector recorded). Per corpus (tile size, photos' short
side, margin between tiles): every tile once clean and once per seed shifted by 2-10 px (integer components,
Euclidean length 2..10). One pair folder per corpus and map style, checked with :func:`run_check` on one
worker; only ``misaligned`` flags count as found (``alignment uncertain`` is shown beside them; a tile's clean
and shifted B are near-duplicates of each other).

    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_alignment
    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_alignment --corpora 128b,facades --maps kmeans
    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_alignment --corpora facades128,periodic96 \
        --kind edges --edges-detector hed

Prints a Markdown table (per seed, per corpus, pooled) for benchmarks/RESULTS.md and writes
``WORK_DIR/alignment.json``.

``--clean-facades SIZES`` measures instead how many *clean* pairs are flagged on data sets made the way a
user makes them: ``pairforge synth facades`` (seed 0) at each size, then ``make-edges`` (Canny, and HED when its
weights are installed), ``make-gray`` (luma and Lab) and ``make-labels --palette`` at that size, each checked as
``pairforge check`` does (1 worker); ``--demo-edges`` adds the demo's own edges shard set (240 facades of 128 px,
HED or Canny as the demo would pick, ``make-edges --shards --val-fraction 0.1``, as ``pairforge demo`` builds it).
Every pair is aligned by construction, so every ``misaligned`` flag is a false alarm:

    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_clean --clean-facades 128,256 --demo-edges
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pairforge"))

import checkdata  # noqa: E402
from checkdata import (  # noqa: E402
    PALETTE,
    Tile,
    b_window,
    jpeg,
    load_corpus,
    load_facades,
    load_periodic,
    make_a,
    sketch_edges,
    write_info,
    write_pair,
)

from pairforge.check import CheckConfig, open_source, run_check  # noqa: E402
from pairforge.runner import RunnerConfig  # noqa: E402

# name: (tile size, short side of the photos, margin, seeds)
CORPORA = {
    "72": (72, 384, 16, (11, 12)),
    "80": (80, 384, 12, (1, 2, 3, 4, 5, 6)),
    "88": (88, 384, 20, (7, 8)),
    "96": (96, 384, 12, (3, 4)),
    "128a": (128, 512, 16, (21, 22)),
    "128b": (128, 640, 16, (51, 52, 53, 54)),
    "160": (160, 640, 20, (31, 32)),
    "256": (256, 768, 16, (41, 42)),
    "facades": (232, 256, 12, (61, 62)),  # 120 facades, one window each
    "facades128": (128, 152, 12, (63, 64)),  # 120 facades, one window each
    "periodic96": (96, 512, 12, (71, 72, 73)),  # brick (512) and checkerboard (400), tiles 48 px apart
    "periodic128": (128, 512, 12, (74, 75, 76)),  # tiles 64 px apart
}
FACADES = 120


def kmeans_map(photo: np.ndarray, classes: int = len(PALETTE)) -> np.ndarray:
    """k-means clusters of the photo's Lab colours (a colour-quantisation label map)."""
    import cv2

    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    cv2.setRNGSeed(0)
    _, ids, _ = cv2.kmeans(lab, classes, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    return ids.reshape(photo.shape[:2]).astype(np.uint8)


def slic_map(photo: np.ndarray, classes: int = len(PALETTE)) -> np.ndarray:
    """SLIC superpixels (one per ~30x30 px), each given one of the classes."""
    from skimage.segmentation import slic

    segments = slic(photo, n_segments=max(1, photo.shape[0] * photo.shape[1] // 900), compactness=10, start_label=0)
    return (segments % classes).astype(np.uint8)


MAPS = {"felzenszwalb": checkdata._label_map, "kmeans": kmeans_map, "slic": slic_map}


def hed_edges(window: np.ndarray) -> np.ndarray:
    """make-edges' HED recipe on one window (edges black on white), the stage built once."""
    global _HED
    if _HED is None:
        from pairforge.pipelines.edges import EdgesConfig, EdgesStage
        from pairforge.pipelines.geometry import FitConfig

        _HED = EdgesStage(EdgesConfig(detector="hed", fit=FitConfig(size=None, fit="none")))
    return _HED(np.ascontiguousarray(window), "bench").a


_HED: Any = None


def shift(rng: np.random.Generator) -> tuple[int, int]:
    """The test's displacement: integer components, Euclidean length 2..10 px."""
    while True:
        dx, dy = (int(v) for v in rng.integers(-10, 11, 2))
        if 2 <= np.hypot(dx, dy) <= 10:
            return dx, dy


def measure_corpus(name: str, maps: str, work_dir: Path, kind: str = "labels", jpeg_a: int = 0,
                   palette: bool = True, detector: str = "canny") -> dict:
    size, short_side, margin, seeds = CORPORA[name]
    if name.startswith("facades"):
        corpus = load_facades(size, FACADES, margin=(short_side - size) // 2)
    elif name.startswith("periodic"):
        corpus = load_periodic(size, margin, step=size // 2)
    else:
        checkdata._label_map = MAPS[maps]  # the fixtures' corpus builds its label maps with this
        corpus = load_corpus(size=size, short_side=short_side, margin=margin)
    detector = detector if kind == "edges" else "canny"
    root = work_dir / f"{name}-{maps}-{kind}-{detector}-q{jpeg_a}-{int(palette)}" / "pairs"
    shutil.rmtree(root.parent, ignore_errors=True)
    write_info(root, "generic" if kind == "generic-labels" else kind)
    info = json.loads((root / "pairs.json").read_text())
    if not palette:
        info["palette"] = None
    if detector == "hed":
        info["stage"] = {**info["stage"], "detector": detector}
    elif detector == "sketch":  # another hand than make-edges: no detector recorded, Canny checks it
        info["stage"] = {key: value for key, value in info["stage"].items() if key != "detector"}
    (root / "pairs.json").write_text(json.dumps(info))

    def make(tile: Tile) -> np.ndarray:
        if detector == "hed":
            a = hed_edges(b_window(corpus, tile.photo, tile.top, tile.left))
        elif detector == "sketch":
            seed = (tile.photo * 100_003 + tile.top) * 10_007 + tile.left
            a = sketch_edges(b_window(corpus, tile.photo, tile.top, tile.left), seed=seed)
        else:
            a = make_a("labels" if kind == "generic-labels" else kind, corpus, tile.photo, tile.top, tile.left)
        return jpeg(a, jpeg_a) if jpeg_a else a  # A saved as JPEG, like pix2pix's facades archive
    shifted: dict[int, list[str]] = {seed: [] for seed in seeds}
    for index, tile in enumerate(corpus.tiles):
        write_pair(root, "train", f"clean-{index:04d}", make(tile), b_window(corpus, tile.photo, tile.top, tile.left))
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for index, tile in enumerate(corpus.tiles):
            dx, dy = shift(rng)
            key = f"shifted{seed}-{index:04d}"
            write_pair(root, "train", key, make(tile),
                       b_window(corpus, tile.photo, tile.top + dy, tile.left + dx))
            shifted[seed].append(key)
    config = CheckConfig(out_dir=str(root.parent / "check"))
    start = time.perf_counter()
    result = run_check(open_source(root, config), config, RunnerConfig(workers=1))
    seconds = time.perf_counter() - start
    flagged = {row["key"] for row in result.flagged if row["problem"] == "misaligned"}
    uncertain = {row["key"] for row in result.flagged if row["problem"] == "alignment uncertain"}
    clean = len(corpus.tiles)
    clean_keys = [f"clean-{index:04d}" for index in range(clean)]
    per_seed = {seed: sum(1 for key in keys if key in flagged) for seed, keys in shifted.items()}
    if kind == "generic-labels":
        maps = "label maps as A, checked as generic" + (" (facades)" if name.startswith("facades") else "")
    elif kind != "labels":
        maps = "-" if detector == "canny" else detector
    elif name.startswith("facades"):
        maps = "facades"
    maps += f", A JPEG q{jpeg_a}" if jpeg_a else ""
    maps += ", no palette" if not palette and kind == "labels" else ""
    return {"corpus": name, "kind": kind, "maps": maps, "tile": size, "short_side": short_side, "margin": margin, "tiles": clean,
            "clean_flagged": sum(1 for key in clean_keys if key in flagged), "shifted_flagged": per_seed,
            "clean_uncertain": sum(1 for key in clean_keys if key in uncertain),
            "shifted_uncertain": sum(1 for keys in shifted.values() for key in keys if key in uncertain),
            "ms_per_pair": round(1000 * seconds / (clean * (1 + len(seeds))), 1)}


def clean_facades(work_dir: Path, size: int, count: int, detectors: list[str]) -> list[dict]:
    """Check clean ``synth facades`` sets of one size, built by the real commands; flags per problem."""
    from click.testing import CliRunner

    from pairforge.cli import cli

    runner = CliRunner()
    root = work_dir / f"facades-{size}"
    shutil.rmtree(root, ignore_errors=True)
    _invoke(runner, cli, ["synth", "facades", "-o", str(root / "synth"), "--count", str(count), "--size", str(size)])
    photos = root / "synth" / "photos"
    builds = {f"edges ({detector})": ["make-edges", str(photos), "--detector", detector] for detector in detectors}
    builds["gray (luma)"] = ["make-gray", str(photos), "--space", "luma"]
    builds["gray (lab)"] = ["make-gray", str(photos), "--space", "lab"]
    builds["labels"] = ["make-labels", str(photos), "--labels", str(root / "synth" / "labels"),
                        "--palette", str(root / "synth" / "palette.json")]
    rows = []
    for name, command in builds.items():
        pairs = root / name.replace(" ", "").replace("(", "-").replace(")", "")
        _invoke(runner, cli, [*command, "-o", str(pairs), "--size", str(size), "-j", "1"])
        rows.append(_check_clean(pairs, f"synth facades {size} px, {name}"))
    return rows


def demo_edges(work_dir: Path) -> dict:
    """The demo's edges shard set, built as ``pairforge demo`` builds it, then checked."""
    from click.testing import CliRunner

    from pairforge.cli import cli
    from pairforge.commands.demo import _hed_available, make_demo_facades

    root = work_dir / "demo"
    shutil.rmtree(root, ignore_errors=True)
    detector = "hed" if _hed_available() else "canny"
    photos, _ = make_demo_facades(root / "facades", 240, 128, 0)
    _invoke(CliRunner(), cli, ["make-edges", str(photos), "--size", "128", "--shards", str(root / "shards"),
                               "--val-fraction", "0.1", "--detector", detector, "--batch-size", "16", "-j", "1"])
    return _check_clean(root / "shards", f"demo edges shard set ({detector}, 128 px)")


def _invoke(runner: Any, cli: Any, arguments: list[str]) -> None:
    outcome = runner.invoke(cli, arguments)
    if outcome.exit_code != 0:
        raise SystemExit(f"pairforge {' '.join(arguments)} failed:\n{outcome.output}")


def _check_clean(root: Path, name: str) -> dict:
    from pairforge.commands.check import _measure_config

    config = CheckConfig(out_dir=str(root.parent / f"check-{root.name}"))
    source = open_source(root, config)
    start = time.perf_counter()
    result = run_check(source, config, RunnerConfig(workers=1), _measure_config(source, "auto"))
    seconds = time.perf_counter() - start
    counts = result.problem_counts()
    shifts = sorted(round(row["value"], 1) for row in result.flagged if row["problem"] == "misaligned")
    return {"set": name, "pairs": result.checked, "misaligned": counts.get("misaligned", 0),
            "uncertain": counts.get("alignment uncertain", 0), "shifts": shifts,
            "other": {problem: count for problem, count in sorted(counts.items())
                      if problem not in ("misaligned", "alignment uncertain")},
            "ms_per_pair": round(1000 * seconds / max(1, result.checked), 1)}


def print_clean(rows: list[dict]) -> None:
    print("| clean set | pairs | flagged misaligned | alignment uncertain | misaligned shifts (px) | other flags | ms/pair |")
    print("|---|---:|---:|---:|---|---|---:|")
    for row in rows:
        pairs = row["pairs"]
        other = ", ".join(f"{problem} {count}" for problem, count in row["other"].items()) or "-"
        print(f"| {row['set']} | {pairs} | **{100 * row['misaligned'] / pairs:.1f} %** ({row['misaligned']}) | "
              f"{100 * row['uncertain'] / pairs:.1f} % ({row['uncertain']}) | "
              f"{', '.join(map(str, row['shifts'])) or '-'} | {other} | {row['ms_per_pair']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--corpora", default=",".join(name for name in CORPORA if name[0].isdigit()),
                        help="comma-separated names of " + ", ".join(CORPORA))
    parser.add_argument("--maps", default="felzenszwalb", choices=sorted(MAPS), help="label maps of the photos")
    parser.add_argument("--kind", default="labels", choices=("labels", "edges", "gray", "generic", "generic-labels"),
                        help="A made from B's tile by the test fixtures' recipe for this kind (labels: the map; "
                             "generic-labels: the map, checked as generic, as the reference's AB archives are)")
    parser.add_argument("--jpeg-a", type=int, default=0, metavar="QUALITY", help="save A as JPEG at this quality")
    parser.add_argument("--no-palette", action="store_true", help="labels: pairs.json without the palette")
    parser.add_argument("--edges-detector", default="canny", choices=("canny", "hed", "sketch"),
                        help="edges: A made by this detector (hed: recorded as such in pairs.json; sketch: half of "
                             "Canny's contours, checkdata.sketch_edges, no detector recorded)")
    parser.add_argument("--clean-facades", default="", metavar="SIZES",
                        help="comma-separated sizes: measure clean synth facades sets instead (see above)")
    parser.add_argument("--facades-count", type=int, default=240, help="facades per clean set")
    parser.add_argument("--demo-edges", action="store_true", help="also check the demo's edges shard set")
    args = parser.parse_args()
    if args.clean_facades or args.demo_edges:
        from pairforge.commands.demo import _hed_available

        detectors = ["canny", "hed"] if _hed_available() else ["canny"]
        clean = [row for size in filter(None, args.clean_facades.split(","))
                 for row in clean_facades(args.work_dir, int(size), args.facades_count, detectors)]
        if args.demo_edges:
            clean.append(demo_edges(args.work_dir))
        print_clean(clean)
        (args.work_dir / "clean_facades.json").write_text(json.dumps(clean, indent=2))
        return
    rows = [measure_corpus(name, args.maps, args.work_dir, args.kind, args.jpeg_a, not args.no_palette,
                           args.edges_detector) for name in args.corpora.split(",")]
    print("| kind | maps | tiles (px, photos' short side) | clean pairs | shifted flagged per seed | shifted flagged | "
          "clean flagged | uncertain: shifted, clean | ms/pair |")
    print("|---|---|---|---:|---|---:|---:|---|---:|")
    total = np.zeros(6, int)
    for row in rows:
        tiles, found = row["tiles"], row["shifted_flagged"]
        shifted_total = tiles * len(found)
        per_seed = ", ".join(f"{100 * count / tiles:.1f}" for count in found.values())
        uncertain = (row.get("shifted_uncertain", 0), row.get("clean_uncertain", 0))
        total += (sum(found.values()), shifted_total, row["clean_flagged"], tiles, *uncertain)
        print(f"| {row['kind']} | {row['maps']} | {row['tile']} ({row['short_side']}) | {tiles} | {per_seed} | "
              f"**{100 * sum(found.values()) / shifted_total:.1f} %** ({sum(found.values())}/{shifted_total}) | "
              f"**{100 * row['clean_flagged'] / tiles:.1f} %** ({row['clean_flagged']}/{tiles}) | "
              f"{uncertain[0]}, {uncertain[1]} | {row['ms_per_pair']} |")
    print(f"| all | | | {total[3]} | | **{100 * total[0] / total[1]:.1f} %** ({total[0]}/{total[1]}) | "
          f"**{100 * total[2] / total[3]:.1f} %** ({total[2]}/{total[3]}) | {total[4]}, {total[5]} | |")
    (args.work_dir / "alignment.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
