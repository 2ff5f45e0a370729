"""Chroma calibration: how strongly the exported model should colour, chosen on held-out photos.

A briefly trained colorizer paints what its training photos held, far too saturated, and scores worse than
the grey copy. The export multiplies the network's chroma (Lab ab, joined with the true L*) by a factor
`chroma_scale`. `calibrate` picks it after training: each factor of `SCALE_GRID` is tried on the validation
split (the training split when that is empty; never test), and the one with the lowest mean CIEDE2000 of the
exported computation's output against the photo wins. CIEDE2000 is the criterion because it measures colour
error as people see it; on ties the factor nearest 1 (the network's own colours) is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
from skimage.color import deltaE_ciede2000, rgb2lab

from pix2pix_tf.config import Config

if TYPE_CHECKING:
    import keras

SCALE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
MAX_PHOTOS = 16  # photos of the split scored per factor (the first ones, in split order)


@dataclass
class Calibration:
    """The chosen factor, the mean CIEDE2000 of every factor tried, and the photos they were measured on."""

    scale: float
    ciede2000: dict[str, float]  # str(factor) -> mean CIEDE2000 (JSON keys are strings)
    split: str
    n_photos: int

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def mean_ciede2000(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """Mean over photos of the per-pixel mean CIEDE2000 between uint8 RGB pictures of equal size."""
    return float(np.mean([np.mean(deltaE_ciede2000(rgb2lab(out), rgb2lab(tgt)))
                          for out, tgt in zip(outputs, targets, strict=True)]))


def choose_scale(colorize: Callable[[np.ndarray, float], np.ndarray], greys: Sequence[np.ndarray],
                 targets: Sequence[np.ndarray], grid: Sequence[float] = SCALE_GRID) -> tuple[float, dict[str, float]]:
    """The factor of `grid` whose `colorize(grey, factor)` outputs have the lowest mean CIEDE2000 against
    `targets` (ties: the one nearest 1), and every factor's score."""
    scores = {float(s): mean_ciede2000([colorize(grey, float(s)) for grey in greys], targets) for s in grid}
    best = min(scores, key=lambda s: (scores[s], abs(s - 1.0)))
    return best, {str(s): v for s, v in scores.items()}


def calibrate(generator: keras.Model, config: Config, grid: Sequence[float] = SCALE_GRID) -> Calibration:
    """Choose the export's chroma factor for `generator` on `config`'s validation photos (see module docstring)."""
    from pix2pix_tf.evaluate import grey_version, split_examples
    from pix2pix_tf.export import colorize_graph

    photo_config = config.for_scoring()
    split = "val"
    photos, _ = split_examples(photo_config, split, MAX_PHOTOS)
    if not photos:
        split = "train"
        photos, _ = split_examples(photo_config, split, MAX_PHOTOS)
    targets = [example["image"] for _, example in photos]
    greys = [grey_version(photo, config.color_space) for photo in targets]

    def colorize(grey: np.ndarray, scale: float) -> np.ndarray:
        scaled = config.replace(chroma_scale=scale)
        return colorize_graph(tf.constant(grey[None]), generator, scaled).numpy()[0]

    scale, scores = choose_scale(colorize, greys, targets, grid)
    return Calibration(scale=scale, ciede2000=scores, split=split, n_photos=len(targets))
