"""Fixtures for tests that train (a plugin: `pytest_plugins = ("fake_training_data",)`): four real photos, and a
stand-in for the dataset made of them (8 crops, so 2 batches of 4 per epoch, in an order that depends on the
epoch; `poison_from_step` turns inputs into NaNs)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from pix2pix_tf import data
from pix2pix_tf.color import make_pair
from pix2pix_tf.config import Config

SIZE = 64
EXAMPLES = 8


@pytest.fixture(scope="module")
def photos() -> tf.Tensor:
    """Four real photos bundled with scikit-image, as [4, 64, 64, 3] floats in [0, 1]."""
    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return tf.stack([tf.image.resize(image / 255.0, (SIZE, SIZE)) for image in images])


@pytest.fixture
def fake_data(monkeypatch: pytest.MonkeyPatch, photos: tf.Tensor) -> dict[str, int | None]:
    """The photos and their mirror images as the train split; set state["poison_from_step"] to poison batches."""
    state: dict[str, int | None] = {"poison_from_step": None}

    def train_dataset(config: Config, epoch: int) -> tf.data.Dataset:
        x, y = make_pair(tf.concat([photos, tf.image.flip_left_right(photos)], axis=0), config.color_space)
        order = np.random.default_rng(epoch).permutation(EXAMPLES)
        dataset = tf.data.Dataset.from_tensor_slices((tf.gather(x, order), tf.gather(y, order)))
        dataset = dataset.batch(config.batch_size, drop_remainder=True)
        poison = state["poison_from_step"]
        if poison is not None:
            first_step = epoch * steps_per_epoch(config)
            dataset = dataset.enumerate().map(
                lambda i, pair: (tf.where(i + first_step >= poison, np.nan, pair[0]), pair[1]))
        return dataset

    def steps_per_epoch(config: Config) -> int:
        return EXAMPLES // config.batch_size

    def fixed_examples(config: Config, n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = make_pair(photos[:n], config.color_space)
        return x.numpy(), y.numpy()

    monkeypatch.setattr(data, "train_dataset", train_dataset)
    monkeypatch.setattr(data, "steps_per_epoch", steps_per_epoch)
    monkeypatch.setattr(data, "fixed_examples", fixed_examples)
    return state
