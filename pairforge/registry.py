"""The pair-builder registry: name -> stage class, and what the tool needs to know about each.

A builder is one stage class (see :class:`pairforge.pipelines.base.Stage`) registered
here under a name. The class carries everything the rest of the tool reads:

- ``kind`` and ``a_channels``: recorded in pairs.json / dataset.json;
- ``config_class``: its config dataclass; ``Stage(config_class(**fields))`` builds it;
- ``card_template`` (a file of ``data_cards/``) and ``card`` (texts for the data card);
- ``workers_hint(config)``: ``(processes, reason)`` replacing the all-cores default of
  ``-j`` (torch stages such as HED: one process, torch already uses every core);
- ``kind_info``: a :class:`pairforge.kinds.Kind` saying what its A is and how ``check``
  measures it (an undeclared new kind is checked as ``generic``);
- ``rebuildable``: whether ``predict --from-photos`` can rebuild the stage from the ``describe()``
  a dataset recorded (``{"builder": name, "config": asdict(config), "provenance"}``).

Only ``kind``, ``a_channels`` and ``config_class`` are required; the rest have defaults
here (generic card, all cores, rebuild with ``Stage(Config(**describe()["config"]))``). Adding a
builder is one stage file plus one :func:`register` call (or one line in ``_BUILTIN``)::

    register("depth", DepthStage)

The built-in stages are named by ``module:Class`` so that importing this module does not
import numpy-heavy pipelines (or torch) until a builder is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from pairforge import kinds
from pairforge.descriptions import config_from_dict, upgrade
from pairforge.errors import ConfigError

_BUILTIN: dict[str, str] = {
    "edges": "pairforge.pipelines.edges:EdgesStage",
    "gray": "pairforge.pipelines.gray:GrayStage",
    "labels": "pairforge.pipelines.labels:LabelsStage",
}
_REGISTERED: dict[str, type] = {}

GENERIC_CARD: dict[str, str] = {
    "a_description": "RGB image",
    "b_description": "RGB image",
    "limitations": "",
    "task_id": "image-to-image",
}
"""Data-card texts of a kind no builder declares (``combine``'s generic pairs, unknown kinds)."""


def register(name: str, stage_class: type) -> type:
    """Register ``stage_class`` as the builder ``name`` (replacing an earlier one of that name).

    Raises:
        ConfigError: the class lacks ``kind``, ``a_channels`` or a dataclass ``config_class``.
    """
    for attribute in ("kind", "a_channels", "config_class"):
        if not hasattr(stage_class, attribute):
            raise ConfigError(f"{stage_class.__name__}.{attribute}", None, "a class attribute of every builder stage")
    if not dataclasses.is_dataclass(stage_class.config_class):
        raise ConfigError(f"{stage_class.__name__}.config_class", stage_class.config_class, "a dataclass")
    kind_info = getattr(stage_class, "kind_info", None)
    if kind_info is not None:
        kinds.declare(kind_info)
    _REGISTERED[name] = stage_class
    return stage_class


def unregister(name: str) -> None:
    """Forget a builder registered with :func:`register` (tests)."""
    stage_class = _REGISTERED.pop(name, None)
    if stage_class is not None and getattr(stage_class, "kind_info", None) is not None:
        kinds.forget(stage_class.kind_info.name)


def names() -> list[str]:
    """Every builder name, built-ins first."""
    return list(_BUILTIN) + [name for name in _REGISTERED if name not in _BUILTIN]


def builder(name: str) -> type:
    """The stage class registered as ``name``.

    Raises:
        ConfigError: no builder of that name.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise ConfigError("builder", name, " | ".join(names()))
    return load_target(_BUILTIN[name])


def name_of(stage_class: type) -> str:
    """The name ``stage_class`` is registered under (its ``kind`` when it is not registered)."""
    for name in names():
        if name in _REGISTERED and _REGISTERED[name] is stage_class or target(stage_class) == _BUILTIN.get(name):
            return name
    return str(stage_class.kind)


def load_target(target: str) -> type:
    """The class a ``module:Class`` target names (imported, not built)."""
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def builder_for_kind(kind: str) -> type | None:
    """The stage class whose ``kind`` is ``kind`` (first registered wins), or ``None``."""
    for name in names():
        stage_class = builder(name)
        if stage_class.kind == kind:
            return stage_class
    return None


def target(stage_class: type) -> str:
    """``module:Class`` of a stage class: the picklable recipe workers import (and pairs.json records)."""
    return f"{stage_class.__module__}:{stage_class.__qualname__}"


UNKNOWN_CARD: dict[str, str] = {
    "a_description": "image",
    "b_description": "RGB photo",
    "limitations": "",
    "task_id": "image-to-image",
}
"""Data-card texts of a builder that declares none."""


def card_texts(kind: str) -> dict[str, str]:
    """Data-card template file and texts for ``kind`` (the generic card when no builder makes it)."""
    stage_class = builder_for_kind(kind)
    if stage_class is None:
        return {"template": "generic.md", **(GENERIC_CARD if kinds.of(kind) is kinds.GENERIC else UNKNOWN_CARD)}
    return {"template": getattr(stage_class, "card_template", "generic.md"), **UNKNOWN_CARD,
            **getattr(stage_class, "card", {})}


def workers_hint(stage_class: type, config: Any) -> tuple[int | None, str]:
    """``(processes, reason)`` the stage asks for instead of all cores; ``(None, "")`` for no preference."""
    hint = getattr(stage_class, "workers_hint", None)
    return hint(config) if hint is not None else (None, "")


def rebuildable_kinds() -> list[str]:
    """Kinds whose A a registered stage can make from a photo alone."""
    return [builder(name).kind for name in names() if getattr(builder(name), "rebuildable", True)]


def rebuildable_builder(kind: str) -> type:
    """The stage class that makes ``kind``, when it can make A from a photo alone.

    Raises:
        ConfigError: no builder makes ``kind``, or its A needs more than a photo (label maps...).
    """
    stage_class = builder_for_kind(kind)
    if stage_class is None or not getattr(stage_class, "rebuildable", True):
        why = getattr(stage_class, "not_rebuildable_because", "") if stage_class is not None else ""
        raise ConfigError(
            "kind", kind, f"{' or '.join(rebuildable_kinds())}: only those datasets can rebuild A from photos "
            f"({why or 'generic pairs were combined from two folders'})"
        )
    return stage_class


def rebuild_stage(description: dict[str, Any], kind: str = "", **overrides: Any) -> Any:
    """The stage a recorded ``describe()`` came from: ``Stage(Config(**description["config"]))``.

    Args:
        description: ``{"builder", "config", "provenance"}`` (older shapes are upgraded).
        kind: the dataset's kind (names the builder of an old description).
        **overrides: config fields to replace (``fit``, HED ``weights`` and ``device``...; names
            the stage's config lacks are ignored).

    Raises:
        ConfigError: an unknown builder, or a recorded config that is not valid.
    """
    current = upgrade(description, kind)
    stage_class = builder(str(current.get("builder")))
    return stage_class(config_from_dict(stage_class.config_class, current.get("config") or {}, **overrides))
