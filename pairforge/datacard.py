"""Dataset cards: fill a template from ``data_cards/`` with what the shard run knows.

Fields pairforge cannot know (licence, source, curator, limitations) are left
visibly marked as to be filled, never invented.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from pairforge import __version__
from pairforge.files import write_atomic
from pairforge.storage import child

TO_FILL = "TO BE FILLED (unknown to pairforge; edit this card)"


def size_category(count: int) -> str:
    """Hugging Face size category for a sample count."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "n>1M"


def render_card(
    dataset: dict[str, Any],
    seen: int,
    rejected: dict[str, int],
    commands: list[str],
    license: str | None = None,
    source: str | None = None,
) -> str:
    """Fill the card template for the dataset's kind."""
    from pairforge.registry import card_texts

    kind = dataset.get("kind", "generic")
    texts = card_texts(kind)
    template = Template(resources.files("pairforge.data_cards").joinpath(texts["template"]).read_text("utf-8"))
    splits = dataset.get("splits", {})
    written = sum(entry["count"] for entry in splits.values())
    total_bytes = sum(shard["bytes"] for shard in dataset.get("shards", []))
    stage = dataset.get("source", {}).get("stage", {})
    palette = dataset.get("palette")
    extra = []
    if palette:
        names = ", ".join(c["name"] for c in palette.get("classes", []))
        extra.append(f"- Palette `{palette.get('name', 'custom')}`: {len(palette.get('classes', []))} classes ({names})")
    limitation = texts["limitations"]
    return template.substitute(
        license=license or TO_FILL,
        task_id=texts["task_id"],
        size_category=size_category(written),
        source=source or TO_FILL,
        pretty_name=f"pairforge {kind} pairs",
        description=f"Description of the photographs themselves: {TO_FILL}.",
        kind=kind,
        a_description=texts["a_description"],
        b_description=texts["b_description"],
        curator=TO_FILL,
        version=__version__,
        commands="\n".join(commands) or TO_FILL,
        stage_json=json.dumps(stage, indent=2, sort_keys=True),
        split_rows="\n".join(f"| {split} | {entry['count']} | {len(entry['shards'])} |" for split, entry in sorted(splits.items())),
        seen=seen,
        written=written,
        rejected=sum(rejected.values()),
        reject_rows="\n".join(f"- {reason}: {count}" for reason, count in sorted(rejected.items())) or "No input was rejected.",
        a_channels=dataset.get("a_channels"),
        b_format=(dataset.get("b_format") or "jpg").upper(),
        shard_count=len(dataset.get("shards", [])),
        total_bytes=f"{total_bytes / 1e6:.1f} MB",
        extra_statistics="\n".join(extra),
        limitations=(limitation + "\n\n" if limitation else "") + f"Biases of the source photographs: {TO_FILL}.",
        license_section=(
            f"The images are distributed under: {license}." if license else f"Licence of the source images: {TO_FILL}."
        ),
    )


def write_card(out_dir: str | Path, text: str) -> Path:
    """Write ``DATA_CARD.md`` in ``out_dir`` (a folder or a URL, :mod:`pairforge.storage`); returns where."""
    path = child(out_dir, "DATA_CARD.md")
    write_atomic(path, text)
    return path
