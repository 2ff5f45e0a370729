"""Where examples come from: one `Source` per (dataset, split), before any pairing or augmentation.

Colour sets (sample, folder, the MIT CVCL scenes) yield {"image": uint8 [H, W, 3]}; paired sets (the Berkeley
pix2pix sets) yield {"a": uint8 [H, W, 3], "b": uint8 [H, W, 3]}. The data pipeline (`pix2pix_tf.data`)
turns either into (input, target) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tensorflow as tf

from pix2pix_tf.config import Config

SPLITS = ("train", "val", "test")


@dataclass
class Source:
    """The examples of one split of one dataset."""

    examples: tf.data.Dataset
    paired: bool
    size: int
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each file left out


def load_source(config: Config, split: str) -> Source:
    """The Source for `config.dataset` and `split` (train / val / test)."""
    raise NotImplementedError("filled in by the data layer")
