"""The one typed configuration of a run: built by the CLI, saved with checkpoints and exports."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ColorSpace = Literal["rgb", "lab"]
GeneratorKind = Literal["unet", "encoder_decoder"]
NormKind = Literal["batch", "instance", "none"]
GanLoss = Literal["vanilla", "lsgan"]
Precision = Literal["auto", "fp32", "mixed_float16", "mixed_bfloat16"]
StrategyKind = Literal["auto", "one", "mirrored", "multiworker", "tpu"]
Direction = Literal["AtoB", "BtoA"]
ChromaFilter = Literal["guided", "block"]
ChromaHead = Literal["regress", "classify"]


@dataclass
class Config:
    """Every knob of a pix2pix run. Defaults follow the paper (Isola et al. 2017)."""

    # --- data ---
    dataset: str = field(default="sample", metadata={"help": "dataset name (sample, folder, opencountry, "
                                                              "forest, facades, ...)"})
    data_dir: str | None = field(default=None, metadata={"help": "downloaded archive, extracted folder, "
                                                                 "or photo folder"})
    direction: Direction | None = field(default=None, metadata={"help": "paired sets: AtoB or BtoA "
                                                                        "(default: the dataset's usual one)"})
    color_space: ColorSpace = field(default="rgb", metadata={"help": "rgb: grey 3ch -> RGB (the study); "
                                                                     "lab: L -> ab"})
    image_size: int = field(default=256, metadata={"help": "training crop size (multiple of 2**depth)"})
    batch_size: int = 1
    jitter: bool = field(default=True, metadata={"help": "resize to 286/256 then random crop back"})
    mirror: bool = field(default=True, metadata={"help": "random horizontal flip"})
    vflip: bool = field(default=False, metadata={"help": "random vertical flip (the study's 'inversion')"})
    zoom_crop: float = field(default=0.0, metadata={"help": "probability of a random ~40%% crop "
                                                            "upscaled to full size"})
    scale_jitter: float = field(default=1.0, metadata={"help": "scale each training photo by a random factor in "
                                                               "[1, this] before the crop; 1 = fixed"})
    seed: int = 0

    # --- models ---
    generator: GeneratorKind = "unet"
    ngf: int = field(default=64, metadata={"help": "generator filters in the first layer"})
    ndf: int = field(default=64, metadata={"help": "discriminator filters in the first layer"})
    d_layers: int = field(default=3, metadata={"help": "PatchGAN layers (3 = 70x70 receptive field)"})
    d_norm: NormKind = "batch"
    d_dropout: float = field(default=0.0, metadata={"help": "dropout rate in the discriminator "
                                                            "(the study used BN + dropout)"})
    g_dropout: float = field(default=0.5, metadata={"help": "dropout on the first three decoder blocks"})

    # --- losses ---
    gan_loss: GanLoss = "vanilla"
    lambda_l1: float = field(default=100.0, metadata={"help": "L1 weight (the study also tried 20, 200)"})
    label_fuzz: float = field(default=0.0, metadata={"help": "fuzzy labels: real in [1-eps,1], "
                                                             "fake in [0,eps]; 0 = off"})
    label_flip: float = field(default=0.0, metadata={"help": "probability of swapping D's real/fake labels"})
    chroma_head: ChromaHead = field(default="regress", metadata={"help": "lab: regress ab (tanh, L1 loss), or "
                                                                         "classify it over ab bins (Zhang et al. "
                                                                         "2016: cross-entropy, annealed mean)"})
    lambda_class: float = field(default=1.0, metadata={"help": "classify: weight of the cross-entropy, which "
                                                               "replaces the L1 term"})
    class_rebalance: float = field(default=0.0, metadata={"help": "classify: weigh each pixel by 1 / (r p + "
                                                                  "(1 - r) / Q), p its colour's share of the "
                                                                  "training photos (Zhang: r = 0.5); 0 = off"})
    annealed_temperature: float = field(default=0.38, metadata={"help": "classify: the output is the mean of "
                                                                        "softmax(logits / T) (1 = mean, "
                                                                        "towards 0 = mode)"})

    # --- optimisation ---
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs: int = field(default=100, metadata={"help": "epochs at constant learning rate"})
    epochs_decay: int = field(default=100, metadata={"help": "epochs of linear decay to 0 after that"})
    steps: int | None = field(default=None, metadata={"help": "stop after this many steps in all "
                                                              "(overrides the epoch count; the learning rate "
                                                              "still follows --epochs/--epochs-decay, 0 past "
                                                              "their end)"})
    d_steps: int = field(default=1, metadata={"help": "discriminator updates per iteration"})
    g_steps: int = field(default=1, metadata={"help": "generator updates per iteration"})
    g_only_epochs: int = field(default=0, metadata={"help": "first N epochs train G alone, D frozen"})
    g_ema: float = field(default=0.0, metadata={"help": "decay of a moving average of the generator's weights, "
                                                        "which progress images, calibration and the export use "
                                                        "(e.g. 0.999); 0 = off, the paper's last weights"})
    time_budget: float | None = field(default=None, metadata={"help": "minutes; stop cleanly "
                                                                      "(checkpoint + export) when spent"})
    fit_schedule: bool = field(default=True, metadata={"help": "with --time-budget: after each epoch, re-plan "
                                                               "--epochs and --epochs-decay in proportion (never "
                                                               "longer) so that the decay to 0 ends within the "
                                                               "budget"})

    # --- runtime ---
    precision: Precision = "auto"
    jit_compile: bool | None = field(default=None, metadata={"help": "XLA for the train step "
                                                                     "(default: where measured faster)"})
    strategy: StrategyKind = "auto"
    cpu_devices: int = field(default=0, metadata={"help": "split the CPU into N logical devices"})
    sync_batchnorm: bool = False
    run_dir: str | None = field(default=None, metadata={"help": "default: runs/<dataset>"})
    export_dir: str | None = field(default=None, metadata={"help": "default: saved_models/<dataset>"})
    checkpoint_every: int = field(default=500, metadata={"help": "steps between checkpoints"})
    image_every: int = field(default=200, metadata={"help": "steps between TensorBoard image grids"})
    progress_samples: int = field(default=4, metadata={"help": "fixed validation inputs in progress.gif"})
    full_resolution: bool = field(default=True, metadata={"help": "export recombines chroma with the "
                                                                  "full-resolution luminance"})
    chroma_scale: float | None = field(default=None, metadata={"help": "export multiplies the output's Lab "
                                                                       "ab by this; default: chosen on val "
                                                                       "after training"})
    chroma_filter: ChromaFilter = field(default="guided", metadata={"help": "how the export smooths the "
                                                                          "output's Lab ab before joining it "
                                                                          "with L: guided (along L's edges) "
                                                                          "or block averages"})
    chroma_smoothing: int = field(default=8, metadata={"help": "the smoothing's size in working-size pixels: "
                                                               "guided window radius, or block side (1 = off)"})
    chroma_fade_low: float = field(default=0.0, metadata={"help": "export fades the chroma out where the "
                                                                   "photo is dark: none at this L* and below"})
    chroma_fade_high: float = field(default=0.0, metadata={"help": "export keeps all the chroma from this L* up, "
                                                                    "fading it linearly down to --chroma-fade-low "
                                                                    "(0 = no fade)"})

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir or f"runs/{self.dataset}")

    def resolved_export_dir(self) -> Path:
        return Path(self.export_dir or f"saved_models/{self.dataset}")

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any) -> Config:
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    def for_scoring(self) -> Config:
        """This config with the training-only rescaling off (jitter, scale jitter), so that photos scored or
        calibrated on load at the working size whatever augmentation the model was trained with."""
        return self.replace(jitter=False, scale_jitter=1.0)

    def validate(self) -> None:
        """Check choices and ranges; raise ValueError naming the bad field."""
        hints = typing.get_type_hints(Config)
        for f in dataclasses.fields(self):
            choices = _literal_choices(hints[f.name])
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{f.name}={value!r}: choose one of {', '.join(map(str, choices))}")
        positive = ["image_size", "batch_size", "ngf", "ndf", "d_layers", "d_steps", "g_steps",
                    "checkpoint_every", "image_every"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ["epochs", "epochs_decay", "g_only_epochs", "cpu_devices", "progress_samples"]:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ["label_fuzz", "label_flip", "zoom_crop", "d_dropout", "g_dropout"]:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.class_rebalance <= 1.0:
            raise ValueError(f"class_rebalance must be in [0, 1], got {self.class_rebalance}")
        if self.annealed_temperature <= 0 or self.lambda_class < 0:
            raise ValueError("annealed_temperature must be > 0 and lambda_class >= 0, got "
                             f"{self.annealed_temperature} and {self.lambda_class}")
        if self.chroma_head == "classify" and self.color_space != "lab":
            raise ValueError("chroma_head=classify predicts Lab ab: it needs color_space=lab")
        if not 0.0 <= self.g_ema < 1.0:
            raise ValueError(f"g_ema must be in [0, 1), got {self.g_ema}")
        if self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must be >= 1, got {self.scale_jitter}")
        if self.chroma_smoothing < 1:
            raise ValueError(f"chroma_smoothing must be >= 1, got {self.chroma_smoothing}")
        if not (0.0 <= self.chroma_fade_low < self.chroma_fade_high <= 100.0
                or self.chroma_fade_low == self.chroma_fade_high == 0.0):
            raise ValueError("chroma_fade_low and chroma_fade_high must satisfy 0 <= low < high <= 100 (or both 0: "
                             f"no fade), got {self.chroma_fade_low} and {self.chroma_fade_high}")
        if self.chroma_scale is not None and self.chroma_scale < 0:
            raise ValueError(f"chroma_scale must be >= 0, got {self.chroma_scale}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")


# Per-dataset defaults, as pix2pix's own per-dataset scripts set them (paper, section 4 and appendix 6.2).
# `sample` is the offline first run: small enough to train in about a minute on a laptop CPU.
# Colorizing one's own photos (`sample`, `folder`) defaults to Lab L -> ab (docs/quality.md: it beat the RGB
# recipe on held-out photos); the CVCL study sets keep the study's RGB. `folder` exports the moving average of
# its generator (docs/quality.md: lower CIEDE2000 and higher SSIM on held-out photos at the same colourfulness);
# `sample`'s 44 steps are too few for an average to catch up with the live weights. `folder` also trains D on
# the study's fuzzy labels (docs/quality.md: lower CIEDE2000 on the folder's held-out photos in all three runs,
# more colour in all, on the test photos mixed at ngf 32 and lower at ngf 64).
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "sample": {"image_size": 128, "batch_size": 4, "epochs": 2, "epochs_decay": 0, "checkpoint_every": 50,
               "image_every": 20, "color_space": "lab"},
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
    """One --flag per Config field (underscores become dashes); all default to None (= not given)."""
    hints = typing.get_type_hints(Config)
    group = parser.add_argument_group("run configuration")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = _base_type(hint)
        help_text = f.metadata.get("help", "")
        default = f.default
        help_text = f"{help_text} (default: {default})".strip()
        if base is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            choices = _literal_choices(hint) or None
            kind = str if choices else base
            group.add_argument(flag, dest=f.name, type=kind, choices=choices, default=None, help=help_text)


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
