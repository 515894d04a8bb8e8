"""`pairforge shard`: round trip, official layout, bad inputs, determinism, crash and resume, clusters."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner
from PIL import Image

from pairforge.cli import cli
from pairforge.imageio import read_image
from pairforge.pairs import PairsInfo


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def read_back(shards: Path) -> dict[str, dict[str, object]]:
    """Every sample of every tar, through plain webdataset."""
    urls = sorted(str(p) for p in shards.glob("*.tar"))
    samples = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        samples[sample["__key__"]] = sample
    return samples


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def tar_bytes(shards: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(shards.glob("*.tar"))}


def test_round_trip_lossless_and_jpeg(tmp_path: Path, make_ab_folder) -> None:
    pairs = tmp_path / "pairs"
    paths = make_ab_folder(pairs, 12, size=64)
    PairsInfo(kind="edges", a_channels=1).write(pairs)
    run_cli("shard", str(pairs), "-o", str(tmp_path / "lossless"), "--lossless", "-j", "1", "--val-fraction", "0.25")
    run_cli("shard", str(pairs), "-o", str(tmp_path / "jpeg"), "-j", "1", "--val-fraction", "0.25")
    lossless, jpeg = read_back(tmp_path / "lossless"), read_back(tmp_path / "jpeg")
    assert len(lossless) == len(jpeg) == 12
    for path in paths:
        ab = read_image(path)
        key = path.stem
        a_exact = decode(lossless[key]["a.png"])
        assert a_exact.ndim == 2, "edges store A as a single-channel PNG"
        assert np.array_equal(a_exact, ab[:, :64, 0])
        assert np.array_equal(decode(lossless[key]["b.png"]), ab[:, 64:])
        assert np.array_equal(decode(jpeg[key]["a.png"]), ab[:, :64, 0])
        error = np.abs(decode(jpeg[key]["b.jpg"]).astype(int) - ab[:, 64:].astype(int)).mean()
        reference = io.BytesIO()
        Image.fromarray(ab[:, 64:]).save(reference, "JPEG", quality=95)  # what quality 95 costs on this crop
        reference_error = np.abs(decode(reference.getvalue()).astype(int) - ab[:, 64:].astype(int)).mean()
        assert error <= reference_error * 1.25 + 0.25 and "b.png" not in jpeg[key]
        meta = json.loads(jpeg[key]["json"])
        assert meta["key"] == key and meta["height"] == 64 and meta["width"] == 64 and meta["kind"] == "edges"
    dataset = json.loads((tmp_path / "jpeg" / "dataset.json").read_text())
    assert dataset["kind"] == "edges" and dataset["a_channels"] == 1
    assert sum(entry["count"] for entry in dataset["splits"].values()) == 12
    assert set(dataset["splits"]) <= {"train", "val"}
    stats = json.loads((tmp_path / "jpeg" / "train-000000.stats.json").read_text())
    assert stats["count"] == dataset["splits"]["train"]["count"]
    card = (tmp_path / "jpeg" / "DATA_CARD.md").read_text()
    assert card.startswith("---\nlicense: TO BE FILLED") and "edges" in card


def test_official_layout_keeps_splits(tmp_path: Path, make_ab_folder) -> None:
    facades = tmp_path / "facades"
    make_ab_folder(facades, 9, size=32, splits=("train", "val", "test"), extension=".jpg")
    run_cli("shard", str(facades), "-o", str(tmp_path / "shards"), "-j", "1")
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert {split: entry["count"] for split, entry in dataset["splits"].items()} == {"train": 3, "val": 3, "test": 3}
    assert dataset["kind"] == "generic" and dataset["a_channels"] == 3
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.tar")) == ["test-000000.tar", "train-000000.tar", "val-000000.tar"]


def _bad_corpus(root: Path, good: np.ndarray, png_header_only: Callable[[int, int], bytes]) -> dict[str, str | None]:
    """Write odd files; returns name -> expected reject reason fragment (None = accepted)."""
    root.mkdir(parents=True, exist_ok=True)
    ab = Image.fromarray(good)
    expected: dict[str, str | None] = {}

    def save(name: str, image: Image.Image, fmt: str, reason: str | None, **options: object) -> None:
        image.save(root / name, fmt, **options)
        expected[name] = reason

    (root / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "empty file"
    (root / "text.jpg").write_bytes(b"GIF? no, just text\n")
    expected["text.jpg"] = "not an image"
    buffer = io.BytesIO()
    ab.save(buffer, "JPEG")
    (root / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    expected["cut.jpg"] = "truncated"
    buffer = io.BytesIO()
    ab.save(buffer, "PNG")
    (root / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    expected["cut.png"] = "truncated"
    save("odd.png", Image.fromarray(good[:, :-1]), "PNG", "odd width")
    (root / "huge.png").write_bytes(png_header_only(100_000, 100_000))
    expected["huge.png"] = "too large"
    save("name.with.dots.png", ab, "PNG", None)
    save("café ünïcode.png", ab, "PNG", None)
    exif = Image.Exif()
    exif[0x0112] = 3  # 180 degrees: same size, so still a valid AB image
    save("rotated.jpg", ab, "JPEG", None, exif=exif, quality=95)
    deep = (good[..., 0].astype(np.uint16) * 257)
    save("deep16.png", Image.fromarray(deep), "PNG", None)
    save("cmyk.jpg", ab.convert("CMYK"), "JPEG", None)
    save("palette.png", ab.convert("P"), "PNG", None)
    (root / "notes.txt").write_text("not an image at all")
    expected["notes.txt"] = "unsupported file type"
    return expected


def test_bad_input_corpus_is_rejected_with_reasons(tmp_path: Path, skimage_photos: list[np.ndarray],
                                                   png_header_only: Callable[[int, int], bytes]) -> None:
    good = np.ascontiguousarray(np.concatenate([skimage_photos[1][:64, :64], skimage_photos[1][64:128, :64]], axis=1))
    expected = _bad_corpus(tmp_path / "pairs", good, png_header_only)
    output = run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1")
    rejects = {Path(row["path"]).name: row["reason"] for row in map(json.loads, (tmp_path / "shards" / "rejects.jsonl").read_text().splitlines())}
    for name, reason in expected.items():
        if reason is None:
            assert name not in rejects, f"{name} wrongly rejected: {rejects.get(name)}"
        else:
            assert reason in rejects[name], f"{name}: {rejects.get(name)!r} should mention {reason!r}"
    samples = read_back(tmp_path / "shards")
    accepted = [name for name, reason in expected.items() if reason is None]
    assert len(samples) == len(accepted)
    assert all("." not in key and key.isascii() for key in samples)
    assert "name_with_dots" in samples and "cafe_unicode" in samples
    assert "seen" in output and f"{len(expected)}" in output
    assert len(samples) + len(rejects) == len(expected)  # inputs seen = written + rejected


@pytest.mark.slow
def test_workers_1_and_2_give_identical_shards(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 30, size=32)
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "one"), "-j", "1", "--samples-per-shard", "7")
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "two"), "-j", "2", "--samples-per-shard", "7")
    one, two = tar_bytes(tmp_path / "one"), tar_bytes(tmp_path / "two")
    assert len(one) >= 4 and one == two
    assert (tmp_path / "one" / "dataset.json").read_bytes() != b""
    strip = lambda d: {k: v for k, v in json.loads(d.read_text()).items() if k != "source"}  # noqa: E731
    assert strip(tmp_path / "one" / "dataset.json") == strip(tmp_path / "two" / "dataset.json")


def test_max_shard_bytes_cuts_shards(tmp_path: Path, make_ab_folder) -> None:
    paths = make_ab_folder(tmp_path / "pairs", 10, size=32)
    limit = sum(p.stat().st_size for p in paths[:3])
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1", "--max-shard-bytes", str(limit),
            "--val-fraction", "0")
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert len(dataset["shards"]) >= 4 and all(s["count"] <= 3 for s in dataset["shards"])


@pytest.mark.slow
def test_crash_and_resume_gives_identical_output(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 240, size=96)
    command = [sys.executable, "-m", "pairforge", "-q", "shard", str(tmp_path / "pairs"), "-j", "1", "--samples-per-shard", "8"]
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "clean"), "-j", "1", "--samples-per-shard", "8")
    crashed = tmp_path / "crashed"
    process = subprocess.Popen([*command, "-o", str(crashed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(crashed.glob("*.stats.json"))) >= 3:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run finished before it could be killed; make the corpus bigger"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(crashed.glob("*.stats.json")))
    total = len(list((tmp_path / "clean").glob("*.tar")))
    assert 0 < finished < total
    assert not (crashed / "dataset.json").exists()
    # every tar that exists under its final name is complete: truncated output never looks finished
    for stats in crashed.glob("*.stats.json"):
        tar = crashed / (stats.name[: -len(".stats.json")] + ".tar")
        with tarfile.open(tar) as handle:
            assert len(handle.getnames()) == 3 * json.loads(stats.read_text())["count"]
    resumed = subprocess.run([*command, "-o", str(crashed)], capture_output=True, text=True, check=True)
    assert "shards reused" in resumed.stdout
    reused = int(resumed.stdout.split("shards reused")[1].split()[0])
    assert reused >= finished
    assert tar_bytes(crashed) == tar_bytes(tmp_path / "clean")
    assert not [p for p in crashed.iterdir() if p.name.startswith(".")], "temporary files left behind"
    samples = read_back(crashed)
    assert len(samples) == 240  # no duplicate, no missing sample


def test_changed_input_rebuilds_only_its_shard(tmp_path: Path, make_ab_folder) -> None:
    paths = make_ab_folder(tmp_path / "pairs", 20, size=32)
    args = ("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1", "--samples-per-shard", "5",
            "--val-fraction", "0")
    run_cli(*args)
    before = tar_bytes(tmp_path / "shards")
    paths[0].write_bytes(paths[1].read_bytes())
    output = run_cli(*args)
    after = tar_bytes(tmp_path / "shards")
    assert [name for name in before if before[name] != after[name]] == ["train-000000.tar"]
    assert "shards reused" in output and " 3" in output.split("shards reused")[1].splitlines()[0]


@pytest.mark.slow
def test_scheduler_runs_on_a_local_cluster(tmp_path: Path, make_ab_folder) -> None:
    from dask.distributed import LocalCluster

    make_ab_folder(tmp_path / "pairs", 20, size=32)
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "local"), "-j", "1", "--samples-per-shard", "5")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        output = run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "cluster"), "--samples-per-shard", "5",
                         "--scheduler", cluster.scheduler_address)
    assert "written" in output
    assert tar_bytes(tmp_path / "cluster") == tar_bytes(tmp_path / "local")


def test_missing_pairs_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["shard", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "not found" in result.output


def test_inspect_prints_summary_and_writes_sheet(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 10, size=32)
    run_cli("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1")
    output = run_cli("inspect", str(tmp_path / "shards"), "-n", "6", "--sheet", str(tmp_path / "sheet.png"))
    assert "split train" in output
    sheet = read_image(tmp_path / "sheet.png")
    assert sheet.shape[0] >= 128 and sheet.std() > 10


def test_verify_shard_set_compares_stats_files_and_names_every_difference(tmp_path: Path) -> None:
    """Issue 20, point 5: a shard copied with the stats file of another set is caught without hashing it."""
    from pairforge.shards import ModifiedShardsError, read_dataset, verify_shard_set
    from tests.trainer.conftest import write_shards

    shards = write_shards(tmp_path / "s", kind="edges", count=4, size=32, shards=2, val=2)
    dataset = read_dataset(shards)
    assert verify_shard_set(dataset, shards) == []
    stats = json.loads((shards / "train-000001.stats.json").read_text())
    stats["sha256"] = "0" * 64
    (shards / "train-000001.stats.json").write_text(json.dumps(stats))
    (shards / "val-000000.tar").unlink()
    with pytest.raises(ModifiedShardsError, match=r"train-000001.tar: its stats file records sha256 0+, dataset.json "
                                                  r"[0-9a-f]{64} \(a shard of another set\?\) \(and 1 more\)"):
        verify_shard_set(dataset, shards)
    found = verify_shard_set(dataset, shards, allow_modified=True)
    assert [(m.name, m.reason) for m in found][1] == ("val-000000.tar", "missing (listed in dataset.json)")
    assert verify_shard_set(dataset, shards, names={"train-000000.tar"}) == []  # only the shards a command reads
