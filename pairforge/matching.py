"""Which input files make which samples: keys, and one rule that pairs two folders' files by name.

``combine`` pairs A images with B images and ``make-labels`` pairs photos with label
maps, both with :func:`match_by_stem` and this rule (README, "Matching files by name"):

1. A file's *name* is its path below its split folder (``train/``, ``val/``, ``test/``...),
   or below the input folder when that has no split folders, without the extension,
   compared ignoring letter case: ``train/shoes/Red.JPG`` is ``shoes/red`` in split
   ``train``. So ``x.jpg`` pairs with ``X.png``; nested folders are part of the name
   (``a/x`` never pairs with ``b/x``).
2. When both folders have split folders, files pair only within one split. When one
   of them is flat, splits are ignored and the pair takes the other folder's split.
3. A name that several files of one folder share is ambiguous: each of those files is
   rejected as ``duplicate name`` (the detail names the others) and the other folder's
   file of that name as ``unmatched``. Nothing is chosen silently.
4. Every other file without a partner is rejected as ``unmatched``, saying what it lacks.

Every file given is in exactly one pair or one reject row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pairforge.errors import reject_row
from pairforge.keys import unique_keys_per_split
from pairforge.pairs import FoundFile
from pairforge.paths import describe_path
from pairforge.sources import SourceItem


@dataclass(frozen=True)
class MatchedPair:
    """Two files with the same name: ``main`` is the sample's input, ``partner`` its extra."""

    main: FoundFile
    partner: FoundFile
    split: str
    """``main``'s split, or ``partner``'s when ``main``'s folder has none."""


def match_name(entry: FoundFile) -> str:
    """The name a file is matched by (rule 1): its stem below the split folder, case folded."""
    return entry.stem.casefold()


def match_by_stem(
    main: Sequence[FoundFile], partner: Sequence[FoundFile], main_noun: str = "A image",
    partner_noun: str = "B image",
) -> tuple[list[MatchedPair], list[dict[str, str]]]:
    """Pair ``main`` files with ``partner`` files by the rule of the module docstring.

    Args:
        main: files of the first folder (photos, A images), from :func:`pairforge.pairs.discover`.
        partner: files of the second folder (label maps, B images).
        main_noun, partner_noun: how reject details name a file of each side.

    Returns:
        (pairs in the order of ``main``, reject rows): every file given is in exactly one.
    """
    by_split = any(e.split for e in main) and any(e.split for e in partner)

    def index(files: Sequence[FoundFile]) -> dict[tuple[str, str], list[FoundFile]]:
        groups: dict[tuple[str, str], list[FoundFile]] = {}
        for entry in files:
            groups.setdefault((entry.split if by_split else "", match_name(entry)), []).append(entry)
        return groups

    main_index, partner_index = index(main), index(partner)
    pairs: list[MatchedPair] = []
    rejects: list[dict[str, str]] = []
    for groups, others, noun, other_noun in ((main_index, partner_index, main_noun, partner_noun),
                                             (partner_index, main_index, partner_noun, main_noun)):
        for name, files in groups.items():
            partners = others.get(name, [])
            if len(files) > 1:
                rejects += _duplicates(files, noun)
            elif len(partners) > 1:
                shown = ", ".join(describe_path(e.path) for e in partners)
                rejects.append(reject_row(files[0].path, "unmatched", f"{len(partners)} {other_noun} files share its "
                                          f"name ({shown}): ambiguous, each rejected as duplicate name"))
            elif not partners:
                rejects.append(reject_row(files[0].path, "unmatched", f"no {other_noun} with the same name"))
            elif groups is main_index:
                pairs.append(MatchedPair(files[0], partners[0], files[0].split or partners[0].split))
    order = {entry.path: position for position, entry in enumerate(main)}
    return sorted(pairs, key=lambda pair: order[pair.main.path]), rejects


def _duplicates(files: Sequence[FoundFile], noun: str) -> list[dict[str, str]]:
    """One ``duplicate name`` row per file of an ambiguous name, each naming the others."""
    rows = []
    for entry in files:
        others = ", ".join(describe_path(other.path) for other in files if other is not entry)
        rows.append(reject_row(entry.path, "duplicate name", f"{others} has the same name ({noun} files; "
                               "extension and case ignored): rename all but one"))
    return rows


def source_items(
    found: Sequence[FoundFile], extras: Sequence[tuple[tuple[str, str, str], ...]] | None = None,
    splits: Sequence[str] | None = None,
) -> tuple[list[SourceItem], dict[str, list[str]]]:
    """One :class:`SourceItem` per file, keyed by its stem, keys unique within each split.

    Args:
        found: the input files.
        extras: per file, the ``(name, path, how)`` extras of its item (default none).
        splits: per file, its item's split (default: the file's own).

    Returns:
        (items, key collisions ``{"split/key": [stems]}``: stems that sanitise to one key,
        renamed ``key``, ``key-2``, ... so none is lost).
    """
    splits = list(splits) if splits is not None else [entry.split for entry in found]
    extras = list(extras) if extras is not None else [()] * len(found)
    keys, collisions = unique_keys_per_split([(split, entry.stem) for split, entry in zip(splits, found, strict=True)])
    items = [SourceItem(key, entry.path, split, extra)
             for key, entry, split, extra in zip(keys, found, splits, extras, strict=True)]
    return items, collisions


def collision_lines(collisions: dict[str, list[str]]) -> list[str]:
    """One warning line per key collision of :func:`source_items`: ``key collision: a b, a.b -> a_b, a_b-2, ...``."""
    lines = []
    for key, names in sorted(collisions.items()):
        shown = ", ".join(describe_path(name) for name in names)  # names may not be valid UTF-8
        lines.append(f"key collision: {shown} -> {key}, {key}-2, ...")
    return lines


def paired_items(
    pairs: Sequence[MatchedPair], extra: str, how: str = "image"
) -> tuple[list[SourceItem], dict[str, list[str]]]:
    """:func:`source_items` for matched pairs: the partner is the item's extra ``extra``, read as ``how``."""
    return source_items([pair.main for pair in pairs], [((extra, pair.partner.path, how),) for pair in pairs],
                        [pair.split for pair in pairs])
