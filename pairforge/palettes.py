"""Label palettes: class ids, names and exact colours, and their JSON form.

A palette is part of the pair-folder and shard formats: ``make-labels`` records
it in ``pairs.json``, ``shard`` carries it into ``dataset.json`` under
``"palette"``, and the trainer one-hot encodes A with it. :class:`Palette` is the
one description of a label space and :meth:`Palette.from_json` the one parser of
that record (:func:`palette_colors` for the trainer's channel colours). The
one-hot channel order is the order of ``classes``, followed by the ignore class
when present.

JSON schema (``Palette.to_json``)::

    {"name": "cityscapes",
     "classes": [{"id": 7, "name": "road", "color": [128, 64, 128], "train_id": 0}, ...],
     "ignore": {"id": 255, "name": "ignore", "color": [0, 0, 0]} or null}

Several classes may share one colour (Cityscapes gives ids 0-4 all black);
reading a colour-coded map then yields the *first* class with that colour, and
one-hot encoders should do the same.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pairforge.errors import ConfigError, SampleError
from pairforge.files import read_regular
from pairforge.imageio import DEFAULT_MAX_PIXELS, pack_rgb, read_label_image, unpack_rgb

log = logging.getLogger(__name__)

Color = tuple[int, int, int]

MAX_LABEL_ID = 65535
"""Largest class id a palette may hold (16-bit label maps)."""

UNKNOWN = -1
"""Channel index returned by the lookups for ids or colours not in the palette."""


@dataclass(frozen=True)
class Palette:
    """An ordered set of classes with exact colours.

    Attributes:
        ids: class ids, unique, each in ``0..65535``.
        names: one name per class.
        colors: one RGB colour per class (components ``0..255``).
        name: palette name recorded in JSON (``cityscapes``, ``auto``, ...).
        train_ids: optional training id per class (Cityscapes convention,
            255 = not trained on); recorded in JSON only.
        ignore_id: id of the ignore class, or ``None`` when there is none.
        ignore_color: colour of the ignore class; must not be a class colour.
        ignore_name: name of the ignore class.
    """

    ids: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[Color, ...]
    name: str = "custom"
    train_ids: tuple[int, ...] | None = None
    ignore_id: int | None = None
    ignore_color: Color | None = None
    ignore_name: str = "ignore"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "colors", tuple(_color(c, "palette.colors") for c in self.colors))
        count = len(self.ids)
        if count == 0:
            raise ConfigError("palette.ids", self.ids, "at least one class")
        if len(self.names) != count or len(self.colors) != count:
            raise ConfigError(
                "palette",
                f"{count} ids, {len(self.names)} names, {len(self.colors)} colors",
                "as many names and colors as ids",
            )
        for class_id in self.ids:
            if not 0 <= class_id <= MAX_LABEL_ID:
                raise ConfigError("palette.ids", class_id, f"ids from 0 to {MAX_LABEL_ID}")
        if len(set(self.ids)) != count:
            duplicates = sorted({i for i in self.ids if self.ids.count(i) > 1})
            raise ConfigError("palette.ids", duplicates, "each id once")
        if self.train_ids is not None:
            object.__setattr__(self, "train_ids", tuple(int(t) for t in self.train_ids))
            if len(self.train_ids) != count:
                raise ConfigError("palette.train_ids", len(self.train_ids), f"{count} train ids")
        if (self.ignore_id is None) != (self.ignore_color is None):
            raise ConfigError(
                "palette.ignore",
                (self.ignore_id, self.ignore_color),
                "both an id and a color, or neither",
            )
        if self.ignore_id is not None:
            object.__setattr__(self, "ignore_id", int(self.ignore_id))
            object.__setattr__(
                self, "ignore_color", _color(self.ignore_color, "palette.ignore.color")
            )
            if not 0 <= self.ignore_id <= MAX_LABEL_ID or self.ignore_id in self.ids:
                raise ConfigError(
                    "palette.ignore.id",
                    self.ignore_id,
                    f"an id from 0 to {MAX_LABEL_ID} that no class uses",
                )
            if self.ignore_color in self.colors:
                raise ConfigError(
                    "palette.ignore.color", self.ignore_color, "a colour that no class uses"
                )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields only, not the lookup tables cached on first use (they are rebuilt)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- channels

    @property
    def channel_colors(self) -> tuple[Color, ...]:
        """Colours in one-hot channel order: the classes, then the ignore class if any."""
        if self.ignore_color is None:
            return self.colors
        return (*self.colors, self.ignore_color)

    @property
    def ignore_index(self) -> int | None:
        """Channel index of the ignore class (the last one), or ``None``."""
        return len(self.ids) if self.ignore_id is not None else None

    @cached_property
    def _color_table(self) -> np.ndarray:
        return np.asarray(self.channel_colors, dtype=np.uint8).reshape(-1, 3)

    @cached_property
    def _id_table(self) -> np.ndarray:
        table = np.full(MAX_LABEL_ID + 1, UNKNOWN, dtype=np.int32)
        table[list(self.ids)] = np.arange(len(self.ids), dtype=np.int32)
        if self.ignore_id is not None:
            table[self.ignore_id] = len(self.ids)
        return table

    @cached_property
    def _packed_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        packed = pack_rgb(self._color_table)
        # The first channel with a colour wins: stable sort, then keep first occurrences.
        order = np.argsort(packed, kind="stable")
        keys, first = np.unique(packed[order], return_index=True)
        return keys, order[first].astype(np.int32)

    # ------------------------------------------------------------------ lookups

    def index_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Channel index of every pixel of a class-id map.

        Args:
            ids: integer array of class ids, any shape.

        Returns:
            int32 array of the same shape; :data:`UNKNOWN` (-1) where the id is
            neither a class nor the ignore id.
        """
        ids = np.asarray(ids)
        if ids.dtype in (np.uint8, np.uint16):
            return self._id_table[ids]
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"class ids must be integers, got {ids.dtype}")
        inside = (ids >= 0) & (ids <= MAX_LABEL_ID)
        index = self._id_table[np.where(inside, ids, 0)]
        index[~inside] = UNKNOWN
        return index

    def index_of_colors(self, rgb: np.ndarray) -> np.ndarray:
        """Channel index of every pixel of a colour-coded map.

        Args:
            rgb: ``(..., 3)`` uint8 colours.

        Returns:
            int32 array of shape ``rgb.shape[:-1]``; :data:`UNKNOWN` (-1) for
            colours that are neither a class colour nor the ignore colour.
        """
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.shape[-1:] != (3,):
            raise ValueError(f"expected (..., 3) uint8 colours, got {rgb.dtype} {rgb.shape}")
        keys, channels = self._packed_lookup
        packed = pack_rgb(rgb)
        position = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        return np.where(keys[position] == packed, channels[position], UNKNOWN).astype(np.int32)

    def colors_of(self, index: np.ndarray) -> np.ndarray:
        """Colour of every channel index.

        Shape:
            ``(...)`` int channel indices in ``0..num_channels-1`` -> ``(..., 3)`` uint8.
        """
        return self._color_table[index]

    # -------------------------------------------------------------- derivations

    def with_ignore(
        self, ignore_id: int | None = None, ignore_color: Color | None = None
    ) -> Palette:
        """This palette with an ignore class (itself when it already has one).

        Args:
            ignore_id: id to use; default 255 when free, else the smallest free id above the classes.
            ignore_color: colour to use; default black, white, or the first free grey.
        """
        if self.ignore_id is not None:
            return self
        if ignore_id is None:
            used = set(self.ids)
            candidates = itertools.chain(
                [255], range(max(used) + 1, MAX_LABEL_ID + 1), range(MAX_LABEL_ID + 1)
            )
            ignore_id = next(i for i in candidates if i not in used)
        if ignore_color is None:
            used_colors = set(self.colors)
            greys = ((v, v, v) for v in (0, 255, *range(1, 255)))
            others = ((r, g, 0) for r in range(256) for g in range(256))
            ignore_color = next(c for c in itertools.chain(greys, others) if c not in used_colors)
        return dataclasses.replace(self, ignore_id=ignore_id, ignore_color=ignore_color)

    # --------------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        """The palette in the schema of the module docstring (JSON-serialisable)."""
        classes = [
            {
                "id": class_id,
                "name": class_name,
                "color": list(color),
                "train_id": None if self.train_ids is None else self.train_ids[position],
            }
            for position, (class_id, class_name, color) in enumerate(
                zip(self.ids, self.names, self.colors, strict=True)
            )
        ]
        ignore = None
        if self.ignore_id is not None and self.ignore_color is not None:
            ignore = {
                "id": self.ignore_id,
                "name": self.ignore_name,
                "color": list(self.ignore_color),
            }
        return {"name": self.name, "classes": classes, "ignore": ignore}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Palette:
        """Rebuild a palette from :meth:`to_json` output.

        Also accepts a plain ``{"<id>": {"name": ..., "color": ...}}`` mapping
        (or ``{"<id>": [name, color]}``); colours may be ``[r, g, b]`` or ``"#rrggbb"``.

        Raises:
            ConfigError: the data does not describe a valid palette.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("palette", type(data).__name__, "a JSON object")
        if "classes" in data:
            classes = data["classes"]
            if not isinstance(classes, Sequence) or isinstance(classes, str):
                raise ConfigError("palette.classes", classes, "a list of {id, name, color} objects")
            entries = [_entry(item, None, position) for position, item in enumerate(classes)]
            name = str(data.get("name") or "custom")
            ignore_data = data.get("ignore")
        else:
            entries = [
                _entry(item, key, position) for position, (key, item) in enumerate(data.items())
            ]
            name, ignore_data = "custom", None
        train = [entry[3] for entry in entries]
        ignore_id = ignore_color = None
        ignore_name = "ignore"
        if ignore_data is not None:
            if (
                not isinstance(ignore_data, Mapping)
                or "id" not in ignore_data
                or "color" not in ignore_data
            ):
                raise ConfigError("palette.ignore", ignore_data, "null or {id, name, color}")
            ignore_id = _int(ignore_data["id"], "palette.ignore.id")
            ignore_color = _color(ignore_data["color"], "palette.ignore.color")
            ignore_name = str(ignore_data.get("name", "ignore"))
        return cls(
            ids=tuple(entry[0] for entry in entries),
            names=tuple(entry[1] for entry in entries),
            colors=tuple(entry[2] for entry in entries),
            name=name,
            train_ids=None
            if all(t is None for t in train)
            else tuple(255 if t is None else t for t in train),
            ignore_id=ignore_id,
            ignore_color=ignore_color,
            ignore_name=ignore_name,
        )


# ------------------------------------------------------------------ constructors


def palette_colors(data: Mapping[str, Any] | None) -> tuple[Color, ...]:
    """One-hot channel colours of a palette as recorded in pairs.json / dataset.json.

    Args:
        data: the recorded ``"palette"`` (:meth:`Palette.to_json` form), or ``None``.

    Returns:
        The classes' colours, then the ignore colour when present; ``()`` for no palette.

    Raises:
        ConfigError: the record is not a valid palette.
    """
    return Palette.from_json(data).channel_colors if data else ()


def load_palette(path: str | os.PathLike[str]) -> Palette:
    """Read a palette JSON file (``--palette FILE.json``).

    Raises:
        ConfigError: the file is missing, not JSON, or not a valid palette.
    """
    path = Path(path)
    try:
        data = json.loads(read_regular(path).decode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            "palette", str(path), f"a readable JSON file ({exc.strerror or exc})"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError("palette", str(path), f"valid JSON ({exc})") from None
    palette = Palette.from_json(data)
    if palette.name == "custom" and not (isinstance(data, Mapping) and data.get("name")):
        palette = dataclasses.replace(palette, name=path.stem)
    return palette


def auto_palette(ids: Iterable[int]) -> Palette:
    """A palette of clearly distinct colours for the given class ids.

    Each id always gets the same colour (the colour depends on the id alone,
    not on which other ids are present), so datasets built separately agree.
    Colours come from interleaving the bits of the id over R, G and B, most
    significant bit of each channel first: ids 0..7 differ in the top bit of
    the channels, so neighbouring ids look very different.

    Args:
        ids: class ids (duplicates allowed), each in ``0..65535``.

    Raises:
        ConfigError: no ids, or an id out of range.
    """
    unique = sorted({int(i) for i in ids})
    if not unique:
        raise ConfigError("palette", "auto", "at least one class id in the label maps")
    return Palette(
        ids=tuple(unique),
        names=tuple(f"class_{i}" for i in unique),
        colors=tuple(distinct_color(i) for i in unique),
        name="auto",
    )


def auto_palette_from_colors(colors: Iterable[Color]) -> Palette:
    """A palette for colour-coded label maps without a palette file.

    Classes are numbered ``0..n-1`` in sorted colour order and keep their colours.
    """
    unique = sorted({_color(c, "palette.colors") for c in colors})
    if not unique:
        raise ConfigError("palette", "auto", "at least one colour in the label maps")
    return Palette(
        ids=tuple(range(len(unique))),
        names=tuple("#{:02x}{:02x}{:02x}".format(*c) for c in unique),
        colors=tuple(unique),
        name="auto",
    )


def nearest_colors(colors: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest ``table`` colour (RGB distance) for each of ``colors``.

    Shape:
        colors ``(N, 3)``, table ``(K, 3)`` -> ``(N,)`` int64; blocks of 4,096 colours bound the memory.
    """
    colors, table = np.asarray(colors, dtype=np.int32), np.asarray(table, dtype=np.int32)
    nearest = np.empty(len(colors), dtype=np.int64)
    for start in range(0, len(colors), 4096):
        block = colors[start : start + 4096]
        nearest[start : start + 4096] = ((block[:, None, :] - table[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    return nearest


def scan_label_ids(labels: Iterable[np.ndarray]) -> tuple[int, ...]:
    """Sorted union of the class ids in single-channel label maps.

    The CLI calls this once over all label maps before a run, so that every
    worker builds the same automatic palette (stages never learn ids as they go).
    """
    found: set[int] = set()
    for label in labels:
        label = np.asarray(label)
        if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
            raise ValueError(
                f"expected an (H, W) integer class-id map, got {label.dtype} {label.shape}"
            )
        found.update(int(v) for v in np.unique(label))
    return tuple(sorted(found))


def scan_label_colors(labels: Iterable[np.ndarray]) -> tuple[Color, ...]:
    """Sorted union of the colours in ``(H, W, 3)`` uint8 colour-coded label maps."""
    found: set[int] = set()
    for label in labels:
        label = np.asarray(label)
        if label.ndim != 3 or label.shape[2] != 3 or label.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 colour label map, got {label.dtype} {label.shape}"
            )
        found.update(int(v) for v in np.unique(pack_rgb(label)))
    return tuple(tuple(int(c) for c in color) for color in unpack_rgb(np.array(sorted(found), dtype=np.int64)))


def auto_palette_for(labels: Iterable[np.ndarray]) -> Palette:
    """The automatic palette for a set of label maps, all ids or all colours.

    Raises:
        ConfigError: the maps mix class-id and colour-coded images, or are empty.
    """
    ids: set[int] = set()
    colors: set[Color] = set()
    for label in labels:
        if np.asarray(label).ndim == 2:
            ids.update(scan_label_ids([label]))
        else:
            colors.update(scan_label_colors([label]))
    if ids and colors:
        raise ConfigError(
            "labels", "mixed", "all class-id maps or all colour-coded maps (or pass --palette)"
        )
    return auto_palette(ids) if ids else auto_palette_from_colors(colors)


def auto_palette_of_files(
    paths: Iterable[str | os.PathLike[str]], max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Callable[[int], Any] | None = None,
) -> Palette:
    """:func:`auto_palette_for` the label map files at ``paths`` (``make-labels`` without ``--palette``).

    A file that cannot be read is skipped here: the run rejects it with its reason.

    Args:
        paths: label map files.
        max_pixels: decoding limit per file.
        on_progress: called with 1 after each file.
    """
    arrays = []
    for path in paths:
        try:
            arrays.append(read_label_image(path, max_pixels))
        except SampleError:
            log.debug("label map %s skipped for the automatic palette", path, exc_info=True)
        if on_progress is not None:
            on_progress(1)
    return auto_palette_for(arrays)


def distinct_color(class_id: int) -> Color:
    """The automatic palette's colour for one id (bit interleaving, see :func:`auto_palette`)."""
    red = green = blue = 0
    value = int(class_id)
    for bit in range(8):
        red |= ((value >> (3 * bit)) & 1) << (7 - bit)
        green |= ((value >> (3 * bit + 1)) & 1) << (7 - bit)
        blue |= ((value >> (3 * bit + 2)) & 1) << (7 - bit)
    return red, green, blue


def builtin_palette(name: str) -> Palette:
    """A palette shipped with pairforge.

    Args:
        name: ``cityscapes`` (label ids 0..33 with the standard colours, names
            and train ids of the Cityscapes benchmark).

    Raises:
        ConfigError: unknown name.
    """
    if name == "cityscapes":
        return Palette(
            ids=tuple(row[0] for row in _CITYSCAPES),
            names=tuple(row[1] for row in _CITYSCAPES),
            colors=tuple(row[3] for row in _CITYSCAPES),
            train_ids=tuple(row[2] for row in _CITYSCAPES),
            name="cityscapes",
        )
    raise ConfigError("palette", name, " | ".join(BUILTIN_PALETTES) + ", or a palette JSON file")


def palette_from_option(value: str) -> Palette:
    """The palette named by a ``--palette`` value: a built-in name or a JSON file path.

    Raises:
        ConfigError: neither a built-in name nor a readable palette file.
    """
    if value in BUILTIN_PALETTES:
        return builtin_palette(value)
    if value.lower().endswith(".json") or Path(value).exists():
        return load_palette(value)
    raise ConfigError("palette", value, " | ".join(BUILTIN_PALETTES) + ", or a palette JSON file")


# Cityscapes label definitions: (id, name, train id, colour); train id 255 = not evaluated.
_CITYSCAPES: tuple[tuple[int, str, int, Color], ...] = (
    (0, "unlabeled", 255, (0, 0, 0)),
    (1, "ego vehicle", 255, (0, 0, 0)),
    (2, "rectification border", 255, (0, 0, 0)),
    (3, "out of roi", 255, (0, 0, 0)),
    (4, "static", 255, (0, 0, 0)),
    (5, "dynamic", 255, (111, 74, 0)),
    (6, "ground", 255, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)),
    (8, "sidewalk", 1, (244, 35, 232)),
    (9, "parking", 255, (250, 170, 160)),
    (10, "rail track", 255, (230, 150, 140)),
    (11, "building", 2, (70, 70, 70)),
    (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)),
    (14, "guard rail", 255, (180, 165, 180)),
    (15, "bridge", 255, (150, 100, 100)),
    (16, "tunnel", 255, (150, 120, 90)),
    (17, "pole", 5, (153, 153, 153)),
    (18, "polegroup", 255, (153, 153, 153)),
    (19, "traffic light", 6, (250, 170, 30)),
    (20, "traffic sign", 7, (220, 220, 0)),
    (21, "vegetation", 8, (107, 142, 35)),
    (22, "terrain", 9, (152, 251, 152)),
    (23, "sky", 10, (70, 130, 180)),
    (24, "person", 11, (220, 20, 60)),
    (25, "rider", 12, (255, 0, 0)),
    (26, "car", 13, (0, 0, 142)),
    (27, "truck", 14, (0, 0, 70)),
    (28, "bus", 15, (0, 60, 100)),
    (29, "caravan", 255, (0, 0, 90)),
    (30, "trailer", 255, (0, 0, 110)),
    (31, "train", 16, (0, 80, 100)),
    (32, "motorcycle", 17, (0, 0, 230)),
    (33, "bicycle", 18, (119, 11, 32)),
)

BUILTIN_PALETTES = ("cityscapes",)


# ----------------------------------------------------------------------- helpers


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(field, value, "an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(field, value, "an integer") from None


def _color(value: Any, field: str) -> Color:
    if isinstance(value, str):
        text = value.strip().lstrip("#")
        if len(text) == 6:
            try:
                return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
            except ValueError:
                pass
        raise ConfigError(field, value, "[r, g, b] with 0..255 components or '#rrggbb'")
    try:
        components = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(field, value, "[r, g, b] with 0..255 components or '#rrggbb'") from None
    if len(components) != 3 or not all(0 <= v <= 255 for v in components):
        raise ConfigError(field, value, "[r, g, b] with 0..255 components or '#rrggbb'")
    return components  # type: ignore[return-value]


def _entry(item: Any, key: Any, position: int) -> tuple[int, str, Color, int | None]:
    """One class from JSON: ``(id, name, color, train_id)``."""
    where = f"palette.classes[{position}]"
    if isinstance(item, Mapping):
        if "color" not in item:
            raise ConfigError(where, item, "an object with a 'color'")
        raw_id = item.get("id", key)
        if raw_id is None:
            raise ConfigError(where, item, "an object with an 'id'")
        class_id = _int(raw_id, f"{where}.id")
        train = item.get("train_id")
        return (
            class_id,
            str(item.get("name", f"class_{class_id}")),
            _color(item["color"], f"{where}.color"),
            None if train is None else _int(train, f"{where}.train_id"),
        )
    if (
        key is not None
        and isinstance(item, Sequence)
        and not isinstance(item, str)
        and len(item) == 2
    ):
        class_id = _int(key, f"{where}.id")
        return class_id, str(item[0]), _color(item[1], f"{where}.color"), None
    raise ConfigError(where, item, "{id, name, color} (or id -> [name, color])")
