"""A stage's description: ``{"builder", "config", "provenance"}``, and the one adapter for older shapes.

Every stage's ``describe()`` is :func:`describe` of its registry name and config::

    {"builder": "gray", "config": asdict(config), "provenance": {...}}

``provenance`` holds what the config does not say but a reader may check (HED weights
digest, the device and precision it ran on). Rebuilding a stage is
``Stage(config_from_dict(Stage.config_class, d["config"]))``.

pairs.json / dataset.json written before this shape (each builder its own hand-made dict)
are read through :func:`upgrade`, the only code that knows those shapes.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pairforge.errors import ConfigError

RUN_PLACE_FIELDS = ("device", "batch_size", "weights")
"""Config fields that say where and how fast a stage ran, not what it makes (the weights file's
path: its digest is in ``provenance``); a rebuild differing only in them reuses earlier output."""


def describe(builder: str, config: Any, **provenance: Any) -> dict[str, Any]:
    """The description of a stage named ``builder`` with dataclass ``config`` (JSON-ready)."""
    return {"builder": builder, "config": dataclasses.asdict(config), "provenance": provenance}


def config_from_dict(config_class: type, data: dict[str, Any], **overrides: Any) -> Any:
    """``config_class(**data)`` with nested dataclass fields (recorded as dicts) rebuilt as dataclasses.

    Fields missing from ``data`` take their defaults; ``overrides`` replace recorded fields
    (names the class lacks are ignored).

    Raises:
        ConfigError: a key that is not a field, or values that do not make a valid config.
    """
    if not isinstance(data, dict):
        raise ConfigError(config_class.__name__, data, "a JSON object of its fields")
    fields = {item.name for item in dataclasses.fields(config_class)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{config_class.__name__}.{unknown[0]}", data[unknown[0]], " | ".join(sorted(fields)))
    hints = typing.get_type_hints(config_class)
    values = {name: _from_value(hints.get(name), value) for name, value in data.items()}
    values.update({name: value for name, value in overrides.items() if name in fields})
    try:
        return config_class(**values)
    except TypeError as error:
        raise ConfigError(config_class.__name__, data, f"its fields ({error})") from None


def _from_value(hint: Any, value: Any) -> Any:
    """``value`` as the dataclass ``hint`` names (also inside ``X | None``) when it is a dict."""
    if not isinstance(value, dict):
        return value
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return config_from_dict(candidate, value)
    return value


def upgrade(description: dict[str, Any] | None, kind: str = "") -> dict[str, Any]:
    """``description`` in the current shape, whatever pairforge version recorded it (idempotent).

    Args:
        description: a pairs.json ``stage`` or dataset.json ``source.stage`` (``{}`` for none).
        kind: the dataset's kind, naming the builder of an old description that does not.
    """
    old = dict(description or {})
    if not old or ("config" in old and "provenance" in old):
        return old
    old.pop("builder", None)  # the stage's module:Class, now its registry name
    if old.pop("stage", None) == "combine":
        kind = "combine"
    kind = str(old.pop("kind", kind) or kind)
    if "size" in old or isinstance(old.get("fit"), str):  # gray, labels, combine: flat size and fit
        old["fit"] = {"size": old.pop("size", None), "fit": old.get("fit", "crop")}
    config, provenance = _OLD_SHAPES.get(kind, _old_fields)(old)
    return {"builder": kind, "config": config, "provenance": provenance}


def _old_fields(old: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An old description that was its config's fields (gray, combine, registered builders)."""
    return old, {}


def _old_labels(old: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An old labels description: its palette was recorded as :meth:`Palette.to_json`."""
    from pairforge.palettes import Palette

    if isinstance(old.get("palette"), dict):
        old["palette"] = dataclasses.asdict(Palette.from_json(old["palette"]))
    return old, {}


def _old_edges(old: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An old edges description as (config fields, provenance)."""
    config = {"detector": old.get("detector", "hed"), "fit": old.get("fit", {})}
    if config["detector"] == "canny":
        return config, {}
    postprocess = old.get("postprocess") or {}
    config.update(raw=bool(old.get("raw", False)), hed_input=old.get("hed_input", "output"))  # before hed_input: output
    for name in ("hed_max_pixels",):
        if name in old:
            config[name] = old[name]
    for name in ("threshold", "small_edge"):
        if name in postprocess:
            config[name] = postprocess[name]
    provenance = {name: old[name] for name in ("weights", "device", "precision") if name in old}
    return config, provenance


_OLD_SHAPES = {"edges": _old_edges, "labels": _old_labels}
"""Builders whose old description was not their config's fields, by builder name."""


def recipe(description: dict[str, Any] | None, kind: str = "") -> dict[str, Any]:
    """What a description says a stage makes: builder, full config without :data:`RUN_PLACE_FIELDS`, weights digest.

    Two builds with equal recipes write the same pairs (same config on a GPU or with another
    batch size included), so a rebuild reuses the earlier folder.
    """
    from pairforge import registry

    current = upgrade(description, kind)
    config = dict(current.get("config") or {})
    try:
        config = dataclasses.asdict(config_from_dict(registry.builder(str(current.get("builder"))).config_class, config))
    except ConfigError:
        pass  # a builder no longer registered (or never: combine): its recorded fields as they are
    kept = {name: value for name, value in config.items() if name not in RUN_PLACE_FIELDS}
    return {"builder": current.get("builder"), "config": kept,
            "weights": (current.get("provenance") or {}).get("weights")}


def stage_config(source: dict[str, Any] | None) -> dict[str, Any]:
    """The recorded config fields of a dataset.json ``source`` (``{"kind", "stage", ...}``), any version."""
    source = source or {}
    return dict(upgrade(source.get("stage"), str(source.get("kind", ""))).get("config") or {})
