"""`pairforge combine`: stem and suffix matching, splits, size policy, rejects and summary."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import ConfigError, SampleError
from pairforge.imageio import read_image
from pairforge.pipelines.combine import CombineConfig, CombineStage, match_folders


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_combine_by_stem_keeps_splits_and_reports_rejects(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    a_img, b_img = skimage_photos[0][:48, :64], skimage_photos[1][:48, :64]
    for split in ("train", "val"):
        write(tmp_path / "A" / split / "x.png", a_img)
        write(tmp_path / "B" / split / "x.jpg", b_img)  # extensions differ: still a pair
    write(tmp_path / "A" / "train" / "only_a.png", a_img)
    write(tmp_path / "B" / "train" / "only_b.png", b_img)
    write(tmp_path / "A" / "train" / "big.png", a_img)
    write(tmp_path / "B" / "train" / "big.png", skimage_photos[1][:50, :64])
    (tmp_path / "A" / "train" / "broken.png").write_bytes(b"\x89PNG broken")
    write(tmp_path / "B" / "train" / "broken.png", b_img)
    output = invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "pairs"), "-j", "1")
    pairs = tmp_path / "pairs"
    assert sorted(p.relative_to(pairs).as_posix() for p in pairs.rglob("*.png")) == ["train/x.png", "val/x.png"]
    ab = read_image(pairs / "train" / "x.png")
    assert ab.shape == (48, 128, 3)
    assert np.array_equal(ab[:, :64], a_img)
    rows = {Path(r["path"]).name + ("@B" if "/B/" in r["path"] else ""): r
            for r in map(json.loads, (pairs / "rejects.jsonl").read_text().splitlines())}
    rejects = {name: row["reason"] for name, row in rows.items()}
    # a fixed reason code (group-able) plus the specifics in detail
    assert rejects["only_a.png"] == rejects["only_b.png@B"] == "unmatched"
    assert "no B image" in rows["only_a.png"]["detail"] and "no A image" in rows["only_b.png@B"]["detail"]
    assert rejects["big.png"] == "size mismatch" and "resize-b" in rows["big.png"]["detail"]
    assert "broken.png" in rejects and "size mismatch" not in rejects["broken.png"]
    manifest = [json.loads(line) for line in (pairs / "manifest.jsonl").read_text().splitlines()]
    assert [(row["split"], row["key"]) for row in manifest] == [("train", "x"), ("val", "x")]
    assert all(len(row["sha256"]) == 64 for row in manifest)
    info = json.loads((pairs / "pairs.json").read_text())
    assert info["kind"] == "generic" and info["counts"] == {"train": 1, "val": 1} and "combine" in info["command"]
    # seen = written + rejected: 2+2 pairs' files... counted per A item plus unmatched B files
    assert "seen" in output and "written" in output and "rejected" in output


def test_combine_resize_b_and_jpg_format(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    write(tmp_path / "A" / "k.png", skimage_photos[0][:40, :40])
    write(tmp_path / "B" / "k.png", skimage_photos[1][:80, :80])
    invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "pairs"), "-j", "1",
           "--size-mismatch", "resize-b", "--format", "jpg", "--quality", "90")
    assert read_image(tmp_path / "pairs" / "k.jpg").shape == (40, 80, 3)


def test_suffix_matching_in_one_folder(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    folder = tmp_path / "mixed"
    write(folder / "cat_A.png", skimage_photos[2][:32, :32])
    write(folder / "cat_B.jpg", skimage_photos[2][32:64, :32])
    write(folder / "dog_A.png", skimage_photos[2][:32, :32])
    write(folder / "stray.png", skimage_photos[2][:32, :32])
    items, rejects = match_folders(folder, folder, ("_A", "_B"))
    assert [item.key for item in items] == ["cat"]
    reasons = {Path(r["path"]).name: r["reason"] + ": " + r["detail"] for r in rejects}
    assert "no B image" in reasons["dog_A.png"] and "suffix" in reasons["stray.png"]
    assert len(items) * 2 + len(rejects) == 4  # every file accounted for exactly once
    with pytest.raises(ConfigError):
        match_folders(folder, folder, None)


def test_stage_rejects_size_mismatch_and_bad_arrays(skimage_photos: list[np.ndarray]) -> None:
    stage = CombineStage(CombineConfig())
    with pytest.raises(SampleError, match="size mismatch"):
        stage(skimage_photos[0][:40, :40], "k", b=skimage_photos[0][:48, :40])
    with pytest.raises(SampleError):
        stage(skimage_photos[0][:10, :10, 0], "k", b=skimage_photos[0][:10, :10])
    with pytest.raises(ConfigError):
        CombineConfig(size_mismatch="stretch")


def test_guess_suffixes_from_names() -> None:
    from pairforge.pipelines.combine import guess_suffixes

    assert guess_suffixes(["a_A", "b_A", "c_A"], ["a_B", "b_B"]) == ("_A", "_B")
    assert guess_suffixes(["x-input", "y-input"], ["x-target", "y-target"]) == ("-input", "-target")
    one_folder = ["a_A", "a_B", "b_A", "b_B"]
    assert guess_suffixes(one_folder, one_folder) == ("_A", "_B")
    assert guess_suffixes(["cat", "dog"], ["cat", "dog"]) is None  # nothing to strip
    assert guess_suffixes(["a_A", "b_A"], ["x_B", "y_B"]) is None  # stripping does not make them meet


def test_combine_with_nothing_matched_suggests_the_suffix_and_fails(tmp_path: Path,
                                                                    skimage_photos: list[np.ndarray]) -> None:
    for index in range(3):
        write(tmp_path / "A" / f"img{index}_A.png", skimage_photos[0][:32, :32])
        write(tmp_path / "B" / f"img{index}_B.png", skimage_photos[1][:32, :32])
    result = CliRunner().invoke(cli, ["combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o",
                                      str(tmp_path / "pairs"), "-j", "1"])
    assert result.exit_code != 0
    assert "nothing matched" in result.output and "--suffix _A,_B" in result.output
    assert not (tmp_path / "pairs").exists()  # nothing half-written
    invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "pairs"), "-j", "1",
           "--suffix", "_A,_B")
    assert sorted(p.name for p in (tmp_path / "pairs").glob("*.png")) == ["img0.png", "img1.png", "img2.png"]


def test_combine_size_fit_and_fused_shards(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    for index in range(4):
        write(tmp_path / "A" / f"k{index}.png", skimage_photos[index % len(skimage_photos)][:40, :60])
        write(tmp_path / "B" / f"k{index}.png", skimage_photos[(index + 1) % len(skimage_photos)][:40, :60])
    invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "kept"), "-j", "1")
    assert read_image(tmp_path / "kept" / "k0.png").shape == (40, 120, 3)  # default: the input size
    invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "pairs"), "-j", "1",
           "--size", "32", "--fit", "crop")
    assert read_image(tmp_path / "pairs" / "k0.png").shape == (32, 64, 3)
    assert json.loads((tmp_path / "pairs" / "pairs.json").read_text())["stage"]["config"]["fit"]["size"] == 32
    output = invoke("combine", str(tmp_path / "A"), str(tmp_path / "B"), "--shards", str(tmp_path / "shards"),
                    "--size", "32", "--val-fraction", "0.5", "-j", "1")
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert dataset["kind"] == "generic" and sum(s["count"] for s in dataset["splits"].values()) == 4
    assert "shard ->" in output and not (tmp_path / "pairs" / "train").exists()
