"""predict's index.html: 256-px images (nearest for label maps), the run, checkpoint and options; skips named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer.loop import train
from tests.trainer.conftest import PALETTE, _photos, make_pair, make_tiny_config, write_shards


@pytest.fixture(scope="module")
def label_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict_page")
    shards = write_shards(root / "shards", kind="labels", count=2, size=32, shards=1, val=0)
    return Path(train(make_tiny_config(shards, root / "runs", steps=1, augment__crop_size=32)).run_dir)


def test_index_page_facts_sizes_and_skips(label_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "labels"
    inputs.mkdir()
    for index, photo in enumerate(_photos(32)[:2]):
        a, _ = make_pair(photo, "labels", index)
        cv2.imwrite(str(inputs / f"map{index}.png"), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    (inputs / "notes.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(label_run), str(inputs), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert f"skipped {inputs / 'notes.png'}: not an image (unrecognised format)" in result.output
    reject = json.loads((out / "rejects.jsonl").read_text())
    assert reject["reason"] == "not an image" and reject["path"].endswith("notes.png")
    page = (out / "index.html").read_text()
    assert "step 1 (" in page and "checkpoints/step-000000001" in page  # the checkpoint used
    assert str(label_run) in page and "dropout on, seed 0" in page  # the run and the options
    assert "notes.png: not an image" in page
    thumbs = re.findall(r'<img src="([^"]+)"', page)
    assert len(thumbs) == 4
    for thumb in thumbs:
        assert max(cv2.imread(str(out / thumb)).shape[:2]) == 256  # 32-px images are shown at 256 px
    label_thumb = cv2.cvtColor(cv2.imread(str(out / "thumbs" / "inputs__map0.png.png")), cv2.COLOR_BGR2RGB)
    palette = {tuple(c["color"]) for c in PALETTE["classes"]} | {tuple(PALETTE["ignore"]["color"])}
    assert {tuple(int(v) for v in c) for c in label_thumb.reshape(-1, 3)} <= palette  # nearest: no new colours
    again = CliRunner().invoke(cli, ["predict", str(label_run), str(inputs / "map0.png"), "-o", str(out), "-q"])
    assert again.exit_code == 0 and not (out / "rejects.jsonl").exists()  # no stale rejects from the last run
    assert np.array_equal(cv2.imread(str(out / "inputs" / "map0.png")).shape, (32, 32, 3))
