"""predict on awkward input: every input predicted or a reject with its reason, never a hang or a runaway."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pairforge.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _edges(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((height, width)) > 0.9, 0, 255).astype(np.uint8)


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(_edges(32, 32, seed)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _predict(*args: str | Path, timeout: float = 180, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """`pairforge predict` in its own process, under a timeout (and an address-space limit when given)."""

    def limit() -> None:
        if limit_bytes is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    return subprocess.run([sys.executable, "-m", "pairforge", "predict", *map(str, args), "--device", "cpu", "-q"],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env, cwd=ROOT)


def _rejects(output: Path) -> dict[str, tuple[str, str]]:
    """File name -> (reason, detail) from rejects.jsonl."""
    rows = [json.loads(line) for line in (output / "rejects.jsonl").read_text().splitlines()]
    return {Path(row["path"]).name: (row["reason"], row["detail"]) for row in rows}


def _table(stdout: str, name: str) -> int:
    return int(re.search(rf"^{name}\s+(\d+)$", stdout, re.M).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
def test_every_input_of_a_folder_is_predicted_or_a_reject_and_a_fifo_never_hangs(tiny_edges_run: Path,
                                                                               tmp_path: Path) -> None:
    inputs = tmp_path / "edges"
    (inputs / "sub").mkdir(parents=True)
    cv2.imwrite(str(inputs / "good.png"), _edges(40, 56))
    cv2.imwrite(str(inputs / "sub" / "good.png"), _edges(40, 56, seed=1))  # nested: its own output name
    cv2.imwrite(str(inputs / "twin.png"), _edges(32, 32, seed=2))
    cv2.imwrite(str(inputs / "twin.jpg"), _edges(32, 32, seed=3))  # same name: both kept, twin and twin-2
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (inputs / "loop.png").symlink_to(inputs / "loop.png")
    (inputs / "anim.gif").write_bytes(_animated("GIF"))
    (inputs / "apng.png").write_bytes(_animated("PNG"))
    (inputs / "notes.txt").write_text("not an image")
    cv2.imwrite(str(inputs / ".hidden.png"), _edges(32, 32))
    os.mkfifo(inputs / "pipe.png")
    output = tmp_path / "out"
    done = _predict(tiny_edges_run, inputs, "-o", output, timeout=120)  # a FIFO that is read blocks forever
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    expected = {
        "broken.png": "not an image",
        "loop.png": "unreadable",
        "anim.gif": "unsupported file type",
        "apng.png": "animated image",
        "notes.txt": "unsupported file type",
        ".hidden.png": "hidden file",
        "pipe.png": "not a regular file",
    }
    rejects = _rejects(output)
    assert {name: reason for name, (reason, _) in rejects.items()} == expected
    assert rejects["loop.png"][1] == "a symbolic link loop" and rejects["pipe.png"][1] == "a FIFO (named pipe)"
    assert rejects["apng.png"][1].startswith("an animated PNG with 3 frames")
    assert (_table(done.stdout, "inputs"), _table(done.stdout, "predicted"), _table(done.stdout, "skipped")) == (11, 4, 7)
    assert sorted(p.name for p in output.glob("*.png")) == ["good.png", "sub__good.png", "twin-2.png", "twin.png"]
    assert "same output name: twin.jpg, twin.png -> twin, twin-2, ..." in done.stderr
    assert cv2.imread(str(output / "good.png")).shape == (40, 56, 3)
    page = (output / "index.html").read_text()
    assert page.count("<tr>") == 1 + 4 and all(f"{name}: {reason}" in page for name, reason in expected.items())
    recorded = json.loads((output / "predict.json").read_text())
    assert (recorded["predicted"], recorded["skipped"]) == (4, 7)
    for name, reason in expected.items():
        assert f"skipped {inputs / name}: {reason}" in done.stdout


@pytest.mark.parametrize(("name", "payload", "reason"), [
    ("anim.gif", _animated("GIF"), "unsupported file type"),
    ("anim.png", _animated("PNG"), "animated image"),
    ("anim.webp", _animated("WEBP"), "animated image"),
    ("notes.txt", b"hello", "unsupported file type"),
])
def test_a_file_given_alone_follows_the_folder_rule(tiny_edges_run: Path, tmp_path: Path, name: str, payload: bytes,
                                                     reason: str) -> None:
    """Alone, the same file is the same reject; every input rejected exits non-zero with the reasons."""
    (tmp_path / name).write_bytes(payload)
    output = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(tmp_path / name), "-o", str(output),
                                      "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert f"skipped {tmp_path / name}: {reason}" in result.output
    assert result.output.rstrip().splitlines()[-1] == (
        f"Error: nothing usable for {output}: all 1 inputs were rejected (1 {reason}); one reason per input in "
        f"{output / 'rejects.jsonl'}")
    assert _rejects(output)[name][0] == reason
    assert not list(output.glob("*.png"))


def test_a_fifo_given_alone_is_a_reject_not_a_hang(tiny_edges_run: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    results: list[Result] = []
    worker = threading.Thread(daemon=True, target=lambda: results.append(CliRunner().invoke(cli, [
        "predict", str(tiny_edges_run), str(tmp_path / "pipe.png"), "-o", str(tmp_path / "out"), "--device", "cpu"])))
    worker.start()
    worker.join(timeout=60)  # a FIFO that is opened for reading waits for a writer forever
    assert results, "predict hangs on a FIFO"
    assert results[0].exit_code == 1 and "Error: nothing usable" in results[0].output
    assert _rejects(tmp_path / "out") == {"pipe.png": ("not a regular file", "a FIFO (named pipe)")}


def test_an_empty_folder_and_an_output_inside_the_input_are_refused(tiny_edges_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    empty = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(tmp_path / "empty"), "-o",
                                     str(tmp_path / "out"), "--device", "cpu"])
    assert empty.exit_code == 1 and "no input files were found" in empty.output
    inputs = tmp_path / "edges"
    inputs.mkdir()
    cv2.imwrite(str(inputs / "a.png"), _edges(32, 32))
    for output, words in ((inputs / "out", "is inside the input folder"), (inputs, "is the input folder")):
        nested = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(inputs), "-o", str(output),
                                          "--device", "cpu"])
        assert nested.exit_code == 1 and words in nested.output, nested.output
    alone = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(inputs / "a.png"), "-o", str(inputs),
                                     "--device", "cpu"])  # its output a.png would replace the input
    assert alone.exit_code == 1 and "is inside the output folder" in alone.output, alone.output
    assert sorted(p.name for p in inputs.iterdir()) == ["a.png"]


@pytest.mark.slow
def test_a_strip_is_refused_by_the_size_it_is_processed_at(tiny_edges_run: Path, tmp_path: Path) -> None:
    """1x50000 px is tiny as a file, but --scale train runs it at 64x3200000: a reject, not gigabytes and minutes.

    Under a 4 GB address-space limit (predict itself needs about 1.2 GB) the old code died allocating the strip.
    """
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "strip.png"), _edges(1, 50_000))
    cv2.imwrite(str(tmp_path / "in" / "fine.png"), _edges(48, 64))
    output = tmp_path / "out"
    done = _predict(tiny_edges_run, tmp_path / "in", "-o", output, timeout=120, limit_bytes=4 * 1024**3)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    reason, detail = _rejects(output)["strip.png"]
    assert reason == "too large"
    assert detail == ("50000x1 = 50,000 pixels runs at 3200000x64 = 204,800,000 pixels at the training scale "
                      "(shorter side 64 px), over the limit of 64,000,000: crop it to a less elongated shape, use "
                      "--scale native, or raise --max-pixels")
    assert (output / "fine.png").is_file()


def test_one_size_rule_for_both_scales(tiny_edges_run: Path) -> None:
    """What the network processes: training scale, or the stored size padded to the model's multiple (64 here)."""
    from pairforge.errors import SampleError
    from pairforge.trainer.inference import InferenceConfig, Predictor, load_checked_generator

    generator, config = load_checked_generator(tiny_edges_run)
    train_scale = Predictor(generator, config, InferenceConfig(max_pixels=64 * 3_200_000))
    native = Predictor(generator, config, InferenceConfig(scale="native", max_pixels=64 * 50_048))
    assert train_scale.processed_size(1, 50_000) == (64, 3_200_000)
    assert native.processed_size(1, 50_000) == (64, 50_048)
    train_scale.check_size(1, 50_000)  # exactly at the limit: fine
    native.check_size(1, 50_000)
    with pytest.raises(SampleError, match=r"^too large: 50049x1 = 50,049 pixels runs at 50112x64 = 3,207,168 pixels "
                                          r"padded to a multiple of 64, over the limit of 3,203,072: downscale or crop "
                                          r"it, or raise --max-pixels$"):
        native.check_size(1, 50_049)
    with pytest.raises(SampleError, match=r"^too large: 50001x1 = 50,001 pixels runs at 3200064x64"):
        train_scale.check_size(1, 50_001)


def test_the_stored_size_limit_names_predicts_option(tiny_edges_run: Path, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "big.png"), _edges(100, 100))
    result = CliRunner().invoke(cli, ["predict", str(tiny_edges_run), str(tmp_path / "big.png"), "-o",
                                      str(tmp_path / "out"), "--device", "cpu", "--max-pixels", "5000"])
    assert result.exit_code == 1
    reason, detail = _rejects(tmp_path / "out")["big.png"]
    assert reason == "too large" and "100x100 = 10,000 pixels exceeds the limit of 5,000 (raise --max-pixels)" == detail
    assert "--max-pixels" in CliRunner().invoke(cli, ["predict", "--help"]).output
