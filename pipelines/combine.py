"""``combine``: pair two folders of aligned images (A and B) into the official AB layout."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pairforge.descriptions import describe
from pairforge.errors import ConfigError, SampleError, reject_row
from pairforge.matching import match_by_stem, paired_items
from pairforge.pairs import FoundFile, discover
from pairforge.pipelines.base import require_min_side, require_rgb
from pairforge.pipelines.geometry import FitConfig, fit_image, resize
from pairforge.sample import PairSample
from pairforge.sources import SourceItem

SIZE_POLICIES = ("reject", "resize-b")


@dataclass(frozen=True)
class CombineConfig:
    """Options of the combine stage.

    Attributes:
        size_mismatch: ``reject`` pairs whose A and B sizes differ, or ``resize-b``
            to resize B (area/bicubic) to A's size.
        fit: size policy applied to A and B alike after matching (default: keep the size).
    """

    size_mismatch: str = "reject"
    fit: FitConfig = FitConfig(size=None)

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
            raise SampleError("unmatched", "no B image given")
        require_rgb(b, "B")
        require_min_side(image, "A")  # the size every builder needs (pipelines.base)
        require_min_side(b, "B")
        if image.shape[:2] != b.shape[:2]:
            if self.config.size_mismatch == "reject":
                raise SampleError(
                    "size mismatch",
                    f"A is {image.shape[1]}x{image.shape[0]}, B is {b.shape[1]}x{b.shape[0]}"
                    " (use --size-mismatch resize-b to resize B)",
                )
            b = resize(b, image.shape[0], image.shape[1])
        image, b = fit_image(image, self.config.fit), fit_image(b, self.config.fit)
        return PairSample(key, np.ascontiguousarray(image), np.ascontiguousarray(b), {"kind": self.kind})

    def describe(self) -> dict[str, Any]:
        """``{"builder", "config", "provenance"}`` (recorded in pairs.json)."""
        return describe("combine", self.config)


def match_folders(
    a_dir: str | os.PathLike[str], b_dir: str | os.PathLike[str], suffixes: tuple[str, str] | None = None
) -> tuple[list[SourceItem], list[dict[str, str]]]:
    """Match A and B files by name (:func:`pairforge.matching.match_by_stem`), after removing suffixes.

    Args:
        a_dir: folder of A images (``train/``, ``val/``, ``test/`` kept when present).
        b_dir: folder of B images; may equal ``a_dir`` with suffixes.
        suffixes: ``("_A", "_B")``: ``x_A.jpg`` pairs with ``x_B.png`` (as the
            official ``--use_AB``); a file without its side's suffix is rejected.

    Returns:
        (items with a ``b`` extra, reject rows): every file found is in exactly one.
    """
    same = os.path.realpath(a_dir) == os.path.realpath(b_dir)
    if same and suffixes is None:
        raise ConfigError("suffix", None, f"--suffix _A,_B when A and B are the same folder; {suffix_hint(a_dir, b_dir)}")
    a_found, rejects = discover(a_dir)
    if same:
        b_found = a_found
    else:
        b_found, b_rejects = discover(b_dir)
        rejects += b_rejects
    if suffixes is not None:
        a_found, a_rest = _strip_suffix(a_found, suffixes[0])
        taken = {entry.path for entry in a_found} if same else set()
        b_found, b_rest = _strip_suffix([entry for entry in b_found if entry.path not in taken], suffixes[1])
        if same:
            rejects += [reject_row(e.path, "unmatched", f"no {suffixes[0]} or {suffixes[1]} suffix") for e in b_rest]
        else:
            rejects += [reject_row(e.path, "unmatched", f"no {suffixes[0]} suffix (A side)") for e in a_rest]
            rejects += [reject_row(e.path, "unmatched", f"no {suffixes[1]} suffix (B side)") for e in b_rest]
    pairs, unmatched = match_by_stem(a_found, b_found, "A image", "B image")
    items, _ = paired_items(pairs, "b")
    return items, rejects + unmatched


def _strip_suffix(found: list[FoundFile], suffix: str) -> tuple[list[FoundFile], list[FoundFile]]:
    """(files whose stem ends in ``suffix``, with it removed; the other files)."""
    stripped = [replace(entry, stem=entry.stem[: -len(suffix)]) for entry in found if entry.stem.endswith(suffix)]
    return stripped, [entry for entry in found if not entry.stem.endswith(suffix)]


SUFFIX_SEPARATORS = "_-."


def _ending(stem: str) -> str | None:
    name = stem.rsplit("/", 1)[-1]
    cut = max(name.rfind(separator) for separator in SUFFIX_SEPARATORS)
    return name[cut:] if cut > 0 else None


def suffix_hint(a_dir: str | os.PathLike[str], b_dir: str | os.PathLike[str],
                suffixes: tuple[str, str] | None = None) -> str:
    """What to try when A and B files do not pair: the ``--suffix`` their names suggest, if any."""
    a_stems = [entry.stem for entry in discover(a_dir)[0]]
    same = os.path.realpath(a_dir) == os.path.realpath(b_dir)
    b_stems = a_stems if same else [entry.stem for entry in discover(b_dir)[0]]
    guessed = guess_suffixes(a_stems, b_stems)
    if guessed is None or guessed == suffixes:
        return "check that A and B files share their names (extensions and case may differ)"
    return f"the names end in {guessed[0]} and {guessed[1]}: try --suffix {guessed[0]},{guessed[1]}"


def guess_suffixes(a_stems: list[str], b_stems: list[str]) -> tuple[str, str] | None:
    """The ``--suffix`` pair the names suggest, when stems do not match as they are.

    ``photo_A`` / ``photo_B`` (or ``x-input`` / ``x-target``) give ``("_A", "_B")``: the most
    common ending after the last ``_``, ``-`` or ``.`` on each side (for one folder holding
    both sides, its two most common endings), kept when stripping them makes at least half
    of the names meet. Returns None when no such pair exists.
    """

    def ranked(stems: list[str]) -> list[str]:
        counts: dict[str, int] = {}
        for stem in stems:
            end = _ending(stem)
            if end is not None:
                counts[end] = counts.get(end, 0) + 1
        return sorted(counts, key=lambda end: (-counts[end], end))

    a_ends, b_ends = ranked(a_stems), ranked(b_stems)
    if not a_ends or not b_ends:
        return None
    a_end, b_end = a_ends[0], b_ends[0]
    if a_end == b_end:  # one folder with both sides: its two most common endings, A first by name
        if len(a_ends) < 2:
            return None
        a_end, b_end = sorted(a_ends[:2])
    a_base = {stem[: -len(a_end)] for stem in a_stems if stem.endswith(a_end)}
    b_base = {stem[: -len(b_end)] for stem in b_stems if stem.endswith(b_end)}
    if not a_base or not b_base or len(a_base & b_base) * 2 < min(len(a_base), len(b_base)):
        return None
    return a_end, b_end
