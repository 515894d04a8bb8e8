"""`pairforge demo` end to end with a small step budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairforge.cli import cli


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative -o, as `make demo` runs it (default: demo/)
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli, ["demo", "-q", "-o", "demo", "--steps", "3", "--size", "64", "--crops-per-photo", "2", "--facades", "8"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "step/s" not in result.output and "train edges" not in result.output  # -q: no training bars
    assert f"open {out / 'report.html'}" in result.output
    assert f"pairforge serve {out / 'runs' / '00001-demo-edges'} --scale native" in result.output
    report = (out / "report.html").read_text()
    for task in ("edges", "gray"):
        shards = json.loads((out / "shards" / task / "dataset.json").read_text())
        assert shards["kind"] == task and sum(s["count"] for s in shards["splits"].values()) > 0
        metrics = json.loads((out / "eval" / task / "metrics.json").read_text())
        assert metrics["means"] and all(isinstance(v, (int, float)) for v in metrics["means"].values())
        assert all(v == v for v in metrics["means"].values())  # no NaN
        assert (out / "predict" / task / "index.html").exists()
    images = re.findall(r'<img src="([^"]+)"', report)
    # edges: 4 held-out facades x input/output/target + 4 x input/L1/L1+cGAN/target; gray: 2 photos x 3
    assert len(images) == 4 * 3 + 4 * 4 + 2 * 3
    assert all((out / src).is_file() for src in images)
    assert len(list((out / "facades" / "train" / "photos").glob("*.jpg"))) == 8
    assert sorted(p.name for p in (out / "predict" / "edges-l1").glob("*.png")) == sorted(
        p.name for p in (out / "predict" / "edges").glob("*.png"))
    l1_config = json.loads(next((out / "runs").glob("*-demo-edges-l1/config.json")).read_text())
    assert l1_config["loss"]["use_gan"] is False and l1_config["augment"]["crop_size"] == 32
    assert "L1 alone vs L1 + cGAN" in report and "What to expect" in report
    assert "<svg" in report  # loss curves
    assert "already grayscale" in (out / "shards" / "gray" / "rejects.jsonl").read_text()  # camera is rejected
