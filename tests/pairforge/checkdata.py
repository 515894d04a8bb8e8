"""Pair datasets with planted faults for the ``pairforge check`` tests, cut from scikit-image photos.

Clean pairs are non-overlapping tiles of the photos (so no two clean B's are near-duplicates; photos of
repeated objects or patterns, like ``coins`` and ``brick``, are left out: their tiles look alike to pHash);
A is made from B's tile by the kind's recipe. A shifted pair takes B from a window displaced by
``(dx, dy)`` pixels from A's; a swapped pair takes B from another photo.

Periodic scenes, where phase correlation can lock onto a period of the pattern instead of a shift, have
corpora of their own: :func:`load_facades` (``synth facades``: window grids, brick courses, louvres) and
:func:`load_periodic` (tiles of scikit-image's brick wall and checkerboard).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pairforge.check.measures import to_gray
from pairforge.pipelines.canny import canny_mask

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera", "retina",
          "hubble_deep_field", "gravel", "clock", "text", "moon", "grass", "cell", "stereo_motorcycle")
PALETTE = [(128, 64, 128), (70, 70, 70), (107, 142, 35), (70, 130, 180), (220, 20, 60), (250, 170, 30)]


@dataclass
class Tile:
    photo: int
    top: int
    left: int


@dataclass
class Corpus:
    """Photos scaled to a short side, with their label maps and the usable tiles."""

    images: list[np.ndarray]
    tiles: list[Tile] = field(default_factory=list)
    size: int = 96
    _labels: dict[int, np.ndarray] = field(default_factory=dict)

    def labels(self, photo: int) -> np.ndarray:
        if photo not in self._labels:
            self._labels[photo] = _label_map(self.images[photo])
        return self._labels[photo]


def load_corpus(size: int = 96, short_side: int = 384, margin: int = 12) -> Corpus:
    from skimage import data

    images, tiles = [], []
    for index, name in enumerate(PHOTOS):
        photo = getattr(data, name)()
        if isinstance(photo, tuple):  # stereo_motorcycle: (left, right, disparity); the left view only
            photo = photo[0]
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        photo = photo[..., :3].astype(np.uint8)
        scale = short_side / min(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        images.append(photo)
        step = size + margin
        for top in range(margin, photo.shape[0] - size - margin + 1, step):
            for left in range(margin, photo.shape[1] - size - margin + 1, step):
                window = photo[top : top + size, left : left + size]
                gray = to_gray(window)
                if gray.std() > 20 and canny_mask(window).mean() > 0.03:
                    tiles.append(Tile(index, top, left))
    return Corpus(images, tiles, size)


def load_facades(size: int = 128, count: int = 40, margin: int = 12, seed: int = 0) -> Corpus:
    """``synth facades`` rendered at ``size + 2 margin`` px, one ``size`` px window each (labels: their own maps)."""
    from pairforge.pipelines.synthetic.facades import FacadesConfig, render_facade

    config = FacadesConfig(count=count, size=size + 2 * margin, seed=seed)
    rendered = [render_facade(index, config) for index in range(count)]
    corpus = Corpus([photo for photo, _ in rendered], [Tile(index, margin, margin) for index in range(count)], size)
    corpus._labels.update({index: (ids % len(PALETTE)).astype(np.uint8) for index, (_, ids) in enumerate(rendered)})
    return corpus


PERIODIC = {"brick": 512, "checkerboard": 400}
"""scikit-image's periodic photos and the short side they are scaled to (brick: 512 px, courses ~20 px apart;
checkerboard: 400 px, squares of 50 px, a period of 100 px)."""


def load_periodic(size: int = 96, margin: int = 12, names: tuple[str, ...] = tuple(PERIODIC),
                  step: int | None = None) -> Corpus:
    """Tiles of periodic photos, ``step`` px apart (default: ``size + margin``, no overlap).

    Their tiles look alike to pHash: not for near-duplicate tests.
    """
    from skimage import data

    images, tiles = [], []
    for index, name in enumerate(names):
        photo = getattr(data, name)()
        scale = PERIODIC[name] / min(photo.shape[:2])
        photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        images.append(np.repeat(photo[..., None], 3, axis=2))
        stride = step or size + margin
        tiles += [Tile(index, top, left) for top in range(margin, photo.shape[0] - size - margin + 1, stride)
                  for left in range(margin, photo.shape[1] - size - margin + 1, stride)]
    return Corpus(images, tiles, size)


def _label_map(photo: np.ndarray, classes: int = len(PALETTE)) -> np.ndarray:
    """Felzenszwalb segments (their boundaries follow the photo's edges), each given one of the classes."""
    from skimage.segmentation import felzenszwalb

    segments = felzenszwalb(photo, scale=200, sigma=0.8, min_size=60)
    return (segments % classes).astype(np.uint8)


def make_a(kind: str, corpus: Corpus, photo: int, top: int, left: int) -> np.ndarray:
    size = corpus.size
    window = corpus.images[photo][top : top + size, left : left + size]
    if kind == "edges":
        return np.where(canny_mask(window), 0, 255).astype(np.uint8)
    if kind == "gray":
        return np.clip(np.rint(to_gray(window)), 0, 255).astype(np.uint8)
    if kind == "labels":
        ids = corpus.labels(photo)[top : top + size, left : left + size]
        return np.array(PALETTE, np.uint8)[ids]
    return cv2.applyColorMap(np.clip(to_gray(window), 0, 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()


def sketch_edges(window: np.ndarray, keep: float = 0.5, seed: int = 0) -> np.ndarray:
    """Edges of another hand than the check's Canny: ``keep`` of Canny's connected contours, the rest dropped.

    Like a sketch or another detector (HED keeps object contours and drops texture), A's lines are then a
    subset of B's Canny edges: on periodic scenes the lines left can match B about as well one period away.
    """
    edges = canny_mask(window)
    count, components = cv2.connectedComponents(edges.astype(np.uint8), connectivity=8)
    kept = np.random.default_rng(seed).random(count) < keep
    kept[0] = False
    return np.where(kept[components], 0, 255).astype(np.uint8)


def b_window(corpus: Corpus, photo: int, top: int, left: int) -> np.ndarray:
    size = corpus.size
    return corpus.images[photo][top : top + size, left : left + size].copy()


def write_pair(root: Path, split: str, key: str, a: np.ndarray, b: np.ndarray, fmt: str = "png") -> Path:
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if b.shape[:2] != a.shape[:2]:
        a = cv2.resize(a, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_NEAREST)
    ab = np.concatenate([a, b], axis=1)
    path = root / split / f"{key}.{fmt}" if split else root / f"{key}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(ab, cv2.COLOR_RGB2BGR))
    return path


def write_info(root: Path, kind: str) -> None:
    info = {"format": "pairforge.pairs/1", "kind": kind, "a_channels": 1 if kind in ("edges", "gray") else 3,
            "b_channels": 3, "palette": None, "stage": {}, "command": "tests"}
    if kind == "edges":
        info["stage"] = {"detector": "canny", "fit": {"size": None, "fit": "none"}}
    if kind == "gray":
        info["stage"] = {"kind": "gray", "space": "luma", "gray_tolerance": 2, "size": None, "fit": "none"}
    if kind == "labels":
        info["palette"] = {"name": "test", "ignore": None, "classes": [
            {"id": index, "name": f"class{index}", "color": list(color)} for index, color in enumerate(PALETTE)]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "pairs.json").write_text(json.dumps(info))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def resized(image: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)), interpolation=cv2.INTER_AREA)


def cropped(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Remove ``fraction`` of each side's length at a random offset, then resize back."""
    height, width = image.shape[:2]
    keep_h, keep_w = round(height * (1 - fraction)), round(width * (1 - fraction))
    top = int(rng.integers(0, height - keep_h + 1))
    left = int(rng.integers(0, width - keep_w + 1))
    return cv2.resize(image[top : top + keep_h, left : left + keep_w], (width, height), interpolation=cv2.INTER_AREA)
