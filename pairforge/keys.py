"""Sample keys: sanitising, collision resolution and hash-based split assignment."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def sanitize_key(relative_stem: str) -> str:
    """Turn a relative path without extension into a WebDataset-safe key.

    Keys contain only ASCII letters, digits, ``_`` and ``-``: no dots (WebDataset
    splits a file name at its first dot) and no slashes. Non-ASCII letters are
    transliterated where Unicode allows (``café`` -> ``cafe``), the rest become ``_``.

    >>> sanitize_key("shoes/red.v2/IMG 01")
    'shoes__red_v2__IMG_01'
    """
    parts = []
    for part in relative_stem.replace("\\", "/").split("/"):
        ascii_part = unicodedata.normalize("NFKD", part).encode("ascii", "ignore").decode("ascii")
        cleaned = _UNSAFE.sub("_", ascii_part).strip("_")
        if not cleaned:
            cleaned = "x" + hashlib.sha1(part.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        parts.append(cleaned)
    return "__".join(parts)


def unique_keys(stems: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Sanitise many stems and resolve collisions deterministically.

    The stems are processed in sorted order; the first keeps the plain key, later
    ones get ``-2``, ``-3``... appended. The result does not depend on input order.

    Returns:
        (keys in the order of ``stems``, {key: [stems that collided on it]}).
    """
    order = sorted(range(len(stems)), key=lambda i: stems[i])
    taken: set[str] = set()
    keys: list[str] = [""] * len(stems)
    groups: dict[str, list[str]] = {}
    for index in order:
        base = sanitize_key(stems[index])
        groups.setdefault(base, []).append(stems[index])
        key, counter = base, 1
        while key in taken:
            counter += 1
            key = f"{base}-{counter}"
        taken.add(key)
        keys[index] = key
    collisions = {base: names for base, names in groups.items() if len(names) > 1}
    return keys, collisions


def unique_keys_per_split(entries: Sequence[tuple[str, str]]) -> tuple[list[str], dict[str, list[str]]]:
    """:func:`unique_keys` within each split: ``("train", "1")`` and ``("val", "1")`` both keep ``1``.

    Args:
        entries: ``(split, stem)`` pairs.

    Returns:
        (keys in input order, collisions as ``{"split/key": [stems]}``).
    """
    keys: list[str] = [""] * len(entries)
    collisions: dict[str, list[str]] = {}
    by_split: dict[str, list[int]] = {}
    for index, (split, _) in enumerate(entries):
        by_split.setdefault(split, []).append(index)
    for split, indices in by_split.items():
        split_keys, split_collisions = unique_keys([entries[i][1] for i in indices])
        for index, key in zip(indices, split_keys, strict=True):
            keys[index] = key
        collisions.update({f"{split}/{key}" if split else key: names for key, names in split_collisions.items()})
    return keys, collisions


def split_position(key: str) -> float:
    """Where a key falls in [0, 1) for split assignment (a hash: stable across runs and machines)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(key: str, val_fraction: float, test_fraction: float = 0.0) -> str:
    """Deterministic split from a hash of the key (stable across runs and machines)."""
    position = split_position(key)
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def chunk(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
