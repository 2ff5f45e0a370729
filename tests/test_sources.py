"""Sources: the folder scan (bad inputs, conversions, splits), the offline sample set, dataset dispatch."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pix2pix_tf import photo_folder, sample, sources
from pix2pix_tf.config import Config
from pix2pix_tf.datasource import SPLITS
from pix2pix_tf.errors import UserError

PhotoFolderFactory = Callable[..., Path]
SIZE = 32  # crop size in these tests: load size 36, photos under 8 px are too small


def folder_config(folder: Path) -> Config:
    return Config(dataset="folder", data_dir=str(folder), image_size=SIZE)


def read(path: Path) -> np.ndarray | str:
    return photo_folder.read_photo(path, max_short_side=1000, min_short_side=SIZE // photo_folder.MIN_SIDE_DIVISOR)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# --- conversions of odd but usable files ---


def test_cmyk_jpeg_becomes_rgb_close_to_original(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = read(path)
    assert isinstance(rgb, np.ndarray) and rgb.shape == photo.shape and rgb.dtype == np.uint8
    assert mean_abs_diff(rgb, photo) < 8


def test_16_bit_png_becomes_8_bit(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "deep.png"
    deep = photo.astype(np.uint16) * 257  # 8-bit value v -> 16-bit v * 257
    tf.io.write_file(str(path), tf.io.encode_png(deep))
    rgb = read(path)
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8
    assert mean_abs_diff(rgb, photo) < 1


def test_rgba_png_is_composited_over_white(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "alpha.png"
    alpha = np.full(photo.shape[:2], 255, np.uint8)
    alpha[:, :50] = 0  # a fully transparent left band
    Image.fromarray(np.dstack([photo, alpha]), "RGBA").save(path)
    rgb = read(path)
    assert isinstance(rgb, np.ndarray) and rgb.shape == photo.shape
    assert np.all(rgb[:, :50] == 255)
    assert np.array_equal(rgb[:, 50:], photo[:, 50:])


def test_palette_png_becomes_rgb(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "palette.png"
    Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path)
    assert Image.open(path).mode == "P"
    rgb = read(path)
    assert isinstance(rgb, np.ndarray) and rgb.shape == photo.shape
    assert mean_abs_diff(rgb, photo) < 6


def test_large_photo_is_shrunk_to_the_load_size(tmp_path: Path, photo: np.ndarray) -> None:
    path = tmp_path / "big.jpg"
    Image.fromarray(photo).save(path, quality=95)
    rgb = photo_folder.read_photo(path, max_short_side=36, min_short_side=8)
    assert isinstance(rgb, np.ndarray) and rgb.shape == (36, 54, 3)


# --- files that are skipped, each with its reason ---


@pytest.fixture
def messy_folder(make_photo_folder: PhotoFolderFactory, photo: np.ndarray) -> Path:
    """6 good JPEGs plus one file of every bad kind, and a few usable odd ones."""
    folder = make_photo_folder(6)
    good = Image.fromarray(photo)
    good.save(folder / "UPPER.JPG", quality=90)
    good.save(folder / "sub" / "web.webp")
    good.save(folder / "bitmap.bmp")
    good.resize((24, 20)).save(folder / "smaller_than_crop.png")  # kept: the pipeline upscales it
    good.resize((6, 5)).save(folder / "tiny.png")
    good.convert("L").save(folder / "grey.jpg")
    Image.fromarray(np.repeat(np.asarray(good.convert("L"))[..., None], 3, axis=-1)).save(folder / "grey_rgb.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a picture\n")
    encoded = (folder / "photo_001.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(encoded[: len(encoded) // 2])
    (folder / "readme.txt").write_text("ignored: not an image extension\n")
    return folder


def test_bad_files_are_skipped_with_reasons_and_counted(messy_folder: Path) -> None:
    source = sources.load_source(folder_config(messy_folder), "train")
    reasons = dict(entry.split(": ", 1) for entry in source.skipped)
    assert set(reasons) == {"tiny.png", "grey.jpg", "grey_rgb.jpg", "empty.jpg", "notes.jpg", "truncated.jpg"}
    assert reasons["tiny.png"].startswith("too small (6x5")
    assert reasons["grey.jpg"].startswith("no colour (greyscale")
    assert reasons["grey_rgb.jpg"].startswith("no colour (mean chroma")
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.jpg"] == "not a readable image"
    assert "truncated" in reasons["truncated.jpg"]
    assert source.scanned == 16  # 6 good + 4 odd good + 6 bad; readme.txt is not looked at
    kept = [sources.load_source(folder_config(messy_folder), split).origins for split in SPLITS]
    assert set().union(*kept) == {f"{'sub/' if i % 3 == 0 else ''}photo_{i:03d}.jpg" for i in range(6)} | {
        "UPPER.JPG", "sub/web.webp", "bitmap.bmp", "smaller_than_crop.png"}


def test_folder_scan_is_cached(make_photo_folder: PhotoFolderFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    config = folder_config(make_photo_folder(5))
    sources.load_source(config, "train")
    monkeypatch.setattr(photo_folder, "read_photo", lambda *args: pytest.fail("folder rescanned"))
    assert sources.load_source(config, "val").size >= 1


def test_empty_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no photos here")
    with pytest.raises(UserError, match=r"no photos in .*empty.*\.jpg"):
        sources.load_source(folder_config(tmp_path / "empty"), "train")


def test_folder_of_only_bad_files_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("text")
    with pytest.raises(UserError, match=r"none of the 2 image files .* a\.jpg: empty file"):
        sources.load_source(folder_config(tmp_path), "train")


def test_missing_or_absent_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        sources.load_source(folder_config(tmp_path / "nope"), "train")
    with pytest.raises(UserError, match="--data-dir"):
        sources.load_source(Config(dataset="folder"), "train")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="is not a folder"):
        sources.load_source(folder_config(tmp_path / "file.jpg"), "train")


# --- splits ---


def test_split_is_independent_of_file_order() -> None:
    names = [f"dir{i % 7}/IMG_{i:04d}.jpg" for i in range(300)]
    shuffled = names.copy()
    random.Random(1).shuffle(shuffled)
    assert photo_folder.assign_splits(names) == photo_folder.assign_splits(shuffled)


def test_split_fractions_disjointness_and_stability() -> None:
    names = [f"IMG_{i:05d}.jpg" for i in range(4000)]
    splits = photo_folder.assign_splits(names)
    assert sorted(sum(splits.values(), [])) == sorted(names)  # each photo in exactly one split
    assert 0.88 < len(splits["train"]) / len(names) < 0.92
    assert 0.035 < len(splits["val"]) / len(names) < 0.065
    grown = photo_folder.assign_splits([*names, "new_photo.jpg"])
    for split in SPLITS:  # adding a photo moves no other photo
        assert set(splits[split]) <= set(grown[split])


@pytest.mark.parametrize("count", [3, 4, 5, 8, 20])
def test_small_folders_still_fill_every_split(count: int) -> None:
    names = [f"p{i}.jpg" for i in range(count)]
    splits = photo_folder.assign_splits(names)
    assert all(splits[split] for split in SPLITS)
    assert sorted(sum(splits.values(), [])) == sorted(names)


@pytest.mark.parametrize("count", [1, 2])
def test_one_or_two_photos_are_used_for_every_split(count: int) -> None:
    names = [f"p{i}.jpg" for i in range(count)]
    assert photo_folder.assign_splits(names) == {split: names for split in SPLITS}


def test_folder_splits_are_disjoint(make_photo_folder: PhotoFolderFactory) -> None:
    config = folder_config(make_photo_folder(24))
    origins = {split: sources.load_source(config, split).origins for split in SPLITS}
    assert all(origins.values())
    assert sum(len(o) for o in origins.values()) == len(set().union(*origins.values())) == 24


# --- sample and dispatch ---


def test_sample_tiles_split_by_photo() -> None:
    splits = {split: sources.load_source(Config(dataset="sample"), split) for split in SPLITS}
    assert 36 <= splits["train"].size <= 100 and splits["val"].size and splits["test"].size
    photos = {split: set(source.origins) for split, source in splits.items()}
    assert not photos["train"] & photos["val"] and not photos["train"] & photos["test"]
    assert not photos["val"] & photos["test"]
    example = next(iter(splits["val"].examples))["image"]
    assert example.shape == (256, 256, 3) and example.dtype == tf.uint8
    assert splits["train"].paired is False and splits["train"].size == len(splits["train"].origins)


def test_sample_uses_only_bundled_files_and_works_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    with_sklearn = sample.photo_paths()
    assert all(path.is_file() for path in with_sklearn.values())
    assert {"astronaut", "coffee", "chelsea", "rocket"} <= set(with_sklearn)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes `import sklearn.datasets` fail
    without = sample.photo_paths()
    assert "china" not in without and "flower" not in without
    train = [name for name in without if sample.PHOTO_SPLITS[name] == "train"]
    tiles = sum(len(sample.cut_tiles(sample.load_photo(without[name]))) for name in train)
    assert tiles >= 30


def test_tiles_cover_the_photo() -> None:
    assert sample.tile_starts(256) == [0]
    assert sample.tile_starts(512) == [0, 128, 256]
    starts = sample.tile_starts(741)
    assert starts[0] == 0 and starts[-1] == 741 - 256 and max(np.diff(starts)) <= sample.STRIDE


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(UserError, match=r"unknown dataset 'nope'.*sample, folder"):
        sources.load_source(Config(dataset="nope"), "train")
    with pytest.raises(ValueError, match="split"):
        sources.load_source(Config(), "training")
