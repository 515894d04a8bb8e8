"""The pair-builder registry: name -> stage class, and what the tool needs to know about each.

A builder is one stage class (see :class:`pairforge.pipelines.base.Stage`) registered
here under a name. The class carries everything the rest of the tool reads:

- ``kind`` and ``a_channels``: recorded in pairs.json / dataset.json;
- ``config_class``: its config dataclass; ``Stage(config_class(**fields))`` builds it;
- ``card_template`` (a file of ``data_cards/``) and ``card`` (texts for the data card);
- ``workers_hint(config)``: ``(processes, reason)`` replacing the all-cores default of
  ``-j`` (torch stages such as HED: one process, torch already uses every core);
- ``rebuildable`` and ``from_description(description, fit, weights, device)``: how
  ``predict --from-photos`` rebuilds the stage from the ``describe()`` a dataset recorded.

Only ``kind``, ``a_channels`` and ``config_class`` are required; the rest have defaults
here (generic card, all cores, rebuild with ``Stage(Config(**describe()))``). Adding a
builder is one stage file plus one :func:`register` call (or one line in ``_BUILTIN``)::

    register("depth", DepthStage)

The built-in stages are named by ``module:Class`` so that importing this module does not
import numpy-heavy pipelines (or torch) until a builder is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

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
    _REGISTERED[name] = stage_class
    return stage_class


def unregister(name: str) -> None:
    """Forget a builder registered with :func:`register` (tests)."""
    _REGISTERED.pop(name, None)


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
        return {"template": "generic.md", **(GENERIC_CARD if kind == "generic" else UNKNOWN_CARD)}
    return {"template": getattr(stage_class, "card_template", "generic.md"), **UNKNOWN_CARD,
            **getattr(stage_class, "card", {})}


def workers_hint(stage_class: type, config: Any) -> tuple[int | None, str]:
    """``(processes, reason)`` the stage asks for instead of all cores; ``(None, "")`` for no preference."""
    hint = getattr(stage_class, "workers_hint", None)
    return hint(config) if hint is not None else (None, "")


def rebuildable_kinds() -> list[str]:
    """Kinds whose A a registered stage can make from a photo alone."""
    return [builder(name).kind for name in names() if getattr(builder(name), "rebuildable", True)]


def config_from_description(config_class: type, description: dict[str, Any], **overrides: Any) -> Any:
    """``config_class(**fields)`` from a recorded ``describe()`` dict (``dataclasses.asdict`` of a config).

    Keys that are not fields (``kind``, ``builder``...) are ignored; a nested dataclass field
    recorded as a dict is rebuilt as that dataclass; ``overrides`` replace recorded fields.

    Raises:
        ConfigError: the recorded values do not make a valid config.
    """
    values: dict[str, Any] = {}
    hints = _field_types(config_class)
    for item in dataclasses.fields(config_class):
        if item.name in overrides:
            values[item.name] = overrides[item.name]
        elif item.name in description:
            value = description[item.name]
            nested = hints.get(item.name)
            if isinstance(value, dict) and nested is not None:
                value = config_from_description(nested, value)
            values[item.name] = value
    try:
        return config_class(**values)
    except TypeError as error:
        raise ConfigError("stage", description, f"the fields of {config_class.__name__} ({error})") from None


def _field_types(config_class: type) -> dict[str, type]:
    """Fields of ``config_class`` whose default is a dataclass instance, with that dataclass."""
    nested = {}
    for item in dataclasses.fields(config_class):
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            nested[item.name] = type(default)
    return nested


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


def stage_from_description(
    stage_class: type, description: dict[str, Any], fit: Any, weights: str | None = None, device: str = "auto"
) -> Any:
    """``stage_class`` rebuilt from its recorded ``describe()``, producing A at ``fit``.

    A stage class may define ``from_description`` (the built-in stages recorded a
    hand-written description, older datasets fewer fields); otherwise the description is its
    config's fields (``asdict``): ``Stage(Config(**description))`` with ``fit`` replaced.

    Raises:
        ConfigError: the description is unusable.
    """
    custom = getattr(stage_class, "from_description", None)
    if custom is not None:
        return custom(description, fit, weights=weights, device=device)
    return stage_class(config_from_description(stage_class.config_class, description, fit=fit))
