"""Procedural building facades: class-id label maps and photo-like renderings (``synth facades``).

In the spirit of the CMP Facades dataset that pix2pix uses for labels -> photo:
each sample is a rectified facade (wall, windows, doors, balconies, cornices,
sills, shutters, pilasters, shop fronts, awnings, sky and background) drawn as a
label map, and a rendering of it with random materials, textures, lighting,
shadows, noise and a small perspective jitter. Many renderings fit one layout, so
the labels -> photo mapping is one-to-many and an L1 loss alone blurs.

Some class distinctions live only in texture, as road vs sidewalk does in
Cityscapes: the plaster wall, the shutters, the awnings and the pilasters take
their colours from one shared distribution (often the wall's own colour), and
differ by texture -- louvred slats, striped fabric with a scalloped valance,
brick courses -- each with a random pitch and phase. A model that predicts the
mean colour per class (what L1 alone converges to) cannot show those
differences; a segmenter of the real renderings has to use them.

Everything is a pure function of ``(seed, index)``: any sample can be
regenerated alone, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pairforge.errors import ConfigError
from pairforge.files import write_atomic
from pairforge.imageio import write_image
from pairforge.palettes import Palette

log = logging.getLogger(__name__)

BACKGROUND, SKY, WALL, WINDOW, DOOR, BALCONY, CORNICE, SHOP, SILL, SHUTTER, PILLAR, AWNING = range(12)

FACADE_PALETTE = Palette(
    ids=tuple(range(12)),
    names=("background", "sky", "wall", "window", "door", "balcony", "cornice", "shop", "sill", "shutter",
           "pillar", "awning"),
    colors=((0, 0, 170), (0, 170, 255), (0, 85, 255), (255, 85, 0), (170, 0, 0), (170, 255, 85), (0, 255, 255),
            (255, 0, 0), (85, 255, 170), (255, 255, 0), (255, 170, 0), (170, 0, 255)),
    name="facades",
)
"""Class ids 0..11 of the procedural facades, in one-hot order."""


@dataclass(frozen=True)
class FacadesConfig:
    """Options of ``synth facades``.

    Attributes:
        count: number of facades.
        seed: base seed; sample ``i`` uses the seed sequence ``(seed, i)``.
        size: side of the square images, in pixels.
        jpeg_quality: quality of the photo JPEGs.
    """

    count: int = 400
    seed: int = 0
    size: int = 256
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if not _is_int(self.count) or not 1 <= self.count <= 10_000_000:
            raise ConfigError("count", self.count, "an integer from 1 to 10000000")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError("seed", self.seed, "a non-negative integer")
        if not _is_int(self.size) or not 32 <= self.size <= 4096:
            raise ConfigError("size", self.size, "an integer from 32 to 4096")
        if not _is_int(self.jpeg_quality) or not 50 <= self.jpeg_quality <= 100:
            raise ConfigError("jpeg_quality", self.jpeg_quality, "an integer from 50 to 100")


def facade_key(index: int) -> str:
    """File stem of sample ``index`` (``facade_000042``)."""
    return f"facade_{index:06d}"


def render_facade(index: int, config: FacadesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Generate facade ``index`` of a data set.

    Args:
        index: sample number (``0 <= index``; it need not be below ``config.count``).
        config: seed and size.

    Returns:
        ``(photo, label_ids)``.

    Shape:
        photo ``(S, S, 3)`` uint8 RGB; label_ids ``(S, S)`` uint8 with values in
        ``FACADE_PALETTE.ids`` (``S = config.size``).
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    layout = _Layout.sample(rng, config.size)
    labels = layout.label_map()
    photo = _Renderer(rng, layout).render(labels)
    return _perspective_jitter(rng, photo, labels)


def write_facades(
    out_dir: str | os.PathLike[str],
    config: FacadesConfig,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write ``photos/<key>.jpg``, ``labels/<key>.png`` (8-bit ids) and ``palette.json``.

    The output is ready for ``pairforge make-labels out/photos --labels out/labels
    --palette out/palette.json``.

    Args:
        out_dir: destination folder (created).
        config: what to generate.
        progress: called with 1 after each written sample (e.g. ``tqdm.update``).

    Returns:
        Summary: count, seed, size, the three paths, and the fraction of pixels per class.
    """
    out = Path(out_dir)
    photos_dir, labels_dir = out / "photos", out / "labels"
    photos_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(len(FACADE_PALETTE.ids), dtype=np.int64)
    for index in range(config.count):
        photo, labels = render_facade(index, config)
        key = facade_key(index)
        write_image(photos_dir / f"{key}.jpg", photo, "jpg", config.jpeg_quality)
        write_image(labels_dir / f"{key}.png", labels, "png")
        counts += np.bincount(labels.ravel(), minlength=len(counts))[: len(counts)]
        if progress is not None:
            progress(1)
    palette_path = out / "palette.json"
    write_atomic(palette_path, json.dumps(FACADE_PALETTE.to_json(), indent=2) + "\n")
    total = max(1, int(counts.sum()))
    log.info("wrote %d facades to %s", config.count, out)
    return {
        "count": config.count,
        "seed": config.seed,
        "size": config.size,
        "photos": str(photos_dir),
        "labels": str(labels_dir),
        "palette": str(palette_path),
        "class_fractions": {
            name: round(int(n) / total, 4)
            for name, n in zip(FACADE_PALETTE.names, counts, strict=True)
        },
    }


# ------------------------------------------------------------------------ layout

Rect = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` in pixels, bottom/right exclusive."""


@dataclass(frozen=True)
class _Grid:
    """The facade's grid: upper floors between the top cornice and the ground floor, bays across."""

    size: int
    top: int  # first row below the top cornice
    ground_top: int  # first row of the ground floor
    left: int
    right: int
    floors: int
    columns: int

    @property
    def floor_height(self) -> float:
        return (self.ground_top - self.top) / self.floors

    @property
    def column_width(self) -> float:
        return (self.right - self.left) / self.columns


@dataclass(frozen=True)
class _FloorStyle:
    """What every upper floor of one facade shares."""

    window_width: float
    window_height: float
    window_offset: float
    shutters: bool
    window_awnings: bool
    sills: bool
    balcony_rate: float
    continuous: bool


@dataclass
class _Layout:
    """Where every element of one facade is, in pixels."""

    size: int
    roof: int  # first row of the building (sky above)
    left: int  # building columns [left, right)
    right: int
    elements: list[tuple[int, Rect]]  # (class id, rect), painted in order
    continuous_balconies: bool

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int) -> _Layout:
        roof = int(size * rng.uniform(0.0, 0.2)) if rng.random() < 0.8 else 0
        left = int(size * rng.uniform(0.0, 0.12)) if rng.random() < 0.5 else 0
        right = size - (int(size * rng.uniform(0.0, 0.12)) if rng.random() < 0.5 else 0)
        elements: list[tuple[int, Rect]] = []

        cornice_height = max(2, int(size * rng.uniform(0.02, 0.05)))
        elements.append((CORNICE, (roof, left, roof + cornice_height, right)))
        top = roof + cornice_height
        ground_height = int((size - top) * rng.uniform(0.2, 0.3))
        ground_top = size - ground_height
        floors = int(rng.integers(2, 6))
        grid = _Grid(size, top, ground_top, left, right, floors, int(rng.integers(3, 8)))
        cls._pilasters(rng, elements, grid)
        continuous = cls._upper_floors(rng, elements, grid)
        elements.append((CORNICE, (ground_top - max(2, int(size * 0.02)), left, ground_top, right)))
        cls._ground_floor(rng, elements, ground_top, size, left, grid.columns, grid.column_width)
        clipped = [(class_id, _clip(rect, roof, left, size, right)) for class_id, rect in elements]
        return cls(
            size,
            roof,
            left,
            right,
            [e for e in clipped if e[1][0] < e[1][2] and e[1][1] < e[1][3]],
            continuous,
        )

    @staticmethod
    def _pilasters(rng: np.random.Generator, elements: list[tuple[int, Rect]], grid: _Grid) -> None:
        """Brick pilasters at both ends of the upper floors, sometimes also between bays."""
        if rng.random() >= 0.55:
            return
        pillar_width = max(3, int(grid.column_width * rng.uniform(0.14, 0.26)))
        positions = [grid.left, grid.right - pillar_width]
        if rng.random() < 0.5:
            positions += [
                int(grid.left + c * grid.column_width - pillar_width / 2)
                for c in range(2, grid.columns - 1, 2)
            ]
        elements += [(PILLAR, (grid.top, x, grid.ground_top, x + pillar_width)) for x in positions]

    @classmethod
    def _upper_floors(cls, rng: np.random.Generator, elements: list[tuple[int, Rect]], grid: _Grid) -> bool:
        """Windows with their shutters, blinds, sills and balconies, floor by floor.

        Returns:
            Whether balconies run the width of the facade (instead of one per window).
        """
        string_courses = rng.random() < 0.6
        style = _FloorStyle(
            window_width=grid.column_width * rng.uniform(0.38, 0.62),
            window_height=grid.floor_height * rng.uniform(0.45, 0.68),
            window_offset=grid.floor_height * rng.uniform(0.12, 0.25),
            shutters=rng.random() < 0.35,
            window_awnings=rng.random() < 0.25,  # fabric blinds over the upper part of the windows
            sills=rng.random() < 0.7,
            balcony_rate=rng.choice([0.0, 0.25, 0.6]),
            continuous=bool(rng.random() < 0.4),
        )
        for floor in range(grid.floors):
            floor_top = grid.top + floor * grid.floor_height
            if string_courses and floor > 0:
                band = max(1, int(grid.size * 0.012))
                elements.append((CORNICE, (int(floor_top), grid.left, int(floor_top) + band, grid.right)))
            window_top = int(floor_top + style.window_offset)
            window_bottom = int(window_top + style.window_height)
            balcony = floor < grid.floors - 1 or grid.floors == 1
            balcony = balcony and rng.random() < style.balcony_rate
            if balcony and style.continuous:
                rail_top = int(window_top + style.window_height * 0.6)
                elements.append((BALCONY, (rail_top, grid.left, window_bottom + 2, grid.right)))
            blinds: list[tuple[int, Rect]] = []  # painted over this floor's windows and shutters
            for column in range(grid.columns):
                center = grid.left + (column + 0.5) * grid.column_width
                window = (
                    window_top,
                    int(center - style.window_width / 2),
                    window_bottom,
                    int(center + style.window_width / 2),
                )
                cls._bay(rng, elements, blinds, window, style, grid, balcony)
            elements += blinds
        return style.continuous

    @staticmethod
    def _bay(
        rng: np.random.Generator,
        elements: list[tuple[int, Rect]],
        blinds: list[tuple[int, Rect]],
        window: Rect,
        style: _FloorStyle,
        grid: _Grid,
        balcony: bool,
    ) -> None:
        """One upper-floor window and what surrounds it (shutters, blind, balcony or sill)."""
        window_top, w_left, window_bottom, w_right = window
        elements.append((WINDOW, window))
        if style.window_awnings:
            drop = int(style.window_height * 0.45) + int(grid.floor_height * 0.08)
            awning_top = window_top - int(grid.floor_height * 0.08)
            blinds.append((AWNING, (awning_top, w_left - 2, awning_top + drop, w_right + 2)))
        if style.shutters and rng.random() < 0.25:  # closed: the shutters cover the glass
            elements.append((SHUTTER, window))
        elif style.shutters:
            shutter = max(2, int(style.window_width * 0.45))
            elements.append((SHUTTER, (window_top, w_left - shutter, window_bottom, w_left)))
            elements.append((SHUTTER, (window_top, w_right, window_bottom, w_right + shutter)))
        if balcony and not style.continuous:
            rail_top = int(window_top + style.window_height * 0.62)
            margin = int(style.window_width * 0.15)
            elements.append((BALCONY, (rail_top, w_left - margin, window_bottom + 2, w_right + margin)))
        elif style.sills:
            sill = max(2, int(grid.size * 0.012))
            elements.append((SILL, (window_bottom, w_left - 2, window_bottom + sill, w_right + 2)))

    @staticmethod
    def _ground_floor(
        rng: np.random.Generator,
        elements: list[tuple[int, Rect]],
        ground_top: int,
        bottom: int,
        left: int,
        columns: int,
        column_width: float,
    ) -> None:
        height = bottom - ground_top
        door_column = int(rng.integers(0, columns))
        shops = rng.random() < 0.55
        awnings = rng.random() < 0.6
        awning_drop = height * rng.uniform(0.3, 0.45)
        covered: list[tuple[int, Rect]] = []  # fabric over the openings, painted on top of them
        for column in range(columns):
            center = left + (column + 0.5) * column_width
            if awnings and (column == door_column or shops):
                half = column_width * rng.uniform(0.44, 0.5)
                awning_top = int(ground_top + height * 0.03)
                covered.append(
                    (AWNING, (awning_top, int(center - half), int(awning_top + awning_drop), int(center + half)))
                )
            if column == door_column:
                door_width = column_width * rng.uniform(0.45, 0.7)
                door_top = int(bottom - height * rng.uniform(0.7, 0.88))
                elements.append(
                    (
                        DOOR,
                        (
                            door_top,
                            int(center - door_width / 2),
                            bottom,
                            int(center + door_width / 2),
                        ),
                    )
                )
            elif shops:
                shop_top = int(ground_top + height * rng.uniform(0.08, 0.2))
                half = column_width * 0.46
                elements.append((SHOP, (shop_top, int(center - half), bottom, int(center + half))))
            else:
                half = column_width * rng.uniform(0.2, 0.3)
                top = int(ground_top + height * 0.25)
                elements.append(
                    (
                        WINDOW,
                        (top, int(center - half), int(bottom - height * 0.18), int(center + half)),
                    )
                )
        elements += covered

    def label_map(self) -> np.ndarray:
        """The class ids. Shape: ``(S, S)`` uint8."""
        labels = np.full((self.size, self.size), BACKGROUND, dtype=np.uint8)
        labels[: self.roof] = SKY
        labels[self.roof :, self.left : self.right] = WALL
        for class_id, (top, left, bottom, right) in self.elements:
            labels[top:bottom, left:right] = class_id
        return labels


def _clip(rect: Rect, top: int, left: int, bottom: int, right: int) -> Rect:
    return max(rect[0], top), max(rect[1], left), min(rect[2], bottom), min(rect[3], right)


# ---------------------------------------------------------------------- rendering


class _Renderer:
    """Paints one layout: materials per class, element details, lighting and camera noise."""

    def __init__(self, rng: np.random.Generator, layout: _Layout) -> None:
        self.rng = rng
        self.layout = layout
        self.size = layout.size

    def render(self, labels: np.ndarray) -> np.ndarray:
        rng, size = self.rng, self.size
        paint = self._paints()
        photo = np.zeros((size, size, 3), dtype=np.float32)
        photo[:] = self._sky()
        background = labels == BACKGROUND
        if background.any():
            photo[background] = self._background()[background]
        photo[self.layout.roof :, self.layout.left : self.layout.right] = self._wall(paint["wall"])[
            self.layout.roof :, self.layout.left : self.layout.right
        ]
        protruding = np.zeros((size, size), dtype=bool)
        for class_id, rect in self.layout.elements:
            top, left, bottom, right = rect
            region = photo[top:bottom, left:right]
            region[:] = self._element(class_id, region, paint, bottom - top, right - left)
            if class_id in (CORNICE, SILL, AWNING, BALCONY):
                protruding[top:bottom, left:right] = True

        photo *= self._shadows(protruding, labels)[..., None]
        photo *= self._illumination()[..., None]
        photo += rng.normal(0.0, rng.uniform(0.005, 0.025), photo.shape).astype(np.float32)
        photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.4, 0.9))
        return np.clip(np.rint(photo * 255.0), 0, 255).astype(np.uint8)

    def _paints(self) -> dict[str, np.ndarray]:
        """The facade's colours: wall, stone, frames, glass, shutters, awnings, pilasters, metal, door."""
        rng = self.rng
        wall = _material_color(rng)
        stone = np.clip(wall * rng.uniform(1.05, 1.3) + rng.uniform(0.0, 0.08), 0, 1)
        frame = _pick(
            rng, [(0.93, 0.92, 0.88), (0.35, 0.22, 0.12), (0.15, 0.25, 0.17), (0.2, 0.2, 0.22)]
        )
        glass = _hsv_color(
            rng,
            hue=rng.uniform(0.5, 0.65),
            saturation=rng.uniform(0.1, 0.4),
            value=rng.uniform(0.12, 0.35),
        )
        # shutters, awnings and pilasters: the wall's own colour or another draw of the same
        # distribution, so that texture, not colour, tells them from the wall
        shutter, awning, pillar = (
            _near(rng, wall) if rng.random() < 0.5 else _material_color(rng) for _ in range(3)
        )
        metal = np.full(3, rng.uniform(0.05, 0.25))
        door = _hsv_color(
            rng,
            hue=rng.uniform(0.02, 0.1),
            saturation=rng.uniform(0.3, 0.8),
            value=rng.uniform(0.12, 0.4),
        )
        return {"wall": wall, "stone": stone, "frame": frame, "glass": glass, "shutter": shutter,
                "awning": awning, "pillar": pillar, "metal": metal, "door": door}

    def _element(
        self, class_id: int, region: np.ndarray, paint: dict[str, np.ndarray], height: int, width: int
    ) -> np.ndarray:
        """The pixels of one element, ``(height, width, 3)`` float32 (``region``: what is behind it)."""
        if class_id in (CORNICE, SILL):
            return self._stone(paint["stone"], height, width, vertical=False)
        if class_id == PILLAR:
            return self._brick(paint["pillar"], height, width)
        if class_id == AWNING:
            return self._awning(paint["awning"], height, width)
        if class_id == WINDOW:
            return self._window(paint["frame"], paint["glass"], height, width)
        if class_id == SHUTTER:
            return self._slats(paint["shutter"], height, width)
        if class_id == DOOR:
            return self._door(paint["door"], paint["frame"], height, width)
        if class_id == SHOP:
            return self._shop(paint["frame"], paint["glass"], height, width)
        if class_id == BALCONY:
            return self._railing(region, paint["metal"], paint["stone"], height, width)
        return region

    # -- materials ------------------------------------------------------------

    def _sky(self) -> np.ndarray:
        rng, size = self.rng, self.size
        if rng.random() < 0.6:
            top, bottom = np.array([0.35, 0.55, 0.85]), np.array([0.75, 0.85, 0.95])
        else:  # overcast
            grey = rng.uniform(0.65, 0.9)
            top, bottom = np.full(3, grey - 0.08), np.full(3, grey)
        ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
        sky = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones(
            (1, size, 1), np.float32
        )
        clouds = np.clip(_noise(rng, size, size // 8) * 0.5 + 0.1, 0.0, 1.0)
        return sky + (1.0 - sky) * clouds[..., None] * rng.uniform(0.0, 0.6)

    def _background(self) -> np.ndarray:
        rng, size = self.rng, self.size
        base = _pick(rng, [(0.2, 0.3, 0.15), (0.3, 0.3, 0.32), (0.45, 0.4, 0.35)])
        texture = _noise(rng, size, 6) * 0.5 + _noise(rng, size, 24)
        return np.clip(base[None, None, :] * (1.0 + 0.35 * texture[..., None]), 0, 1)

    def _wall(self, color: np.ndarray) -> np.ndarray:
        """Plaster: smooth blotches, fine grain and a few stains; no regular pattern."""
        rng, size = self.rng, self.size
        plaster = (
            0.06 * _noise(rng, size, size // 6)
            + 0.03 * _noise(rng, size, 4)
            + 0.02 * _noise(rng, size, 1)
        )
        stains = np.clip(_noise(rng, size, size // 3) - 1.2, 0.0, None) * rng.uniform(0.0, 0.25)
        shade = (1.0 + plaster - stains)[..., None]
        return np.clip(color[None, None, :] * shade, 0, 1).astype(np.float32)

    def _brick(self, color: np.ndarray, height: int, width: int) -> np.ndarray:
        """Brick courses (random course height and bond offset), mortar joints, a tone per brick."""
        rng = self.rng
        course = max(3, int(self.size * rng.uniform(0.016, 0.028)))
        brick = course * 2 + course // 2
        rows = np.arange(height) + int(rng.integers(0, course))
        mortar_rows = (rows % course) == 0
        offset = (rows // course % 2) * (brick // 2) + int(rng.integers(0, brick))
        columns = np.arange(width)[None, :] + offset[:, None]
        mortar = mortar_rows[:, None] | (columns % brick == 0)
        tone = rng.standard_normal((rows[-1] // course + 2, (width + offset.max()) // brick + 2))
        brick_tone = 1.0 + 0.1 * tone[(rows // course)[:, None], columns // brick]
        shade = np.where(mortar, rng.uniform(1.15, 1.35), brick_tone).astype(np.float32)
        return np.clip(color[None, None, :] * shade[..., None], 0, 1).astype(np.float32)

    def _stone(self, color: np.ndarray, height: int, width: int, vertical: bool) -> np.ndarray:
        axis = np.linspace(1.1, 0.75, width if vertical else height, dtype=np.float32)
        shade = axis[None, :] if vertical else axis[:, None]
        return color[None, None, :] * np.broadcast_to(shade, (height, width))[..., None]

    def _window(self, frame: np.ndarray, glass: np.ndarray, height: int, width: int) -> np.ndarray:
        rng = self.rng
        window = np.empty((height, width, 3), dtype=np.float32)
        window[:] = frame
        border = max(1, int(min(height, width) * rng.uniform(0.07, 0.13)))
        inner_h, inner_w = height - 2 * border, width - 2 * border
        if inner_h <= 0 or inner_w <= 0:
            return window
        reflection = np.linspace(
            rng.uniform(0.9, 1.6), rng.uniform(0.6, 1.1), inner_h, dtype=np.float32
        )
        pane = (
            glass[None, None, :] * reflection[:, None, None] * np.ones((1, inner_w, 1), np.float32)
        )
        if rng.random() < 0.3:  # curtain inside
            curtain = _hsv_color(
                rng, rng.uniform(0, 1), rng.uniform(0.0, 0.3), rng.uniform(0.5, 0.85)
            )
            pane[: int(inner_h * rng.uniform(0.3, 0.9))] = curtain * 0.8
        window[border:-border, border:-border] = pane
        bar = max(1, border // 2)
        middle = width // 2
        window[border:-border, middle - bar // 2 : middle - bar // 2 + bar] = frame
        transom = border + int(inner_h * 0.3)
        if rng.random() < 0.6:
            window[transom : transom + bar, border:-border] = frame
        return window

    def _slats(self, color: np.ndarray, height: int, width: int) -> np.ndarray:
        """Louvred shutter: slats of random pitch and phase, lit from above, in a frame with a split."""
        rng = self.rng
        pitch = max(3, int(self.size * rng.uniform(0.013, 0.024)))
        phase = (np.arange(height) + int(rng.integers(0, pitch))) % pitch / pitch
        shade = (1.12 - 0.5 * phase).astype(np.float32)  # bright slat top, dark underside
        slats = np.broadcast_to(shade[:, None], (height, width)).copy()
        edge = max(1, min(height, width) // 10)
        slats[:, :edge] = slats[:, -edge:] = 0.9
        slats[:edge] = slats[-edge:] = 0.9
        if width >= 6:  # two leaves
            slats[:, width // 2] = 0.6
        return color[None, None, :] * slats[..., None]

    def _awning(self, color: np.ndarray, height: int, width: int) -> np.ndarray:
        """Striped fabric (random stripe width and phase) shaded by its slope, with a scalloped valance."""
        rng = self.rng
        stripe = max(2, int(self.size * rng.uniform(0.012, 0.03)))
        second = np.clip(color * 0.72 if rng.random() < 0.5 else 0.45 * color + 0.5, 0, 1)
        columns = (np.arange(width) + int(rng.integers(0, 2 * stripe))) // stripe % 2 == 1
        fabric = np.empty((height, width, 3), dtype=np.float32)
        fabric[:] = color
        fabric[:, columns] = second
        fabric *= np.linspace(1.12, 0.82, height, dtype=np.float32)[:, None, None]
        valance = min(height, max(2, height // 4))  # a blind one pixel tall is all valance
        scallop = max(2, stripe * 2)
        x = (np.arange(width) % scallop - scallop / 2) / (scallop / 2)
        lip = (1.0 - np.sqrt(np.clip(1.0 - x**2, 0.0, 1.0))) * valance  # rows above the bottom left bare
        depth = np.arange(valance)[::-1, None]
        shadow = depth < lip[None, :]
        fabric[height - valance :][shadow] *= 0.55
        fabric[height - valance] *= 0.8
        return fabric

    def _door(self, color: np.ndarray, frame: np.ndarray, height: int, width: int) -> np.ndarray:
        door = np.empty((height, width, 3), dtype=np.float32)
        door[:] = color
        grain = 1.0 + 0.08 * _noise(self.rng, max(height, width), 2)[:height, :width]
        door *= grain[..., None]
        inset_y, inset_x = max(1, height // 10), max(1, width // 6)
        half = width // 2
        for x0, x1 in ((inset_x, half - inset_x // 2), (half + inset_x // 2, width - inset_x)):
            for y0, y1 in (
                (inset_y, height // 2 - inset_y // 2),
                (height // 2 + inset_y // 2, height - inset_y),
            ):
                if y1 > y0 + 1 and x1 > x0 + 1:
                    door[y0:y1, x0:x1] *= 0.78
                    door[y0, x0:x1] *= 0.7
        door[:, :2] = frame
        door[:, -2:] = frame
        door[:2] = frame
        if self.rng.random() < 0.5:  # glass fanlight
            door[2 : max(3, height // 6)] = door[2 : max(3, height // 6)] * 0.3 + 0.15
        return door

    def _shop(self, frame: np.ndarray, glass: np.ndarray, height: int, width: int) -> np.ndarray:
        rng = self.rng
        shop = np.empty((height, width, 3), dtype=np.float32)
        sign = max(2, int(height * rng.uniform(0.15, 0.25)))
        shop[:sign] = _hsv_color(
            rng, rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.9)
        )
        letters = rng.random((1, max(1, width // 4))) < 0.5
        letter_mask = (
            cv2.resize(letters.astype(np.uint8), (width, 1), interpolation=cv2.INTER_NEAREST)[0] > 0
        )
        shop[sign // 3 : max(sign // 3 + 1, 2 * sign // 3), letter_mask] = rng.uniform(0.85, 1.0)
        inside = np.clip(glass * rng.uniform(1.0, 2.0), 0, 1)
        depth = np.linspace(0.7, 1.1, height - sign, dtype=np.float32)[:, None, None]
        shop[sign:] = inside * depth
        # a diagonal reflection streak and the shop's own mullions
        rows, cols = np.mgrid[0 : height - sign, 0:width].astype(np.float32)
        streak = (
            np.abs((cols - rows * rng.uniform(0.3, 0.8)) - width * rng.uniform(0.2, 0.8))
            < width * 0.12
        )
        shop[sign:][streak] = shop[sign:][streak] * 0.6 + 0.3
        for x in np.linspace(0, width, int(rng.integers(2, 4)) + 1)[1:-1].astype(int):
            shop[sign:, max(0, x - 1) : x + 1] = frame
        shop[sign : sign + 2] = frame
        shop[:, :2] = frame
        shop[:, -2:] = frame
        return shop

    def _railing(
        self, behind: np.ndarray, metal: np.ndarray, stone: np.ndarray, height: int, width: int
    ) -> np.ndarray:
        rail = behind.copy() * 0.75
        pitch = max(3, int(self.size * self.rng.uniform(0.012, 0.025)))
        bars = np.arange(width) % pitch < max(1, pitch // 3)
        rail[:, bars] = metal
        rail[: max(1, height // 8)] = metal
        slab = max(2, height // 4)
        rail[-slab:] = (
            stone[None, None, :] * np.linspace(1.0, 0.7, slab, dtype=np.float32)[:, None, None]
        )
        return rail

    # -- light ----------------------------------------------------------------

    def _shadows(self, protruding: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Drop shadows below protruding parts (cornices, sills, balconies)."""
        rng = self.rng
        down = max(1, int(self.size * rng.uniform(0.008, 0.025)))
        across = int(self.size * rng.uniform(-0.01, 0.01))
        shifted = np.roll(np.roll(protruding, down, axis=0), across, axis=1)
        shifted[:down] = False
        cast = shifted & ~protruding & (labels != SKY) & (labels != BACKGROUND)
        darkness = np.where(cast, rng.uniform(0.55, 0.8), 1.0).astype(np.float32)
        return cv2.GaussianBlur(darkness, (0, 0), 1.0)

    def _illumination(self) -> np.ndarray:
        rng, size = self.rng, self.size
        angle = rng.uniform(0.0, 2.0 * np.pi)
        strength = rng.uniform(0.0, 0.25)
        grid = np.linspace(-0.5, 0.5, size, dtype=np.float32)
        ramp = np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None]
        radius = grid[None, :] ** 2 + grid[:, None] ** 2
        vignette = 1.0 - rng.uniform(0.0, 0.5) * radius
        return (rng.uniform(0.85, 1.1) * (1.0 + strength * ramp) * vignette).astype(np.float32)


def _perspective_jitter(
    rng: np.random.Generator, photo: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Warp photo (bilinear) and labels (nearest) by the same small homography.

    The source quadrilateral lies inside the image, so no border is invented.
    """
    size = photo.shape[0]
    jitter = size * 0.05
    inset = rng.uniform(0.0, jitter, size=(4, 2))
    corners = np.array(
        [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]], dtype=np.float32
    )
    source = corners + (np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * inset).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source.astype(np.float32), corners)
    warped_photo = cv2.warpPerspective(
        photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    warped_labels = cv2.warpPerspective(
        labels, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
    )
    return warped_photo, warped_labels


# ------------------------------------------------------------------------ helpers


def _noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Smooth noise with features about ``cell`` pixels wide. Shape: ``(size, size)`` float32, ~N(0, 1)."""
    cells = max(2, -(-size // max(1, cell)) + 1)
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    if cell <= 1:
        return coarse[:size, :size] if cells >= size else cv2.resize(coarse, (size, size))
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def _hsv_color(rng: np.random.Generator, hue: float, saturation: float, value: float) -> np.ndarray:
    """An RGB colour (float32, 0..1) from HSV components in 0..1."""
    hsv = np.array([[[hue * 360.0 % 360.0, saturation, value]]], dtype=np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _material_color(rng: np.random.Generator) -> np.ndarray:
    """A facade material colour: mostly warm, muted plaster and stone tones, sometimes any hue."""
    warm = rng.uniform(0.02, 0.14)
    return _hsv_color(
        rng,
        hue=warm if rng.random() < 0.75 else rng.uniform(0.0, 1.0),
        saturation=rng.uniform(0.05, 0.45),
        value=rng.uniform(0.45, 0.92),
    )


def _near(rng: np.random.Generator, color: np.ndarray) -> np.ndarray:
    """``color`` with a small random change of tone (the same paint, another batch)."""
    return np.clip(color * rng.uniform(0.9, 1.1) + rng.normal(0.0, 0.02, 3), 0, 1).astype(np.float32)


def _pick(rng: np.random.Generator, colors: list[tuple[float, float, float]]) -> np.ndarray:
    color = np.asarray(colors[int(rng.integers(0, len(colors)))], dtype=np.float32)
    return np.clip(color + rng.normal(0.0, 0.03, 3), 0, 1).astype(np.float32)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
