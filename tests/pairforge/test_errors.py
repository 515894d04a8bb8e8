"""Reject reasons: a fixed code that groups, a detail that explains, and every code in the README."""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.errors import SampleError, reject_row
from pairforge.imageio import read_image

ROOT = Path(__file__).resolve().parents[2]


def test_sample_error_has_code_and_detail_and_survives_pickling() -> None:
    error = SampleError("too large", "9x9 = 81 pixels exceeds the limit of 10")
    assert str(error) == "too large: 9x9 = 81 pixels exceeds the limit of 10"
    copy = pickle.loads(pickle.dumps(error))  # Dask process workers send these back
    assert (copy.reason, copy.detail) == ("too large", "9x9 = 81 pixels exceeds the limit of 10")
    assert error.row("x.png", "x") == {"path": "x.png", "key": "x", "reason": "too large",
                                       "detail": "9x9 = 81 pixels exceeds the limit of 10"}
    assert reject_row("y.png", "unmatched") == {"path": "y.png", "reason": "unmatched", "detail": ""}


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(SampleError) as caught:
        read_image(tmp_path / "gone.png")
    assert caught.value.reason == "file not found"


def test_rejects_group_by_code_details_differ(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, side in (("big1.png", 40), ("big2.png", 50), ("ok.png", 32)):
        cv2.imwrite(str(photos / name), np.full((side, side, 3), 90, np.uint8))
    result = CliRunner().invoke(cli, ["make-gray", str(photos), "-o", str(tmp_path / "pairs"), "--size", "32",
                                      "--max-pixels", "1100", "-j", "1", "--gray-tolerance", "0", "-q"])
    assert result.exit_code == 1 and "nothing usable" in result.output, result.output  # every input rejected
    rows = [json.loads(line) for line in (tmp_path / "pairs" / "rejects.jsonl").read_text().splitlines()]
    reasons = Counter(row["reason"] for row in rows)
    assert reasons == {"too large": 2, "already grayscale": 1}
    details = {Path(row["path"]).name: row["detail"] for row in rows}
    assert "40x40 = 1,600" in details["big1.png"] and "50x50 = 2,500" in details["big2.png"]


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for folder in ("pairforge", "pipelines", "trainer"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            codes |= set(re.findall(r'SampleError\(\s*"([^"]+)"', text))
            codes |= set(re.findall(r'reject_row\([^,()]+(?:\([^()]*\))?,\s*"([^"]+)"', text))
    return codes


def test_every_reason_code_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| reason in rejects.jsonl |", 1)[1].split("\n\n", 1)[0]
    codes = _codes_in_source()
    assert {"file not found", "too large", "unmatched", "unsupported file type"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in table)
    assert missing == [], f"reason codes missing from README's troubleshooting table: {missing}"
    assert not [code for code in codes if re.search(r"\d|:", code)], "codes must not embed numbers or details"
