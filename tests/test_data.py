"""The tf.data pipeline: shapes and ranges, determinism and resuming, augmentation, paired sets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pix2pix_tf import color, data
from pix2pix_tf.config import Config
from pix2pix_tf.datasource import Source, load_size
from pix2pix_tf.errors import UserError

PhotoFolderFactory = Callable[..., Path]
SIZE = 32


@pytest.fixture
def config(make_photo_folder: PhotoFolderFactory) -> Config:
    """24 real photos (48x64), 32 px crops, batches of 2, every augmentation on."""
    return Config(dataset="folder", data_dir=str(make_photo_folder(24)), image_size=SIZE, batch_size=2,
                  vflip=True, zoom_crop=0.5, seed=7)


def batches(dataset: tf.data.Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def assert_same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize(("space", "channels"), [("rgb", (3, 3)), ("lab", (1, 2))])
def test_shapes_and_ranges(config: Config, space: str, channels: tuple[int, int]) -> None:
    config = config.replace(color_space=space)
    steps = data.steps_per_epoch(config)
    train = batches(data.train_dataset(config, 0))
    assert steps == len(train) == data.split_data(config, "train").size // 2
    for x, y in train + batches(data.eval_dataset(config, "val", batch_size=3)):
        assert x.dtype == y.dtype == np.float32
        assert x.shape[1:] == (SIZE, SIZE, channels[0]) and y.shape[1:] == (SIZE, SIZE, channels[1])
        assert -1.0 <= x.min() and x.max() <= 1.0 and -1.0 <= y.min() and y.max() <= 1.0
    assert all(x.shape[0] == 2 for x, _ in train)
    assert np.ptp(train[0][0]) > 0.5 and np.ptp(train[0][1]) > 0.2  # real photos, not blank


def test_same_seed_and_epoch_give_identical_batches(config: Config) -> None:
    first = batches(data.train_dataset(config, 3))
    tf.random.set_seed(1234)  # global TF random state must not matter
    assert_same(first, batches(data.train_dataset(config, 3)))


def test_epochs_and_seeds_differ(config: Config) -> None:
    epoch0 = batches(data.train_dataset(config, 0))
    for other in (data.train_dataset(config, 1), data.train_dataset(config.replace(seed=8), 0)):
        assert any(not np.array_equal(a[1], b[1]) for a, b in zip(epoch0, batches(other), strict=True))


def test_the_epoch_pipeline_runs_without_tf_data_autotuning(config: Config) -> None:
    # Autotuning's thread made dropping each finished epoch's iterator wait for up to a minute
    # (data.without_autotuning); a skipped (resumed) epoch keeps the setting too.
    for dataset in (data.train_dataset(config, 0), data.train_dataset(config, 0).skip(3)):
        assert dataset.options().autotune.enabled is False


def test_skip_resumes_at_the_exact_batch(config: Config) -> None:
    full = batches(data.train_dataset(config, 2))
    assert_same(full[5:], batches(data.train_dataset(config, 2).skip(5)))


def test_epoch_visits_every_example_once(config: Config) -> None:
    order = data.epoch_order(config, 4, 23)
    assert sorted(order) == list(range(23))
    assert not np.array_equal(order, data.epoch_order(config, 5, 23))


def test_rgb_input_is_the_grey_of_the_augmented_target(config: Config) -> None:
    for x, y in batches(data.train_dataset(config.replace(zoom_crop=0.9), 0)):
        grey = color.from_unit(color.rgb_to_gray(color.to_unit(y))).numpy()
        np.testing.assert_allclose(x, np.repeat(grey, 3, axis=-1), atol=1e-5)


def test_lab_input_and_target_come_from_one_augmented_photo(config: Config) -> None:
    config = config.replace(color_space="lab")
    for x, y in batches(data.train_dataset(config, 1)):
        rgb = color.lab_to_rgb(color.network_to_lab(x, y))
        lightness, _ = color.lab_to_network(color.rgb_to_lab(rgb))
        np.testing.assert_allclose(lightness.numpy(), x, atol=0.02)


@pytest.fixture
def square_config(tmp_path: Path, photo_crops: list[np.ndarray]) -> Config:
    """Square 40x40 photos and no jitter: un-flipped, un-zoomed training crops equal the eval crops."""
    for index, crop in enumerate(photo_crops[:8]):
        Image.fromarray(crop[:40, :40]).save(tmp_path / f"square_{index}.png")
    return Config(dataset="folder", data_dir=str(tmp_path), image_size=SIZE, batch_size=1, jitter=False,
                  mirror=False, vflip=False, zoom_crop=0.0)


def by_target(dataset: tf.data.Dataset) -> list[np.ndarray]:
    return [y[0] for _, y in batches(dataset)]


def test_flips_and_zoom_change_the_crop(square_config: Config) -> None:
    plain = by_target(data.eval_dataset(square_config, "train", batch_size=1))
    order = data.epoch_order(square_config, 0, len(plain))
    unaugmented = by_target(data.train_dataset(square_config, 0))
    for index, target in zip(order, unaugmented, strict=True):
        np.testing.assert_allclose(target, plain[index], atol=1e-5)

    mirrored = by_target(data.train_dataset(square_config.replace(mirror=True), 0))
    flipped = [np.allclose(t, plain[i][:, ::-1], atol=1e-5) for i, t in zip(order, mirrored, strict=True)]
    kept = [np.allclose(t, plain[i], atol=1e-5) for i, t in zip(order, mirrored, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped) and any(kept)

    upside_down = by_target(data.train_dataset(square_config.replace(vflip=True), 0))
    assert any(np.allclose(t, plain[i][::-1], atol=1e-5) for i, t in zip(order, upside_down, strict=True))

    zoomed = by_target(data.train_dataset(square_config.replace(zoom_crop=0.99), 0))
    assert not any(np.allclose(t, plain[i], atol=1e-3) for i, t in zip(order, zoomed, strict=True))


def test_scale_jitter_crops_each_photo_at_a_random_larger_scale(square_config: Config) -> None:
    plain = by_target(data.eval_dataset(square_config, "train", batch_size=1))
    config = square_config.replace(scale_jitter=2.0)
    assert load_size(config) == 2 * SIZE
    jittered, again = (by_target(data.train_dataset(config, 0)) for _ in range(2))
    for first, second in zip(jittered, again, strict=True):
        np.testing.assert_array_equal(first, second)  # seeded by (seed, epoch, position): resumable
    order = data.epoch_order(config, 0, len(plain))
    zoomed_in = [not np.allclose(t, plain[i], atol=1e-3) for i, t in zip(order, jittered, strict=True)]
    assert sum(zoomed_in) >= len(zoomed_in) // 2, zoomed_in
    with pytest.raises(ValueError, match="scale_jitter"):
        config.replace(scale_jitter=0.5).validate()


def test_photos_smaller_than_the_crop_are_upscaled(tmp_path: Path, photo_crops: list[np.ndarray]) -> None:
    for index, crop in enumerate(photo_crops[:4]):
        Image.fromarray(crop[:20, :24]).save(tmp_path / f"small_{index}.png")
    config = Config(dataset="folder", data_dir=str(tmp_path), image_size=SIZE, batch_size=2)
    x, y = next(iter(data.train_dataset(config, 0)))
    assert x.shape == (2, SIZE, SIZE, 3) and y.shape == (2, SIZE, SIZE, 3)


def test_fixed_examples(config: Config) -> None:
    val_size = data.split_data(config, "val").size
    x, y = data.fixed_examples(config.replace(color_space="lab"), 4)
    assert x.shape == (min(4, val_size), SIZE, SIZE, 1) and y.shape == (min(4, val_size), SIZE, SIZE, 2)
    first_val = next(iter(data.eval_dataset(config, "val", batch_size=1)))
    x, y = data.fixed_examples(config, 1)
    np.testing.assert_allclose(x, first_val[0].numpy())
    np.testing.assert_allclose(y, first_val[1].numpy())
    assert data.fixed_examples(config, 0)[0].shape == (0, SIZE, SIZE, 3)


def test_skipped_files_are_reported_once_and_all_listed_in_the_run_dir(
        make_photo_folder: PhotoFolderFactory, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    folder = make_photo_folder(6)
    bad = {"broken.jpg": "not a readable image", "sub/empty.png": "empty file (0 bytes)",
           "also_broken.png": "not a readable image", "zero.jpeg": "empty file (0 bytes)",
           "truncated.jpg": "cannot decode"}
    (folder / "broken.jpg").write_text("not an image")
    (folder / "also_broken.png").write_text("nor this")
    (folder / "sub" / "empty.png").write_bytes(b"")
    (folder / "zero.jpeg").write_bytes(b"")
    encoded = (folder / "photo_001.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(encoded[: len(encoded) // 3])
    run_dir = tmp_path / "run"
    config = Config(dataset="folder", data_dir=str(folder), image_size=SIZE, batch_size=1, run_dir=str(run_dir))
    with caplog.at_level(logging.WARNING, logger="pix2pix_tf.data"):
        data.train_dataset(config, 0)
        data.train_dataset(config, 1)
        data.eval_dataset(config, "val")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 5 of 11 image files" in warnings[0] and "+2 more" in warnings[0]
    assert str(run_dir / "skipped_files.txt") in warnings[0]
    listed = dict(line.split(": ", 1) for line in (run_dir / "skipped_files.txt").read_text().splitlines())
    assert set(listed) == set(bad)
    assert all(listed[name].startswith(reason) for name, reason in bad.items())


def test_batch_larger_than_the_train_split_is_a_user_error(config: Config) -> None:
    with pytest.raises(UserError, match="fewer than --batch-size 500"):
        data.steps_per_epoch(config.replace(batch_size=500))


@pytest.mark.slow
def test_streamed_splits_are_deterministic_too(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "CACHE_LIMIT_BYTES", 0)
    config = config.replace(seed=11)  # a fresh cache key
    assert data.split_data(config, "train").stream is not None
    full = batches(data.train_dataset(config, 0))
    assert len(full) == data.steps_per_epoch(config)
    assert_same(full, batches(data.train_dataset(config, 0)))
    assert_same(full[3:], batches(data.train_dataset(config, 0).skip(3)))
    assert len(batches(data.eval_dataset(config, "train", batch_size=5))) == -(-data.split_data(
        config, "train").size // 5)


# --- paired sets ---


def paired_source(count: int) -> Source:
    """A: real-looking random pictures; B = 255 - A, so any mismatch in augmentation shows."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(count, 36, 50, 3), dtype=np.uint8)  # no shrinking at load size 36
    examples = tf.data.Dataset.from_tensor_slices({"a": a, "b": 255 - a})
    return Source(examples=examples, paired=True, size=count)


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
@pytest.mark.slow
def test_paired_sets_augment_a_and_b_together(monkeypatch: pytest.MonkeyPatch, direction: str) -> None:
    monkeypatch.setattr(data, "load_source", lambda config, split: paired_source(6))
    config = Config(dataset=f"fake_pairs_{direction}", image_size=SIZE, batch_size=2, vflip=True,
                    zoom_crop=0.5, direction=direction)
    a_first = batches(data.eval_dataset(config.replace(direction="AtoB"), "train", batch_size=6))[0][0]
    x, y = batches(data.eval_dataset(config, "train", batch_size=6))[0]
    np.testing.assert_allclose(x, a_first if direction == "AtoB" else -a_first, atol=1e-5)
    for x, y in batches(data.train_dataset(config, 0)):
        assert x.shape == y.shape == (2, SIZE, SIZE, 3)
        np.testing.assert_allclose(x, -y, atol=1e-5)


def test_paired_sets_refuse_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "load_source", lambda config, split: paired_source(2))
    with pytest.raises(UserError, match="paired set"):
        data.train_dataset(Config(dataset="fake_pairs_lab", image_size=SIZE, color_space="lab"), 0)
