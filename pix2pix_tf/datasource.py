"""What every data source yields: one `Source` per (dataset, split), before any pairing or augmentation.

Colour sets (sample, folder, the MIT CVCL scenes) yield {"image": uint8 [H, W, 3]}; paired sets (the Berkeley
pix2pix sets) yield {"a": uint8 [H, W, 3], "b": uint8 [H, W, 3]}. The data pipeline (`pix2pix_tf.data`)
turns either into (input, target) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pix2pix_tf.config import Config

SPLITS = ("train", "val", "test")
SKIPPED_FILES = "skipped_files.txt"  # the list of skipped files a tool writes into its output folder
JITTER_SCALE = 286 / 256  # pix2pix: resize to 286, random crop 256


@dataclass
class Source:
    """The examples of one split of one dataset."""

    examples: tf.data.Dataset
    paired: bool
    size: int
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each file left out
    scanned: int = 0  # image files looked at (kept + skipped, all splits), 0 when not applicable
    origins: list[str] = field(default_factory=list)  # the file / photo each example came from, in order


def load_size(config: Config) -> int:
    """The largest short side photos are scaled to before the SxS crop: S * 286/256 with jitter, else S, times
    `scale_jitter`."""
    return round(config.image_size * (JITTER_SCALE if config.jitter else 1.0) * config.scale_jitter)


def images_dataset(images: list[np.ndarray]) -> tf.data.Dataset:
    """{"image": uint8 [H, W, 3]} examples from in-memory photos of any sizes."""
    if images and all(image.shape == images[0].shape for image in images):
        return tf.data.Dataset.from_tensor_slices({"image": np.stack(images)})
    spec = {"image": tf.TensorSpec([None, None, 3], tf.uint8)}
    return tf.data.Dataset.from_generator(lambda: ({"image": image} for image in images), output_signature=spec)


def write_skipped_list(folder: str | Path, skipped: list[str]) -> Path:
    """Write every skipped file ("path: reason", one a line) to FOLDER/skipped_files.txt; return its path."""
    path = Path(folder) / SKIPPED_FILES
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{entry}\n" for entry in skipped))
    return path
