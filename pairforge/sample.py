"""The unit of work every pair builder produces: one aligned (A, B) image pair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PairSample:
    """One aligned training pair.

    Attributes:
        key: identifier of the sample, unique within a dataset (no dots or slashes).
        a: input image, ``(H, W)`` or ``(H, W, C)`` uint8 (C = 1 or 3, RGB order).
        b: target image, ``(H, W, 3)`` uint8 RGB.
        meta: small JSON-serialisable facts about how the pair was made.
    """

    key: str
    a: np.ndarray
    b: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.a.dtype != np.uint8 or self.b.dtype != np.uint8:
            raise ValueError(f"pair {self.key!r}: A and B must be uint8, got {self.a.dtype}, {self.b.dtype}")
        if self.a.shape[:2] != self.b.shape[:2]:
            raise ValueError(
                f"pair {self.key!r}: A {self.a.shape[:2]} and B {self.b.shape[:2]} differ in size"
            )

    @property
    def a_channels(self) -> int:
        return 1 if self.a.ndim == 2 else int(self.a.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) shared by A and B."""
        return int(self.b.shape[0]), int(self.b.shape[1])
