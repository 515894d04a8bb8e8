"""Data cards: the template for the kind, filled with what shard knows; the rest marked TO BE FILLED."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.datacard import TO_FILL, render_card, size_category
from pairforge.pairs import PairsInfo


def test_shard_writes_card_with_license_and_source(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 6, size=32)
    PairsInfo(kind="gray", a_channels=1, stage={"space": "luma"}, command="pairforge make-gray photos/").write(tmp_path / "pairs")
    result = CliRunner().invoke(cli, ["shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1",
                                      "--license", "CC-BY-4.0", "--source", "my holiday photos"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = (tmp_path / "shards" / "DATA_CARD.md").read_text()
    front = card.split("---")[1]
    assert "license: CC-BY-4.0" in front and "my holiday photos" in front and "n<1K" in front
    assert "image-colorization" in front
    assert "pairforge make-gray photos/" in card and "pairforge shard" in card  # the exact commands
    assert "## Splits and counts" in card and "## Known limitations and biases" in card
    assert TO_FILL in card  # curator and biases are not invented
    assert "colourisation" in card.lower() or "colorization" in card.lower()


def test_unknown_fields_stay_marked() -> None:
    dataset = {"kind": "labels", "a_channels": 3, "b_format": "jpg", "shards": [{"bytes": 10}],
               "splits": {"train": {"count": 3, "shards": ["train-000000.tar"]}},
               "palette": {"classes": [{"id": 1, "name": "wall", "color": [0, 0, 255]}]}, "source": {}}
    card = render_card(dataset, seen=4, rejected={"unknown ids": 1}, commands=["pairforge make-labels p --labels l"])
    assert card.count(TO_FILL) >= 4 and "license: " + TO_FILL in card
    assert "wall" in card and "unknown ids: 1" in card


def test_size_categories() -> None:
    assert size_category(10) == "n<1K" and size_category(5000) == "1K<n<10K" and size_category(2_000_000) == "n>1M"
