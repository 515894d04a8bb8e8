"""What a dataset kind means: the one place that knows what ``edges``, ``gray``, ``labels`` and ``generic`` hold.

A kind is recorded in pairs.json / dataset.json (``kind``). Code that treats kinds
differently asks :func:`of` a question (is A a drawing? a label map? B's lightness? how does
``check`` measure it?) instead of comparing kind strings. A builder registered later declares
its kind with a ``kind_info = Kind(...)`` class attribute (see :func:`pairforge.registry.register`);
an undeclared kind is ``generic`` in all but its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pairforge.errors import ConfigError

MEASURES = ("edges", "gray", "labels", "generic")
"""How ``check`` measures a pair: A's lines vs B's edges, A vs B's lightness, label boundaries vs
B's edges, or the shift of A's structure against B's alone (see ``pairforge.measures``)."""


@dataclass(frozen=True)
class Kind:
    """What A holds in pairs of one kind.

    Attributes:
        name: the kind recorded in pairs.json / dataset.json.
        drawn: A is a drawing (1-px lines, exact colours): shown and resized nearest-neighbour,
            never smoothed; a generated A can be compared with it exactly.
        edge_map: A is black edges on white made by a recorded detector: edge density of A,
            evaluation with the dataset's detector, ``check``'s edge recipe.
        palette: A is a colour-coded label map with a palette: one-hot input, nearest
            resampling, palette checks, segmentation scores.
        lightness: A is B's lightness (colorization): ``--colorspace lab`` fits, with the gray space.
        check_measure: how ``check`` measures its pairs, one of :data:`MEASURES`.
    """

    name: str
    drawn: bool = False
    edge_map: bool = False
    palette: bool = False
    lightness: bool = False
    check_measure: str = "generic"

    def __post_init__(self) -> None:
        if self.check_measure not in MEASURES:
            raise ConfigError("check_measure", self.check_measure, " | ".join(MEASURES))

    @property
    def nearest(self) -> bool:
        """Resample A with nearest neighbours only (label colours must stay exact)."""
        return self.palette


EDGES = Kind("edges", drawn=True, edge_map=True, check_measure="edges")
GRAY = Kind("gray", lightness=True, check_measure="gray")
LABELS = Kind("labels", drawn=True, palette=True, check_measure="labels")
GENERIC = Kind("generic")

_BUILTIN: dict[str, Kind] = {kind.name: kind for kind in (EDGES, GRAY, LABELS, GENERIC)}
_DECLARED: dict[str, Kind] = {}


def of(name: Any) -> Kind:
    """What ``name`` (a recorded kind) means; an unknown kind is generic under its own name."""
    name = str(name or "generic")
    return _BUILTIN.get(name) or _DECLARED.get(name) or Kind(name)


def names() -> tuple[str, ...]:
    """Every known kind, built-ins first (``import --kind`` choices, config validation)."""
    return (*_BUILTIN, *(name for name in _DECLARED if name not in _BUILTIN))


def declare(kind: Kind) -> None:
    """Make ``kind`` known (a registered builder's ``kind_info``); built-in kinds cannot be redefined.

    Raises:
        ConfigError: ``kind`` redefines a built-in kind differently.
    """
    if kind.name in _BUILTIN and _BUILTIN[kind.name] != kind:
        raise ConfigError("kind_info", kind.name, f"a kind other than {' | '.join(_BUILTIN)} (built in)")
    if kind.name not in _BUILTIN:
        _DECLARED[kind.name] = kind


def forget(name: str) -> None:
    """Drop a declared kind (tests unregistering their builder)."""
    _DECLARED.pop(name, None)


def reference_stage(kind: str, lab: bool) -> dict[str, Any]:
    """The stage description recorded for a reference checkpoint imported as ``kind`` (no shard set):
    HED edges or gray lightness at the photo's own size, so ``predict --from-photos`` can make A."""
    fit = {"size": None, "fit": "crop"}
    if of(kind).edge_map:
        return {"builder": kind, "config": {"detector": "hed", "fit": fit}, "provenance": {}}
    if of(kind).lightness:
        return {"builder": kind, "config": {"space": "lab" if lab else "luma", "fit": fit}, "provenance": {}}
    return {}


def measured(name: Any) -> Kind:
    """The built-in kind whose measures ``check`` applies to ``name`` (its ``check_measure``)."""
    return _BUILTIN[of(name).check_measure]
