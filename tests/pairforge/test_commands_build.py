"""make-gray / make-labels / make-edges / synth facades through the CLI, including the fused --shards mode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner
from PIL import Image

from pairforge.cli import cli


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def samples(shards: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for sample in wds.WebDataset(sorted(str(p) for p in shards.glob("*.tar")), shardshuffle=False, empty_check=False):
        out[sample["__key__"]] = {k: np.asarray(Image.open(io.BytesIO(v))) for k, v in sample.items() if k.endswith(("png", "jpg"))}
    return out


@pytest.fixture()
def photo_dir(tmp_path: Path, skimage_photos: list[np.ndarray]) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for index, photo in enumerate(skimage_photos):
        small = cv2.resize(photo, (96, 72), interpolation=cv2.INTER_AREA)
        target = folder / ("sub" if index % 2 else "") / f"photo {index}.JPG"
        cv2.imwrite(str(target), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    gray = cv2.cvtColor(cv2.resize(skimage_photos[0], (96, 72)), cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(folder / "already_gray.png"), gray)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return folder


def test_make_gray_pairs_then_shard_equals_fused_mode(tmp_path: Path, photo_dir: Path) -> None:
    output = invoke("make-gray", str(photo_dir), "-o", str(tmp_path / "pairs"), "--size", "64", "-j", "1")
    assert "already grayscale" in output and "seen" in output
    rows = [json.loads(line) for line in (tmp_path / "pairs" / "rejects.jsonl").read_text().splitlines()]
    assert {Path(r["path"]).name for r in rows} == {"already_gray.png", "broken.jpg"}
    manifest = (tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 4 and len(manifest) + len(rows) == 6  # inputs seen = written + rejected
    info = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    assert info["kind"] == "gray" and info["a_channels"] == 1 and info["stage"]["config"]["space"] == "luma"
    assert "make-gray" in info["command"]
    ab = cv2.imread(str(next((tmp_path / "pairs").glob("*.png"))))
    assert ab.shape == (64, 128, 3)
    invoke("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "two_pass"), "-j", "1")
    invoke("make-gray", str(photo_dir), "--shards", str(tmp_path / "fused"), "--size", "64", "-j", "1")
    assert not (tmp_path / "fused" / "train").exists()
    two_pass, fused = samples(tmp_path / "two_pass"), samples(tmp_path / "fused")
    assert sorted(two_pass) == sorted(fused) and len(fused) == 4
    for key in fused:
        assert fused[key]["a.png"].ndim == 2
        assert np.array_equal(fused[key]["a.png"], two_pass[key]["a.png"])
        assert np.array_equal(fused[key]["b.jpg"], two_pass[key]["b.jpg"])
    dataset = json.loads((tmp_path / "fused" / "dataset.json").read_text())
    assert dataset["kind"] == "gray" and dataset["a_channels"] == 1 and dataset["source"]["stage"]["config"]["space"] == "luma"
    fused_rejects = (tmp_path / "fused" / "rejects.jsonl").read_text().splitlines()
    assert len(fused_rejects) == 2


def test_make_edges_canny_fused_is_deterministic_across_workers(tmp_path: Path, photo_dir: Path) -> None:
    for workers in ("1", "2"):
        invoke("make-edges", str(photo_dir), "--detector", "canny", "--size", "64", "--shards", str(tmp_path / workers),
               "-j", workers, "--samples-per-shard", "2")
    one = {p.name: p.read_bytes() for p in (tmp_path / "1").glob("*.tar")}
    two = {p.name: p.read_bytes() for p in (tmp_path / "2").glob("*.tar")}
    assert one and one == two
    edges = samples(tmp_path / "1")
    a = next(iter(edges.values()))["a.png"]
    assert a.ndim == 2 and set(np.unique(a)) <= {0, 255} and (a == 0).mean() < 0.5  # black edges on white


def test_synth_facades_into_make_labels(tmp_path: Path) -> None:
    invoke("synth", "facades", "-o", str(tmp_path / "facades"), "--count", "6", "--size", "64")
    palette = json.loads((tmp_path / "facades" / "palette.json").read_text())
    invoke("make-labels", str(tmp_path / "facades" / "photos"), "--labels", str(tmp_path / "facades" / "labels"),
           "--palette", str(tmp_path / "facades" / "palette.json"), "--size", "64", "-o", str(tmp_path / "pairs"), "-j", "1")
    info = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    assert info["kind"] == "labels" and info["palette"]["classes"] == palette["classes"]
    colors = {tuple(c["color"]) for c in palette["classes"]}
    for path in (tmp_path / "pairs").glob("*.png"):
        ab = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert {tuple(c) for c in ab[:, :64].reshape(-1, 3)} <= colors
    invoke("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1")
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert dataset["palette"]["classes"] == palette["classes"] and dataset["a_channels"] == 3


def test_make_labels_auto_palette_and_unmatched(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "labels").mkdir()
    for index in range(3):
        cv2.imwrite(str(tmp_path / "photos" / f"p{index}.png"), cv2.resize(skimage_photos[index], (32, 32)))
    ids = np.zeros((32, 32), np.uint8)
    ids[:, 16:] = 7
    for index in (0, 1, 5):
        cv2.imwrite(str(tmp_path / "labels" / f"p{index}.png"), ids + index)
    output = invoke("make-labels", str(tmp_path / "photos"), "--labels", str(tmp_path / "labels"), "--size", "32",
                    "-o", str(tmp_path / "pairs"), "-j", "1")
    assert "unmatched" in output
    info = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    assert sorted(c["id"] for c in info["palette"]["classes"]) == [0, 1, 7, 8]
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "pairs" / "rejects.jsonl").read_text().splitlines()]
    assert len(reasons) == 2 and all("unmatched" in r for r in reasons)


def test_missing_hed_weights_is_a_clear_error(tmp_path: Path, photo_dir: Path) -> None:
    bogus = tmp_path / "weights.h5"
    bogus.write_bytes(b"not hdf5")
    result = CliRunner().invoke(cli, ["make-edges", str(photo_dir), "--weights", str(bogus), "-o", str(tmp_path / "p")])
    assert result.exit_code != 0 and "weights" in result.output.lower()
    assert "Traceback" not in result.output
