"""pairforge.packing: what `shard` does, called from Python (no CLI), and the fused builders' shard step."""

from __future__ import annotations

import errno
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pairforge import files
from pairforge.build import PairFolderConfig, build_pair_folder
from pairforge.datacard import write_card
from pairforge.errors import ConfigError, DatasetError
from pairforge.packing import CardFields, PairFolderInput, build_shard_set, shard_pair_folder
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage
from pairforge.registry import target
from pairforge.runner import RunnerConfig
from pairforge.shards import ShardConfig
from pairforge.sources import StageSpec

GRAY = StageSpec(target(GrayStage), GrayConfig(fit=FitConfig(size=32)))


def _members(shards: Path) -> dict[str, bytes]:
    found = {}
    for tar in sorted(shards.glob("*.tar")):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                found[member.name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    return found


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture()
def photos(tmp_path: Path, skimage_photos: list[np.ndarray]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, photo in enumerate(skimage_photos[:4]):
        cv2.imwrite(str(folder / f"p{index}.png"), cv2.cvtColor(cv2.resize(photo, (48, 40)), cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture()
def pairs(tmp_path: Path, photos: Path) -> Path:
    out = tmp_path / "pairs"
    build_pair_folder(GRAY, [_item(path) for path in sorted(photos.iterdir())], PairFolderConfig(str(out)),
                      RunnerConfig(), command="pairforge make-gray photos")
    return out


def _item(path: Path):  # type: ignore[no-untyped-def]
    from pairforge.sources import SourceItem

    return SourceItem(path.stem, str(path), "")


def test_shard_pair_folder_packs_the_manifest_and_returns_what_it_wrote(pairs: Path, tmp_path: Path) -> None:
    shutil.copyfile(pairs / "p0.png", pairs / "stray.png")  # an image the manifest does not list
    warned: list[str] = []
    config = ShardConfig(str(tmp_path / "shards"), val_fraction=0.25)
    result = shard_pair_folder(pairs, config, card=CardFields(license="CC0", source="the tests"),
                               command="pairforge shard pairs", warn=warned.append)
    assert warned == [f"warning: 1 files in {pairs} are not in its manifest.jsonl (left from an earlier build?); "
                      "not packed, listed in rejects.jsonl"]
    assert (result.summary.seen, result.summary.written, dict(result.summary.rejected)) == (5, 4, {"not in manifest": 1})
    assert result.dataset == json.loads((tmp_path / "shards" / "dataset.json").read_text())  # what was written
    assert result.dataset["kind"] == "gray" and result.dataset["source"]["root"] == str(pairs)
    assert result.config is config and result.collisions == 0
    card = result.card_path.read_text()
    assert result.card_path == tmp_path / "shards" / "DATA_CARD.md"
    assert "CC0" in card and "the tests" in card
    assert card.index("pairforge make-gray photos") < card.index("pairforge shard pairs")  # oldest command first
    keys = {name.split(".")[0] for name in _members(tmp_path / "shards")}
    assert keys == {"p0", "p1", "p2", "p3"}


def test_shard_pair_folder_refuses_photos_with_a_pairforge_error(photos: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"do not look like AB pairs .*e\.g\. 48x40.*make-gray.*--force-ab"):
        shard_pair_folder(photos, ShardConfig(str(tmp_path / "s")))
    assert not list((tmp_path / "s").glob("*.tar"))
    result = shard_pair_folder(photos, ShardConfig(str(tmp_path / "forced")), PairFolderInput(force_ab=True))
    assert result.summary.written == 4
    with pytest.raises(DatasetError, match="pair folder .*nowhere not found"):
        shard_pair_folder(tmp_path / "nowhere", ShardConfig(str(tmp_path / "s2")))
    assert not (tmp_path / "s2").exists()  # refused before the output is made


def test_btoa_swaps_the_halves_and_describes_the_swapped_pair(pairs: Path, tmp_path: Path) -> None:
    result = shard_pair_folder(pairs, ShardConfig(str(tmp_path / "s"), lossless=True), PairFolderInput("BtoA"))
    source = result.dataset["source"]
    assert (result.dataset["kind"], result.dataset["a_channels"]) == ("generic", 3)
    assert source["direction"] == "BtoA" and source["swapped_from_kind"] == "gray" and source["stage"] == {}
    members = _members(tmp_path / "s")
    ab = np.asarray(Image.open(pairs / "p1.png").convert("RGB"))
    width = ab.shape[1] // 2
    assert np.array_equal(_decode(members["p1.a.png"]), ab[:, width:])  # A is the photo (right half)
    assert np.array_equal(_decode(members["p1.b.png"]), ab[:, :width])


def test_key_collisions_are_warned_and_counted(tmp_path: Path, skimage_photos: list[np.ndarray]) -> None:
    folder = tmp_path / "ab"
    folder.mkdir()
    pair = np.concatenate([cv2.resize(skimage_photos[0], (32, 32))] * 2, axis=1)
    for name in ("a b.png", "a.b.png", "c.png"):
        Image.fromarray(pair).save(folder / name)
    warned: list[str] = []
    result = shard_pair_folder(folder, ShardConfig(str(tmp_path / "s")), warn=warned.append)
    assert warned == ["key collision: a b, a.b -> a_b, a_b-2, ..."] and result.collisions == 1


def test_reading_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="direction"):
        PairFolderInput(direction="CtoD")


def test_fused_builder_writes_shards_and_card(photos: Path, tmp_path: Path) -> None:
    result = build_shard_set(GRAY, [_item(path) for path in sorted(photos.iterdir())], ShardConfig(str(tmp_path / "f")),
                             RunnerConfig(), photos=str(photos), command="pairforge make-gray photos --shards f")
    assert result.dataset["source"]["stage"]["builder"] == "gray"  # the registered name
    assert result.dataset == json.loads((tmp_path / "f" / "dataset.json").read_text())
    assert "pairforge make-gray photos --shards f" in result.card_path.read_text()


def test_the_data_card_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_card(tmp_path, "first card\n")

    def full_disk(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(files.DiskFullError):
        write_card(tmp_path, "second card\n")
    assert (tmp_path / "DATA_CARD.md").read_text() == "first card\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["DATA_CARD.md"]  # no temporary left


def test_builder_commands_do_not_import_the_data_commands() -> None:
    """commands/build.py and commands/data.py share options through commands/common.py, not each other."""
    code = "import sys, pairforge.commands.build; print('pairforge.commands.data' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
