"""evaluate --compare as the README writes it, compare.csv/html, the kind check, best/worst images."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer.compare import (
    PictureRow,
    best_values,
    header_label,
    table_rows,
    write_comparison,
)
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards


def test_headers_mark_the_better_direction_and_best_values() -> None:
    summaries = {"a": {"l1": 0.2, "psnr": 20.0, "fcn_class_iou": 0.3},
                 "b": {"l1": 0.1, "psnr": 18.0, "fcn_class_iou": 0.4, "real_fcn_class_iou": 0.9}}
    assert header_label("l1") == "L1 \u2193" and header_label("psnr") == "PSNR (dB) \u2191"
    assert best_values(summaries, ["l1", "psnr", "fcn_class_iou"]) == {"l1": 0.1, "psnr": 20.0, "fcn_class_iou": 0.4}
    header, rows = table_rows(summaries)
    assert header == ["run", "Class IOU \u2191", "L1 \u2193", "PSNR (dB) \u2191"]  # the paper's FCN-score first
    assert rows[-1][0] == "real photos (upper bound)" and rows[-1][1] == "0.9000"


def test_write_comparison_csv_html_and_picture_rows(tmp_path: Path) -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    label = np.zeros((16, 16, 3), np.uint8)
    label[:, 8:] = (255, 0, 0)
    pictures = [PictureRow("input", (label,)), PictureRow("run-a", (image,)), PictureRow("ground truth", (image,))]
    paths = write_comparison(tmp_path, {"run-a": {"l1": 0.25}}, pictures, keys=["k0"], nearest_rows=("input",))
    with open(paths["csv"], newline="") as handle:
        assert list(csv.reader(handle)) == [["run", "L1 \u2193"], ["run-a", "0.2500"]]
    page = paths["html"].read_text()
    assert "<b>0.2500</b>" in page and page.count("<img") == 3 and ">run-a</th>" in page
    shown = cv2.imread(str(tmp_path / "compare_images" / "00_00.png"))
    assert shown.shape == (256, 256, 3)  # small images are shown at 256 px
    assert {tuple(c) for c in shown.reshape(-1, 3)} == {(0, 0, 0), (0, 0, 255)}  # nearest: no new colours


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    shards = write_shards(root / "shards", kind="edges", count=4, size=32, shards=1, val=3)
    dataset = json.loads((shards / "dataset.json").read_text())
    dataset["source"]["stage"] = {"detector": "canny", "fit": {"size": None, "fit": "crop"}}
    (shards / "dataset.json").write_text(json.dumps(dataset))
    gray = write_shards(root / "gray", kind="gray", count=2, size=32, shards=1, val=2)
    first = Path(train(make_tiny_config(shards, root / "runs", steps=1, augment__crop_size=32)).run_dir)
    second = Path(train(make_tiny_config(shards, root / "runs", steps=2, augment__crop_size=32, name="b")).run_dir)
    return shards, gray, first, second


def _evaluate(*args: str) -> object:
    return CliRunner().invoke(cli, ["evaluate", *args, "--dropout", "off", "--device", "cpu", "-q"])


def test_compare_takes_several_runs_after_one_flag(runs: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    shards, _, first, second = runs
    checkpoint = next((first / "checkpoints").iterdir())
    result = _evaluate(str(first), str(shards), "--compare", str(second), str(checkpoint), "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    with open(tmp_path / "compare.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert [row[0] for row in table[1:]] == [first.name, second.name, f"{first.name}/{checkpoint.name}"]
    assert table[0][:4] == ["run", "L1 \u2193", "PSNR (dB) \u2191", "SSIM \u2191"]
    page = (tmp_path / "compare.html").read_text()
    # one picture row per run, between the input and ground-truth rows, 3 val keys each
    assert page.count("<img") == 3 * (3 + 2) and "ground truth" in page
    # same as repeating --compare; the order of arguments does not matter
    again = _evaluate(str(first), "--compare", str(second), "--compare", str(checkpoint), str(shards), "-o",
                      str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "compare.csv").read_text() == (tmp_path / "compare.csv").read_text()
    extra = _evaluate(str(first), str(shards), str(second))
    assert extra.exit_code != 0 and "unexpected extra argument" in extra.output


def test_evaluate_refuses_another_kind_with_the_reason(runs: tuple[Path, Path, Path, Path]) -> None:
    _, gray, first, _ = runs
    result = _evaluate(str(first), str(gray))
    assert result.exit_code != 0
    assert "trained on edges pairs" in result.output and "holds gray pairs" in result.output
    assert "kind 'edges' vs 'gray'" in result.output and "Traceback" not in result.output


def test_metrics_page_shows_best_and_worst_rows_with_images(runs: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    shards, _, first, _ = runs
    result = _evaluate(str(first), str(shards), "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "metrics.html").read_text()
    rows = json.loads((tmp_path / "metrics.json").read_text())["rows"]
    best = min(rows, key=lambda row: row["l1"])["key"]
    assert "best and worst samples by l1" in page and f"examples/{best}.output.jpg" in page
    assert page.index("best 1") < page.index(f">{best}<")
    for name in ("input.png", "output.jpg", "target.jpg"):  # edges: the input stays exact (PNG, nearest)
        assert (tmp_path / "examples" / f"{best}.{name}").is_file()
    shown = {name: cv2.imread(str(tmp_path / "examples" / f"{best}.{name}.jpg")) for name in ("output", "target")}
    assert shown["target"].shape == shown["output"].shape == (256, 256, 3)
    # the target column holds the real B of that key (and the output column does not)
    with tarfile.open(next(shards.glob("val-*.tar"))) as tar:
        real = cv2.imdecode(np.frombuffer(tar.extractfile(f"{best}.b.png").read(), np.uint8), cv2.IMREAD_COLOR)

    def distance(image: np.ndarray) -> float:
        small = cv2.resize(image, real.shape[1::-1], interpolation=cv2.INTER_AREA)
        return float(np.abs(small.astype(int) - real.astype(int)).mean())

    assert distance(shown["target"]) < 8 < distance(shown["output"])
