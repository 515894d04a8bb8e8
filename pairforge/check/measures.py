"""Per-pair measures of ``pairforge check``: alignment, structural agreement and content of one (A, B) pair.

Everything here is a pure function of decoded pixels (no I/O, no Dask): the
check's partition function calls :meth:`PairMeasurer.measure` once per pair.

* **Shift**: phase correlation (Hann window) between a structure map of A and
  one of B, then :func:`shift_evidence`: how much better the found shift makes
  A's structure match B's than no shift (and its 1-px neighbours) does, on the
  same pixels. A's structure depends on the kind (edge ink, gradient
  magnitude); B's is its gradient magnitude, or, for edge datasets checked with
  their own recipe, that recipe's edges, so both maps show the same kind of
  lines. Labels use :func:`label_alignment` instead: an exhaustive search over
  integer shifts of how well the label map explains B (mutual information
  between label regions and B's lightness, colour homogeneity of B per label
  region, and label boundaries on B's gradients).
* **Agreement**, fit to the kind: edges -> F1 with a pixel tolerance between A
  and the edge recipe run on B; gray -> Pearson correlation of A with B's
  lightness (luma, or Lab L* as make-gray computes it, as recorded); labels -> F1
  between label boundaries and B's Canny edges (make-edges' Canny, boolean); generic -> none (shift alone).
* **Content**: standard deviation of A and B, edge density, label pixels per
  palette class (and outside the palette).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pairforge import kinds
from pairforge.errors import ConfigError, SampleError
from pairforge.imageio import pack_rgb, unpack_rgb
from pairforge.palettes import nearest_colors
from pairforge.pipelines.canny import canny_mask
from pairforge.pipelines.gray import lab_lightness
from pairforge.sources import StageSpec, cached_stage

log = logging.getLogger(__name__)

ANALYSIS_MAX_SIDE = 512
"""Pairs larger than this are measured on a downscaled copy (shifts are scaled back to full size)."""
MIN_SIDE = 8
"""Pairs with a side shorter than this (per half) cannot be measured: they are reported, not measured."""
LABEL_ANALYSIS_MAX_SIDE = 256
"""Labels pairs are measured at this size at most (the label search costs one template match per region)."""
LABEL_SEARCH_RADIUS = 12
"""Labels: integer shifts up to this many (analysis) pixels per axis are tried."""
LABEL_MAX_REGIONS = 1024
"""Labels: connected regions kept for the search (the largest); the rest are pooled (:func:`label_regions`)."""
LABEL_MAX_COLOURS = 64
"""Labels without a palette: a map with more colours than this is snapped to its main ones (:func:`snap_labels`)."""
HOMOGENEITY_WEIGHT = 0.25
"""Weight of the colour-homogeneity surface in the labels search (the boundary surface weighs 1)."""
INFORMATION_WEIGHT = 0.75
"""Weight of the mutual-information surface in the labels search. Both weights, ``LABEL_NEAR_RADIUS`` and
the gate ``CheckConfig.label_min_gain`` were chosen on Felzenszwalb label maps of scikit-image photos
(72-96 px tiles) and confirmed on held-out 128, 160 and 256 px tiles (benchmarks/RESULTS.md)."""
LABEL_NEAR_RADIUS = 1.0
"""Labels: the evidence for a shift is how far its score rises over the best score within this many
pixels of no shift (no shift and its four neighbours)."""
LIGHTNESS_BINS = 16
"""Labels: B's lightness is quantised into this many equal bins for the mutual information."""
DHASH_SIZE = 16
"""Side of the dHash grid: 256 bits (``DHASH_WORDS`` words of 64) that verify a pHash match."""
DHASH_WORDS = DHASH_SIZE * DHASH_SIZE // 64
INFORMATION_MAX_SAMPLES = 8000
"""Labels: with more of B's centre pixels than this, the mutual information uses every other row and
column (a 256 px pair: 13,456 of its 53,824 centre pixels), which halves the search's time there."""


@dataclass(frozen=True)
class EdgeRecipe:
    """How edges of B are made for the edges agreement.

    Attributes:
        name: ``canny`` (make-edges' Canny recipe itself, as a boolean map:
            :func:`pairforge.pipelines.canny.canny_mask`) or ``dataset`` (the dataset's own stage, e.g. HED).
        stage: for ``dataset``, the stage recipe (built once per worker process).
    """

    name: str = "canny"
    stage: StageSpec | None = None
    proxy: bool = False
    """The recipe stands in for the dataset's own detector (Canny checking a HED dataset): HED draws object
    contours where Canny also marks texture and misses soft contours, so the shift is measured against B's
    gradient magnitude, which every detector's lines follow (:meth:`PairMeasurer._structures`); the
    agreement still uses the recipe. Measured on HED facades in benchmarks/RESULTS.md (issue 20)."""

    def __post_init__(self) -> None:
        if self.name not in ("canny", "dataset"):
            raise ConfigError("edge_recipe", self.name, "canny | dataset")
        if self.name == "dataset" and self.stage is None:
            raise ConfigError("edge_recipe.stage", None, "a stage recipe when edge_recipe is 'dataset'")

    def edges(self, photo: np.ndarray) -> np.ndarray:
        """Binary edge map (True on edges) of an RGB photo ``(H, W, 3)`` uint8, same size."""
        if self.stage is None:
            return canny_mask(photo)
        return cached_stage(self.stage)(photo, "check").a < 128


@dataclass(frozen=True)
class MeasureConfig:
    """What to measure and how.

    Attributes:
        kind: the dataset kind (``edges`` | ``gray`` | ``labels`` | ``generic``).
        gray_space: ``luma`` or ``lab``, for gray datasets.
        palette_colors: RGB colour of every palette class (labels), in palette order.
        edge_recipe: edges of B for the edges agreement.
        tolerance: pixel tolerance of the edge F1 scores.
        views: offsets per axis of the cropped views hashed for near-duplicate search.
    """

    kind: str = "generic"
    gray_space: str = "luma"
    palette_colors: tuple[tuple[int, int, int], ...] = ()
    edge_recipe: EdgeRecipe = EdgeRecipe()
    tolerance: int = 2
    views: int = 4

    def __post_init__(self) -> None:
        if self.kind not in kinds.MEASURES:
            raise ConfigError("kind", self.kind, " | ".join(kinds.MEASURES))
        if self.gray_space not in ("luma", "lab"):
            raise ConfigError("gray_space", self.gray_space, "luma | lab")
        if not 0 <= self.tolerance <= 10:
            raise ConfigError("tolerance", self.tolerance, "an integer from 0 to 10 pixels")
        if not 1 <= self.views <= 8:
            raise ConfigError("views", self.views, "an integer from 1 to 8")


@dataclass
class PairMeasures:
    """The numbers measured on one pair (all plain Python values)."""

    height: int
    width: int
    shift_x: float
    shift_y: float
    confidence: float
    """Structure correlation at the estimated (integer) shift, :func:`shift_evidence`; labels: alignment
    score at the shift (robust z units, see :func:`label_alignment`)."""
    aligned_confidence: float
    """The best of the same at no shift and its four 1-px neighbours, on the same pixels: close to
    ``confidence`` when the shift buys little."""
    evidence: float
    """How much better the shift explains B than no shift: labels ``confidence - aligned_confidence``
    (z units); the other kinds the share of the disagreement left at no shift that the shift removes,
    ``(confidence - aligned_confidence) / (1 - aligned_confidence)`` (1: the shift explains all of it;
    0 or less: no shift does as well)."""
    agreement: float | None
    edge_density: float
    std_a: float
    std_b: float
    pixel_hash: str
    phashes: list[int]
    """64-bit pHash of B, then of its cropped views (near-duplicate search)."""
    dhashes: list[int]
    """256-bit dHash of the same views (verifies pHash matches, see :func:`view_hashes`)."""
    class_pixels: dict[int, int] | None = None
    """Pixels per palette class index; index ``-1`` counts colours outside the palette (labels)."""

    @property
    def shift(self) -> float:
        return float(np.hypot(self.shift_x, self.shift_y))


class PairMeasurer:
    """Measures pairs of one dataset (see the module docstring)."""

    def __init__(self, config: MeasureConfig) -> None:
        self.config = config
        packed = pack_rgb(np.array(config.palette_colors, dtype=np.int64).reshape(-1, 3))
        self._order = np.argsort(packed, kind="stable")
        self._sorted_colors = packed[self._order]

    def measure(self, a: np.ndarray, b: np.ndarray) -> PairMeasures:
        """Measure one pair.

        Shape:
            a ``(H, W)`` or ``(H, W, 3)`` uint8; b ``(H, W, 3)`` uint8 RGB.
        """
        config = self.config
        height, width = b.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise SampleError("too small to check", f"{width}x{height} px per half; the check needs {MIN_SIDE}x{MIN_SIDE}")
        pixel_hash = pixel_digest(b)
        phashes, dhashes = view_hashes(b, config.views)
        class_pixels = self._class_pixels(a) if kinds.of(config.kind).palette and len(self._sorted_colors) else None
        max_side = LABEL_ANALYSIS_MAX_SIDE if kinds.of(config.kind).palette else ANALYSIS_MAX_SIDE
        scale = min(1.0, max_side / max(height, width))
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            nearest = kinds.of(config.kind).nearest
            a = cv2.resize(a, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
            if kinds.of(config.kind).edge_map:  # a 1 px line turns gray when shrunk: keep it an edge
                a = np.where(a < 224, 0, 255).astype(np.uint8)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        if kinds.of(config.kind).palette:
            a = snap_labels(a, config.palette_colors)
        gray_a = to_gray(a)
        gray_b = to_gray(b)
        structure_a, structure_b, agreement, edge_density = self._structures(a, gray_a, b, gray_b)
        if kinds.of(config.kind).palette:
            (shift_x, shift_y), confidence, aligned_confidence = label_alignment(
                a, b, structure_b, boundaries=structure_a, lightness=gray_b)
            evidence = confidence - aligned_confidence
        else:
            (shift_x, shift_y), _, _ = phase_shift(structure_a, structure_b)
            confidence, aligned_confidence, evidence = shift_evidence(structure_a, structure_b, shift_x, shift_y)
        return PairMeasures(
            height=int(height),
            width=int(width),
            shift_x=round(shift_x / scale, 3),
            shift_y=round(shift_y / scale, 3),
            confidence=round(confidence, 4),
            aligned_confidence=round(aligned_confidence, 4),
            evidence=round(evidence, 4),
            agreement=None if agreement is None else round(agreement, 4),
            edge_density=round(edge_density, 5),
            std_a=round(float(gray_a.std()), 3),
            std_b=round(float(gray_b.std()), 3),
            pixel_hash=pixel_hash,
            phashes=phashes,
            dhashes=dhashes,
            class_pixels=class_pixels,
        )

    def _structures(
        self, a: np.ndarray, gray_a: np.ndarray, b: np.ndarray, gray_b: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float | None, float]:
        """A's and B's structure maps (float32), the kind's agreement score and the edge density."""
        kind, tolerance = self.config.kind, self.config.tolerance
        if kinds.of(kind).edge_map:
            ink_a = gray_a < 128
            recipe = self.config.edge_recipe
            edges_b = recipe.edges(b)
            # another detector's binary edges are not A's lines (texture edges, missed contours): on
            # periodic scenes their mismatch let a period's shift match about as well as none (issue 20)
            structure_b = gradient_magnitude(gray_b) if recipe.proxy else edges_b.astype(np.float32)
            return (ink_a.astype(np.float32), structure_b,
                    edge_f1(ink_a, edges_b, tolerance), float(ink_a.mean()))
        edges_b = canny_mask(b)
        if kinds.of(kind).palette:
            boundaries = label_boundaries(a)
            return (boundaries.astype(np.float32), gradient_magnitude(gray_b),
                    edge_f1(boundaries, edges_b, tolerance), float(edges_b.mean()))
        structure_a, structure_b = gradient_magnitude(gray_a), gradient_magnitude(gray_b)
        agreement = None
        if kinds.of(kind).lightness:
            lightness = gray_b if self.config.gray_space == "luma" else lab_lightness(b)
            agreement = correlation(gray_a, lightness)
        return structure_a, structure_b, agreement, float(edges_b.mean())

    def _class_pixels(self, a: np.ndarray) -> dict[int, int]:
        """Pixels of each palette class in a colour-coded label map; key -1: colours outside the palette."""
        rgb = a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
        packed = pack_rgb(rgb)
        position = np.searchsorted(self._sorted_colors, packed.ravel())
        position = np.minimum(position, len(self._sorted_colors) - 1)
        known = self._sorted_colors[position] == packed.ravel()
        counts = np.bincount(self._order[position[known]], minlength=len(self._order))
        result = {int(index): int(count) for index, count in enumerate(counts) if count}
        unknown = int(known.size - np.count_nonzero(known))
        if unknown:
            result[-1] = unknown
        return result


def pixel_digest(image: np.ndarray) -> str:
    """Hash of the decoded pixels and their shape (exact duplicates whatever the file format)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def view_hashes(image: np.ndarray, views: int = 4, side: int = 80, crop: float = 0.9) -> tuple[list[int], list[int]]:
    """Perceptual hashes of an image and of ``views x views`` crops of it: 64-bit pHash and 256-bit dHash.

    The first hash is of the whole image; the others are of ``crop``-sized
    windows at evenly spaced offsets, so that a cropped copy of this image
    hashes close to one of them (pHash alone tolerates re-encoding and resizing,
    not crops). The image is first shrunk to ``side x side`` (pHash looks at
    32x32 anyway). pHash (imagehash, 8x8 low frequencies) finds candidates; the
    dHash (``DHASH_SIZE`` x ``DHASH_SIZE`` gradient signs) verifies them at a finer
    scale: distinct images of one domain (facades, brick, coins) share their low
    frequencies, not their details (benchmarks/RESULTS.md, issue 20).
    """
    import imagehash
    from PIL import Image

    pillow = [Image.fromarray(window) for window in view_windows(image, views, side, crop)]
    return ([_hash_int(imagehash.phash(window)) for window in pillow],
            [_hash_int(imagehash.dhash(window, hash_size=DHASH_SIZE)) for window in pillow])


def view_windows(image: np.ndarray, views: int = 4, side: int = 80, crop: float = 0.9) -> list[np.ndarray]:
    """The gray ``side x side`` thumbnail of an image and its ``views x views`` crop windows (:func:`view_hashes`)."""
    small = cv2.resize(to_gray(image).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA)
    windows = [small]
    inner = round(side * crop)
    steps = np.linspace(0, side - inner, views).round().astype(int) if views > 1 else [(side - inner) // 2]
    for top in steps:
        for left in steps:
            windows.append(small[top : top + inner, left : left + inner])
    return windows


def hash_words(values: Sequence[int], words: int) -> np.ndarray:
    """Hashes of ``64 words`` bits as a ``(len(values), words)`` uint64 array, most significant word first."""
    mask = (1 << 64) - 1
    return np.array([[(value >> (64 * (words - 1 - word))) & mask for word in range(words)] for value in values],
                    dtype=np.uint64).reshape(-1, words)


def _hash_int(image_hash: Any) -> int:
    bits = np.asarray(image_hash.hash, dtype=np.uint8).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def to_gray(image: np.ndarray) -> np.ndarray:
    """Luma (BT.601) as float32 0..255; single-channel images pass through."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY)  # 0.299 R + 0.587 G + 0.114 B


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of a lightly blurred gray image, float32."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels on either side of a change of label colour, as a boolean map (2 px wide, centred on the boundary)."""
    packed = pack_rgb(labels) if labels.ndim == 3 else labels.astype(np.int32)
    boundary = np.zeros(packed.shape, dtype=bool)
    horizontal = packed[:, :-1] != packed[:, 1:]
    vertical = packed[:-1, :] != packed[1:, :]
    boundary[:, :-1] |= horizontal
    boundary[:, 1:] |= horizontal
    boundary[:-1, :] |= vertical
    boundary[1:, :] |= vertical
    return boundary


def phase_shift(
    structure_a: np.ndarray, structure_b: np.ndarray, whitening: float = 0.5
) -> tuple[tuple[float, float], float, float]:
    """Displacement of B's structure relative to A's by (generalised) phase correlation, and confidences.

    Both maps are blurred (sigma 1.5 px), standardised and Hann-windowed. The
    cross-power spectrum is divided by its magnitude to the power ``whitening``
    (1: classic phase correlation; 0: plain cross-correlation; 0.5 keeps the
    sharp peak of the first and the robustness to texture of the second). The
    peak is refined to sub-pixel precision with a parabola per axis.

    Returns:
        ``((dx, dy), confidence, aligned)``: B's content sits ``dx`` px right and ``dy`` px
        down of A's; confidence is the Pearson correlation of the windowed maps at the
        found integer shift (1 = identical structure, ~0 = nothing in common), aligned
        the same at no shift. A flat map (no structure) gives zeros.
    """
    maps = []
    for structure in (structure_a, structure_b):
        smooth = cv2.GaussianBlur(structure.astype(np.float32), (0, 0), 1.5)
        spread = float(smooth.std())
        if spread < 1e-6:
            return (0.0, 0.0), 0.0, 0.0
        maps.append((smooth - float(smooth.mean())) / spread)
    height, width = maps[0].shape
    window = cv2.createHanningWindow((width, height), cv2.CV_32F)
    spectrum_a = np.fft.rfft2(maps[0] * window)
    spectrum_b = np.fft.rfft2(maps[1] * window)
    cross = np.conj(spectrum_a) * spectrum_b
    magnitude = np.abs(cross)
    cross /= magnitude**whitening + 1e-9 * float(magnitude.max()) + 1e-12
    surface = np.fft.irfft2(cross, s=(height, width))
    row, column = np.unravel_index(int(np.argmax(surface)), surface.shape)
    dy = row + _parabola(surface[(row - 1) % height, column], surface[row, column], surface[(row + 1) % height, column])
    dx = column + _parabola(surface[row, (column - 1) % width], surface[row, column], surface[row, (column + 1) % width])
    dy -= height if dy > height / 2 else 0
    dx -= width if dx > width / 2 else 0
    windowed_a = maps[0] * window
    confidence = _windowed_correlation(windowed_a, np.roll(maps[1], (-round(dy), -round(dx)), axis=(0, 1)) * window)
    aligned = _windowed_correlation(windowed_a, maps[1] * window)
    return (float(dx), float(dy)), max(0.0, confidence), max(0.0, aligned)


def shift_evidence(structure_a: np.ndarray, structure_b: np.ndarray, dx: float,
                   dy: float) -> tuple[float, float, float]:
    """How much better B's structure matches A's at the shift ``(dx, dy)`` than at no shift.

    Both maps are blurred as in :func:`phase_shift` (sigma 1.5 px). On A's pixels whose
    counterparts stay inside B at the integer shift and at every 1-px neighbour of no shift
    (a margin of ``|dx| + 1`` columns and ``|dy| + 1`` rows), the Pearson correlation with B
    moved by the shift is compared with the best correlation at no shift and its four 1-px
    neighbours (as the labels search does: a sub-pixel offset between A's and B's lines must
    not count as a shift). Phase correlation picks the sharpest peak of a whitened spectrum,
    which on periodic scenes (facades, street grids, brick) may be a period of the pattern
    rather than a shift; such a peak explains B no better than no shift.

    Returns:
        ``(score, aligned, evidence)``: the correlation at the shift, the best one near no shift,
        and ``(score - aligned) / (1 - aligned)``: the share of the disagreement left near no
        shift that the shift removes (1: all of it; 0 or less: none; at least -1, as a shift that
        breaks a perfect match would give minus infinity). A shift whose overlap is under 8 px,
        or a flat map, gives ``(0, 0, 0)``.
    """
    column, row = round(dx), round(dy)
    margin_x, margin_y = abs(column) + 1, abs(row) + 1
    height, width = structure_a.shape
    if min(height - 2 * margin_y, width - 2 * margin_x) < 8:
        return 0.0, 0.0, 0.0
    smooth_a = cv2.GaussianBlur(structure_a.astype(np.float32), (0, 0), 1.5)
    smooth_b = cv2.GaussianBlur(structure_b.astype(np.float32), (0, 0), 1.5)
    inner = _centred(smooth_a[margin_y : height - margin_y, margin_x : width - margin_x])

    def score(sx: int, sy: int) -> float:
        moved = smooth_b[margin_y + sy : height - margin_y + sy, margin_x + sx : width - margin_x + sx]
        return _windowed_correlation(inner, _centred(moved))

    shifted = score(column, row)
    aligned = max(score(sx, sy) for sx, sy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)))
    evidence = (shifted - aligned) / max(1.0 - aligned, 1e-6)
    return shifted, aligned, float(max(-1.0, evidence))


def _centred(values: np.ndarray) -> np.ndarray:
    return values - float(values.mean())


def label_alignment(
    labels: np.ndarray, photo: np.ndarray, gradient: np.ndarray, radius: int = LABEL_SEARCH_RADIUS,
    boundaries: np.ndarray | None = None, lightness: np.ndarray | None = None,
) -> tuple[tuple[float, float], float, float]:
    """Shift of a photo relative to its label map, by exhaustive search over integer shifts.

    Three surfaces over the shifts ``(dx, dy)`` in ``[-radius, radius]``, each
    standardised by its median and MAD and then summed with the weights above:

    * :func:`information_surface`: mutual information between the label regions
      and B's quantised lightness (the measure of multimodal image registration:
      it needs no more than that a region's pixels look alike, so it also holds
      for textured regions whose mean colour says little);
    * :func:`region_homogeneity_surface`: the share of B's colour variance the
      label regions explain when the map is moved by the shift;
    * :func:`boundary_gradient_surface`: label boundaries against B's gradients.

    A label map that does not follow B's edges (texture, smooth shading) gives a
    flat, noisy surface; a shifted map a clear peak away from zero. Where B's
    structure runs one way only (one straight edge), the surface is a ridge and
    a shift along it cannot be seen: such pairs show only the shift across it.

    Shape:
        labels ``(H, W, 3)`` or ``(H, W)`` (colour or id coded); photo ``(H, W, 3)``;
        gradient ``(H, W)`` float32 (B's gradient magnitude); boundaries ``(H, W)``:
        :func:`label_boundaries` of ``labels`` when the caller has it already (else computed);
        lightness ``(H, W)``: :func:`to_gray` of ``photo``, likewise.

    Returns:
        ``((dx, dy), score, aligned_score)``: B's content sits ``dx`` px right and
        ``dy`` px down of the map's; the summed surface at that shift and its best
        value within ``LABEL_NEAR_RADIUS`` px of no shift (robust z units; the
        difference is the evidence for the shift).
    """
    height, width = photo.shape[:2]
    radius = min(radius, (min(height, width) - 8) // 4)
    if radius < 2:
        return (0.0, 0.0), 0.0, 0.0
    ids, regions = label_regions(labels)
    lightness = to_gray(photo) if lightness is None else lightness
    surface = (INFORMATION_WEIGHT * _robust_z(information_surface(ids, int(ids.max()) + 1, lightness, radius))
               + HOMOGENEITY_WEIGHT * _robust_z(region_homogeneity_surface(regions, photo, radius))
               + _robust_z(boundary_gradient_surface(
                   label_boundaries(labels) if boundaries is None else boundaries, gradient, radius)))
    offsets = np.arange(-radius, radius + 1)
    distance = np.hypot(offsets[None, :], offsets[:, None])
    near = distance <= LABEL_NEAR_RADIUS
    # ties (a flat surface: one region, no structure) go to the shift nearest to none
    ranked = surface - 1e-9 * distance
    row, column = np.unravel_index(int(np.argmax(ranked)), surface.shape)
    return ((float(column - radius), float(row - radius)), float(surface[row, column]),
            float(surface[near].max()))


def snap_labels(labels: np.ndarray, palette: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """A label map with every colour moved to the nearest "true" label colour (JPEG-saved maps).

    Label maps saved as JPEG (pix2pix's own facades and cityscapes archives are) carry
    thousands of ringing colours along every border; as regions they would swamp the
    alignment search. True colours: the palette when the dataset has one, else, for a map
    with more than ``LABEL_MAX_COLOURS`` colours, its main colours (:func:`_main_colours`:
    covering at least 0.2 % of it, 40 apart in RGB).
    A map whose colours are all true comes back unchanged.

    Shape:
        labels ``(H, W, 3)`` uint8 RGB or ``(H, W)`` ids (returned as they are); ``(H, W, 3)`` out.
    """
    if labels.ndim == 2:
        return labels
    packed = pack_rgb(labels).ravel()
    values, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
    colours = unpack_rgb(values)
    if len(palette):
        centres = np.asarray(palette, dtype=np.int32).reshape(-1, 3)
    elif len(values) > LABEL_MAX_COLOURS:
        centres = _main_colours(colours, counts, max(16, 0.002 * packed.size))
    else:
        return labels
    if np.isin(values, pack_rgb(centres)).all():
        return labels
    return centres[nearest_colors(colours, centres)][inverse.reshape(-1)].reshape(labels.shape).astype(np.uint8)


def _main_colours(colours: np.ndarray, counts: np.ndarray, min_count: float, spread: int = 40) -> np.ndarray:
    """A map's main colours: the peaks of its colour histogram (16 levels per channel), strongest first.

    A JPEG-saved class colour comes back as a cloud of near colours, no one of them frequent;
    their 16-level bin sums them. A bin holding at least ``min_count`` pixels stands for a
    colour (its pixel-weighted mean) unless a stronger one kept is within ``spread`` (RGB
    distance): a cloud cut by a bin edge, or ringing between two classes.
    """
    key = (colours[:, 0] // 16) * 256 + (colours[:, 1] // 16) * 16 + colours[:, 2] // 16
    weight = np.bincount(key, weights=counts, minlength=4096)
    means = np.stack([np.bincount(key, weights=counts * colours[:, c], minlength=4096) for c in range(3)], axis=1)
    kept: list[np.ndarray] = []
    for index in np.argsort(-weight, kind="stable"):
        if weight[index] < min_count and kept:
            break
        mean = means[index] / weight[index]
        if all(float(((mean - centre) ** 2).sum()) > spread * spread for centre in kept):
            kept.append(mean)
    return np.rint(np.array(kept)).astype(np.int32)


def label_regions(labels: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """The 4-connected regions of one label each (the ``LABEL_MAX_REGIONS`` largest).

    One labelling pass over the whole map (scikit-image), however many colours it has. A map
    with more regions than ``LABEL_MAX_REGIONS`` (JPEG-speckled maps, or an image that is no
    label map) keeps its largest ones; the rest are pooled into one region of specks, which the
    mutual information sees as one more region and the colour homogeneity leaves out.

    Returns:
        ``(ids, regions)``: an ``(H, W)`` int32 map of region numbers ``0..len(regions) - 1``
        (``len(regions)``: the pooled specks, if any), and per kept region ``(top, left, mask)``
        with the float32 mask cut to its bounding box.
    """
    from scipy.ndimage import find_objects
    from skimage.measure import label as connected_components

    packed = pack_rgb(labels) if labels.ndim == 3 else labels.astype(np.int32)
    # background=-1: no value is background (packed colours are >= 0); numbers 1..n in raster order
    ids = connected_components(packed, background=-1, connectivity=1).astype(np.int32) - 1
    count = int(ids.max()) + 1
    if count > LABEL_MAX_REGIONS:
        sizes = np.bincount(ids.ravel(), minlength=count)
        kept = np.sort(np.argsort(-sizes, kind="stable")[:LABEL_MAX_REGIONS])
        renumber = np.full(count, LABEL_MAX_REGIONS, dtype=np.int32)
        renumber[kept] = np.arange(LABEL_MAX_REGIONS, dtype=np.int32)
        ids = renumber[ids]
        count = LABEL_MAX_REGIONS
    regions = []
    for index, box in enumerate(find_objects(ids + 1, max_label=count)):
        regions.append((box[0].start, box[1].start, (ids[box] == index).astype(np.float32)))
    return ids, regions


def information_surface(ids: np.ndarray, count: int, lightness: np.ndarray, radius: int) -> np.ndarray:
    """Mutual information (nats) between the label regions and B's lightness, per shift of the regions.

    B's centre (``radius`` px in from every side) stays fixed and its lightness
    is cut into ``LIGHTNESS_BINS`` equal bins; the region map moves by
    ``(dx, dy)``. ``I = H(bin) - H(bin | region)`` from the joint histogram of the
    centre's pixels (every other row and column past ``INFORMATION_MAX_SAMPLES``).
    One ``bincount`` per row of shifts counts all ``2 radius + 1`` shifts of that row.

    Shape:
        ids ``(H, W)`` int region numbers below ``count``; lightness ``(H, W)`` 0..255.

    Returns:
        ``(2 radius + 1, 2 radius + 1)`` float64, index ``[dy + radius, dx + radius]``.
    """
    height, width = ids.shape
    side, bins = 2 * radius + 1, LIGHTNESS_BINS
    rows, columns = height - 2 * radius, width - 2 * radius
    step = 1 if rows * columns <= INFORMATION_MAX_SAMPLES else 2
    quantised = np.clip((lightness * (bins / 256.0)).astype(np.int32), 0, bins - 1)
    centre = quantised[radius : height - radius : step, radius : width - radius : step]
    total = centre.size
    xlogx = np.arange(total + 1, dtype=np.float64)
    xlogx[1:] *= np.log(xlogx[1:])
    entropy = np.log(total) - xlogx[np.bincount(centre.ravel(), minlength=bins)].sum() / total
    cells = count * bins
    # per pixel of the centre and shift k along the row: the joint cell's index in that shift's histogram
    base = centre[:, None, :] + (np.arange(side, dtype=np.int32) * cells)[None, :, None]
    scaled = ids.astype(np.int32) * bins
    surface = np.empty((side, side))
    for row in range(side):  # shift dy = row - radius: B's centre row y meets map row y - dy
        band = scaled[2 * radius - row : 2 * radius - row + rows : step]
        # window k starts at map column k, i.e. dx = radius - k
        windows = np.lib.stride_tricks.sliding_window_view(band, columns, axis=1)[..., ::step]
        joint = np.bincount((windows + base).ravel(), minlength=side * cells).reshape(side, count, bins)
        conditional = (xlogx[joint.sum(axis=2)].sum(axis=1) - xlogx[joint].sum(axis=(1, 2))) / total
        surface[row] = (entropy - conditional)[::-1]
    return surface


def region_homogeneity_surface(regions: list[tuple[int, int, np.ndarray]], photo: np.ndarray,
                               radius: int) -> np.ndarray:
    """Share of the variance of B's centre that the label regions explain, per shift of the regions.

    B's centre (``radius`` px in from every side) stays fixed; the regions move
    by ``(dx, dy)``, and each explains the centre pixels it covers by their mean
    colour (one-way ANOVA: ``sum_r |S_r|^2 / n_r - N |mean|^2`` over the total
    sum of squares). ``S_r`` and ``n_r`` for every shift at once are template
    matches of the region's mask (its bounding box) against B's channels.

    Returns:
        ``(2 radius + 1, 2 radius + 1)`` float64, index ``[dy + radius, dx + radius]``, 0..1.
    """
    height, width = photo.shape[:2]
    side = 2 * radius + 1
    inside = np.zeros((height, width), dtype=bool)
    inside[radius : height - radius, radius : width - radius] = True
    centre = photo[inside].astype(np.float64)
    mean = centre.mean(axis=0)
    total = float(((centre - mean) ** 2).sum())
    if total < 1e-6:
        return np.zeros((side, side))
    # B's channels and the centre indicator, zero outside the centre, padded by radius
    planes = np.concatenate([photo.astype(np.float32), np.ones((height, width, 1), np.float32)], axis=2)
    planes[~inside] = 0.0
    planes = np.pad(planes, ((radius, radius), (radius, radius), (0, 0)))
    planes = [np.ascontiguousarray(planes[..., channel]) for channel in range(4)]
    explained = np.full((side, side), -len(centre) * float((mean**2).sum()))
    for top, left, mask in regions:
        rows, columns = mask.shape
        window = (slice(top, top + rows + 2 * radius), slice(left, left + columns + 2 * radius))
        matched = [cv2.matchTemplate(plane[window], mask, cv2.TM_CCORR).astype(np.float64) for plane in planes]
        count = matched[3]
        sums = matched[0] ** 2 + matched[1] ** 2 + matched[2] ** 2
        explained += np.where(count > 0.5, sums / np.maximum(count, 1.0), 0.0)
    return explained / total


def boundary_gradient_surface(boundaries: np.ndarray, gradient: np.ndarray, radius: int) -> np.ndarray:
    """Mean of B's (square-rooted, normalised) gradient magnitude under the label boundaries, per shift.

    The boundaries are 2 px wide and not blurred: blurring (sigma 1) flattened the peak so
    that a 2-px shift scored barely above its 1-px neighbour, and let more clean pairs'
    noise peaks through (measured in benchmarks/RESULTS.md).

    Returns:
        ``(2 radius + 1, 2 radius + 1)`` float64, index ``[dy + radius, dx + radius]``.
    """
    height, width = boundaries.shape
    template = np.ascontiguousarray(boundaries[radius : height - radius, radius : width - radius], dtype=np.float32)
    weight = float(template.sum())
    side = 2 * radius + 1
    if weight < 1e-6:
        return np.zeros((side, side))
    strength = np.sqrt(gradient.astype(np.float32))
    strength /= float(strength.mean()) + 1e-6
    return cv2.matchTemplate(strength, template, cv2.TM_CCORR).astype(np.float64) / weight


def _robust_z(surface: np.ndarray) -> np.ndarray:
    """``(surface - median) / (1.4826 MAD)``; zeros for a flat surface."""
    median = float(np.median(surface))
    spread = 1.4826 * float(np.median(np.abs(surface - median)))
    return np.zeros_like(surface) if spread < 1e-12 else (surface - median) / spread


def _windowed_correlation(a: np.ndarray, b: np.ndarray) -> float:
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 1e-12 else 0.0


def _parabola(left: float, centre: float, right: float) -> float:
    """Sub-pixel offset of a peak from three samples around it."""
    curvature = left - 2 * centre + right
    return 0.0 if abs(curvature) < 1e-12 else float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def edge_f1(edges_a: np.ndarray, edges_b: np.ndarray, tolerance: int) -> float:
    """F1 of two binary edge maps, an edge pixel counting as matched within ``tolerance`` px.

    Precision: A's edge pixels with a B edge within tolerance; recall: B's with an A edge.
    Two empty maps agree (1.0); one empty map scores 0.
    """
    count_a, count_b = int(np.count_nonzero(edges_a)), int(np.count_nonzero(edges_b))
    if count_a == 0 and count_b == 0:
        return 1.0
    if count_a == 0 or count_b == 0:
        return 0.0
    near_b = _distance_to(edges_b) <= tolerance
    near_a = _distance_to(edges_a) <= tolerance
    precision = np.count_nonzero(near_b & edges_a) / count_a
    recall = np.count_nonzero(near_a & edges_b) / count_b
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def _distance_to(edges: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest edge pixel."""
    background = np.where(edges, 0, 255).astype(np.uint8)
    return cv2.distanceTransform(background, cv2.DIST_L2, 3)


def correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two images (0 when either is constant)."""
    x = x.astype(np.float64).ravel()
    y = y.astype(np.float64).ravel()
    x -= x.mean()
    y -= y.mean()
    # explicit sums, not BLAS dot products: a BLAS thread pool competing with the workers is slower
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return 0.0 if denominator < 1e-9 else float((x * y).sum() / denominator)
