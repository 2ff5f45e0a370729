"""The tf.data pipeline: Sources -> batched (input, target) pairs in [-1, 1].

Each split's decoded images are held in memory once per process (shrunk to the load size), so every epoch's
pipeline only indexes into them. Training order and augmentation depend on (config.seed, epoch) alone: the
order is a NumPy permutation seeded by them, and each example's random crop / flips / zoom use stateless ops
seeded by (seed, epoch, position in the epoch), so `train_dataset(config, epoch).skip(k)` resumes exactly.

Splits too big for memory (over CACHE_LIMIT_BYTES, e.g. edges2shoes) are streamed from their Source instead
and shuffled by tf.data with a buffer of SHUFFLE_BUFFER and a seed from (seed, epoch); that order is also
reproducible, given the same TensorFlow global seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pix2pix_tf import color
from pix2pix_tf.config import Config
from pix2pix_tf.datasource import SPLITS, Source, load_size, write_skipped_list
from pix2pix_tf.errors import UserError
from pix2pix_tf.sources import load_source, resolve_direction

logger = logging.getLogger(__name__)

ZOOM_AREA = 0.4  # zoom_crop: a random crop of this fraction of the area, upscaled to full size
CACHE_LIMIT_BYTES = 2 * 1024**3  # larger splits are streamed rather than held in memory
SHUFFLE_BUFFER = 2048  # shuffle buffer of streamed splits

Example = dict[str, tf.Tensor]


@dataclass
class SplitData:
    """One split's images: in memory (per key, "image" or "a" and "b": all pixels flat, plus offsets and
    shapes), or, when too big for that, `stream`: the Source's examples."""

    keys: tuple[str, ...]
    pixels: dict[str, tf.Tensor]  # uint8 [total]
    offsets: dict[str, tf.Tensor]  # int64 [N]
    shapes: dict[str, tf.Tensor]  # int64 [N, 2]
    size: int
    paired: bool
    skipped: list[str]
    scanned: int
    stream: tf.data.Dataset | None = None

    def gather(self, index: tf.Tensor) -> Example:
        """Example `index` as {key: uint8 [H, W, 3]}."""
        example = {}
        for key in self.keys:
            height, width = self.shapes[key][index][0], self.shapes[key][index][1]
            start = self.offsets[key][index]
            flat = self.pixels[key][start:start + height * width * 3]
            example[key] = tf.ensure_shape(tf.reshape(flat, tf.stack([height, width, 3])), [None, None, 3])
        return example

    def in_order(self) -> tf.data.Dataset:
        """Every example, {key: uint8 [H, W, 3]}, in the Source's order."""
        if self.stream is not None:
            return self.stream
        return tf.data.Dataset.range(self.size).map(self.gather, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True)


_SPLITS: dict[tuple[str, str | None, str, int], SplitData] = {}
_REPORTED: set[tuple[str, str | None]] = set()


def split_data(config: Config, split: str) -> SplitData:
    """The split's images, loaded from its Source once per process. Skipped files are reported once: a line
    with the count and the first few, and every one of them in RUN_DIR/skipped_files.txt."""
    key = (config.dataset, config.data_dir, split, load_size(config))
    if key not in _SPLITS:
        _SPLITS[key] = _materialize(load_source(config, split), load_size(config))
    data = _SPLITS[key]
    report_key = (config.dataset, config.data_dir)
    if data.skipped and report_key not in _REPORTED:
        _REPORTED.add(report_key)
        listed = write_skipped_list(config.resolved_run_dir(), data.skipped)
        logger.warning(f"{skipped_summary(config, data.skipped, data.scanned)}; all of them listed in {listed}")
    if data.paired and config.color_space != "rgb":
        raise UserError(f"{config.dataset} is a paired set: --color-space applies to colour sets only "
                        "(use rgb)")
    return data


def skipped_summary(config: Config, skipped: list[str], scanned: int) -> str:
    """One line: how many files were skipped and the first few with their reasons."""
    where = f" in {config.data_dir}" if config.data_dir else ""
    total = f" of {scanned}" if scanned else ""
    shown = "; ".join(skipped[:3]) + (f"; +{len(skipped) - 3} more" if len(skipped) > 3 else "")
    return f"{config.dataset}: skipped {len(skipped)}{total} image files{where} ({shown})"


def _materialize(source: Source, max_short_side: int) -> SplitData:
    """Decode every example of `source`, shrink those larger than needed, and pack them flat (or stream)."""
    keys = ("a", "b") if source.paired else ("image",)
    first = next(source.examples.take(1).as_numpy_iterator(), None)
    if first is not None and source.size * sum(_shrink(first[key], max_short_side).nbytes
                                               for key in keys) > CACHE_LIMIT_BYTES:
        return SplitData(keys=keys, pixels={}, offsets={}, shapes={}, size=source.size, paired=source.paired,
                         skipped=source.skipped, scanned=source.scanned,
                         stream=source.examples.map(lambda example: {key: example[key] for key in keys}))
    arrays: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for example in source.examples.as_numpy_iterator():
        for key in keys:
            arrays[key].append(_shrink(example[key], max_short_side))
    pixels, offsets, shapes = {}, {}, {}
    for key in keys:
        sizes = [image.size for image in arrays[key]]
        pixels[key] = tf.constant(np.concatenate([image.ravel() for image in arrays[key]])
                                  if sizes else np.zeros([0], np.uint8))
        offsets[key] = tf.constant(np.cumsum([0, *sizes[:-1]], dtype=np.int64)[:len(sizes)])
        shapes[key] = tf.constant(np.array([image.shape[:2] for image in arrays[key]], np.int64).reshape(-1, 2))
    return SplitData(keys=keys, pixels=pixels, offsets=offsets, shapes=shapes, size=len(arrays[keys[0]]),
                     paired=source.paired, skipped=source.skipped, scanned=source.scanned)


def _shrink(image: np.ndarray, max_short_side: int) -> np.ndarray:
    """uint8 [H, W, 3] with its short side brought down to max_short_side (never enlarged)."""
    height, width = image.shape[:2]
    scale = max_short_side / min(height, width)
    if scale >= 1:
        return image
    size = [max(max_short_side, round(height * scale)), max(max_short_side, round(width * scale))]
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="area")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


# --- per-example transforms --------------------------------------------------------------------------------


def _stack(example: Example) -> tf.Tensor:
    """An example -> one float [H, W, 3 or 6] image in [0, 1], so A and B get the very same augmentation."""
    if "image" in example:
        return tf.image.convert_image_dtype(example["image"], tf.float32)
    a = tf.image.convert_image_dtype(example["a"], tf.float32)
    b = tf.image.convert_image_dtype(example["b"], tf.float32)
    b = tf.cond(tf.reduce_all(tf.shape(a)[:2] == tf.shape(b)[:2]), lambda: b,
                lambda: tf.image.resize(b, tf.shape(a)[:2], antialias=True))
    return tf.concat([a, b], axis=-1)


def resize_short_side(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
    """Scale [H, W, C] so its short side is `size` (antialiased when shrinking)."""
    size = tf.cast(size, tf.int32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    return tf.image.resize(image, new_shape, method="bilinear", antialias=True)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    top = (tf.shape(image)[0] - size) // 2
    left = (tf.shape(image)[1] - size) // 2
    return image[top:top + size, left:left + size]


def augment(image: tf.Tensor, seed: tf.Tensor, config: Config) -> tf.Tensor:
    """Training transform of [H, W, C] in [0, 1] -> [S, S, C]: scale, random crop, flips, zoom crop."""
    size, channels = config.image_size, image.shape[-1]
    crop_seed, mirror_seed, vflip_seed, zoom_seed, zoom_crop_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 5))
    short_side = load_size(config)
    if config.scale_jitter > 1:  # a random short side in [load size / scale_jitter, load size]
        factor = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 5),
                                             1.0 / config.scale_jitter, 1.0)
        short_side = tf.maximum(tf.cast(tf.round(short_side * factor), tf.int32), size)
    image = resize_short_side(image, short_side)
    image = tf.image.stateless_random_crop(image, [size, size, channels], crop_seed)
    if config.mirror:
        image = tf.image.stateless_random_flip_left_right(image, mirror_seed)
    if config.vflip:
        image = tf.image.stateless_random_flip_up_down(image, vflip_seed)
    if config.zoom_crop > 0:
        side = round(size * math.sqrt(ZOOM_AREA))

        def zoom() -> tf.Tensor:
            crop = tf.image.stateless_random_crop(image, [side, side, channels], zoom_crop_seed)
            return tf.image.resize(crop, [size, size], method="bilinear")

        zoomed = tf.random.stateless_uniform([], zoom_seed) < config.zoom_crop
        image = tf.cond(zoomed, zoom, lambda: image)
    return tf.ensure_shape(image, [size, size, channels])


def to_pair(image: tf.Tensor, config: Config, paired: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """[S, S, 3 or 6] in [0, 1] -> (input, target) in [-1, 1] for the network."""
    if paired:
        a, b = color.from_unit(image[..., :3]), color.from_unit(image[..., 3:])
        return (b, a) if resolve_direction(config) == "BtoA" else (a, b)
    network_input, target = color.make_pair(image, config.color_space)
    in_channels, out_channels = color.channels_for(config.color_space)
    size = config.image_size
    return (tf.ensure_shape(network_input, [size, size, in_channels]),
            tf.ensure_shape(target, [size, size, out_channels]))


def _eval_map(config: Config, data: SplitData) -> Callable[[Example], tuple[tf.Tensor, tf.Tensor]]:
    def transform(example: Example) -> tuple[tf.Tensor, tf.Tensor]:
        image = center_crop(resize_short_side(_stack(example), config.image_size), config.image_size)
        return to_pair(image, config, data.paired)

    return transform


# --- public API --------------------------------------------------------------------------------------------


def epoch_order(config: Config, epoch: int, size: int) -> np.ndarray:
    """The permutation of example indices that epoch `epoch` visits."""
    return np.random.default_rng([config.seed & 0xFFFFFFFF, epoch]).permutation(size)


def train_dataset(config: Config, epoch: int) -> tf.data.Dataset:
    """Shuffled, augmented, batched (input, target) of the train split; deterministic in (seed, epoch)."""
    data = split_data(config, "train")
    _check_batch(config, data)
    base_seed = tf.constant([config.seed, epoch], tf.int64)

    def transform(position: tf.Tensor, example: Example) -> tuple[tf.Tensor, tf.Tensor]:
        seed = tf.random.experimental.stateless_fold_in(base_seed, position)
        return to_pair(augment(_stack(example), seed, config), config, data.paired)

    if data.stream is None:
        order = tf.data.Dataset.from_tensor_slices(epoch_order(config, epoch, data.size))
        examples = order.map(data.gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        shuffle_seed = int(np.random.default_rng([config.seed & 0xFFFFFFFF, epoch]).integers(2**31))
        examples = data.stream.shuffle(min(data.size, SHUFFLE_BUFFER), seed=shuffle_seed,
                                       reshuffle_each_iteration=False)
    dataset = examples.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(without_autotuning())


def without_autotuning() -> tf.data.Options:
    """Options that turn off tf.data's autotuning model for a pipeline iterated once and then dropped.

    Its background thread sleeps ever longer between passes (doubling, up to a minute), and deleting the
    iterator waits for that sleep to end: each new training epoch stalled for up to a minute, 28-37 s in a run of
    157 steps per epoch (bench/README.md, "The epoch's pipeline"). Untuned, the pipeline still costs about 7 ms
    per batch, far less than a training step.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def steps_per_epoch(config: Config) -> int:
    """Full batches in one epoch of the train split."""
    data = split_data(config, "train")
    _check_batch(config, data)
    return data.size // config.batch_size


def _check_batch(config: Config, data: SplitData) -> None:
    if data.size < config.batch_size:
        raise UserError(f"{config.dataset}: the train split has {data.size} examples, fewer than "
                        f"--batch-size {config.batch_size}")


def eval_dataset(config: Config, split: str, batch_size: int | None = None) -> tf.data.Dataset:
    """Un-augmented (input, target) of `split`: short side scaled to S, centre SxS crop, batched in order."""
    data = split_data(config, split)
    if data.size == 0:
        raise UserError(f"{config.dataset} has no {split} examples")
    dataset = data.in_order().map(_eval_map(config, data), num_parallel_calls=tf.data.AUTOTUNE,
                                  deterministic=True)
    return dataset.batch(batch_size or config.batch_size).prefetch(tf.data.AUTOTUNE)


def fixed_examples(config: Config, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n un-augmented examples of val (else test, else train) as numpy (input, target).

    Fewer than n come back when that split is smaller. A split the dataset lacks counts as empty.
    """
    for split in ("val", "test", "train"):
        try:
            data = split_data(config, split)
        except UserError:
            if split == "train":
                raise
            continue
        if data.size:
            dataset = data.in_order().take(n).map(_eval_map(config, data))
            pairs = list(dataset.as_numpy_iterator())
            in_channels, out_channels = (3, 3) if data.paired else color.channels_for(config.color_space)
            size = config.image_size
            inputs = np.zeros([0, size, size, in_channels], np.float32)
            targets = np.zeros([0, size, size, out_channels], np.float32)
            if pairs:
                inputs, targets = (np.stack([pair[i] for pair in pairs]) for i in (0, 1))
            return inputs, targets
    raise UserError(f"{config.dataset} has no examples in any of {', '.join(SPLITS)}")
