"""The one rule that pairs two folders' files by name (combine's A/B, make-labels' photo/label map)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.matching import match_by_stem, paired_items, source_items
from pairforge.pairs import FoundFile
from pairforge.pipelines.combine import match_folders


def files(side: str, *relative: str) -> list[FoundFile]:
    """FoundFiles as discover() makes them: ``train/a/x.png`` -> split ``train``, stem ``a/x``."""
    found = []
    for name in relative:
        parts = Path(name).parts
        split = parts[0] if parts[0] in ("train", "val", "test") else ""
        inner = Path(*parts[1:]) if split else Path(name)
        found.append(FoundFile(f"/{side}/{name}", split, inner.with_suffix("").as_posix()))
    return found


def matched(pairs) -> list[tuple[str, str, str]]:  # noqa: ANN001
    return [(pair.main.path, pair.partner.path, pair.split) for pair in pairs]


def reasons(rejects: list[dict[str, str]]) -> dict[str, str]:
    return {row["path"]: row["reason"] for row in rejects}


def test_extension_and_case_are_ignored() -> None:
    pairs, rejects = match_by_stem(files("A", "x.jpg", "Photo.JPG", "y.png"), files("B", "x.png", "photo.png", "Y.tif"))
    assert matched(pairs) == [("/A/x.jpg", "/B/x.png", ""), ("/A/Photo.JPG", "/B/photo.png", ""),
                              ("/A/y.png", "/B/Y.tif", "")]
    assert rejects == []


def test_nested_folders_are_part_of_the_name() -> None:
    pairs, rejects = match_by_stem(files("A", "a/x.png", "b/x.png"), files("B", "a/x.png", "c/x.png"),
                                   "photo", "label map")
    assert matched(pairs) == [("/A/a/x.png", "/B/a/x.png", "")]
    assert reasons(rejects) == {"/A/b/x.png": "unmatched", "/B/c/x.png": "unmatched"}
    details = {row["path"]: row["detail"] for row in rejects}
    assert details["/A/b/x.png"] == "no label map with the same name"
    assert details["/B/c/x.png"] == "no photo with the same name"


def test_duplicate_names_are_all_rejected_never_picked() -> None:
    main = files("A", "x.jpg", "x.png", "Y.png", "y.jpg", "z.png")
    partner = files("B", "x.png", "y.png", "z.png", "z.jpg")
    pairs, rejects = match_by_stem(main, partner)
    assert pairs == []
    assert reasons(rejects) == {
        "/A/x.jpg": "duplicate name", "/A/x.png": "duplicate name", "/B/x.png": "unmatched",
        "/A/Y.png": "duplicate name", "/A/y.jpg": "duplicate name", "/B/y.png": "unmatched",
        "/B/z.png": "duplicate name", "/B/z.jpg": "duplicate name", "/A/z.png": "unmatched",
    }
    details = {row["path"]: row["detail"] for row in rejects}
    assert "/A/x.png" in details["/A/x.jpg"] and "/A/x.jpg" in details["/A/x.png"]
    assert "ambiguous" in details["/B/x.png"] and "/A/x.jpg" in details["/B/x.png"]
    assert "ambiguous" in details["/A/z.png"]


def test_splits_pair_within_a_split_unless_one_folder_is_flat() -> None:
    main = files("A", "train/x.png", "val/x.png", "train/only.png")
    pairs, rejects = match_by_stem(main, files("B", "train/x.png", "test/x.png"))
    assert matched(pairs) == [("/A/train/x.png", "/B/train/x.png", "train")]
    assert reasons(rejects) == {"/A/val/x.png": "unmatched", "/A/train/only.png": "unmatched",
                                "/B/test/x.png": "unmatched"}
    # a flat partner folder: splits are ignored and the pair keeps the photo's split
    pairs, rejects = match_by_stem(files("A", "train/x.png", "val/y.png"), files("B", "x.png", "y.png"))
    assert matched(pairs) == [("/A/train/x.png", "/B/x.png", "train"), ("/A/val/y.png", "/B/y.png", "val")]
    # ... and the other way round the pair takes the partner's split
    pairs, _ = match_by_stem(files("A", "x.png"), files("B", "val/x.png"))
    assert matched(pairs) == [("/A/x.png", "/B/val/x.png", "val")]
    # one name in two splits against a flat folder is ambiguous
    pairs, rejects = match_by_stem(files("A", "train/x.png", "val/x.png"), files("B", "x.png"))
    assert pairs == [] and set(reasons(rejects).values()) == {"duplicate name", "unmatched"}


def test_every_file_is_in_exactly_one_pair_or_reject() -> None:
    main = files("A", "train/a.png", "train/A.jpg", "train/b.png", "val/c.png", "val/d/e.png", "train/f.png")
    partner = files("B", "train/a.png", "train/b.jpg", "val/c.png", "val/c.PNG", "val/d/e.jpg", "val/f.png")
    pairs, rejects = match_by_stem(main, partner)
    used = [pair.main.path for pair in pairs] + [pair.partner.path for pair in pairs] + [r["path"] for r in rejects]
    assert sorted(used) == sorted(entry.path for entry in main + partner)
    assert matched(pairs) == [("/A/train/b.png", "/B/train/b.jpg", "train"), ("/A/val/d/e.png", "/B/val/d/e.jpg", "val")]


def test_items_keep_the_main_name_as_key_and_the_partner_as_extra() -> None:
    pairs, _ = match_by_stem(files("A", "train/Shoes/Red.JPG"), files("B", "train/shoes/red.png"))
    items, collisions = paired_items(pairs, "label", "label")
    assert [(item.key, item.split, item.extras) for item in items] == [
        ("Shoes__Red", "train", (("label", "/B/train/shoes/red.png", "label"),))]
    items, collisions = source_items(files("A", "a b.png", "a_b.png"))
    assert [item.key for item in items] == ["a_b", "a_b-2"] and collisions == {"a_b": ["a b", "a_b"]}


def write(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((32, 32, 3), value, np.uint8)
    image[:, 16:] = 255 - value
    cv2.imwrite(str(path), image)


def test_combine_and_make_labels_follow_the_same_rule(tmp_path: Path) -> None:
    names_a = ["train/x.png", "train/Y.jpg", "train/dup.png", "train/dup.jpg", "val/sub/z.png", "val/lonely.png"]
    names_b = ["train/x.jpg", "train/y.png", "train/dup.png", "val/sub/z.png", "val/other.png"]
    for index, name in enumerate(names_a):
        write(tmp_path / "A" / name, 40 + index)
    for name in names_b:
        write(tmp_path / "B" / name, 7)  # one class id per half: a valid label map as well
    items, rejects = match_folders(tmp_path / "A", tmp_path / "B")
    combined = sorted((item.split, item.key) for item in items)
    assert combined == [("train", "Y"), ("train", "x"), ("val", "sub__z")]
    result = CliRunner().invoke(cli, ["make-labels", str(tmp_path / "A"), "--labels", str(tmp_path / "B"),
                                      "--size", "32", "-o", str(tmp_path / "pairs"), "-j", "1"])
    assert result.exit_code == 0, result.output
    manifest = [json.loads(line) for line in (tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()]
    assert sorted((row["split"], row["key"]) for row in manifest) == combined
    label_rejects = {Path(row["path"]).relative_to(tmp_path).as_posix(): row["reason"]
                     for row in map(json.loads, (tmp_path / "pairs" / "rejects.jsonl").read_text().splitlines())}
    combine_rejects = {Path(row["path"]).relative_to(tmp_path).as_posix(): row["reason"] for row in rejects}
    assert label_rejects == combine_rejects == {
        "A/train/dup.png": "duplicate name", "A/train/dup.jpg": "duplicate name", "B/train/dup.png": "unmatched",
        "A/val/lonely.png": "unmatched", "B/val/other.png": "unmatched"}
    assert "3 unmatched" in result.output
