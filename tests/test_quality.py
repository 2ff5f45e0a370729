"""Chroma calibration (the choice, the export applying it, the metadata) and the quality bench end to end."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import tarfile
import zlib
from hashlib import sha256
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import Server
from PIL import Image

from pix2pix_tf import color
from pix2pix_tf.calibration import SCALE_GRID, calibrate, choose_scale
from pix2pix_tf.config import Config
from pix2pix_tf.evaluate import grey_version
from pix2pix_tf.export import colorize_graph, export_generator, load_exported
from pix2pix_tf.metrics import colorfulness
from pix2pix_tf.models import build_generator
from pix2pix_tf.sources import split_examples

BENCH = Path(__file__).resolve().parents[1] / "bench" / "quality.py"
SIZE = 64


def tiny(**changes) -> Config:
    """A tiny lab/rgb config; chroma smoothing off, so the scale is seen alone (tests/test_export.py has it)."""
    return Config(image_size=SIZE, ngf=8, ndf=8, g_dropout=0.0, chroma_smoothing=1).replace(**changes)


def generator_for(config: Config) -> keras.Model:
    keras.utils.set_random_seed(3)
    return build_generator(config)


def colourful_generator(config: Config) -> keras.Model:
    """An untrained generator whose output is pushed well away from grey (its last layer's bias set)."""
    generator = generator_for(config)
    last = [layer for layer in generator.layers if getattr(layer, "bias", None) is not None][-1]
    last.bias.assign(np.resize([0.4, -0.3, 0.2], last.bias.shape).astype(np.float32))
    return generator


def with_chroma(photo: np.ndarray, factor: float) -> np.ndarray:
    """The photo with its Lab ab multiplied by `factor` (uint8 in, uint8 out)."""
    lab = color.rgb_to_lab(photo / 255.0)
    scaled = color.lab_to_rgb(tf.concat([lab[..., :1], lab[..., 1:] * factor], axis=-1))
    return np.round(scaled.numpy() * 255.0).astype(np.uint8)


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
@pytest.mark.parametrize("full_resolution", [True, False])
@pytest.mark.slow
def test_scale_zero_gives_the_grey_copy_and_scale_one_the_uncalibrated_output(
        photo: np.ndarray, color_space: str, full_resolution: bool) -> None:
    config = tiny(color_space=color_space, full_resolution=full_resolution)
    generator = generator_for(config)
    grey = grey_version(photo, color_space)
    images = tf.constant(grey[None])

    def run(scale: float | None) -> np.ndarray:
        return colorize_graph(images, generator, config.replace(chroma_scale=scale)).numpy()[0].astype(int)

    uncalibrated, one, zero, half = run(None), run(1.0), run(0.0), run(0.5)
    np.testing.assert_array_equal(one, uncalibrated)
    assert np.abs(half - uncalibrated).max() > 0  # the factor changes the picture
    # The calibration's form: the factor as a tensor argument, in place of the config's.
    as_tensor = colorize_graph(images, generator, config, chroma_scale=tf.constant(0.5)).numpy()[0].astype(int)
    np.testing.assert_array_equal(as_tensor, half)
    spread = zero.max(axis=-1) - zero.min(axis=-1)
    assert spread.max() <= 1, "scale 0 must give a grey picture"
    if full_resolution:  # grey at the input's own luminance: the grey copy, up to uint8 rounding
        assert np.abs(zero - grey.astype(int)).max() <= 1


@pytest.mark.slow
def test_the_exported_signature_applies_the_factor_and_the_metadata_records_it(photo, tmp_path) -> None:
    config = tiny(color_space="lab", chroma_scale=0.5)
    generator = colourful_generator(config)
    model = load_exported(export_generator(generator, config, tmp_path / "model", step=7))
    assert model.metadata["chroma_scale"] == 0.5
    assert model.metadata["config"]["chroma_scale"] == 0.5
    grey = grey_version(photo, "lab")
    exported = model.colorize(grey).astype(int)
    half = colorize_graph(tf.constant(grey[None]), generator, config).numpy()[0].astype(int)
    full = colorize_graph(tf.constant(grey[None]), generator, config.replace(chroma_scale=1.0)).numpy()[0]
    assert np.abs(exported - half).max() <= 1
    assert np.abs(exported - full.astype(int)).max() > 1


@pytest.mark.slow
def test_an_export_without_a_chosen_factor_records_one(tmp_path) -> None:
    config = tiny(color_space="lab")
    model = load_exported(export_generator(generator_for(config), config, tmp_path / "model", step=1))
    assert model.metadata["chroma_scale"] == 1.0


def test_the_choice_is_the_factor_that_undoes_oversaturation(photo: np.ndarray) -> None:
    """A colorizer that paints the true colours twice as strong is calibrated at 0.5, as colourful as the photos."""
    targets = [photo, photo[:, ::-1].copy()]
    greys = [grey_version(t, "lab") for t in targets]
    truth = {g.tobytes(): t for g, t in zip(greys, targets, strict=True)}

    def oversaturated(grey: np.ndarray, scale: float) -> np.ndarray:
        return with_chroma(truth[grey.tobytes()], 2.0 * scale)

    scores = choose_scale(oversaturated, greys, targets)
    assert scores.scale == 0.5
    assert scores.colorfulness["0.5"] == pytest.approx(scores.target_colorfulness, rel=0.02)
    assert scores.ciede2000["0.5"] < 0.5 < scores.ciede2000["1.0"]
    assert set(scores.colorfulness) == set(scores.ciede2000) == {str(s) for s in SCALE_GRID}


def test_the_choice_never_returns_grey_even_where_grey_has_the_lowest_error(photo: np.ndarray) -> None:
    """A colorizer that paints everything magenta scores best per pixel at 0 (grey), but the calibration
    keeps the factor that makes it as colourful as the photo: a per-pixel criterion would hand back grey."""
    grey = grey_version(photo, "lab")

    def magenta(grey_image: np.ndarray, scale: float) -> np.ndarray:
        lab = tf.concat([color.rgb_to_lab(np.repeat(grey_image, 3, axis=-1) / 255.0)[..., :1],
                         tf.fill([*grey_image.shape[:2], 2], 30.0 * scale) * [1.0, -1.0]], axis=-1)
        return np.round(color.lab_to_rgb(lab).numpy() * 255.0).astype(np.uint8)

    scores = choose_scale(magenta, [grey], [photo])
    assert min(scores.ciede2000, key=scores.ciede2000.get) == "0.0"
    assert scores.scale > 0
    nearest = min(abs(v - scores.target_colorfulness) for v in scores.colorfulness.values())
    assert abs(scores.colorfulness[str(scores.scale)] - scores.target_colorfulness) == nearest


def test_a_given_target_colourfulness_steers_the_choice(photo: np.ndarray) -> None:
    """With a target twice the photo's own colourfulness, the true colours are chosen at factor 2, not 1."""
    grey = grey_version(photo, "lab")

    def true_colours(grey_image: np.ndarray, scale: float) -> np.ndarray:
        return with_chroma(photo, scale)

    assert choose_scale(true_colours, [grey], [photo]).scale == 1.0
    twice = choose_scale(true_colours, [grey], [photo], target_colorfulness=2 * colorfulness(photo))
    assert twice.scale == 2.0 and twice.target_colorfulness == 2 * colorfulness(photo)


def test_calibration_tries_factors_on_val_photos_against_the_training_photos_colourfulness(
        make_photo_folder) -> None:
    config = tiny(dataset="folder", data_dir=str(make_photo_folder(40)), color_space="lab")
    chosen = calibrate(colourful_generator(config), config)
    val, _ = split_examples(config.for_scoring(), "val")
    training, _ = split_examples(config.for_scoring(), "train")
    assert (chosen.split, chosen.n_photos, chosen.n_target_photos) == ("val", len(val), len(training))
    assert len(training) > len(val) > 0
    assert chosen.target_colorfulness == pytest.approx(np.mean([colorfulness(e["image"]) for _, e in training]))
    assert chosen.target_colorfulness != pytest.approx(np.mean([colorfulness(e["image"]) for _, e in val]))
    nearest = min(abs(v - chosen.target_colorfulness) for v in chosen.colorfulness.values())
    assert abs(chosen.colorfulness[str(chosen.scale)] - chosen.target_colorfulness) == nearest


def quality_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
def test_toy_quality_bench_runs_end_to_end(tmp_path: Path) -> None:
    bench = quality_bench()
    assert bench.main(["--toy", "--out", str(tmp_path), "--ngf", "8", "--ndf", "8", "--color-space", "lab"]) == 0

    report = json.loads((tmp_path / "quality.json").read_text())
    assert set(report["rows"]) == {"grey", "rgb_recipe", "model"}
    for row in report["rows"].values():
        assert all(np.isfinite(row[key]) for key in ("ssim", "psnr", "ciede2000", "rmsd_255", "colorfulness"))
    assert report["test_photos"] == ["china", "flower"]
    assert report["training"]["rgb_recipe"]["chroma_scale"] == 1.0
    assert report["training"]["rgb_recipe"]["color_space"] == "rgb"
    assert report["training"]["model"]["color_space"] == "lab"
    assert report["training"]["model"]["chroma_scale"] in SCALE_GRID
    assert (tmp_path / "runs" / "model" / "calibration.json").is_file()
    assert not (tmp_path / "runs" / "rgb_recipe" / "calibration.json").exists()
    markdown = (tmp_path / "quality.md").read_text()
    assert "grey copy" in markdown and "RGB recipe" in markdown and "machine" in markdown
    assert (tmp_path / "quality_model.png").stat().st_size > 0


def test_wide_set_takes_only_the_listed_opencv_photos_from_the_checked_download(
        serve: Server, closed_url: str, tmp_path: Path) -> None:
    bench = quality_bench()
    root = "opencv_python-9.9/opencv"
    members = {f"{root}/samples/data/{name}": name.encode() for name in bench.OPENCV_PHOTOS}
    members[f"{root}/samples/data/starry_night.jpg"] = b"a painting"  # not in the list
    members[f"{root}/doc/images/apple.jpg"] = b"a listed name elsewhere"
    archive = tmp_path / "www" / "opencv.tar.gz"  # the folder serve answers from
    with tarfile.open(archive, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    digest = sha256(archive.read_bytes()).hexdigest()

    fetched = bench.fetch(f"{serve.url}/opencv.tar.gz", digest, tmp_path / "downloads" / "opencv.tar.gz")
    assert fetched.read_bytes() == archive.read_bytes()
    bench.fetch(f"{serve.url}/opencv.tar.gz", digest, fetched)  # already there: not asked for again
    assert serve.requests == ["/opencv.tar.gz"]
    photos = tmp_path / "photos"
    photos.mkdir()
    bench.opencv_photos(photos, fetched)
    assert sorted(p.name for p in photos.iterdir()) == sorted(f"opencv_{n}" for n in bench.OPENCV_PHOTOS)
    assert (photos / "opencv_apple.jpg").read_bytes() == b"apple.jpg"

    with pytest.raises(SystemExit, match="expected SHA-256"):
        bench.fetch(f"{serve.url}/opencv.tar.gz", "0" * 64, tmp_path / "other.tar.gz")
    assert not (tmp_path / "other.tar.gz").exists()
    with pytest.raises(SystemExit, match="place that file at"):
        bench.fetch(f"{closed_url}/opencv.tar.gz", digest, tmp_path / "offline.tar.gz")


def qt_resource_bundle(files: dict[str, bytes], compressed: frozenset[str] = frozenset()) -> bytes:
    """A compiled Qt resource bundle (format 2) holding `files` (path -> contents); `compressed` paths as zlib."""
    tree: dict = {}
    for path in files:
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = path
    nodes: list[bytes] = [b""]
    names, contents = bytearray(), bytearray()

    def name_offset(name: str) -> int:
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return len(names) - 6 - 2 * len(name)

    def directory(name: str, entries: dict, index: int) -> None:
        """Node `index` as a directory whose children take the next len(entries) nodes (theirs come after)."""
        first = len(nodes)
        nodes[index] = struct.pack(">IHII", name_offset(name), 2, len(entries), first) + bytes(8)
        nodes.extend(b"" for _ in entries)
        for child_index, (child, entry) in enumerate(entries.items(), start=first):
            if isinstance(entry, dict):
                directory(child, entry, child_index)
                continue
            payload = files[entry]
            if entry in compressed:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
            nodes[child_index] = struct.pack(">IHHHI", name_offset(child), int(entry in compressed), 0, 0,
                                             len(contents)) + bytes(8)
            contents.extend(struct.pack(">I", len(payload)) + payload)

    directory("", tree, 0)
    contents_offset = 20 + sum(map(len, nodes))
    return (b"qres" + struct.pack(">IIII", 2, 20, contents_offset, contents_offset + len(contents))
            + b"".join(nodes) + bytes(contents) + bytes(names))


def test_qt_resource_reader_returns_every_file_plain_or_compressed() -> None:
    files = {"top.txt": b"top", "a/b/deep.webp": b"deep" * 100, "a/next.png": b"next"}
    bundle = qt_resource_bundle(files, compressed=frozenset({"a/b/deep.webp"}))
    assert quality_bench().read_qt_resources(bundle) == files
    with pytest.raises(ValueError, match="not a compiled Qt resource bundle"):
        quality_bench().read_qt_resources(b"nope" + bundle[4:])


def test_all_set_takes_the_photos_of_the_listed_gcompris_activities(monkeypatch, tmp_path: Path) -> None:
    bench = quality_bench()

    def webp(width: int, height: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(buffer, "WEBP")
        return buffer.getvalue()

    activity = bench.GCOMPRIS_ACTIVITIES[0]
    bundles = {
        activity: {"res/photo.webp": webp(300, 256), "res/small.webp": webp(400, 200), "res/drawing.svg": b"<svg/>"},
        "categorization": {"res/images/monuments/crop.webp": webp(300, 300), "res/images/tools/spray.webp":
                           webp(256, 400)},
        "paintings": {"res/painting.webp": webp(500, 500)},  # not a listed activity
    }

    def unpacked(name: str, scratch: Path) -> Path:
        assert name == bench.GCOMPRIS_PACKAGE
        folder = scratch / "root/usr/share/gcompris-qt/rcc"
        folder.mkdir(parents=True)
        for activity_name in bench.GCOMPRIS_ACTIVITIES:
            files = bundles.get(activity_name, {})
            (folder / f"{activity_name}.rcc").write_bytes(qt_resource_bundle(files, frozenset(files)))
        (folder / "paintings.rcc").write_bytes(qt_resource_bundle(bundles["paintings"]))
        return scratch / "root"

    monkeypatch.setattr(bench, "debian_package", unpacked)
    bench.gcompris_photos(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gcompris_categorization_spray.webp", f"gcompris_{activity}_photo.webp"]
    assert (tmp_path / f"gcompris_{activity}_photo.webp").read_bytes() == bundles[activity]["res/photo.webp"]


def test_all_set_takes_the_listed_lomiri_wallpaper_photos_and_tops_up_an_older_folder(
        monkeypatch, tmp_path: Path) -> None:
    bench = quality_bench()
    unlisted = {"lomiri-wallpapers-16.04": "umang_by_Abhishek_Mudgal.jpg",  # a gradient
                "lomiri-wallpapers-20.04": "Fossa_by_Jasper_Roks.jpg"}  # an illustration
    fetched: list[str] = []

    def unpacked(name: str, scratch: Path) -> Path:
        fetched.append(name)
        folder = scratch / "root" / bench.LOMIRI_FOLDER
        folder.mkdir(parents=True)
        for file in (*bench.LOMIRI_PHOTOS[name], unlisted[name]):
            (folder / file).write_bytes(f"{name}/{file}".encode())
        return scratch / "root"

    monkeypatch.setattr(bench, "debian_package", unpacked)
    photos = tmp_path / "all_photos"
    photos.mkdir()
    (photos / "gcompris_erase_photo.webp").write_bytes(b"from an earlier fetch")  # so only the Lomiri photos come
    assert bench.all_photos(photos) == photos
    assert fetched == list(bench.LOMIRI_PHOTOS)
    listed = [file for files in bench.LOMIRI_PHOTOS.values() for file in files]
    assert len(listed) == 14
    assert sorted(p.name for p in photos.iterdir()) == sorted(
        ["gcompris_erase_photo.webp", *(f"lomiri_{file}" for file in listed)])
    kleiber = photos / "lomiri_Kleiber_by_Lukas_Baubkus.jpg"
    assert kleiber.read_bytes() == b"lomiri-wallpapers-20.04/Kleiber_by_Lukas_Baubkus.jpg"
    bench.all_photos(photos)  # already there: nothing fetched again
    assert fetched == list(bench.LOMIRI_PHOTOS)
