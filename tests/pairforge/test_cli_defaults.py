"""Every command built from a config has the config's defaults: `pairforge X` with no options does what
`XConfig()` does. Options are matched to config fields by name (an option's parameter name is the field it
sets, or a rename listed here); the few intentional differences are listed with their reason."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest

from pairforge.build import PairFolderConfig
from pairforge.check import CheckConfig
from pairforge.cli import cli
from pairforge.packing import CardFields, PairFolderInput
from pairforge.pipelines.combine import CombineConfig
from pairforge.pipelines.edges import EdgesConfig
from pairforge.pipelines.gray import GrayConfig
from pairforge.pipelines.labels import LabelsConfig
from pairforge.pipelines.synthetic.facades import FacadesConfig
from pairforge.runner import RunnerConfig
from pairforge.serve import ServeConfig
from pairforge.shards import ShardConfig
from pairforge.trainer.config import PARTS, TrainConfig
from pairforge.trainer.inference import InferenceConfig
from pairforge.trainer.judge import JudgeConfig
from pairforge.trainer.reference import ImportOptions

RESOLVED_WORKERS = "None: resolved when the command runs (all cores; 1 for HED, which uses every core through torch)"
RESOLVED_DEVICE = "auto: resolved to cuda or cpu when the command runs; the config takes the resolved device"


@dataclass(frozen=True)
class Binding:
    """The configs a command builds, and how its options map to their fields.

    Attributes:
        configs: config classes, or default instances where the command starts from one
            (``CombineConfig().fit``); each option is compared with the field of that name in each.
        renames: option parameter name -> field name, or ``Class.field`` to name one config.
        differs: option -> why its default intentionally differs from the field's.
        config_only: field -> why no option sets it (every other field must have an option).
        values: option -> function turning its CLI value into the field's value (``on`` -> True).
    """

    configs: tuple[Any, ...]
    renames: dict[str, str] = field(default_factory=dict)
    differs: dict[str, str] = field(default_factory=dict)
    config_only: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


ON_OFF = {"dropout": lambda value: value == "on"}
RUNNER_ONLY = {"partition_size": "pair builders' partition size, a tuning knob of the Dask runner"}
SPLITS_FILE = {"splits_file": "`shard --splits` only (a split file applies to shard sets made from pair folders)"}
PAIR_FOLDER = {"output": "PairFolderConfig.out_dir", "shards_dir": "ShardConfig.out_dir", "fit": "FitConfig.fit"}
FUSED = {"shards_dir": "None: no shard set unless --shards asks for the fused mode (`shard`'s own default is shards/)"}
FIT_FROM_CONFIG = {"fit": "FitConfig, set by --size and --fit"}


def _field_defaults(config: Any) -> dict[str, Any]:
    """Field name -> default of a config class (fields without one left out) or of a default instance."""
    if not isinstance(config, type):
        return {item.name: getattr(config, item.name) for item in dataclasses.fields(config)}
    defaults = {}
    for item in dataclasses.fields(config):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return defaults


def _builder(config: Any, **extra: Any) -> Binding:
    """make-*: the stage config, its default fit, and the pair folder / fused shard / runner options."""
    return Binding(
        (config, _field_defaults(config)["fit"], PairFolderConfig, ShardConfig, RunnerConfig),
        renames={**PAIR_FOLDER, **extra.pop("renames", {})},
        differs={"workers": RESOLVED_WORKERS, **FUSED, **extra.pop("differs", {})},
        config_only={**RUNNER_ONLY, **SPLITS_FILE, **FIT_FROM_CONFIG, **extra.pop("config_only", {})},
    )


BINDINGS: dict[str, Binding | str] = {
    "check": Binding(
        (CheckConfig, RunnerConfig), renames={"output": "out_dir"}, differs={"workers": RESOLVED_WORKERS},
        config_only={**RUNNER_ONLY, **dict.fromkeys(
            ("outlier_z", "min_margin", "verify_distance", "near_constant_std", "hash_min_std", "min_edge_density",
             "aspect_tolerance", "area_factor", "min_pairs_for_outliers", "label_min_gain", "min_evidence", "uncertain_evidence"),
            "a measuring threshold documented in CheckConfig, not a command-line option")},
    ),
    "shard": Binding((ShardConfig, RunnerConfig, PairFolderInput, CardFields),
                     renames={"output": "out_dir", "license_": "license"}, differs={"workers": RESOLVED_WORKERS},
                     config_only=RUNNER_ONLY),
    "combine": Binding(
        (CombineConfig, CombineConfig().fit, PairFolderConfig, ShardConfig, RunnerConfig), renames=PAIR_FOLDER,
        differs={"workers": RESOLVED_WORKERS, **FUSED}, config_only={**RUNNER_ONLY, **SPLITS_FILE, **FIT_FROM_CONFIG},
    ),
    "make-edges": _builder(EdgesConfig),
    "make-gray": _builder(GrayConfig),
    "make-labels": _builder(
        LabelsConfig, renames={"label_input": "input"},
        differs={"palette": "None: a palette of distinct colours made from the label ids found (no default Palette)"},
    ),
    "synth facades": Binding((FacadesConfig,), config_only={"jpeg_quality": "the rendering's JPEG quality, fixed"}),
    "train": Binding(
        (*PARTS.values(), TrainConfig), renames={"augment": "mode"},
        differs={"num_workers": "None: 0 on the CPU, up to 8 with a GPU (data.default_num_workers); the config's "
                                "2 is for callers from Python (README: Training)",
                 "shards": "SHARDS is an argument: no default"},
        config_only={"beta2": "the paper's 0.999; --beta1's help says so",
                     "max_rotation_degrees": "a parameter of --augment strong",
                     "min_crop_area": "a parameter of --augment strong",
                     "in_channels": "from the dataset (dataset.json)", "out_channels": "from the dataset",
                     **dict.fromkeys(PARTS, "a part of TrainConfig, set through its fields")},
    ),
    "train-judge": Binding((JudgeConfig,), renames={"channels": "base_channels"}, differs={
        "device": RESOLVED_DEVICE,
        **dict.fromkeys(("steps", "batch_size", "crop_size", "channels"),
                        "None: from --budget (JudgeConfig's defaults are the full budget; tests/trainer/test_judge.py)")}),
    "predict": Binding((InferenceConfig,), values=ON_OFF, differs={"device": RESOLVED_DEVICE}),
    "evaluate": Binding((InferenceConfig,), values=ON_OFF, differs={"device": RESOLVED_DEVICE},
                        config_only={"max_side": "predict's tiling; evaluate scores at --scale",
                                     "overlap": "predict's tiling",
                                     "max_pixels": "evaluate reads shard samples, whose size the builders "
                                                   "already limited (predict and serve read users' files)"}),
    "serve": Binding((ServeConfig,), config_only={
        "queue_size": "requests waiting before the server answers 503, a tuning knob",
        "max_upload_bytes": "a safety limit of the upload size (README: Try a model in the browser)"}),
    "import": Binding((ImportOptions,), config_only={"dropout": "set by --no-dropout (None: the reference's default)"}),
    "demo": "no config of its own: it builds fixed FacadesConfig/TrainConfig values for a quick demonstration",
    "export": "no config: export_generator's arguments (format, opset, norm statistics)",
    "inspect": "no config: reads a shard set and draws a contact sheet",
    "synth": "a group of generators (synth facades)",
}


def _commands() -> dict[str, click.Command]:
    """Every command of the CLI, subcommands as ``group name``, generated make-* builders included."""
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None
            found[prefix + name] = command
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")

    walk(cli, "")
    return found


def _cli_defaults(command: click.Command, name: str) -> dict[str, Any]:
    """The values the command receives when no option is given."""
    values = command.make_context(name, [], resilient_parsing=True).params
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}


def _config_name(config: Any) -> str:
    return config.__name__ if isinstance(config, type) else type(config).__name__


def _compare(name: str, binding: Binding) -> tuple[list[str], set[str], set[str]]:
    """(mismatches, options compared, ``Class.field`` names some option sets)."""
    options = _cli_defaults(_commands()[name], name)
    mismatches, compared, covered = [], set(), set()
    for option, value in options.items():
        target = binding.renames.get(option, option)
        only, _, field_name = target.rpartition(".")
        for config in binding.configs:
            if only and _config_name(config) != only:
                continue
            if field_name not in {item.name for item in dataclasses.fields(config)}:
                continue
            covered.add(f"{_config_name(config)}.{field_name}")
            defaults = _field_defaults(config)
            if field_name not in defaults:
                continue  # a required field: the option supplies it
            compared.add(option)
            cli_value = binding.values.get(option, lambda v: v)(value)
            if cli_value != defaults[field_name] and option not in binding.differs:
                mismatches.append(f"{name} --{option.replace('_', '-')}: CLI default {cli_value!r}, "
                                  f"{_config_name(config)}.{field_name} = {defaults[field_name]!r}")
    return mismatches, compared, covered


def test_every_command_says_which_configs_it_builds() -> None:
    """A new command must declare its configs here (or why it has none), so its defaults get compared."""
    assert sorted(_commands()) == sorted(BINDINGS)


@pytest.mark.parametrize("name", [name for name, binding in BINDINGS.items() if isinstance(binding, Binding)])
def test_cli_defaults_equal_the_config_defaults(name: str) -> None:
    binding = BINDINGS[name]
    assert isinstance(binding, Binding)
    mismatches, compared, covered = _compare(name, binding)
    assert mismatches == []
    assert compared, f"{name}: no option matched a config field"
    # each listed difference is real (a stale entry would hide a future drift)
    for option in binding.differs:
        assert option in _cli_defaults(_commands()[name], name), f"{name}: no option {option}"
    # every field is set by an option or listed as config-only with its reason
    for config in binding.configs:
        for item in dataclasses.fields(config):
            qualified = f"{_config_name(config)}.{item.name}"
            assert qualified in covered or item.name in binding.config_only, (
                f"{name}: {qualified} has no option; add one or list it in config_only with the reason")


def test_a_changed_cli_default_is_caught() -> None:
    """The comparison itself: a drifted default (check --max-shift 3) is reported."""
    command = _commands()["check"]
    option = next(param for param in command.params if param.name == "max_shift")
    original = option.default
    option.default = 3.0
    try:
        mismatches, _, _ = _compare("check", BINDINGS["check"])  # type: ignore[arg-type]
    finally:
        option.default = original
    assert mismatches == ["check --max-shift: CLI default 3.0, CheckConfig.max_shift = 1.5"]
