"""``combine``: pair two folders of aligned images (A and B) into the official AB layout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pairforge.errors import ConfigError, SampleError
from pairforge.keys import unique_keys_per_split
from pairforge.pairs import FoundFile, discover
from pairforge.pipelines.base import require_rgb
from pairforge.pipelines.geometry import resize
from pairforge.sample import PairSample
from pairforge.sources import SourceItem

SIZE_POLICIES = ("reject", "resize-b")


@dataclass(frozen=True)
class CombineConfig:
    """Options of the combine stage.

    Attributes:
        size_mismatch: ``reject`` pairs whose A and B sizes differ, or ``resize-b``
            to resize B (area/bicubic) to A's size.
    """

    size_mismatch: str = "reject"

    def __post_init__(self) -> None:
        if self.size_mismatch not in SIZE_POLICIES:
            raise ConfigError("size_mismatch", self.size_mismatch, " | ".join(SIZE_POLICIES))


class CombineStage:
    """Stage: A is the input image, B arrives as keyword ``b``; both RGB uint8."""

    kind = "generic"
    a_channels = 3

    def __init__(self, config: CombineConfig) -> None:
        self.config = config

    def __call__(self, image: np.ndarray, key: str, b: np.ndarray | None = None) -> PairSample:
        require_rgb(image, "A")
        if b is None:
            raise SampleError("no B image given")
        require_rgb(b, "B")
        if image.shape[:2] != b.shape[:2]:
            if self.config.size_mismatch == "reject":
                raise SampleError(
                    f"size mismatch: A is {image.shape[1]}x{image.shape[0]}, B is {b.shape[1]}x{b.shape[0]}"
                    " (use --size-mismatch resize-b to resize B)"
                )
            b = resize(b, image.shape[0], image.shape[1])
        return PairSample(key, image, b, {"kind": self.kind})

    def describe(self) -> dict[str, Any]:
        return {"stage": "combine", "size_mismatch": self.config.size_mismatch}


def match_folders(
    a_dir: str | os.PathLike[str], b_dir: str | os.PathLike[str], suffixes: tuple[str, str] | None = None
) -> tuple[list[SourceItem], list[dict[str, str]]]:
    """Match A and B files by split and stem (extensions may differ), or by suffix.

    Args:
        a_dir: folder of A images (``train/``, ``val/``, ``test/`` kept when present).
        b_dir: folder of B images, same layout; may equal ``a_dir`` with suffixes.
        suffixes: ``("_A", "_B")``: ``x_A.jpg`` pairs with ``x_B.png`` (as the
            official ``--use_AB``).

    Returns:
        (items with a ``b`` extra, reject rows): every file found is in exactly one.
    """
    same = os.path.realpath(a_dir) == os.path.realpath(b_dir)
    if same and suffixes is None:
        raise ConfigError("suffix", None, "--suffix _A,_B when A and B are the same folder")
    a_found, rejects = discover(a_dir)
    if same:
        b_found = a_found
    else:
        b_found, b_rejects = discover(b_dir)
        rejects += b_rejects
    a_suffix, b_suffix = suffixes if suffixes else (None, None)
    a_side, a_rest, a_dups = _by_stem(a_found, a_suffix, "A")
    b_side, b_rest, b_dups = _by_stem(b_found, b_suffix, "B")
    rejects += a_dups + b_dups
    if same:
        claimed = {entry.path for entry in a_side.values()} | {entry.path for entry in b_side.values()}
        claimed |= {row["path"] for row in a_dups + b_dups}
        rest = [entry for entry in a_rest if entry.path not in claimed]
        rejects += [{"path": e.path, "reason": f"no {a_suffix} or {b_suffix} suffix"} for e in rest]
    else:
        rejects += [{"path": e.path, "reason": f"no {a_suffix} suffix (A side)"} for e in a_rest]
        rejects += [{"path": e.path, "reason": f"no {b_suffix} suffix (B side)"} for e in b_rest]
    for missing in sorted(set(a_side) - set(b_side)):
        rejects.append({"path": a_side[missing].path, "reason": "unmatched: no B image with the same name"})
    for missing in sorted(set(b_side) - set(a_side)):
        rejects.append({"path": b_side[missing].path, "reason": "unmatched: no A image with the same name"})
    common = sorted(set(a_side) & set(b_side))
    keys, _ = unique_keys_per_split(common)
    items = [
        SourceItem(key, a_side[match].path, match[0], (("b", b_side[match].path, "image"),))
        for key, match in zip(keys, common, strict=True)
    ]
    return items, rejects


def _by_stem(
    found: list[FoundFile], suffix: str | None, side: str
) -> tuple[dict[tuple[str, str], FoundFile], list[FoundFile], list[dict[str, str]]]:
    """Index files by (split, stem without suffix); returns (index, files without the suffix, duplicates)."""
    index: dict[tuple[str, str], FoundFile] = {}
    rest: list[FoundFile] = []
    duplicates: list[dict[str, str]] = []
    for entry in found:
        stem = entry.stem
        if suffix is not None:
            if not stem.endswith(suffix):
                rest.append(entry)
                continue
            stem = stem[: -len(suffix)]
        match = (entry.split, stem)
        if match in index:
            reason = f"duplicate name: {index[match].path} has the same stem ({side} side)"
            duplicates.append({"path": entry.path, "reason": reason})
            continue
        index[match] = entry
    return index, rest, duplicates
