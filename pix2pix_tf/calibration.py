"""Chroma calibration: how strongly the exported model should colour, chosen on held-out photos.

The export multiplies the network's chroma (Lab ab, joined with the true L*) by a factor `chroma_scale`.
`calibrate` picks it after training: each factor of `SCALE_GRID` is tried on the validation split (the training
split when that is empty; never test), and the one whose outputs are, on average, as colourful as the training
photos wins (Hasler & Suesstrunk colourfulness; on ties the factor nearest 1). The target is the training
photos' mean because a validation split is small: its own mean moves with the few photos it happens to hold.
Per-pixel errors such as CIEDE2000 are smallest for a washed-out average colour and often for plain grey, so
they would choose grey; matching the photos' colourfulness never does (unless the network paints no colour at
all). The mean CIEDE2000 of every factor is recorded beside it in calibration.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from pix2pix_tf.color import grey_version
from pix2pix_tf.config import Config
from pix2pix_tf.export import colorize_graph
from pix2pix_tf.metrics import colorfulness, mean_ciede2000
from pix2pix_tf.sources import split_examples

if TYPE_CHECKING:
    import keras

SCALE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
MAX_PHOTOS = 16  # photos of the split scored per factor (the first ones, in split order)
MAX_TARGET_PHOTOS = 512  # training photos whose mean colourfulness is the target


@dataclass
class Calibration:
    """The chosen factor, what every factor tried scored, and the photos they were measured on."""

    scale: float
    colorfulness: dict[str, float]  # str(factor) -> the outputs' mean colourfulness (JSON keys are strings)
    ciede2000: dict[str, float]  # str(factor) -> mean CIEDE2000 against the photos
    target_colorfulness: float  # the mean colourfulness of the training photos (the target)
    split: str  # the split the factors were tried on
    n_photos: int
    n_target_photos: int  # training photos the target was measured on

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class FactorScores:
    """What `choose_scale` measured: the chosen factor and, per factor, colourfulness and CIEDE2000."""

    scale: float
    colorfulness: dict[str, float]
    ciede2000: dict[str, float]
    target_colorfulness: float


def choose_scale(colorize: Callable[[np.ndarray, float], np.ndarray], greys: Sequence[np.ndarray],
                 targets: Sequence[np.ndarray], grid: Sequence[float] = SCALE_GRID,
                 target_colorfulness: float | None = None) -> FactorScores:
    """The factor of `grid` whose `colorize(grey, factor)` outputs' mean colourfulness is nearest
    `target_colorfulness` (by default the targets' own mean; ties: the factor nearest 1), and every factor's
    scores."""
    truth = (float(np.mean([colorfulness(t) for t in targets])) if target_colorfulness is None
             else target_colorfulness)
    vivid, error = {}, {}
    for factor in map(float, grid):
        outputs = [colorize(grey, factor) for grey in greys]
        vivid[factor] = float(np.mean([colorfulness(o) for o in outputs]))
        error[factor] = float(np.mean([mean_ciede2000(o, t) for o, t in zip(outputs, targets, strict=True)]))
    best = min(vivid, key=lambda f: (abs(vivid[f] - truth), abs(f - 1.0)))
    return FactorScores(scale=best, colorfulness={str(f): v for f, v in vivid.items()},
                        ciede2000={str(f): v for f, v in error.items()}, target_colorfulness=truth)


def calibrate(generator: keras.Model, config: Config, grid: Sequence[float] = SCALE_GRID) -> Calibration:
    """Choose the export's chroma factor for `generator` on `config`'s validation photos (see module docstring)."""
    photo_config = config.for_scoring()
    split = "val"
    photos, _ = split_examples(photo_config, split, MAX_PHOTOS)
    if not photos:
        split = "train"
        photos, _ = split_examples(photo_config, split, MAX_PHOTOS)
    targets = [example["image"] for _, example in photos]
    greys = [grey_version(photo, config.color_space) for photo in targets]
    training_photos, _ = split_examples(photo_config, "train", MAX_TARGET_PHOTOS)
    target = float(np.mean([colorfulness(example["image"]) for _, example in training_photos]))

    scaled = tf.function(lambda grey, scale: colorize_graph(grey, generator, config, chroma_scale=scale),
                         reduce_retracing=True, autograph=False)

    def colorize(grey: np.ndarray, scale: float) -> np.ndarray:
        return scaled(tf.constant(grey[None]), tf.constant(scale, tf.float32)).numpy()[0]

    scores = choose_scale(colorize, greys, targets, grid, target_colorfulness=target)
    return Calibration(scale=scores.scale, colorfulness=scores.colorfulness, ciede2000=scores.ciede2000,
                       target_colorfulness=target, split=split, n_photos=len(targets),
                       n_target_photos=len(training_photos))
