"""Frozen configuration dataclasses for training, one per component."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pairforge.device import DEVICES
from pairforge.errors import ConfigError

GENERATORS = ("unet_256", "unet_128", "unet", "resnet_9blocks", "resnet_6blocks", "encoder_decoder")
DISCRIMINATORS = ("patch", "pixel", "image", "global")
NORMS = ("batch", "instance", "none")
GAN_MODES = ("vanilla", "lsgan", "hinge")
AUGMENT_MODES = ("none", "pix2pix", "strong")
LABEL_INPUTS = ("onehot", "color")
COLORSPACES = ("rgb", "lab")
DIRECTIONS = ("AtoB", "BtoA")
PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str, device_type: str) -> str:
    """``bf16`` or ``fp32``: ``auto`` is bf16 on CUDA, fp32 elsewhere."""
    return precision if precision != "auto" else ("bf16" if device_type == "cuda" else "fp32")
SCALES = ("train", "native")
"""Test-time scale: the training crop size (the reference's test protocol) or the stored resolution."""


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, value, "one of " + ", ".join(allowed))


def _at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(name, value, f">= {minimum}")


def _validate(config: object, choices: dict[str, tuple[str, ...]], minimums: dict[str, float]) -> None:
    """Check the named fields of ``config``: each in its choices, then each at least its minimum."""
    for name, allowed in choices.items():
        _choice(name, getattr(config, name), allowed)
    for name, minimum in minimums.items():
        _at_least(name, getattr(config, name), minimum)


@dataclass(frozen=True)
class DataConfig:
    """Where pairs come from and how they become tensors.

    Attributes:
        shards: shard folder (with dataset.json), a brace pattern, or any URL webdataset opens.
        dataset_json: dataset.json to use when ``shards`` is not a local folder.
        val_shards: pattern or URL of validation shards (default: the val split of dataset.json).
        label_input: ``onehot`` (palette classes as channels) or ``color`` (the RGB label image).
        colorspace: ``rgb`` or ``lab`` (input L, output ab: the colorization setup).
        batch_size: pairs per step and per process.
        num_workers: DataLoader worker processes decoding PNG/JPEG.
        shuffle_buffer: samples held in the shuffle buffer of each worker.
        max_val_samples: at most this many validation pairs per validation pass.
        record_keys: write the keys of every trained sample to ``keys.jsonl`` (debugging, tests).
        direction: ``AtoB`` (A is the input) or ``BtoA`` (B is the input: the reference's
            facades, cityscapes and maps folders); predict, evaluate and export follow it.
        allow_modified_shards: train on shards that differ from dataset.json (size, sample
            count, stats) as they are, instead of refusing them (``--allow-modified-shards``).
    """

    shards: str = ""
    dataset_json: str | None = None
    val_shards: str | None = None
    label_input: str = "onehot"
    colorspace: str = "rgb"
    batch_size: int = 1
    num_workers: int = 2
    shuffle_buffer: int = 1000
    max_val_samples: int = 64
    record_keys: bool = False
    direction: str = "AtoB"
    allow_modified_shards: bool = False

    def __post_init__(self) -> None:
        _validate(self, {"direction": DIRECTIONS, "label_input": LABEL_INPUTS, "colorspace": COLORSPACES},
                  {"batch_size": 1, "num_workers": 0, "shuffle_buffer": 1, "max_val_samples": 0})
        for name in ("shards", "dataset_json", "val_shards"):  # recorded in config.json: no credentials
            object.__setattr__(self, name, _recordable(getattr(self, name)))


def _recordable(location: str | None) -> str | None:
    """An object-store URL without user-info or query string (:func:`pairforge.storage.safe_url`);
    credentials come from the environment. http(s) URLs and local paths stay as given."""
    from pairforge.storage import is_url, safe_url

    if location is None or not is_url(location) or location.lower().startswith(("http://", "https://")):
        return location
    return safe_url(location)


@dataclass(frozen=True)
class AugmentConfig:
    """Geometric augmentation applied on the training device.

    Attributes:
        mode: ``none`` (resize to crop size), ``pix2pix`` (resize to load size, random crop,
            flip) or ``strong`` (adds random resized crop and a small rotation).
        load_size: side of the square the image is resized to before cropping.
        crop_size: side of the square crop the networks see.
        flip: random horizontal flip (pix2pix and strong).
        max_rotation_degrees: largest rotation of ``strong``.
        min_crop_area: smallest crop area, as a fraction of the load-size square, of ``strong``.
    """

    mode: str = "pix2pix"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    max_rotation_degrees: float = 10.0
    min_crop_area: float = 0.6

    def __post_init__(self) -> None:
        _choice("augment", self.mode, AUGMENT_MODES)
        _at_least("crop_size", self.crop_size, 8)
        if self.load_size < self.crop_size:
            raise ConfigError("load_size", self.load_size, f">= crop_size ({self.crop_size})")
        if not 0.1 <= self.min_crop_area <= 1.0:
            raise ConfigError("min_crop_area", self.min_crop_area, "a fraction in [0.1, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator architecture.

    Attributes:
        generator: one of GENERATORS.
        discriminator: ``patch`` (PatchGAN), ``pixel`` (1x1), ``image`` (the paper's 286x286
            ImageGAN: a 5-layer PatchGAN) or ``global`` (one logit per image, down to 4x4 then one conv).
        in_channels: generator input channels (resolved from the dataset).
        out_channels: generator output channels (3 for RGB, 2 for Lab ab).
        generator_channels: width of the generator's first layer (64 in the paper).
        discriminator_channels: width of the discriminator's first layer (64 in the paper).
        n_layers: PatchGAN depth (3 gives the 70x70 receptive field).
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout in the generator (the noise source of pix2pix).
        crop_size: image side the networks see (sets ``unet`` and ``image`` depths).
        conditional: whether the discriminator sees A next to B.
    """

    generator: str = "unet_256"
    discriminator: str = "patch"
    in_channels: int = 3
    out_channels: int = 3
    generator_channels: int = 64
    discriminator_channels: int = 64
    n_layers: int = 3
    norm: str = "batch"
    dropout: bool = True
    crop_size: int = 256
    conditional: bool = True

    def __post_init__(self) -> None:
        _validate(self, {"generator": GENERATORS, "discriminator": DISCRIMINATORS, "norm": NORMS},
                  dict.fromkeys(("in_channels", "out_channels", "generator_channels", "discriminator_channels",
                                 "n_layers"), 1))
        if self.crop_size % 2:
            raise ConfigError("crop_size", self.crop_size, "an even number of pixels")
        if self.discriminator == "image" and self.crop_size < 96:
            raise ConfigError(
                "discriminator", self.discriminator,
                f"a crop size of at least 96 for the 286x286 ImageGAN (got {self.crop_size}; use 'global' or 'patch')",
            )
        fixed_depth = {"unet_256": 8, "unet_128": 7}.get(self.generator)
        if fixed_depth is not None and self.crop_size % (2**fixed_depth):
            raise ConfigError(
                "generator",
                self.generator,
                f"a crop size divisible by {2**fixed_depth} (got {self.crop_size}; use generator 'unet')",
            )


@dataclass(frozen=True)
class LossConfig:
    """Objective of the paper's ablation table.

    Attributes:
        gan_mode: ``vanilla`` (BCE), ``lsgan`` (MSE) or ``hinge``.
        lambda_l1: weight of the L1 term (0 disables it).
        use_gan: False trains with L1 only (``--no-gan``).
    """

    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    use_gan: bool = True

    def __post_init__(self) -> None:
        _choice("gan_mode", self.gan_mode, GAN_MODES)
        _at_least("lambda_l1", self.lambda_l1, 0.0)
        if not self.use_gan and self.lambda_l1 == 0:
            raise ConfigError("lambda_l1", self.lambda_l1, "> 0 when the GAN term is off (--no-gan)")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the learning-rate schedule.

    Attributes:
        lr: initial learning rate of both networks.
        beta1: Adam beta1.
        beta2: Adam beta2.
        epochs: epochs at the initial learning rate.
        decay_epochs: epochs of linear decay to zero afterwards.
        steps: total steps; overrides the epochs (same constant:decay ratio).
        ema: generator EMA decay (0 turns it off).
    """

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = 100
    decay_epochs: int = 100
    steps: int | None = None
    ema: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError("lr", self.lr, "> 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(name, value, "in [0, 1)")
        _at_least("epochs", self.epochs, 0)
        _at_least("decay_epochs", self.decay_epochs, 0)
        if self.epochs + self.decay_epochs == 0 and self.steps is None:
            raise ConfigError("epochs", self.epochs, "epochs + decay_epochs > 0, or --steps")
        if self.steps is not None:
            _at_least("steps", self.steps, 1)
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError("ema", self.ema, "0 (off) or a decay in (0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved as the run's config.json.

    Attributes:
        output: parent folder of the numbered run folders.
        name: run name (the folder is ``<00001>-<name>``).
        seed: seed of weights, augmentation, dropout and data order.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.
        compile: wrap the networks with ``torch.compile``.
        deterministic: deterministic kernels (for exact resume and comparisons).
        log_every: steps between metrics.jsonl rows.
        sample_every: steps between sample grids (0: only at the end).
        val_every: steps between validation passes (0: only at the end).
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many step checkpoints to keep (the newest).
        tensorboard: also write TensorBoard events (needs tensorboard installed).
        init_from: a run or checkpoint folder whose weights this new run starts from
            (``--init-from``: fine-tuning; optimizers, schedule and data are the run's own); None
            starts from random weights.
    """

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output: str = "runs"
    name: str = "pix2pix"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    deterministic: bool = False
    log_every: int = 10
    sample_every: int = 500
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    tensorboard: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        if not self.name or any(c in self.name for c in "/\\ ."):
            raise ConfigError("name", self.name, "a non-empty name without '/', '\\', '.' or spaces")
        _validate(self, {}, {"log_every": 1, "sample_every": 0, "val_every": 0, "checkpoint_every": 0,
                             "keep_checkpoints": 1})
        if self.augment.crop_size != self.model.crop_size:
            raise ConfigError("model.crop_size", self.model.crop_size, f"the augment crop size {self.augment.crop_size}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a config written by :meth:`to_dict`; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                continue
            if key in PARTS:
                value = PARTS[key](**{k: v for k, v in value.items() if k in _field_names(PARTS[key])})
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """A config from flat options, each named as the field it sets (``lr``, ``generator``, ``flip``, ...).

        A name is a field of TrainConfig itself or of one of its parts (``data``, ``augment``,
        ``model``, ``loss``, ``optim``); ``crop_size`` sets both the augment crop and the model's
        (they must agree), ``augment`` is the augment mode (``--augment``). Fields not given keep
        their defaults. This is the one way the CLI, the demo, the reference import, the
        benchmarks and the tests build a TrainConfig.

        Raises:
            ConfigError: a name that is no field, or an invalid value (naming the field).
        """
        parts, top = _grouped(options)
        return cls(**{part: PARTS[part](**values) for part, values in parts.items()}, **top)

    def replace_options(self, **options: Any) -> TrainConfig:
        """This config with the flat options given (named as in :meth:`from_options`) replaced.

        Raises:
            ConfigError: a name that is no field, or an invalid value.
        """
        parts, top = _grouped(options)
        replaced = {part: dataclasses.replace(getattr(self, part), **values) for part, values in parts.items() if values}
        return dataclasses.replace(self, **replaced, **top)

    def option(self, name: str) -> Any:
        """The value of the flat option ``name`` (as :meth:`from_options` names it: ``lr``, ``augment``, ``flip``)."""
        field_name = "mode" if name == "augment" else name
        for part, part_class in PARTS.items():
            if field_name in _field_names(part_class):
                return getattr(getattr(self, part), field_name)
        if name in _field_names(type(self)) and name not in PARTS:
            return getattr(self, name)
        raise ConfigError("option", name, "a field of TrainConfig or of its data, augment, model, loss or optim parts")


PARTS: dict[str, type] = {
    "data": DataConfig,
    "augment": AugmentConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
}
"""The parts of a TrainConfig, by field name."""


def _field_names(config_class: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class)}


@dataclass(frozen=True)
class JudgeBudget:
    """A size and training length of the FCN-score judge (``pairforge train-judge --budget``).

    Attributes:
        base_channels: width of the judge's first stage.
        crop_size: side of the random training crops.
        batch_size: crops per step.
        steps: optimizer steps.
        about: what it costs and where it fits, for ``--help``.
    """

    base_channels: int
    crop_size: int
    batch_size: int
    steps: int
    about: str


JUDGE_BUDGETS: dict[str, JudgeBudget] = {
    "cpu": JudgeBudget(16, 64, 8, 2000, "about 2.4 min on one CPU core: 0.07 s per step, benchmarks/RESULTS.md"),
    "full": JudgeBudget(32, 128, 8, 2000, "about 24 min on one CPU core: 0.71 s per step, 10x the cpu budget's"),
}
"""The judge budgets by name; ``auto`` is ``full`` on a GPU and ``cpu`` elsewhere (:func:`judge_budget`)."""


def judge_budget(name: str, device: str) -> tuple[str, JudgeBudget]:
    """The budget ``name`` (``auto``: ``full`` on a CUDA device, else ``cpu``) and its values.

    Raises:
        ConfigError: an unknown name.
    """
    if name == "auto":
        name = "full" if device.startswith("cuda") else "cpu"
    if name not in JUDGE_BUDGETS:
        raise ConfigError("budget", name, "auto, " + ", ".join(JUDGE_BUDGETS))
    return name, JUDGE_BUDGETS[name]

def _grouped(options: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Flat options sorted into (part -> {field: value}, top-level {field: value})."""
    parts: dict[str, dict[str, Any]] = {name: {} for name in PARTS}
    top: dict[str, Any] = {}
    for name, value in options.items():
        if name == "augment":
            name = "mode"
        owners = [part for part, part_class in PARTS.items() if name in _field_names(part_class)]
        if owners:
            for part in owners:
                parts[part][name] = value
        elif name in _field_names(TrainConfig) and name not in PARTS:
            top[name] = value
        else:
            raise ConfigError("option", name, "a field of TrainConfig or of its data, augment, model, loss "
                              "or optim parts")
    return parts, top


RESUME_SAFE_OPTIONS = (
    "device", "compile", "deterministic", "log_every", "sample_every", "val_every", "checkpoint_every",
    "keep_checkpoints", "max_val_samples", "tensorboard", "record_keys", "allow_modified_shards",
)
"""Options a resumed run may change (``train --resume RUN --device cpu``): they choose where and how the
same computation runs (device, compiled or not, deterministic kernels; the arithmetic itself is
``--precision`` and is not among them) and what is logged, validated and checkpointed along the way,
never what a training step computes. Validation draws its dropout noise from its own seeded
generator inside ``torch.random.fork_rng``, so its schedule leaves the training untouched. ``--num-workers`` is not among them:
each DataLoader worker reads its own shards through its own shuffle buffer, so the worker count
decides the order of the samples. ``--allow-modified-shards`` is the user's answer to a shard set
that changed after the run began (the refusal names it): allowed, and recorded in the run's history.
Every other option is compared with the run's config.json."""

PATH_OPTIONS = ("shards", "dataset_json", "val_shards", "output")
"""Options naming files or folders: compared as resolved absolute paths."""

DERIVED_FIELDS = ("in_channels", "out_channels")
"""Model fields resolved from the dataset (not options)."""


def option_names() -> list[str]:
    """Every flat option of :meth:`TrainConfig.from_options` (``augment`` for the augment mode), in field order."""
    names: list[str] = []
    for part_class in PARTS.values():
        for name in (f.name for f in dataclasses.fields(part_class)):
            name = "augment" if name == "mode" else name
            if name not in names and name not in DERIVED_FIELDS:
                names.append(name)
    names += [f.name for f in dataclasses.fields(TrainConfig) if f.name not in PARTS]
    return names


NEGATED_FLAGS = {"flip": "--no-flip", "use_gan": "--no-gan", "conditional": "--unconditional", "dropout": "--no-dropout"}
"""Boolean options whose command-line flag turns them off."""


def option_flag(name: str) -> str:
    """How ``pairforge train`` spells the option ``name``: ``lr`` -> ``--lr``, ``flip`` -> ``--no-flip``."""
    if name == "shards":
        return "SHARDS"
    return NEGATED_FLAGS.get(name, "--" + name.replace("_", "-"))
