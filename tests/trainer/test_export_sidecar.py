"""The export's JSON sidecar says one thing about dropout: what the exported graph does."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pairforge.cli import cli
from pairforge.trainer.loop import train
from tests.trainer.conftest import make_tiny_config, write_shards


def test_sidecar_is_consistent_about_dropout(tmp_path: Path) -> None:
    shards = write_shards(tmp_path / "shards", kind="edges", count=2, size=32, shards=1, val=0)
    run = train(make_tiny_config(shards, tmp_path / "runs", steps=1, augment__crop_size=32)).run_dir
    out = tmp_path / "g.pt"
    result = CliRunner().invoke(cli, ["export", str(run), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "g.pt.json").read_text())
    assert sidecar["dropout"] is False and sidecar["mode"].startswith("dropout off")
    assert "dropout" not in sidecar["model"] and sidecar["model"]["trained_with_dropout"] is True
    assert "true" not in json.dumps({k: v for k, v in sidecar.items() if "dropout" in k}).lower()
