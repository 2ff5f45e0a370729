"""The one typed configuration of a run: built by the CLI, saved with checkpoints and exports.

Each field belongs to one of the GROUPS (data, networks, losses, optimisation, runtime, export). Code reads the
fields flat (`config.image_size`); `--help` lists them group by group, and config.json holds them grouped
(`{"data": {...}, "networks": {...}, ...}`). `Config.from_dict` and `Config.load` read that form and the flat one
of older run directories and of `to_dict` (which exports keep in their metadata).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pix2pix_tf.errors import ConfigError

ColorSpace = Literal["rgb", "lab"]
GeneratorKind = Literal["unet", "encoder_decoder"]
NormKind = Literal["batch", "instance", "none"]
Precision = Literal["auto", "fp32", "mixed_float16", "mixed_bfloat16"]
StrategyKind = Literal["auto", "one", "mirrored", "multiworker", "tpu"]
Direction = Literal["AtoB", "BtoA"]
LayerForms = Literal["fast", "plain"]

# The groups in the order config.json and --help list them, each with its line in --help.
GROUP_DESCRIPTIONS: dict[str, str] = {
    "data": "which photos, at what size, and their augmentation",
    "networks": "the generator and the PatchGAN discriminator",
    "losses": "what G and D minimise",
    "optimisation": "the optimisers, the schedule and the budget",
    "runtime": "devices, precision, the run folder and its logs",
    "export": "the SavedModel written after training",
}
# Fields that older versions had, which a saved config.json or an export's metadata may still hold, each with
# the one value that meant what the current code does (None where no value did).
REMOVED_FIELDS: dict[str, Any] = {"chroma_filter": None, "chroma_fade_low": None, "chroma_fade_high": None,
                                  "gan_loss": "vanilla", "chroma_head": "regress", "annealed_temperature": 0.38,
                                  "lambda_class": 1.0, "class_rebalance": 0.0}
MIN_IMAGE_SIZE = 16  # the smallest working size: the default PatchGAN still judges 2x2 patches there (one at 8)

log = logging.getLogger(__name__)


def _group(name: str) -> Callable[..., Any]:
    """The field declaration of one group: `_data(default, help)` declares a field of the "data" group."""
    def declare(default: Any, help: str = "", /) -> Any:
        return field(default=default, metadata={"group": name, "help": help})
    return declare


_data, _networks, _losses, _optimisation, _runtime, _export = map(_group, GROUP_DESCRIPTIONS)


@dataclass
class Config:
    """Every knob of a pix2pix run. Defaults follow the paper (Isola et al. 2017)."""

    dataset: str = _data("sample", "dataset name (sample, folder, opencountry, forest, facades, ...)")
    data_dir: str | None = _data(None, "downloaded archive, extracted folder, or photo folder")
    direction: Direction | None = _data(None, "paired sets: AtoB or BtoA (default: the dataset's usual one)")
    color_space: ColorSpace = _data("rgb", "rgb: grey 3ch -> RGB (the study); lab: L -> ab")
    image_size: int = _data(256, f"working size: a power of 2, at least {MIN_IMAGE_SIZE} (the U-Net halves it "
                                 "down to 1x1)")
    batch_size: int = _data(1)
    jitter: bool = _data(True, "resize to 286/256 then random crop back")
    mirror: bool = _data(True, "random horizontal flip")
    vflip: bool = _data(False, "random vertical flip (the study's 'inversion')")
    zoom_crop: float = _data(0.0, "probability of a random ~40%% crop upscaled to full size")
    scale_jitter: float = _data(1.0, "scale each training photo by a random factor in [1, this] before the crop; "
                                     "1 = fixed")
    seed: int = _data(0)

    generator: GeneratorKind = _networks("unet")
    ngf: int = _networks(64, "generator filters in the first layer")
    ndf: int = _networks(64, "discriminator filters in the first layer")
    d_layers: int = _networks(3, "PatchGAN layers (3 = 70x70 receptive field)")
    d_norm: NormKind = _networks("batch")
    d_dropout: float = _networks(0.0, "dropout rate in the discriminator (the study used BN + dropout)")
    g_dropout: float = _networks(0.5, "dropout on the first three decoder blocks")

    lambda_l1: float = _losses(100.0, "L1 weight (the study also tried 20, 200)")
    label_fuzz: float = _losses(0.0, "fuzzy labels: real in [1-eps,1], fake in [0,eps]; 0 = off")
    label_flip: float = _losses(0.0, "probability of swapping D's real/fake labels")

    lr_g: float = _optimisation(2e-4)
    lr_d: float = _optimisation(2e-4)
    beta1: float = _optimisation(0.5)
    beta2: float = _optimisation(0.999)
    epochs: int = _optimisation(100, "epochs at constant learning rate")
    epochs_decay: int = _optimisation(100, "epochs of linear decay to 0 after that")
    steps: int | None = _optimisation(None, "stop after this many steps in all (overrides the epoch count; the "
                                            "learning rate still follows --epochs/--epochs-decay, 0 past their end)")
    d_steps: int = _optimisation(1, "discriminator updates per iteration")
    g_steps: int = _optimisation(1, "generator updates per iteration")
    g_only_epochs: int = _optimisation(0, "first N epochs train G alone, D frozen")
    g_ema: float = _optimisation(0.0, "decay of a moving average of the generator's weights, which progress "
                                      "images, calibration and the export use (e.g. 0.999); 0 = off, the paper's "
                                      "last weights")
    time_budget: float | None = _optimisation(None, "minutes; stop cleanly (checkpoint + export) when spent")
    fit_schedule: bool = _optimisation(True, "with --time-budget: after each epoch, re-plan --epochs and "
                                             "--epochs-decay in proportion (never longer) so that the decay to 0 "
                                             "ends within the budget")

    precision: Precision = _runtime("auto")
    jit_compile: bool | None = _runtime(None, "XLA for the train step (default: off, see bench/README.md)")
    strategy: StrategyKind = _runtime("auto")
    cpu_devices: int = _runtime(0, "split the CPU into N logical devices")
    sync_batchnorm: bool = _runtime(False)
    layer_forms: LayerForms = _runtime("fast", "fast: layers in the forms measured fastest (same numbers; "
                                               "bench/README.md); "
                                               "plain: Keras's own layers")
    run_dir: str | None = _runtime(None, "default: runs/<dataset>")
    checkpoint_every: int = _runtime(500, "steps between checkpoints")
    image_every: int = _runtime(200, "steps between TensorBoard image grids")
    progress_samples: int = _runtime(4, "fixed validation inputs in progress.gif")

    export_dir: str | None = _export(None, "default: saved_models/<dataset>")
    full_resolution: bool = _export(True, "recombine the chroma with the full-resolution luminance")
    chroma_scale: float | None = _export(None, "multiply the output's Lab ab by this; default: chosen on val "
                                               "after training")
    chroma_smoothing: int = _export(8, "radius in working-size pixels of the guided filter that smooths the "
                                       "output's Lab ab along L's edges before joining it with L (1 = off)")

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.dataset}")

    def resolved_export_dir(self) -> Path:
        return Path(self.export_dir or f"saved_models/{self.dataset}")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    def to_dict(self) -> dict[str, Any]:
        """The flat {field: value} form (an export's metadata holds this)."""
        return dataclasses.asdict(self)

    def to_grouped_dict(self) -> dict[str, dict[str, Any]]:
        """{group: {field: value}}, groups and fields in declaration order (config.json holds this)."""
        values = self.to_dict()
        return {group: {name: values[name] for name in names} for group, names in GROUPS.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_grouped_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """A validated Config from the grouped form or the flat one (or a mix). Fields that older versions had
        (REMOVED_FIELDS) are dropped, with one warning naming those whose value meant something else; any other
        unknown key is a ConfigError."""
        flat = _flatten(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known - REMOVED_FIELDS.keys())
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        removed = removed_options(flat)
        if removed:
            log.warning("config: ignoring %s, saved by an older version (the option was removed)", ", ".join(removed))
        config = cls(**{name: value for name, value in flat.items() if name in known})
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """The Config in a config.json file (`save`'s grouped form, or an older version's flat one)."""
        try:
            values = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(values, dict):
            raise ConfigError(f"{path} does not hold a config (a JSON object of fields)")
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> Config:
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    def for_scoring(self) -> Config:
        """This config with the training-only rescaling off (jitter, scale jitter), so that photos scored or
        calibrated on load at the working size whatever augmentation the model was trained with."""
        return self.replace(jitter=False, scale_jitter=1.0)

    def validate(self) -> None:
        """Check choices and ranges; raise ConfigError naming the bad field."""
        hints = typing.get_type_hints(Config)
        for f in dataclasses.fields(self):
            choices = _literal_choices(hints[f.name])
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{f.name}={value!r}: choose one of {', '.join(map(str, choices))}")
            if not _has_type(value, hints[f.name]):
                raise ConfigError(f"{f.name}={value!r}: expected {_base_type(hints[f.name]).__name__}")
        for names, holds, rule in _RULES:
            for name in names:
                value = getattr(self, name)
                if not holds(value):
                    raise ConfigError(f"{name} must be {rule}, got {value!r}")


GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(f.name for f in dataclasses.fields(Config) if f.metadata["group"] == group)
    for group in GROUP_DESCRIPTIONS}


def _power_of_two_from_minimum(size: int) -> bool:
    return size >= MIN_IMAGE_SIZE and size & (size - 1) == 0


# (fields, test, rule) for each range check of Config.validate.
_RULES: list[tuple[tuple[str, ...], Callable[[Any], bool], str]] = [
    (("batch_size", "ngf", "ndf", "d_layers", "d_steps", "g_steps", "checkpoint_every", "image_every",
      "scale_jitter", "chroma_smoothing"), lambda value: value >= 1, ">= 1"),
    (("epochs", "epochs_decay", "g_only_epochs", "cpu_devices", "progress_samples"),
     lambda value: value >= 0, ">= 0"),
    (("label_fuzz", "label_flip", "zoom_crop", "d_dropout", "g_dropout", "g_ema"),
     lambda value: 0.0 <= value < 1.0, "in [0, 1)"),
    (("steps",), lambda value: value is None or value >= 1, ">= 1"),
    (("chroma_scale",), lambda value: value is None or value >= 0, ">= 0"),
    (("image_size",), _power_of_two_from_minimum,
     f"a power of 2 from {MIN_IMAGE_SIZE} up (16, 32, 64, 128, 256, ...: the U-Net halves it down to 1x1)"),
]


def _has_type(value: Any, hint: Any) -> bool:
    """Whether `value` fits the annotation `hint` (an int is a float too; a bool is no number)."""
    if value is None:
        return type(None) in typing.get_args(hint)
    base = _base_type(hint)
    if base in (int, float):
        return isinstance(value, numbers.Integral if base is int else numbers.Real) and not isinstance(value, bool)
    return isinstance(value, base)


def removed_options(values: dict[str, Any]) -> dict[str, Any]:
    """The removed fields (REMOVED_FIELDS) in a saved config, grouped or flat, set to a value that meant something
    the current code no longer does."""
    flat = _flatten(values)
    return {name: flat[name] for name in sorted(flat.keys() & REMOVED_FIELDS.keys())
            if flat[name] != REMOVED_FIELDS[name]}


def _flatten(values: dict[str, Any]) -> dict[str, Any]:
    """{field: value} from config.json's grouped form, the flat form, or a mix of both."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        items = value.items() if key in GROUPS and isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if name in flat:
                raise ConfigError(f"config key {name} is given twice")
            flat[name] = item
    return flat


# Per-dataset defaults. The study's sets and the paper's paired sets follow pix2pix's own per-dataset scripts
# (paper, section 4 and appendix 6.2). `sample` is the offline first run, small enough to train in minutes on a
# laptop CPU. Colorizing one's own photos (`sample`, `folder`) maps Lab L -> ab, and `folder` also exports the
# moving average of G and trains D on fuzzy labels: docs/results.md ("Why the defaults are what they are") has
# the measurements behind each choice.
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "sample": {"image_size": 128, "batch_size": 4, "epochs": 24, "epochs_decay": 0, "ngf": 32, "ndf": 32,
               "checkpoint_every": 50, "image_every": 10, "color_space": "lab"},
    "folder": {"color_space": "lab", "g_ema": 0.999, "label_fuzz": 0.1},
    "edges2shoes": {"batch_size": 4, "epochs": 8, "epochs_decay": 7},
    "edges2handbags": {"batch_size": 4, "epochs": 8, "epochs_decay": 7},
    "night2day": {"batch_size": 4, "epochs": 9, "epochs_decay": 8},
}


def defaults_for(dataset: str) -> Config:
    """The default Config for `dataset`: the paper's defaults plus that dataset's preset."""
    return Config(dataset=dataset, **DATASET_PRESETS.get(dataset, {}))


def _literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a `Literal[...]` or `Literal[...] | None` annotation, else ()."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return ()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per Config field (underscores become dashes), in one argument group per GROUPS entry; all
    default to None (= not given)."""
    hints = typing.get_type_hints(Config)
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for group, names in GROUPS.items():
        arguments = parser.add_argument_group(group, GROUP_DESCRIPTIONS[group])
        for name in names:
            flag = "--" + name.replace("_", "-")
            help_text = fields[name].metadata["help"]
            if "default:" not in help_text:
                help_text = f"{help_text} (default: {fields[name].default})".strip()
            if _base_type(hints[name]) is bool:
                arguments.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                       help=help_text)
            else:
                choices = _literal_choices(hints[name]) or None
                kind = str if choices else _base_type(hints[name])
                arguments.add_argument(flag, dest=name, type=kind, choices=choices, default=None, help=help_text)


def _base_type(hint: Any) -> type:
    """int / float / str / bool behind an annotation such as `int | None` or a Literal."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return str
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(args[0])
    return hint


def config_from_args(args: argparse.Namespace) -> Config:
    """Start from `--config FILE` (else the dataset's defaults) and apply every flag that was given."""
    config_file = getattr(args, "config", None)
    config = Config.load(config_file) if config_file else defaults_for(args.dataset or Config.dataset)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
             if getattr(args, f.name, None) is not None}
    return config.replace(**given)
