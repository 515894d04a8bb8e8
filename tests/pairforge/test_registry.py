"""The builder registry: a builder defined and registered here (no other file touched) runs everywhere.

``InvertStage`` is a complete toy builder: A = 255 - the photo's green channel. Registered
from this module, it gets a generated ``pairforge make-invert`` command, writes a pair folder
and a shard set with a data card, and ``predict --from-photos`` rebuilds its A from the
recorded ``describe()`` (its config, ``asdict``).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pairforge import kinds, registry
from pairforge.cli import cli
from pairforge.descriptions import describe
from pairforge.errors import ConfigError
from pairforge.kinds import Kind
from pairforge.pipelines.base import require_min_side, require_rgb
from pairforge.pipelines.geometry import FitConfig, fit_image
from pairforge.sample import PairSample

SIZE = 64


@dataclass(frozen=True)
class InvertConfig:
    """Options of the toy builder."""

    channel: str = field(default="green", metadata={"choices": ("red", "green", "blue"),
                                                      "help": "Channel inverted into A."})
    offset: int = field(default=0, metadata={"help": "Added to A (saturating)."})
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        if self.channel not in ("red", "green", "blue"):
            raise ConfigError("channel", self.channel, "red | green | blue")
        if not 0 <= self.offset <= 255:
            raise ConfigError("offset", self.offset, "an integer from 0 to 255")


class InvertStage:
    """Inverted-channel -> photo pairs (a toy builder for the registry test)."""

    kind = "invert"
    a_channels = 1
    config_class = InvertConfig

    def __init__(self, config: InvertConfig | None = None) -> None:
        self.config = config or InvertConfig()

    def __call__(self, image: np.ndarray, key: str, **extras: Any) -> PairSample:
        require_rgb(image, "photo")
        require_min_side(image, "photo")
        photo = np.ascontiguousarray(fit_image(image, self.config.fit))
        return PairSample(key, invert(photo, self.config), photo, {"kind": self.kind})

    def describe(self) -> dict[str, Any]:
        return describe("invert", self.config)


class MeasuredInvertStage(InvertStage):
    """The toy builder declaring its kind: A is B's lightness (inverted), so `check` measures it as gray."""

    kind = "measured-invert"
    kind_info = Kind("measured-invert", check_measure="gray")


def invert(photo: np.ndarray, config: InvertConfig) -> np.ndarray:
    channel = ("red", "green", "blue").index(config.channel)
    return np.clip(255 - photo[..., channel].astype(np.int16) + config.offset, 0, 255).astype(np.uint8)


@pytest.fixture
def toy() -> Iterator[type]:
    registry.register("invert", InvertStage)
    yield InvertStage
    registry.unregister("invert")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import sample_photos

    root = tmp_path_factory.mktemp("toy") / "photos"
    root.mkdir()
    for index, photo in enumerate(sample_photos()[:4]):
        cv2.imwrite(str(root / f"p{index}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return root


def _photo(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_registered_builder_gets_a_generated_command(toy: type) -> None:
    listing = CliRunner().invoke(cli, ["--help"])
    assert "make-invert" in listing.output
    result = CliRunner().invoke(cli, ["make-invert", "--help"])
    assert result.exit_code == 0, result.output
    assert "--channel [red|green|blue]" in result.output and "--offset" in result.output
    assert "--shards" in result.output and "--size" in result.output
    bad = CliRunner().invoke(cli, ["make-invert", ".", "--offset", "300"])
    assert bad.exit_code == 1 and "offset" in bad.output and "Traceback" not in bad.output


def test_unregistered_builder_has_no_command() -> None:
    result = CliRunner().invoke(cli, ["make-invert", "--help"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_toy_builder_pair_folder(toy: type, photo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    result = CliRunner().invoke(cli, ["make-invert", str(photo_dir), "-o", str(out), "--size", str(SIZE),
                                      "--channel", "red", "--offset", "3", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "make-invert ->" in result.output
    info = json.loads((out / "pairs.json").read_text())
    assert info["kind"] == "invert" and info["a_channels"] == 1
    assert info["stage"] == {"builder": "invert", "provenance": {"command": info["command"]},
                             "config": {"channel": "red", "offset": 3, "fit": {"size": SIZE, "fit": "crop"}}}
    pair = cv2.imread(str(out / "p0.png"), cv2.IMREAD_UNCHANGED)
    config = InvertConfig("red", 3, FitConfig(SIZE))
    b = fit_image(_photo(photo_dir / "p0.png"), config.fit)
    np.testing.assert_array_equal(pair[:, :SIZE, 0], invert(b, config))  # A stored gray as RGB
    np.testing.assert_array_equal(pair[:, SIZE:, ::-1], b)
    # `check` knows no structure measure of the new kind: it checks the pairs as generic ones
    checked = CliRunner().invoke(cli, ["check", str(out), "-o", str(tmp_path / "check"), "-j", "1"])
    assert checked.exit_code == 0, checked.output
    report = json.loads((tmp_path / "check" / "check.json").read_text())
    assert report["source"]["kind"] == "invert" and report["source"]["measured_as"] == "generic"
    assert report["measures"].get("agreement", {}).get("count", 0) == 0  # generic: no agreement score


def test_a_declared_kind_is_checked_as_it_declares(photo_dir: Path, tmp_path: Path) -> None:
    """A builder's ``kind_info`` tells `check` how to measure its pairs: here A against B's lightness
    (correlation -1 for an inverted channel), where an undeclared kind gets no agreement score."""
    registry.register("measured-invert", MeasuredInvertStage)
    try:
        assert kinds.of("measured-invert").check_measure == "gray"
        out = tmp_path / "pairs"
        made = CliRunner().invoke(cli, ["make-measured-invert", str(photo_dir), "-o", str(out), "--size", str(SIZE),
                                        "-j", "1"])
        assert made.exit_code == 0, made.output
        checked = CliRunner().invoke(cli, ["check", str(out), "-o", str(tmp_path / "check"), "-j", "1"])
        assert checked.exit_code == 0, checked.output
    finally:
        registry.unregister("measured-invert")
    assert kinds.of("measured-invert").check_measure == "generic"  # forgotten with its builder
    report = json.loads((tmp_path / "check" / "check.json").read_text())
    assert report["source"]["kind"] == "measured-invert" and report["source"]["measured_as"] == "gray"
    agreement = report["measures"]["agreement"]
    assert agreement["count"] == 4 and agreement["max"] < -0.9


@pytest.mark.slow
def test_toy_builder_shards_card_and_predict_from_photos(toy: type, photo_dir: Path, tmp_path: Path) -> None:
    from pairforge.trainer.loop import train
    from tests.trainer.conftest import make_tiny_config

    shards = tmp_path / "shards"
    result = CliRunner().invoke(cli, ["make-invert", str(photo_dir), "--shards", str(shards), "--size", str(SIZE),
                                      "--offset", "7", "--val-fraction", "0.25", "--lossless", "-j", "1"])
    assert result.exit_code == 0, result.output
    dataset = json.loads((shards / "dataset.json").read_text())
    assert dataset["kind"] == "invert" and dataset["a_channels"] == 1
    assert dataset["source"]["stage"]["config"]["offset"] == 7
    card = (shards / "DATA_CARD.md").read_text()
    assert "pairforge invert pairs" in card and '"offset": 7' in card
    samples = 0
    for tar in shards.glob("*.tar"):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".a.png"):
                    a = cv2.imdecode(np.frombuffer(archive.extractfile(member).read(), np.uint8), cv2.IMREAD_UNCHANGED)
                    key = member.name.split(".")[0]
                    assert a.shape == (SIZE, SIZE)
                    assert key.startswith("p")
                    samples += 1
    assert samples == 4

    run = Path(train(make_tiny_config(shards, tmp_path / "runs", steps=1, augment__crop_size=SIZE)).run_dir)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    photo = _photo(photo_dir / "p1.png")[:90, :70]
    cv2.imwrite(str(inputs / "small.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    out = tmp_path / "predicted"
    result = CliRunner().invoke(cli, ["predict", str(run), str(inputs), "-o", str(out), "--from-photos",
                                      "--dropout", "off", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rebuilt = cv2.imread(str(out / "inputs" / "small.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(rebuilt, invert(photo, InvertConfig(offset=7)))  # at the photo's own size
    assert cv2.imread(str(out / "small.png")).shape == (90, 70, 3)


def test_rebuild_is_stage_of_config_of_description(toy: type) -> None:
    from pairforge.pipelines.rebuild import stage_from_description

    config = InvertConfig("blue", 9, FitConfig(32, "pad"))
    recorded = json.loads(json.dumps(InvertStage(config).describe()))  # as read back from pairs.json
    stage = stage_from_description("invert", recorded)
    assert stage.config == config
    # an older pairforge recorded a registered builder's config fields and its module:Class
    assert stage_from_description("invert", {**asdict(config), "builder": "x"}).config == config
    assert stage_from_description("invert", recorded, keep_size=True).config.fit == FitConfig(size=None)
    with pytest.raises(ConfigError, match="edges or gray or invert"):
        stage_from_description("labels", {"palette": {}})


def test_builtin_registry_entries() -> None:
    for name in ("edges", "gray", "labels"):
        stage_class = registry.builder(name)
        assert stage_class.kind == name
        assert registry.target(stage_class) == f"pairforge.pipelines.{name}:{name.capitalize()}Stage"
    from pairforge.pipelines.edges import EdgesConfig

    assert registry.workers_hint(registry.builder("edges"), EdgesConfig(detector="canny")) == (None, "")
    assert registry.workers_hint(registry.builder("edges"), EdgesConfig()) == (1, "HED uses every core through torch")
    assert registry.workers_hint(registry.builder("gray"), None) == (None, "")
    assert registry.card_texts("gray")["template"] == "gray2color.md"
    assert registry.card_texts("generic")["a_description"] == "RGB image"
    with pytest.raises(ConfigError, match="edges | gray | labels"):
        registry.builder("depth")


@dataclass(frozen=True)
class ClashConfig:
    size: int = 3  # clashes with the common --size option


class ClashStage(InvertStage):
    kind = "clash"
    config_class = ClashConfig


@dataclass(frozen=True)
class OptionalConfig:
    note: str | None = None
    shape: tuple[int, int] = (1, 2)  # not settable from the command line: keeps its default


class OptionalStage(InvertStage):
    kind = "optional"
    config_class = OptionalConfig


def test_generated_options_from_field_types() -> None:
    from pairforge.commands.build import builder_command

    registry.register("clash", ClashStage)
    registry.register("optional", OptionalStage)
    try:
        with pytest.raises(ConfigError, match="ClashConfig.size"):
            builder_command("clash")
        names = {param.name: param for param in builder_command("optional").params}
        assert names["note"].type == click.STRING and names["note"].default is None
        assert "shape" not in names
    finally:
        registry.unregister("clash")
        registry.unregister("optional")
