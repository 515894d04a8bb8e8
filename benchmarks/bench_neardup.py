"""Near-duplicate rule of ``pairforge check``: false clusters among distinct look-alikes, recall on copies.

A rule is ``pHash (64 bits) within NEAR of any view`` plus ``VERIFY hash of the same view within V``, searched
with :func:`pairforge.neardup.near_pairs` on the check's own view hashes (the whole image and 16 crop windows,
:func:`pairforge.measures.view_windows`). Measured per rule:

* **false clusters**: distinct images of one domain, where everything looks alike -- ``synth facades`` at
  several sizes and seeds (JPEG q95, as ``synth facades`` writes them), non-overlapping tiles of one photo of
  scikit-image (brick, grass, gravel, coins, a page of text) at several scales, and the check tests' tiles of
  15 photos. Share of the images that end up in any cluster (each is a false alarm: no two are copies).
* **recall**: copies of 150 facades (256 px) and of the 112 photo tiles (128 px): JPEG q60 and q40, resized
  0.9x and 0.5x, 0.75x + JPEG q75, cropped by 5, 10 and 15 % (a random offset, resized back) and 10 % + JPEG
  q60. Share of the copies found with their original.

The sets marked ``held out`` were not looked at while the rule was chosen (benchmarks/RESULTS.md):

    .venv/bin/python benchmarks/bench_neardup.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pairforge"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from checkdata import b_window, cropped, jpeg, load_corpus, resized  # noqa: E402
from common import machine  # noqa: E402

from pairforge.check.measures import view_windows  # noqa: E402
from pairforge.check.neardup import near_pairs  # noqa: E402

RULES = {
    "before: pHash 10, dHash-64 24": (10, "d8", 24),
    "pHash 10, dHash-64 12": (10, "d8", 12),
    "pHash 8, dHash-256 64": (8, "d16", 64),
    "**now: pHash 10, dHash-256 64**": (10, "d16", 64),
    "pHash 10, dHash-256 70": (10, "d16", 70),
    "pHash 12, dHash-256 64": (12, "d16", 64),
}
HASHES = {"p8": ("phash", 8), "d8": ("dhash", 8), "d16": ("dhash", 16)}


def hashes(image: np.ndarray) -> dict[str, np.ndarray]:
    """Every hash of every view of one image: ``name -> (views, words)`` uint64."""
    import imagehash
    from PIL import Image

    windows = [Image.fromarray(window) for window in view_windows(image)]
    out = {}
    for name, (method, size) in HASHES.items():
        bits = [np.packbits(np.asarray(getattr(imagehash, method)(window, hash_size=size).hash, np.uint8).ravel())
                for window in windows]
        out[name] = np.frombuffer(b"".join(bit.tobytes() for bit in bits), dtype=">u8").astype(np.uint64).reshape(
            len(windows), -1)
    return out


def distinct_sets(quick: bool) -> dict[str, list[np.ndarray]]:
    from skimage import data

    from pairforge.pipelines.synthetic.facades import FacadesConfig, render_facade

    sets = {}
    facades = ((0, 128, 600, ""), (0, 256, 300, ""), (1, 128, 600, " (held out)"), (2, 192, 300, " (held out)"),
               (3, 64, 400, " (held out)"))
    for seed, size, count, note in facades:
        config = FacadesConfig(count=count // 4 if quick else count, size=size, seed=seed)
        sets[f"synth facades {size} px, seed {seed}{note}"] = [jpeg(render_facade(index, config)[0], 95)
                                                               for index in range(config.count)]
    photos = (("brick", 1024, 96, ""), ("brick", 512, 64, ""), ("grass", 1024, 96, ""), ("gravel", 1024, 96, ""),
              ("brick", 768, 128, " (held out)"), ("brick", 1536, 128, " (held out)"), ("coins", 768, 96, " (held out)"),
              ("page", 768, 96, " (held out)"), ("text", 768, 96, " (held out)"))
    for name, side, tile, note in photos:
        photo = getattr(data, name)()
        scale = side / min(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        photo = np.repeat(photo[..., None], 3, axis=2)
        sets[f"{name} ({side} px) tiles of {tile} px{note}"] = [
            photo[top : top + tile, left : left + tile].copy()
            for top in range(0, photo.shape[0] - tile + 1, tile) for left in range(0, photo.shape[1] - tile + 1, tile)]
    corpus = load_corpus(size=128, short_side=640, margin=16)
    sets["tiles of 15 photos (the check tests' corpus)"] = [b_window(corpus, t.photo, t.top, t.left) for t in corpus.tiles]
    return sets


def copies(rng: np.random.Generator) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    return {"JPEG q60": lambda b: jpeg(b, 60), "JPEG q40": lambda b: jpeg(b, 40), "resize 0.9x": lambda b: resized(b, 0.9),
            "resize 0.5x": lambda b: resized(b, 0.5), "resize 0.75x + JPEG q75": lambda b: jpeg(resized(b, 0.75), 75),
            "crop 5 %": lambda b: cropped(b, 0.05, rng), "crop 10 %": lambda b: cropped(b, 0.10, rng),
            "crop 15 %": lambda b: cropped(b, 0.15, rng), "crop 10 % + JPEG q60": lambda b: jpeg(cropped(b, 0.10, rng), 60)}


def found_pairs(hashed: list[dict[str, np.ndarray]], near: int, verify: str, distance: int) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, the check's search calls near-duplicates under one rule."""
    queries = np.array([h["p8"][0, 0] for h in hashed], dtype=np.uint64)
    views = np.concatenate([h["p8"][:, 0] for h in hashed])
    owners = np.repeat(np.arange(len(hashed)), [len(h["p8"]) for h in hashed])
    second = (np.stack([h[verify][0] for h in hashed]), np.concatenate([h[verify] for h in hashed]), distance)
    first, other, _ = near_pairs(queries, views, owners, near, verify=second)
    return set(zip(first.tolist(), other.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the facades (a smoke run)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    distinct = {name: [hashes(image) for image in images] for name, images in distinct_sets(args.quick).items()}
    facades, tiles = distinct_sets_originals(args.quick)
    images = {"facades 256 px": facades, "photo tiles 128 px": tiles}
    originals = {"facades 256 px": distinct["synth facades 256 px, seed 0"][: len(facades)],
                 "photo tiles 128 px": distinct["tiles of 15 photos (the check tests' corpus)"]}
    copied = {(group, name): [hashes(transform(image)) for image in images[group]]
              for group in images for name, transform in copies(rng).items()}
    figures: dict[str, dict[str, str]] = {}
    for rule, (near, verify, distance) in RULES.items():
        row = {}
        for name, hashed in distinct.items():
            members = {index for pair in found_pairs(hashed, near, verify, distance) for index in pair}
            row[name] = f"{100 * len(members) / len(hashed):.1f} % ({len(members)}/{len(hashed)})"
        for (group, name), hashed in copied.items():
            count = len(originals[group])
            pairs = found_pairs(originals[group] + hashed, near, verify, distance)
            hits = sum(1 for index in range(count) if (index, count + index) in pairs)
            row[f"{name} of {group}"] = f"{100 * hits / count:.1f} %"
        figures[rule] = row
    sets = list(next(iter(figures.values())))
    print(f"{machine()}; {time.perf_counter() - start:.0f} s\n")
    for title, selected in (("distinct images: share in a cluster (false)", [c for c in sets if c in distinct]),
                            ("copies: share found with their original", [c for c in sets if c not in distinct])):
        print(f"| {title} | " + " | ".join(figures) + " |")
        print("|---|" + "---:|" * len(figures))
        for name in selected:
            print(f"| {name} | " + " | ".join(row[name] for row in figures.values()) + " |")
        print()
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


def distinct_sets_originals(quick: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The images the copies are made of: 150 facades of 256 px (seed 0) and the tests' 112 photo tiles."""
    from pairforge.pipelines.synthetic.facades import FacadesConfig, render_facade

    config = FacadesConfig(count=75 if quick else 300, size=256, seed=0)
    facades = [jpeg(render_facade(index, config)[0], 95) for index in range(min(150, config.count))]
    corpus = load_corpus(size=128, short_side=640, margin=16)
    return facades, [b_window(corpus, t.photo, t.top, t.left) for t in corpus.tiles]


if __name__ == "__main__":
    main()
