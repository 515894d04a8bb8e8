"""The one ``--device`` rule: ``auto`` picks CUDA when there is one, ``cuda`` without CUDA is an error.

The core does not import torch at module level (``pairforge --help`` stays fast, and
the photo-only commands never load it); torch is imported when a device is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pairforge.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str, index: int | None = None) -> torch.device:
    """The torch device for a ``--device`` choice.

    Args:
        choice: ``auto``, ``cpu`` or ``cuda``.
        index: the CUDA device index (the DDP local rank); ``None`` for the current device.

    Raises:
        ConfigError: an unknown choice, or ``cuda`` on a machine without CUDA.
    """
    import torch

    if choice not in DEVICES:
        raise ConfigError("device", choice, " | ".join(DEVICES))
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", choice, "auto or cpu (CUDA is not available here)")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda") if index is None else torch.device("cuda", index)


def device_name(choice: str) -> str:
    """``cpu`` or ``cuda`` for a ``--device`` choice: the device string inference and serving take.

    Raises:
        ConfigError: as :func:`resolve_device`.
    """
    return resolve_device(choice).type
