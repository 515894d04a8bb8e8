"""How often ``pairforge check`` flags pairs shifted against their photo, and clean ones, per tile size.

Made for label maps, the hard case; ``--kind edges|gray|generic`` measures the other kinds on the same tiles.

Label maps (``--maps``): Felzenszwalb segments of scikit-image photos, each segment given one of six
classes (``tests/pairforge/checkdata.py``, the test fixtures); or k-means colour clusters (6, Lab) of the
photos; or SLIC superpixels (one per ~30x30 px, six classes); or the ``facades`` corpus: 232 px windows of
``synth facades`` (256 px) with their own label maps. Per corpus (tile size, photos' short side, margin
between tiles): every tile once clean and once per seed shifted by 2-10 px (integer components, Euclidean
length 2..10). One pair folder per corpus and map style, checked with :func:`run_check` on one worker;
only ``misaligned`` flags count (a tile's clean and shifted B are near-duplicates of each other).

    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_alignment
    .venv/bin/python benchmarks/bench_alignment.py --work-dir /tmp/bench_alignment --corpora 128b,facades --maps kmeans

Prints a Markdown table (per seed, per corpus, pooled) for benchmarks/RESULTS.md and writes
``WORK_DIR/alignment.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pairforge"))

import checkdata  # noqa: E402
from checkdata import (  # noqa: E402
    PALETTE,
    Corpus,
    Tile,
    b_window,
    jpeg,
    load_corpus,
    make_a,
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


def facades_corpus() -> Corpus:
    """``synth facades`` at 256 px: photos and label maps (ids % 6, the fixtures' palette), one window each."""
    sys.path.insert(0, str(ROOT))
    from pipelines.synthetic.facades import FacadesConfig, render_facade

    config = FacadesConfig(count=FACADES, size=256)
    rendered = [render_facade(index, config) for index in range(FACADES)]
    corpus = Corpus([photo for photo, _ in rendered], [Tile(index, 12, 12) for index in range(FACADES)], size=232)
    corpus._labels.update({index: (ids % len(PALETTE)).astype(np.uint8) for index, (_, ids) in enumerate(rendered)})
    return corpus


def shift(rng: np.random.Generator) -> tuple[int, int]:
    """The test's displacement: integer components, Euclidean length 2..10 px."""
    while True:
        dx, dy = (int(v) for v in rng.integers(-10, 11, 2))
        if 2 <= np.hypot(dx, dy) <= 10:
            return dx, dy


def measure_corpus(name: str, maps: str, work_dir: Path, kind: str = "labels", jpeg_a: int = 0,
                   palette: bool = True) -> dict:
    size, short_side, margin, seeds = CORPORA[name]
    if name == "facades":
        corpus = facades_corpus()
    else:
        checkdata._label_map = MAPS[maps]  # the fixtures' corpus builds its label maps with this
        corpus = load_corpus(size=size, short_side=short_side, margin=margin)
    root = work_dir / f"{name}-{maps}-{kind}-q{jpeg_a}-{int(palette)}" / "pairs"
    shutil.rmtree(root.parent, ignore_errors=True)
    write_info(root, kind)
    if not palette:
        info = json.loads((root / "pairs.json").read_text())
        (root / "pairs.json").write_text(json.dumps({**info, "palette": None}))

    def make(tile: Tile) -> np.ndarray:
        a = make_a(kind, corpus, tile.photo, tile.top, tile.left)
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
    clean = len(corpus.tiles)
    clean_flagged = sum(1 for index in range(clean) if f"clean-{index:04d}" in flagged)
    per_seed = {seed: sum(1 for key in keys if key in flagged) for seed, keys in shifted.items()}
    if kind != "labels":
        maps = "-"
    maps = "facades" if name == "facades" else maps
    maps += f", A JPEG q{jpeg_a}" if jpeg_a else ""
    maps += ", no palette" if not palette and kind == "labels" else ""
    return {"corpus": name, "kind": kind, "maps": maps, "tile": size, "short_side": short_side, "margin": margin, "tiles": clean,
            "clean_flagged": clean_flagged, "shifted_flagged": per_seed,
            "ms_per_pair": round(1000 * seconds / (clean * (1 + len(seeds))), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--corpora", default=",".join(name for name in CORPORA if name != "facades"),
                        help="comma-separated names of " + ", ".join(CORPORA))
    parser.add_argument("--maps", default="felzenszwalb", choices=sorted(MAPS), help="label maps of the photos")
    parser.add_argument("--kind", default="labels", choices=("labels", "edges", "gray", "generic"),
                        help="A made from B's tile by the test fixtures' recipe for this kind (labels: the map)")
    parser.add_argument("--jpeg-a", type=int, default=0, metavar="QUALITY", help="save A as JPEG at this quality")
    parser.add_argument("--no-palette", action="store_true", help="labels: pairs.json without the palette")
    args = parser.parse_args()
    rows = [measure_corpus(name, args.maps, args.work_dir, args.kind, args.jpeg_a, not args.no_palette)
            for name in args.corpora.split(",")]
    print("| kind | maps | tiles (px, photos' short side) | clean pairs | shifted flagged per seed | shifted flagged | clean flagged | ms/pair |")
    print("|---|---|---|---:|---|---:|---:|---:|")
    total = np.zeros(4, int)
    for row in rows:
        tiles, found = row["tiles"], row["shifted_flagged"]
        shifted_total = tiles * len(found)
        per_seed = ", ".join(f"{100 * count / tiles:.1f}" for count in found.values())
        total += (sum(found.values()), shifted_total, row["clean_flagged"], tiles)
        print(f"| {row['kind']} | {row['maps']} | {row['tile']} ({row['short_side']}) | {tiles} | {per_seed} | "
              f"**{100 * sum(found.values()) / shifted_total:.1f} %** ({sum(found.values())}/{shifted_total}) | "
              f"**{100 * row['clean_flagged'] / tiles:.1f} %** ({row['clean_flagged']}/{tiles}) | {row['ms_per_pair']} |")
    print(f"| all | | | {total[3]} | | **{100 * total[0] / total[1]:.1f} %** ({total[0]}/{total[1]}) | "
          f"**{100 * total[2] / total[3]:.1f} %** ({total[2]}/{total[3]}) | |")
    (args.work_dir / "alignment.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
