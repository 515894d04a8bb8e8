"""Issue 10, tried as a hostile user would: every failure is one clear line, nothing is lost or mixed.

Each test names the point of the issue it covers. ``test_cluster_from_another_folder`` runs the
builders and the shard writer on a real local Dask cluster (``dask scheduler`` + ``dask worker``
started in a different working folder) with relative paths.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.pairs import read_jsonl

BAD_NAME = b"bad\xff\xfename.png"


def run(*args: str, ok: bool = True) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    else:
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, (AssertionError, TypeError)), (
            result.output, result.exception)
    return result.exit_code, result.output


def write_photos(folder: Path, photos: list[np.ndarray], count: int = 6, size: tuple[int, int] = (64, 48)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = np.roll(cv2.resize(photos[index % len(photos)], size, interpolation=cv2.INTER_AREA), 5 * index, axis=1)
        cv2.imwrite(str(folder / f"p{index:02d}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture()
def photos(tmp_path: Path, skimage_photos: list[np.ndarray]) -> Path:
    return write_photos(tmp_path / "photos", skimage_photos)


def tars(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


# -- 1. unwritable output ---------------------------------------------------------------------------


def test_1_output_under_a_file_is_one_line_error(photos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for command in (["make-gray", str(photos)], ["make-edges", str(photos), "--detector", "canny"],
                    ["make-gray", str(photos), "--shards"], ["combine", str(photos), str(photos), "--suffix", "_A,_B"]):
        if command[-1] == "--shards":
            command = [*command, str(blocker / "s")]
        else:
            command = [*command, "-o", str(blocker / "out")]
        _, output = run(*command, "-j", "1", ok=False)
        assert "cannot write to" in output and "file.txt" in output, output
        assert len(output.strip().splitlines()) == 1, output
    _, output = run("shard", str(photos), "-o", str(blocker / "s"), ok=False)
    assert "cannot write to shard folder" in output


def test_1_read_only_folder_is_refused_before_any_work(photos: Path, tmp_path: Path, monkeypatch) -> None:
    import pairforge.paths as paths
    import pairforge.sources as sources

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(args[0]))

    monkeypatch.setattr(paths, "open", refuse, raising=False)  # root ignores chmod; simulate EACCES
    built: list[object] = []
    monkeypatch.setattr(sources, "cached_stage", lambda spec: built.append(spec))
    _, output = run("make-gray", str(photos), "-o", str(tmp_path / "ro_out"), "-j", "1", ok=False)
    assert "cannot write to pair folder" in output and "Permission denied" in output
    assert built == []  # refused before the stage was built or any image decoded


def test_error_boundary_turns_os_errors_into_one_line(photos: Path, monkeypatch) -> None:
    import pairforge.build as build

    def vanish(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", "/data/pairs/manifest.jsonl")

    monkeypatch.setattr(build, "write_jsonl", vanish)
    code, output = run("make-gray", str(photos), "-o", str(photos.parent / "pairs"), "-j", "1", ok=False)
    assert code == 1 and "cannot access /data/pairs/manifest.jsonl: Permission denied" in output


# -- 2. file names that are not valid UTF-8 -----------------------------------------------------


def test_2_non_utf8_names_are_processed_and_recorded_losslessly(photos: Path, tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(photos), BAD_NAME)
    shutil.copyfile(photos / "p00.png", bad)
    shutil.copyfile(photos / "p01.png", photos / "badname.png")  # collides with the sanitised key
    _, output = run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    assert "key collision: badname, bad\\xff\\xfename" in output
    rows = read_jsonl(tmp_path / "pairs" / "manifest.jsonl")
    assert len(rows) == 8
    bad_row = next(row for row in rows if row["key"] == "badname-2")
    assert os.fsencode(bad_row["source"]) == bad  # lossless: the original bytes come back
    run("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1")
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert sum(split["count"] for split in dataset["splits"].values()) == 8
    # fused mode and an AB folder with such a name
    run("make-gray", str(photos), "--shards", str(tmp_path / "fused"), "-j", "1")
    assert json.loads((tmp_path / "fused" / "dataset.json").read_text())["splits"]


# -- 4. reused pair folders ---------------------------------------------------------------------


def test_4_builder_refuses_a_folder_of_another_config_and_cleans_with_overwrite(photos: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    run("make-gray", str(photos), "-o", str(pairs), "-j", "1")
    _, output = run("make-edges", str(photos), "--detector", "canny", "-o", str(pairs), "-j", "1", ok=False)
    assert "already holds gray pairs" in output and "--overwrite" in output and "-o" in output
    (photos / "p05.png").unlink()
    run("make-edges", str(photos), "--detector", "canny", "-o", str(pairs), "-j", "1", "--overwrite")
    assert sorted(p.name for p in pairs.glob("*.png")) == [f"p{i:02d}.png" for i in range(5)]
    assert json.loads((pairs / "pairs.json").read_text())["kind"] == "edges"
    # same config again: allowed, and pairs the new manifest does not list are removed
    (photos / "p04.png").unlink()
    run("make-edges", str(photos), "--detector", "canny", "-o", str(pairs), "-j", "1")
    assert sorted(p.name for p in pairs.glob("*.png")) == [f"p{i:02d}.png" for i in range(4)]
    # a folder not made by pairforge is refused too
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    _, output = run("make-gray", str(photos), "-o", str(foreign), "-j", "1", ok=False)
    assert "did not make" in output


def test_4_shard_packs_only_manifest_listed_pairs(photos: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    run("make-gray", str(photos), "-o", str(pairs), "-j", "1")
    shutil.copyfile(pairs / "p00.png", pairs / "stale.png")  # a pair of an earlier build
    _, output = run("shard", str(pairs), "-o", str(tmp_path / "shards"), "-j", "1", "--val-fraction", "0")
    assert "not in its manifest.jsonl" in output
    dataset = json.loads((tmp_path / "shards" / "dataset.json").read_text())
    assert dataset["splits"]["train"]["count"] == 6
    rejects = read_jsonl(tmp_path / "shards" / "rejects.jsonl")
    assert [Path(r["path"]).name for r in rejects] == ["stale.png"] and "manifest" in rejects[0]["reason"]


# -- 6. empty input -----------------------------------------------------------------------------


def test_6_empty_or_all_rejected_input_fails_with_the_reasons(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _, output = run("make-gray", str(empty), "-o", str(tmp_path / "p1"), "-j", "1", ok=False)
    assert "nothing usable" in output and "no input files" in output
    grays = tmp_path / "grays"
    grays.mkdir()
    for index in range(3):
        gray = cv2.cvtColor(cv2.resize(skimage_photos[index], (64, 48)), cv2.COLOR_RGB2GRAY)
        cv2.imwrite(str(grays / f"g{index}.png"), gray)
    _, output = run("make-gray", str(grays), "-o", str(tmp_path / "p2"), "-j", "1", ok=False)
    assert "all 3 inputs were rejected" in output and "already grayscale" in output and "next:" not in output
    assert len(read_jsonl(tmp_path / "p2" / "rejects.jsonl")) == 3  # the reasons are still written
    _, output = run("make-gray", str(grays), "--shards", str(tmp_path / "s2"), "-j", "1", ok=False)
    assert "nothing usable" in output


# -- 8. shard bytes do not depend on how the input path is spelled --------------------------------


def test_8_shards_identical_for_relative_and_absolute_input(photos: Path, tmp_path: Path, monkeypatch) -> None:
    run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    run("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "abs"), "-j", "1")
    monkeypatch.chdir(tmp_path)
    run("shard", "pairs", "-o", "rel", "-j", "2")
    monkeypatch.chdir(tmp_path / "pairs")
    run("shard", ".", "-o", "../dot", "-j", "1")
    assert tars(tmp_path / "abs") == tars(tmp_path / "rel") == tars(tmp_path / "dot")
    shutil.copytree(tmp_path / "pairs", tmp_path / "moved" / "elsewhere")  # the same data in another place
    run("shard", str(tmp_path / "moved" / "elsewhere"), "-o", str(tmp_path / "moved_shards"), "-j", "1")
    assert tars(tmp_path / "moved_shards") == tars(tmp_path / "abs")
    with tarfile.open(tmp_path / "abs" / "train-000000.tar") as tar:
        member = next(m for m in tar if m.name.endswith(".json"))
        assert json.loads(tar.extractfile(member).read())["source"] == member.name[: -len(".json")] + ".png"
    dataset = json.loads((tmp_path / "rel" / "dataset.json").read_text())
    assert dataset["source"]["root"] == str(tmp_path / "pairs")
    # fused mode too
    monkeypatch.chdir(tmp_path)
    run("make-gray", "photos", "--shards", "f1", "-j", "1")
    run("make-gray", str(photos), "--shards", str(tmp_path / "f2"), "-j", "1")
    assert tars(tmp_path / "f1") == tars(tmp_path / "f2")


def test_8_existing_shard_sets_stay_readable(tmp_path: Path, make_ab_folder) -> None:
    """A shard set of the earlier layout (no source.root) still trains/inspects."""
    make_ab_folder(tmp_path / "ab", 4, size=32)
    run("shard", str(tmp_path / "ab"), "-o", str(tmp_path / "s"), "-j", "1")
    path = tmp_path / "s" / "dataset.json"
    dataset = json.loads(path.read_text())
    dataset["source"].pop("root")
    path.write_text(json.dumps(dataset))
    from pairforge.trainer.data import load_dataset_info

    assert load_dataset_info(str(tmp_path / "s")).counts
    run("inspect", str(tmp_path / "s"))


# -- 10. temporaries of the finished set ------------------------------------------------------------


def test_10_temporaries_left_by_killed_workers_are_removed(photos: Path, tmp_path: Path) -> None:
    from pairforge.files import temporary_name
    from pairforge.runner import RunnerConfig
    from pairforge.shards import DatasetInfo, ShardConfig, write_shard_set
    from pairforge.sources import PairFileReader, SourceItem

    run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    items = [SourceItem(p.stem, str(p), "train") for p in sorted((tmp_path / "pairs").glob("*.png"))]
    out = tmp_path / "shards"

    def killed_worker_leftover(count: int) -> None:  # a worker died mid-shard; its task ran again elsewhere
        (out / ".train-000000.tar.tmp-99999").write_bytes(b"")  # as versions before files.atomic_path named them
        temporary_name(out / "train-000001.tar").write_bytes(b"")  # today's name (files.atomic_path)

    write_shard_set(items, PairFileReader(1, "gray"), DatasetInfo("gray", 1), ShardConfig(str(out), 3), RunnerConfig(),
                    on_progress=killed_worker_leftover)
    assert not list(out.glob(".*tmp*")), sorted(p.name for p in out.iterdir())


# -- 11. shard does not halve ordinary images ---------------------------------------------------------


def test_11_shard_refuses_folders_that_are_not_ab_pairs(photos: Path, tmp_path: Path, monkeypatch) -> None:
    _, output = run("shard", str(photos), "-o", str(tmp_path / "s"), ok=False)
    assert "do not look like AB pairs" in output and "make-edges" in output and "--force-ab" in output
    run("shard", str(photos), "-o", str(tmp_path / "s"), "-j", "1", "--force-ab")
    monkeypatch.chdir(tmp_path)
    run("synth", "facades", "--count", "3", "--size", "64")
    assert (tmp_path / "synth_facades" / "photos").is_dir() and not (tmp_path / "facades").exists()
    _, output = run("shard", "synth_facades", ok=False)
    assert "make-labels synth_facades/photos --labels synth_facades/labels" in output


# -- 13. small sets keep a validation sample ------------------------------------------------------------


def test_13_small_set_keeps_one_val_sample_and_warns_when_empty(photos: Path, tmp_path: Path) -> None:
    from pairforge.keys import assign_split

    run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    keys = [f"p{i:02d}" for i in range(6)]
    assert all(assign_split(key, 0.05) == "train" for key in keys)  # the hash alone gives no val sample
    _, output = run("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "s"), "-j", "1", "--val-fraction", "0.05")
    dataset = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert dataset["splits"]["val"]["count"] == 1 and dataset["splits"]["train"]["count"] == 5
    assert "warning" not in output
    _, output = run("shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "s0"), "-j", "1", "--val-fraction", "0")
    assert "warning: the val split is empty" in output
    _, output = run("inspect", str(tmp_path / "s0"))
    assert "warning: the val split is empty" in output


# -- smaller points -----------------------------------------------------------------------------------


def test_one_minimum_size_for_every_builder(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    tiny = write_photos(tmp_path / "tiny", skimage_photos, count=1, size=(5, 7))
    write_photos(tmp_path / "tiny2", skimage_photos, count=2)
    shutil.copyfile(tiny / "p00.png", tmp_path / "tiny2" / "small.png")
    for builder in (["make-gray"], ["make-edges", "--detector", "canny"]):
        run(*builder, str(tmp_path / "tiny2"), "-o", str(tmp_path / builder[0]), "-j", "1")
        rows = read_jsonl(tmp_path / builder[0] / "rejects.jsonl")
        assert [(row["reason"], row["detail"]) for row in rows] == [
            ("too small", "photo is 5x7 px (minimum 32 px per side)")], rows


def test_hidden_files_are_counted_as_rejects(photos: Path, tmp_path: Path) -> None:
    shutil.copyfile(photos / "p00.png", photos / ".hidden.png")
    (photos / ".cache").mkdir()
    shutil.copyfile(photos / "p00.png", photos / ".cache" / "x.png")
    _, output = run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    rejects = {Path(row["path"]).name: row["reason"] for row in read_jsonl(tmp_path / "pairs" / "rejects.jsonl")}
    assert rejects == {".hidden.png": "hidden file", ".cache": "hidden folder"}
    assert "seen" in output and "hidden" in output


def test_linked_folders_are_read_once_and_loops_are_rejects(photos: Path, tmp_path: Path) -> None:
    """A folder of links to the data is read as it looks; a link loop or a second way into one folder
    is one reject row (before: os.walk left every linked folder out without a word)."""
    seen = len(list(photos.glob("*.png")))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(str(photos / "p00.png"), outside / "p00.png")
    (photos / "linked").symlink_to(outside)
    (photos / "sub").mkdir()
    shutil.move(str(photos / "p01.png"), photos / "sub" / "p01.png")
    (photos / "sub" / "loop").symlink_to(photos)
    (photos / "again").symlink_to(photos / "sub")
    _, output = run("make-gray", str(photos), "-o", str(tmp_path / "pairs"), "-j", "1")
    manifest = [row["key"] for row in read_jsonl(tmp_path / "pairs" / "manifest.jsonl")]
    rejects = {Path(row["path"]).name: row["reason"] for row in read_jsonl(tmp_path / "pairs" / "rejects.jsonl")}
    assert "linked__p00" in manifest and "sub__p01" in manifest and len(manifest) == seen, manifest
    assert rejects == {"loop": "folder visited already", "again": "folder visited already"}, rejects


# -- 7 (and 8, 10 on a cluster): relative paths with --scheduler --------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` + one ``dask worker`` on 127.0.0.1, started in their own working folder."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command line is not installed next to this Python")
    elsewhere = tmp_path / "worker_cwd"
    elsewhere.mkdir()
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    common = {"cwd": elsewhere, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], **common)
    worker = subprocess.Popen([str(dask), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-nanny",
                               "--no-dashboard", "--host", "127.0.0.1"], **common)
    try:
        from dask.distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="2s") as client:
                    if client.scheduler_info()["workers"]:
                        break
            except (OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("the local Dask cluster did not start")
            time.sleep(0.3)
        yield address
    finally:
        for process in (worker, scheduler):
            process.terminate()
        for process in (worker, scheduler):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert not any(elsewhere.iterdir()), "the workers wrote into their own working folder"


@pytest.mark.slow
def test_7_cluster_from_another_folder(dask_cluster: str, photos: Path, tmp_path: Path, monkeypatch) -> None:
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    shutil.move(str(photos), client_dir / "photos")
    monkeypatch.chdir(client_dir)
    _, output = run("make-gray", "photos", "-o", "pairs", "--scheduler", dask_cluster)
    assert len(read_jsonl(client_dir / "pairs" / "manifest.jsonl")) == 6, output
    assert read_jsonl(client_dir / "pairs" / "rejects.jsonl") == []
    run("shard", "pairs", "-o", "s4", "--scheduler", dask_cluster, "--samples-per-shard", "2")
    run("shard", "pairs", "-o", str(tmp_path / "local"), "-j", "1", "--samples-per-shard", "2")
    assert tars(client_dir / "s4") == tars(tmp_path / "local") and len(tars(tmp_path / "local")) >= 3
    assert not list((client_dir / "s4").glob(".*"))


# == issue 20: never silently wrong ===================================================================


def pairforge_command() -> str:
    return str(Path(sys.executable).with_name("pairforge"))


def gray_pairs(photos: Path, folder: Path) -> Path:
    run("make-gray", str(photos), "-o", str(folder), "-j", "1")
    return folder


def table_value(output: str, name: str) -> int:
    """The number on the summary-table row ``name``."""
    import re

    match = re.search(rf"^{re.escape(name)}\s+(\d+)$", output, re.MULTILINE)
    assert match, (name, output)
    return int(match.group(1))


def wait_for(condition, timeout: float = 60.0) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


# -- 3. one writer per pair folder and shard set ------------------------------------------------------


@pytest.mark.slow
def test_issue20_3_two_shard_runs_into_one_folder(tmp_path: Path, make_ab_folder) -> None:
    """Two real processes: the second stops at once and names the first, which finishes a complete set."""
    from pairforge.locks import holder

    make_ab_folder(tmp_path / "ab", 120, size=64)
    out = tmp_path / "s"
    command = [pairforge_command(), "shard", str(tmp_path / "ab"), "-o", str(out), "-j", "1", "--samples-per-shard", "4"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (holder(out) or {}).get("pid") == first.pid or first.poll() is not None)
        assert first.poll() is None, "the first run finished without ever holding the shard folder's lock"
        os.kill(first.pid, signal.SIGSTOP)  # keep it mid-run, whatever this machine's speed
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error")]
    assert second.returncode == 1 and len(errors) == 1, second.stderr
    assert f"shard folder {out} is in use by process {first.pid}" in errors[0] and "shard" in errors[0]
    assert "cannot access" not in second.stderr and "Traceback" not in second.stderr
    dataset = json.loads((out / "dataset.json").read_text())
    assert sum(split["count"] for split in dataset["splits"].values()) == 120
    assert not list(out.glob(".*")), sorted(p.name for p in out.glob(".*"))  # no temporaries, no lock left


def test_issue20_3_builders_and_combine_refuse_a_folder_another_process_writes(photos: Path, tmp_path: Path) -> None:
    from pairforge.locks import hold

    held = tmp_path / "held"
    held.mkdir()
    b_dir = tmp_path / "b"
    shutil.copytree(photos, b_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pairforge.locks import hold\n"
                               "with hold(sys.argv[1], 'pair folder'):\n    print('held', flush=True)\n    time.sleep(60)",
                               str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for command in (["make-gray", str(photos), "-o", str(held)], ["make-gray", str(photos), "--shards", str(held)],
                        ["make-edges", str(photos), "--detector", "canny", "-o", str(held)],
                        ["combine", str(photos), str(b_dir), "-o", str(held)]):
            _, output = run(*command, "-j", "1", ok=False)
            assert f"is in use by process {holder.pid}" in output, (command, output)
            assert len(output.strip().splitlines()) == 1, output
    finally:
        holder.kill()
        holder.wait()
    with hold(held):  # the killed holder left no lock behind
        pass


# -- 4. outputs never inside inputs, never over another command's files ---------------------------------


def test_issue20_4_output_inside_the_input_is_refused_by_every_command(photos: Path, tmp_path: Path) -> None:
    _, output = run("make-gray", str(photos), "-o", str(photos / "pairs"), "-j", "1", ok=False)
    assert "pair folder" in output and "is inside the photo folder" in output
    assert not (photos / "pairs").exists()
    run("make-gray", str(photos), "-o", str(tmp_path / "p"), "-j", "1")
    assert len(read_jsonl(tmp_path / "p" / "manifest.jsonl")) == 6  # built from the 6 photos only
    _, output = run("make-gray", str(photos), "--shards", str(photos / "s"), "-j", "1", ok=False)
    assert "is inside the photo folder" in output
    _, output = run("make-gray", str(photos / "."), "-o", str(tmp_path), "-j", "1", ok=False)
    assert "is inside the pair folder" in output  # the input inside the output
    pairs = tmp_path / "p"
    rejects_before = (pairs / "rejects.jsonl").read_bytes()
    for target in (pairs, pairs / "shards"):
        _, output = run("shard", str(pairs), "-o", str(target), "-j", "1", ok=False)
        assert "shard folder" in output and "pair folder" in output and len(output.strip().splitlines()) == 1
    assert (pairs / "rejects.jsonl").read_bytes() == rejects_before and not (pairs / "shards").exists()
    b_dir = tmp_path / "b"
    shutil.copytree(photos, b_dir)
    _, output = run("combine", str(photos), str(b_dir), "-o", str(b_dir / "out"), "-j", "1", ok=False)
    assert "is inside the B folder" in output
    labels = tmp_path / "labels"
    labels.mkdir()
    _, output = run("make-labels", str(photos), "--labels", str(labels), "-o", str(labels / "out"), ok=False)
    assert "is inside the label folder" in output
    _, output = run("check", str(pairs), "-o", str(pairs / "report"), ok=False)
    assert "is inside the dataset folder" in output


def test_issue20_4_a_folder_holding_another_commands_output_is_refused(photos: Path, tmp_path: Path) -> None:
    pairs = gray_pairs(photos, tmp_path / "pairs")
    run("shard", str(pairs), "-o", str(tmp_path / "shards"), "-j", "1")
    shards = tmp_path / "shards"
    before = {p: p.read_bytes() for p in [*pairs.rglob("*"), *shards.iterdir()] if p.is_file()}
    refusals = [
        (["shard", str(pairs), "-o", str(tmp_path / "pairs2")], "is a pair folder"),
        (["make-gray", str(photos), "-o", str(shards), "--overwrite"], "is a shard folder"),
        (["make-gray", str(photos), "--shards", str(pairs)], "is a pair folder"),
        (["combine", str(photos), str(photos), "--suffix", "_A,_B", "-o", str(shards)], "is a shard folder"),
        (["check", str(shards), "-o", str(pairs)], "is a pair folder"),
        (["inspect", str(shards), "--sheet", str(pairs / "sheet.png")], "is a pair folder"),
        (["inspect", str(shards), "--sheet", str(shards / "dataset.json")], "is a file of the shard set"),
    ]
    shutil.copytree(pairs, tmp_path / "pairs2")
    for command, expected in refusals:
        _, output = run(*command, ok=False)
        assert expected in output and len(output.strip().splitlines()) == 1, (command, output)
    after = {p: p.read_bytes() for p in [*pairs.rglob("*"), *shards.iterdir()] if p.is_file()}
    assert after == before  # nothing was overwritten


# -- 5. a modified shard set is refused by inspect and check (train and evaluate: test_hostile_train) -----


def _shards(photos: Path, tmp_path: Path, name: str, size: tuple[int, int] = (64, 48)) -> Path:
    folder = tmp_path / f"{name}_photos"
    write_photos(folder, [cv2.imread(str(p))[..., ::-1] for p in sorted(photos.glob("*.png"))], size=size)
    gray_pairs(folder, tmp_path / f"{name}_pairs")
    run("shard", str(tmp_path / f"{name}_pairs"), "-o", str(tmp_path / name), "-j", "1", "--samples-per-shard", "3",
        "--val-fraction", "0")
    return tmp_path / name


def test_issue20_5_inspect_and_check_refuse_a_modified_shard_set(photos: Path, tmp_path: Path) -> None:
    shards = _shards(photos, tmp_path, "small")
    other = _shards(photos, tmp_path, "large", size=(128, 96))
    shutil.copyfile(other / "train-000001.tar", shards / "train-000001.tar")  # a shard of another set
    size = (shards / "train-000001.tar").stat().st_size
    for command in (["inspect", str(shards)], ["check", str(shards), "-o", str(tmp_path / "c"), "-j", "1"]):
        _, output = run(*command, ok=False)
        assert f"train-000001.tar: {size} bytes, dataset.json records" in output, output
        assert "--allow-modified-shards" in output and f"pairforge shard {tmp_path / 'small_pairs'}" in output
    _, output = run("inspect", str(shards), "--allow-modified-shards", "-n", "8")
    assert "differs from dataset.json" in output and "used as it is" in output
    # a dataset.json edited to lie about its counts
    lying = tmp_path / "lying"
    shutil.copytree(tmp_path / "large", lying)
    dataset = json.loads((lying / "dataset.json").read_text())
    dataset["splits"]["train"]["count"] = 600
    (lying / "dataset.json").write_text(json.dumps(dataset))
    for command in (["inspect", str(lying)], ["check", str(lying), "-o", str(tmp_path / "c"), "-j", "1"]):
        _, output = run(*command, ok=False)
        assert "split 'train' records 600 samples, its shards 6" in output, output
    dataset["splits"]["train"]["count"] = 7  # ... and about a shard's count, consistently
    dataset["shards"][0]["count"] += 1
    (lying / "dataset.json").write_text(json.dumps(dataset))
    _, output = run("inspect", str(lying), ok=False)
    assert "train-000000.tar: 3 samples, dataset.json records 4" in output, output


def test_issue20_5_check_on_shard_tars_without_dataset_json_fails(photos: Path, tmp_path: Path) -> None:
    shards = _shards(photos, tmp_path, "s")
    (shards / "dataset.json").unlink()
    code, output = run("check", str(shards), "-o", str(tmp_path / "c"), "-j", "1", ok=False)
    assert code == 1 and "no dataset.json" in output and "pairforge shard" in output, output
    assert not (tmp_path / "c").exists()


# -- 7. only regular files are opened: a FIFO is a reject, never a hang --------------------------------


class Hung(BaseException):
    """Raised by the guard below when a command blocks."""


@pytest.fixture()
def no_hang() -> Iterator[None]:
    """Fail (instead of waiting forever) when a command blocks for 60 s, e.g. opening a FIFO."""
    import signal as signals

    def hung(number: int, frame: object) -> None:
        raise Hung("the command blocked for 60 s (a FIFO opened for reading?)")

    previous = signals.signal(signals.SIGALRM, hung)
    signals.setitimer(signals.ITIMER_REAL, 60)
    try:
        yield
    finally:
        signals.setitimer(signals.ITIMER_REAL, 0)
        signals.signal(signals.SIGALRM, previous)


def assert_fifo_rejected(rows: list[dict], name: str) -> None:
    fifo_rows = [row for row in rows if Path(row["path"]).name == name or name in row.get("detail", "")]
    assert len(fifo_rows) == 1 and fifo_rows[0]["reason"] == "not a regular file", rows
    assert "FIFO" in fifo_rows[0]["detail"]


def test_issue20_7_a_fifo_in_an_input_folder_is_a_reject_in_every_command(
        photos: Path, tmp_path: Path, no_hang: None, make_ab_folder) -> None:
    os.mkfifo(photos / "fifo.png")
    # builders
    _, output = run("make-gray", str(photos), "-o", str(tmp_path / "gray"), "-j", "1")
    assert_fifo_rejected(read_jsonl(tmp_path / "gray" / "rejects.jsonl"), "fifo.png")
    assert (table_value(output, "seen"), table_value(output, "written"), table_value(output, "rejected")) == (7, 6, 1)
    run("make-edges", str(photos), "--detector", "canny", "--shards", str(tmp_path / "fused"), "-j", "1")
    assert_fifo_rejected(read_jsonl(tmp_path / "fused" / "rejects.jsonl"), "fifo.png")
    # combine: the FIFO is matched (B has fifo.png) and read
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    for path in photos.glob("p*.png"):
        shutil.copyfile(path, b_dir / path.name)
    shutil.copyfile(photos / "p00.png", b_dir / "fifo.png")
    _, output = run("combine", str(photos), str(b_dir), "-o", str(tmp_path / "combined"), "-j", "1")
    assert_fifo_rejected(read_jsonl(tmp_path / "combined" / "rejects.jsonl"), "fifo.png")
    # make-labels: a FIFO as a label map (the automatic palette scan reads it too)
    labels = tmp_path / "labels"
    labels.mkdir()
    for path in photos.glob("p*.png"):
        cv2.imwrite(str(labels / path.name), (np.arange(48 * 64).reshape(48, 64) // 700).astype(np.uint8))
    (photos / "fifo.png").unlink()
    os.mkfifo(labels / "p00.png.fifo")
    (labels / "p00.png").unlink()
    os.rename(labels / "p00.png.fifo", labels / "p00.png")
    run("make-labels", str(photos), "--labels", str(labels), "-o", str(tmp_path / "labeled"), "-j", "1")
    rows = read_jsonl(tmp_path / "labeled" / "rejects.jsonl")
    assert [(row["reason"], row["detail"].startswith(f"label {labels / 'p00.png'}")) for row in rows] == [
        ("not a regular file", True)], rows
    # shard: an official-layout folder (no pairs.json) whose AB files are looked at before packing
    ab = tmp_path / "ab"
    make_ab_folder(ab, 4, size=32)
    os.mkfifo(ab / "fifo.png")
    _, output = run("shard", str(ab), "-o", str(tmp_path / "s"), "-j", "1")
    assert_fifo_rejected(read_jsonl(tmp_path / "s" / "rejects.jsonl"), "fifo.png")
    assert (table_value(output, "seen"), table_value(output, "written"), table_value(output, "rejected")) == (5, 4, 1)
    # check
    _, output = run("check", str(ab), "-o", str(tmp_path / "c"), "-j", "1")
    flagged = [json.loads(line) for line in (tmp_path / "c" / "flagged.jsonl").read_text().splitlines()]
    unreadable = [row for row in flagged if row["problem"] == "unreadable"]
    assert len(unreadable) == 1 and unreadable[0]["value"].startswith("not a regular file: a FIFO"), flagged
    counts = json.loads((tmp_path / "c" / "check.json").read_text())["counts"]
    assert counts["seen"] == 5 == counts["checked"] + counts["unreadable"]


# -- 9. combine keeps the minimum size of every builder --------------------------------------------------


def test_issue20_9_combine_rejects_a_strip(photos: Path, tmp_path: Path) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    for folder in (a_dir, b_dir):
        shutil.copytree(photos, folder)
        cv2.imwrite(str(folder / "strip.png"), np.full((1, 50000, 3), 128, np.uint8))
    _, output = run("combine", str(a_dir), str(b_dir), "-o", str(tmp_path / "pairs"), "-j", "1")
    rows = read_jsonl(tmp_path / "pairs" / "rejects.jsonl")
    assert [(row["reason"], row["detail"]) for row in rows] == [
        ("too small", "A is 50000x1 px (minimum 32 px per side)")], rows
    assert not (tmp_path / "pairs" / "strip.png").exists() and len(read_jsonl(tmp_path / "pairs" / "manifest.jsonl")) == 6


# -- 12. an interrupted shard run says what it finished; inspect names a corrupt sample -----------------


@pytest.mark.slow
def test_issue20_12_sigterm_during_shard_says_what_was_finished(tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "ab", 120, size=64)
    out = tmp_path / "s"
    command = [pairforge_command(), "shard", str(tmp_path / "ab"), "-o", str(out), "-j", "1", "--samples-per-shard", "4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(out.glob("*.stats.json")) or process.poll() is not None)
        assert process.poll() is None, "the run finished before it could be interrupted"
        os.kill(process.pid, signal.SIGSTOP)  # so the signal lands mid-run, whatever this machine's speed
        os.kill(process.pid, signal.SIGTERM)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
    _, stderr = process.communicate(timeout=120)
    errors = [line for line in stderr.splitlines() if line.startswith("Error")]
    assert process.returncode == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr
    finished = len(list(out.glob("*.stats.json")))
    assert f"interrupted by SIGTERM: {finished} of 30 shards finished" in errors[0]
    assert "run the same command again" in errors[0] and "reuses the finished ones" in errors[0]
    assert not list(out.glob(".*")), sorted(p.name for p in out.glob(".*"))  # temporaries and the lock are gone
    _, output = run(*command[1:])
    assert table_value(output, "shards reused") == finished and table_value(output, "written") == 120


def test_issue20_12_inspect_names_a_corrupt_sample_and_keeps_going(tmp_path: Path) -> None:
    from tests.trainer.conftest import write_shards

    shards = write_shards(tmp_path / "shards", kind="edges", count=6, size=32, shards=1, val=0,
                          corrupt_keys=("train_00002",))
    _, output = run("inspect", str(shards), "-n", "64", "--sheet", str(tmp_path / "sheet.png"))
    assert f"shard {shards / 'train-000000.tar'}: sample train_00002 skipped (corrupt image" in output, output
    assert "contact sheet (5 samples" in output and "1 drawn samples unreadable" in output
    assert (tmp_path / "sheet.png").is_file()
