"""Pair folders and shard sets written before describe() was ``{"builder", "config", "provenance"}``.

The fixtures in ``data/old_describe/`` are the pairs.json and dataset.json that pairforge wrote
at commit a42704a (see its README for the commands). They are read through the one adapter
(:func:`pairforge.descriptions.upgrade`), a rebuild with the same config reuses them, and the
trainer reads their colorspace and palette as before.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from pairforge.build import check_reuse
from pairforge.cli import cli
from pairforge.descriptions import config_from_dict, describe, recipe, upgrade
from pairforge.errors import DatasetError
from pairforge.pairs import PairsInfo
from pairforge.palettes import builtin_palette
from pairforge.pipelines.combine import CombineConfig, CombineStage
from pairforge.pipelines.edges import EdgesConfig, EdgesStage
from pairforge.pipelines.geometry import FitConfig
from pairforge.pipelines.gray import GrayConfig, GrayStage
from pairforge.pipelines.labels import LabelsConfig, LabelsStage
from pairforge.pipelines.rebuild import run_photo_stage, stage_from_source
from pairforge.shards import DatasetInfo, read_dataset_file
from pairforge.trainer.transforms import Encoding

OLD = Path(__file__).parent / "data" / "old_describe"
CITYSCAPES = builtin_palette("cityscapes")

# the config each fixture's command line asked for, and the stage class that makes it
MADE_WITH: dict[str, tuple[type, Any]] = {
    "edges_canny": (EdgesStage, EdgesConfig(detector="canny", fit=FitConfig(32))),
    "gray_luma": (GrayStage, GrayConfig(fit=FitConfig(32))),
    "gray_lab": (GrayStage, GrayConfig(space="lab", fit=FitConfig(32, "pad"))),
    # labels record the palette used: with --unknown ignore, the palette plus an ignore class
    "labels": (LabelsStage, LabelsConfig(CITYSCAPES.with_ignore(), unknown="ignore", fit=FitConfig(32))),
    "combine": (CombineStage, CombineConfig()),
}
HED_CONFIG = EdgesConfig(device="cpu", fit=FitConfig(32))
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"


def _old_dataset(name: str) -> DatasetInfo:
    path = OLD / name / "dataset.json"
    return DatasetInfo.from_dataset(read_dataset_file(path), path.parent)


@pytest.mark.parametrize("name", sorted(MADE_WITH))
def test_old_descriptions_read_as_the_config_that_made_them(name: str) -> None:
    stage_class, config = MADE_WITH[name]
    info = PairsInfo.read(OLD / name)
    assert info is not None and set(info.stage) == {"builder", "config", "provenance"}
    assert info.stage["builder"] == stage_class(config).describe()["builder"]
    assert config_from_dict(type(config), info.stage["config"]) == config
    assert recipe(info.stage) == recipe(stage_class(config).describe())  # the recipe this version records
    source = _old_dataset(name).source  # dataset.json: the same stage, upgraded on use
    assert config_from_dict(type(config), upgrade(source["stage"], source["kind"])["config"]) == config


def test_old_hed_description_keeps_its_recipe_and_weights_digest() -> None:
    info = PairsInfo.read(OLD / "edges_hed")
    assert info is not None
    assert config_from_dict(EdgesConfig, info.stage["config"], device="cpu") == HED_CONFIG
    assert info.stage["provenance"]["weights"]["sha256"] == HED_SHA256
    assert info.stage["provenance"]["device"] == "cpu"
    # before hed_input existed HED ran on the fitted output: such a record rebuilds that way
    older = {key: value for key, value in json.loads((OLD / "edges_hed" / "pairs.json").read_text())["stage"].items()
             if key not in ("hed_input", "hed_max_pixels")}
    assert upgrade(older, "edges")["config"]["hed_input"] == "output"


def test_an_old_hed_recipe_equals_the_same_config_run_elsewhere() -> None:
    """Device, batch size and the weights' path say where a stage ran: the recipe is the config and
    the weights digest (a rebuild on a GPU reuses a folder made on a CPU, other weights do not)."""
    info = PairsInfo.read(OLD / "edges_hed")
    assert info is not None
    weights = info.stage["provenance"]["weights"]
    on_gpu = describe("edges", replace(HED_CONFIG, device="cuda", batch_size=4, weights="/x/hed.h5"),
                      weights=weights, device="cuda", precision="bf16")
    assert recipe(info.stage) == recipe(on_gpu)
    other_weights = {**on_gpu, "provenance": {**on_gpu["provenance"], "weights": {**weights, "sha256": "0" * 64}}}
    assert recipe(info.stage) != recipe(other_weights)
    assert recipe(info.stage) != recipe(describe("edges", replace(HED_CONFIG, threshold=0.2), weights=weights))


def test_upgrade_is_idempotent() -> None:
    for name in [*MADE_WITH, "edges_hed"]:
        info = PairsInfo.read(OLD / name)
        assert info is not None and upgrade(info.stage, info.kind) == info.stage


@pytest.mark.parametrize("name", sorted(MADE_WITH))
def test_a_rebuild_with_the_same_config_reuses_an_old_pair_folder(name: str, tmp_path: Path) -> None:
    stage_class, config = MADE_WITH[name]
    shutil.copy(OLD / name / "pairs.json", tmp_path / "pairs.json")
    old = PairsInfo.read(tmp_path)
    assert old is not None

    def info(stage_config: Any) -> PairsInfo:
        return PairsInfo(kind=old.kind, a_channels=old.a_channels, stage=stage_class(stage_config).describe())

    check_reuse(tmp_path, info(config), overwrite=False)  # same config: reused, no error
    with pytest.raises(DatasetError, match="different config"):
        check_reuse(tmp_path, info(config.__class__(**{**vars(config), "fit": FitConfig(64)})), overwrite=False)


def test_make_gray_reuses_an_old_pair_folder_and_records_the_new_shape(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, image in {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee()}.items():
        Image.fromarray(np.asarray(Image.fromarray(image).resize((48, 48)))).save(photos / f"{name}.png")
    out = tmp_path / "pairs"
    out.mkdir()
    shutil.copy(OLD / "gray_lab" / "pairs.json", out / "pairs.json")
    other = CliRunner().invoke(cli, ["make-gray", str(photos), "-o", str(out), "--space", "luma", "--size", "32",
                                     "--fit", "pad", "-j", "1"])
    assert other.exit_code == 1 and "different config" in other.output
    same = CliRunner().invoke(cli, ["make-gray", str(photos), "-o", str(out), "--space", "lab", "--size", "32",
                                    "--fit", "pad", "-j", "1"])
    assert same.exit_code == 0, same.output
    stage = json.loads((out / "pairs.json").read_text())["stage"]
    assert {**stage, "provenance": {}} == GrayStage(MADE_WITH["gray_lab"][1]).describe()
    assert "make-gray" in stage["provenance"]["command"]


@pytest.mark.parametrize(("name", "space"), [("gray_luma", "luma"), ("gray_lab", "lab")])
def test_trainer_reads_the_gray_space_of_an_old_shard_set(name: str, space: str) -> None:
    dataset = _old_dataset(name).to_dict()
    encoding = Encoding.from_config({"dataset": dataset, "data": {"colorspace": "lab"}})
    assert encoding.gray_space == space and encoding.colorspace == "lab"
    current = {**dataset, "source": {"kind": "gray", "stage": GrayStage(MADE_WITH[name][1]).describe()}}
    assert Encoding.from_config({"dataset": current, "data": {"colorspace": "lab"}}).gray_space == space


def test_trainer_reads_the_palette_of_an_old_labels_shard_set() -> None:
    encoding = Encoding.from_config({"dataset": _old_dataset("labels").to_dict(), "data": {}})
    assert encoding.onehot and len(encoding.palette_colors) == len(CITYSCAPES.ids) + 1  # and the ignore class


def test_an_old_run_rebuilds_its_photo_stage() -> None:
    """predict --from-photos on a run whose config.json recorded an old dataset.json ``source``."""
    source = _old_dataset("edges_canny").source
    stage = run_photo_stage({"dataset": {"source": source}, "data": {"direction": "AtoB"}})
    assert isinstance(stage, EdgesStage)
    assert stage.config == EdgesConfig(detector="canny", device="auto", fit=FitConfig(size=None))
    gray = stage_from_source(_old_dataset("gray_lab").source)
    assert isinstance(gray, GrayStage) and gray.config == MADE_WITH["gray_lab"][1]
