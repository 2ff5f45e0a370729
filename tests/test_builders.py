"""The TFDS builders and their bridge: real download over local HTTP, --data-dir, offline and bad archives."""

from __future__ import annotations

import collections
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import Server, jpeg, skimage_crop, write_paired_tar
from PIL import Image
from pix2pix_tf.tfds_builders import loading
from pix2pix_tf.tfds_builders.loading import cvcl_scenes

from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError

REPO = Path(__file__).resolve().parents[1]
FOLDER = cvcl_scenes.FOLDER
BROKEN = "coast_broken.jpg"
pytestmark = pytest.mark.usefixtures("tfds_dir")  # every test prepares into its own TFDS data dir, offline


# ---------------------------------------------------------------------------------------------- fixtures


def names_covering_splits(category: str, n_train: int) -> list[str]:
    """File names whose hash puts `n_train` in train and at least one in val and one in test."""
    wanted = {"train": n_train, "val": 1, "test": 1}
    names = []
    for i in range(1000):
        name = f"{category}_img{i}.jpg"
        split = cvcl_scenes.split_of(name)
        if wanted[split]:
            wanted[split] -= 1
            names.append(name)
        if not any(wanted.values()):
            return names
    raise AssertionError("could not cover every split")


@pytest.fixture(scope="module")
def cvcl_files() -> dict[str, bytes]:
    """~20 CVCL-style files over two categories, plus one corrupt JPEG."""
    names = names_covering_splits("coast", 8) + names_covering_splits("forest", 6)
    files = {name: jpeg(skimage_crop(i)) for i, name in enumerate(names)}
    files[BROKEN] = b"\xff\xd8\xff\xe0 this is not really a jpeg"
    return files


def write_cvcl_zip(path: Path, files: dict[str, bytes], folder: str = FOLDER) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in files.items():
            zf.writestr(f"{folder}/{name}", payload)
    return path


def load_all(config: Config, split: str) -> tuple[loading.Source, list[dict[str, np.ndarray]]]:
    source = loading.load_source(config, split)
    return source, list(source.examples.as_numpy_iterator())


# ------------------------------------------------------------------------------------------------- tests


def test_split_is_a_pinned_hash_of_the_name_with_90_5_5_proportions() -> None:
    # sha256 of the name: the same answer on every machine, whatever the listing order; pinned because a
    # change of scheme would silently reshuffle everyone's val / test sets
    pinned = {"coast_arnat59.jpg": "train", "forest_for15.jpg": "val", "coast_img5.jpg": "test",
              "coast_img8.jpg": "test", "coast_img0.jpg": "train"}
    assert {name: cvcl_scenes.split_of(name) for name in reversed(list(pinned))} == pinned
    counts = collections.Counter(cvcl_scenes.split_of(f"opencountry_x{i}.jpg") for i in range(20000))
    assert set(counts) == {"train", "val", "test"}
    assert 0.88 < counts["train"] / 20000 < 0.92
    assert 0.04 < counts["val"] / 20000 < 0.06
    assert 0.04 < counts["test"] / 20000 < 0.06


def test_registry_and_default_directions() -> None:
    assert set(loading.DATASETS) == {
        "opencountry", "forest", "coast", "mountain", "highway", "street", "insidecity", "tallbuilding",
        "facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    assert loading.default_direction("facades") == "BtoA"
    assert loading.default_direction("cityscapes") == "BtoA"
    for name in ("maps", "edges2shoes", "edges2handbags", "night2day"):
        assert loading.default_direction(name) == "AtoB"
    assert loading.default_direction("opencountry") is None
    with pytest.raises(UserError, match="Unknown dataset 'nope'"):
        loading.default_direction("nope")
    assert cvcl_scenes.CATEGORIES["opencountry"] == 410 and sum(cvcl_scenes.CATEGORIES.values()) == 2688


def test_cvcl_download_over_http_then_reuse(serve: Server, tmp_path: Path, cvcl_files: dict[str, bytes],
                                            tfds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cvcl_zip(tmp_path / "www" / f"{FOLDER}.zip", cvcl_files)
    monkeypatch.setenv("PIX2PIX_CVCL_URL", f"{serve.url}/{FOLDER}.zip")
    config = Config(dataset="coast")

    coast = {name: data for name, data in cvcl_files.items() if name.startswith("coast_")}
    expected = collections.Counter(cvcl_scenes.split_of(name) for name in coast if name != BROKEN)
    total = 0
    for split in ("train", "val", "test"):
        source, examples = load_all(config, split)
        assert not source.paired and source.size == expected[split] == len(examples)
        total += source.size
        for example in examples:
            assert set(example) == {"image"}
            assert example["image"].dtype == np.uint8 and example["image"].shape == (256, 256, 3)
        broken_split = cvcl_scenes.split_of(BROKEN)
        assert any(BROKEN in s for s in source.skipped) == (split == broken_split)
    assert total == len(coast) - 1
    assert serve.requests.count(f"/{FOLDER}.zip") == 1
    assert (tfds_dir / "cvcl_scenes" / "coast").is_dir()

    # the pixels are the photos that went in (the JPEG bytes are stored as they are)
    source, examples = load_all(config, "train")
    originals = [np.asarray(Image.open(io.BytesIO(coast[name])).convert("RGB"))
                 for name in sorted(coast) if cvcl_scenes.split_of(name) == "train" and name != BROKEN]
    assert len(examples) == len(originals)
    matches = []
    for example in examples:
        errors = [np.abs(example["image"].astype(int) - o.astype(int)).mean() for o in originals]
        assert min(errors) < 1.5  # decoders may differ by a level here and there
        matches.append(int(np.argmin(errors)))
    assert sorted(matches) == list(range(len(originals)))

    # another category of the same archive: no second download
    source, _ = load_all(Config(dataset="forest"), "train")
    assert source.size == 6 and not source.skipped
    assert serve.requests.count(f"/{FOLDER}.zip") == 1

    with pytest.raises(UserError, match="no 'validation' split; available: .*train.*val.*test"):
        loading.load_source(config, "validation")


def test_cvcl_from_data_dir_archive_and_extracted_folder(tmp_path: Path, cvcl_files: dict[str, bytes],
                                                          closed_url: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIX2PIX_CVCL_URL", f"{closed_url}/{FOLDER}.zip")  # any download attempt fails
    archive = write_cvcl_zip(tmp_path / "scenes (1).zip", cvcl_files)  # saved under another name
    source, examples = load_all(Config(dataset="forest", data_dir=str(archive)), "train")
    assert source.size == len(examples) == 6
    # Every photo exactly as Pillow decodes the file (not TensorFlow's fast JPEG decoding).
    photos = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for name, data in cvcl_files.items()
              if name.startswith("forest_")]
    assert all(any(np.array_equal(example["image"], photo) for photo in photos) for example in examples)

    extracted = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(extracted)
    for data_dir in (extracted, extracted / FOLDER):
        monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / f"tfds-{data_dir.name}"))
        source, _ = load_all(Config(dataset="coast", data_dir=str(data_dir)), "test")
        assert source.size == sum(cvcl_scenes.split_of(n) == "test" for n in cvcl_files
                                  if n.startswith("coast_") and n != BROKEN)


def test_offline_gives_one_clear_paragraph(closed_url: str, tfds_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{closed_url}/{FOLDER}.zip"
    monkeypatch.setenv("PIX2PIX_CVCL_URL", url)
    with pytest.raises(UserError) as info:
        loading.load_source(Config(dataset="opencountry"), "train")
    message = str(info.value)
    assert "\n" not in message
    assert url in message and "Could not download the MIT CVCL scenes archive" in message
    assert f"--data-dir PATH/{FOLDER}.zip" in message
    assert str(tfds_dir / "downloads" / "manual") in message and "PIX2PIX_CVCL_URL" in message
    assert info.value.__cause__ is None
    assert not (tfds_dir / "cvcl_scenes" / "opencountry" / "1.0.0").exists()


def test_http_error_is_reported(serve: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIX2PIX_BERKELEY_URL_BASE", f"{serve.url}/missing/")
    with pytest.raises(UserError, match=r"HTTP error 404.*--data-dir PATH/facades\.tar\.gz"):
        loading.load_source(Config(dataset="facades"), "train")
    assert serve.requests == ["/missing/facades.tar.gz"]


def test_wrong_or_bad_data_dir(tmp_path: Path, cvcl_files: dict[str, bytes]) -> None:
    wrong = write_cvcl_zip(tmp_path / f"{FOLDER}.zip", {"readme.txt": b"hello"}, folder="other")
    with pytest.raises(UserError, match=r"is not the MIT CVCL scenes archive: it has no "
                                        rf"{FOLDER}/ folder with coast_\*\.jpg images\. "
                                        r"Use the file from http://127\.0\.0\.1:9/unused\.zip"):
        loading.load_source(Config(dataset="coast", data_dir=str(wrong)), "train")

    corrupt = tmp_path / "facades.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 definitely truncated")
    with pytest.raises(UserError, match=r"facades\.tar\.gz is not a readable \.zip or \.tar\.gz archive"):
        loading.load_source(Config(dataset="facades", data_dir=str(corrupt)), "train")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"holds neither facades\.tar\.gz nor the extracted facades/"):
        loading.load_source(Config(dataset="facades", data_dir=str(empty)), "train")
    with pytest.raises(UserError, match="does not exist"):
        loading.load_source(Config(dataset="facades", data_dir=str(tmp_path / "nowhere")), "train")


def test_corrupt_download_is_removed_and_explained(serve: Server, tmp_path: Path, tfds_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "www" / "maps.tar.gz").write_bytes(b"not an archive at all")
    monkeypatch.setenv("PIX2PIX_BERKELEY_URL_BASE", serve.url)
    with pytest.raises(UserError, match=r"maps\.tar\.gz is not a readable \.zip or \.tar\.gz archive "
                                        r"\(neither a zip nor a \(compressed\) tar file\); it was deleted; run "
                                        "again to download it anew.$") as info:
        loading.load_source(Config(dataset="maps"), "train")
    assert "\n" not in str(info.value)
    assert not (tfds_dir / "downloads" / "maps.tar.gz").exists()


def test_paired_download_splits_halves(serve: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_paired_tar(tmp_path / "www" / "facades.tar.gz", "facades", {"train": 3, "val": 1, "test": 2})
    monkeypatch.setenv("PIX2PIX_BERKELEY_URL_BASE", serve.url)
    config = Config(dataset="facades")
    sizes = {}
    for split in ("train", "val", "test"):
        source, examples = load_all(config, split)
        assert source.paired and not source.skipped and source.size == len(examples)
        sizes[split] = source.size
    assert sizes == {"train": 3, "val": 1, "test": 2}

    _, examples = load_all(config, "train")
    for example in examples:
        assert set(example) == {"a", "b"}
        assert example["a"].shape == example["b"].shape == (64, 64, 3) and example["a"].dtype == np.uint8
    # file i holds skimage_crop(i) | skimage_crop(i + 1): A is the left half, B the right one
    firsts = [ex for ex in examples if np.abs(ex["a"].astype(int) - skimage_crop(0, 64, 64)).mean() < 6]
    assert len(firsts) == 1
    assert np.abs(firsts[0]["b"].astype(int) - skimage_crop(1, 64, 64)).mean() < 6
    assert serve.requests.count("/facades.tar.gz") == 1


def test_paired_splits_as_in_archive_and_corrupt_member(tmp_path: Path) -> None:
    archive = write_paired_tar(tmp_path / "cityscapes.tar.gz", "cityscapes", {"train": 2, "val": 1})
    with tarfile.open(archive) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    with tarfile.open(archive, "w:gz") as tf:
        for member, payload in members:
            tf.addfile(member, io.BytesIO(payload))
        bad = b"\xff\xd8 broken"
        info = tarfile.TarInfo("cityscapes/train/9.jpg")
        info.size = len(bad)
        tf.addfile(info, io.BytesIO(bad))
    source = loading.load_source(Config(dataset="cityscapes", data_dir=str(archive)), "train")
    assert source.size == 2 and len(source.skipped) == 1 and source.skipped[0].startswith("train/9.jpg: ")
    with pytest.raises(UserError, match=r"cityscapes has no 'test' split; available: train, val\."):
        loading.load_source(Config(dataset="cityscapes", data_dir=str(archive)), "test")


def test_builder_modules_load_the_way_tfds_build_does(tmp_path: Path) -> None:
    """`tfds build datasets/cvcl_scenes` imports `cvcl_scenes.cvcl_scenes` with datasets/ on sys.path."""
    import tensorflow_datasets as tfds

    for folder, name, config in (("cvcl_scenes", "cvcl_scenes", "opencountry"),
                                 ("pix2pix_paired", "pix2pix_paired", "night2day")):
        with tfds.core.utils.add_sys_path(REPO / "datasets"):
            cls = tfds.core.community.builder_cls_from_module(f"{folder}.{folder}")
        assert cls.name == name
        builder = cls(config=config, data_dir=str(tmp_path))
        assert builder.builder_config.name == config and not builder.is_prepared()


def test_tfds_build_command_with_manual_dir(tmp_path: Path, cvcl_files: dict[str, bytes]) -> None:
    """`tfds build datasets/cvcl_scenes --config coast --manual_dir DIR`, run through the command's own code.

    (The `tfds` entry point itself needs apache_beam just to start, so the parsed command is executed here.)
    """
    from etils import epath
    from tensorflow_datasets.scripts.cli import build, cli_utils

    manual = tmp_path / "manual"
    manual.mkdir()
    write_cvcl_zip(manual / f"{FOLDER}.zip", cvcl_files)
    out = tmp_path / "out"
    build.Args(
        positional_datasets=[str(REPO / "datasets" / "cvcl_scenes")],
        paths=cli_utils.PathOptions(data_dir=epath.Path(out), manual_dir=epath.Path(manual)),
        generation=cli_utils.GenerationOptions(config="coast"),
    ).execute()
    infos = list((out / "cvcl_scenes" / "coast").glob("*/dataset_info.json"))
    assert len(infos) == 1
    splits = json.loads(infos[0].read_text())["splits"]
    assert {split["name"] for split in splits} == {"train", "val", "test"}
