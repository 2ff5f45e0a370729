"""evaluate: scores against independent computations, the grey and input-copy baselines, any SavedModel,
paired sets, clear errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from conftest import write_paired_tar
from PIL import Image
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from pix2pix_tf.config import Config
from pix2pix_tf.datasource import SPLITS
from pix2pix_tf.evaluate import Scores, format_table, grey_version, main, score_pairs
from pix2pix_tf.export import export_generator
from pix2pix_tf.metrics import METRICS, SET_METRICS, image_metrics, set_metrics
from pix2pix_tf.models import build_generator
from pix2pix_tf.sources import load_source

REPO = Path(__file__).resolve().parents[1]
LUMA = np.array([0.2989, 0.5870, 0.1140])  # ITU-R BT.601, as tf.image.rgb_to_grayscale


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Four real colour photos of odd sizes (PNG), one in a subfolder."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for index, (name, photo) in enumerate([("coffee", skimage.data.coffee()), ("chelsea", skimage.data.chelsea()),
                                           ("astronaut", skimage.data.astronaut()),
                                           ("rocket", skimage.data.rocket())]):
        size = (131 + 10 * index, 90 + 7 * index)  # (width, height)
        path = folder / ("sub" if index == 3 else "") / f"{name}.png"
        Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS).save(path)
    return folder


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    config = Config(image_size=32, ngf=4, dataset="folder")
    return export_generator(build_generator(config), config, tmp_path / "model", step=5)


def folder_photos(folder: Path) -> list[np.ndarray]:
    """Every photo of the folder as load_source delivers it for a 32 px model (as evaluate sees them)."""
    config = Config(dataset="folder", data_dir=str(folder), image_size=32, jitter=False)
    photos: dict[str, np.ndarray] = {}
    for split in SPLITS:
        source = load_source(config, split)
        for name, example in zip(source.origins, source.examples.as_numpy_iterator(), strict=True):
            photos[name] = example["image"]
    return [photos[name] for name in sorted(photos)]


def independent_scores(picture: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """RMSD, PSNR and SSIM, and the study's two numbers, computed with numpy / scikit-image, not with
    pix2pix_tf.metrics."""
    mse = np.mean((picture.astype(np.float64) - target) ** 2)
    ssim = structural_similarity(picture / 255.0, target / 255.0, data_range=1.0, channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return {"rmsd_255": float(np.sqrt(mse)), "psnr": float(10 * np.log10(255**2 / mse)), "ssim": float(ssim),
            "ssim_study": float(structural_similarity(picture, target, channel_axis=-1)),
            "rmsd_study_uint8_wrap": float(np.linalg.norm(picture - target) / (255 * np.sqrt(target.size)))}


def assert_scores(row: dict[str, str], who: str, expected: dict[str, float]) -> None:
    assert float(row[f"{who}_rmsd_255"]) == pytest.approx(expected["rmsd_255"], rel=1e-4)
    assert float(row[f"{who}_psnr"]) == pytest.approx(expected["psnr"], abs=1e-2)
    assert float(row[f"{who}_ssim"]) == pytest.approx(expected["ssim"], abs=0.01)


def save_foreign_model(path: Path, function: Callable[[tf.Tensor], tf.Tensor]) -> Path:
    """A SavedModel made without this package whose serving_default maps uint8 [N, H, W, C] with `function`."""

    class Foreign(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8)])
        def serve(self, images: tf.Tensor) -> tf.Tensor:
            return function(images)

    module = Foreign()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_perfect_output_and_grey_baseline() -> None:
    targets = [skimage.data.coffee()[:60, :70], skimage.data.chelsea()[50:120, 100:181]]
    greys = [grey_version(t, "rgb") for t in targets]
    scores = score_pairs(targets, targets, greys, names=["coffee", "chelsea"])
    assert scores.n == 2 and [row["name"] for row in scores.rows] == ["coffee", "chelsea"]
    assert scores.model["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert scores.model["ciede2000"] == pytest.approx(0.0, abs=1e-6)
    assert scores.model["rmsd_255"] == 0.0
    assert scores.baseline["ssim"] < 0.99 and scores.baseline["ciede2000"] > 1.0
    assert scores.baseline["colorfulness"] == 0.0 and scores.model["colorfulness"] == scores.target_colorfulness
    with pytest.raises(ValueError, match="equally many"):
        score_pairs(targets, targets[:1], greys)


def test_grey_version_per_color_space() -> None:
    photo = skimage.data.astronaut()[::4, ::4]
    luma = grey_version(photo, "rgb")
    assert luma.shape == (*photo.shape[:2], 1) and luma.dtype == np.uint8
    assert np.abs(luma[..., 0].astype(int) - np.round(photo @ LUMA)).max() <= 1
    lab_grey = grey_version(photo, "lab")
    lightness = rgb2lab(np.repeat(lab_grey, 3, -1) / 255.0)[..., 0]
    assert np.abs(lightness - rgb2lab(photo / 255.0)[..., 0]).max() < 0.6  # L* kept up to uint8 rounding


@pytest.mark.slow
def test_cli_matches_independent_scores(tmp_path: Path, photo_folder: Path, tiny_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["--model", str(tiny_model), "--dataset", "folder", "--data-dir", str(photo_folder),
                 "--split", "all", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "grey baseline" in table and "SSIM" in table and "RMSD [0,1]" in table
    assert "SSIM (study)" in table and "RMSD (study, wraps)" in table and "a*b* histogram intersection" in table

    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_images"] == 4 and summary["model_metadata"]["step"] == 5
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert sorted(row["name"] for row in rows) == ["astronaut.png", "chelsea.png", "coffee.png", "sub/rocket.png"]
    assert (out / "results.png").stat().st_size > 0
    assert Image.open(out / "side_by_side.png").size[0] > Image.open(out / "results.png").size[0]  # 4 panels a row

    # The same numbers, computed here with numpy / scikit-image and the SavedModel called directly.
    model = tf.saved_model.load(str(tiny_model))
    expected: dict[str, dict[str, list[float]]] = {"model": {}, "grey_baseline": {}}
    for target in folder_photos(photo_folder):
        grey = np.round(target @ LUMA).astype(np.uint8)[..., None]
        assert np.abs(grey.astype(int) - grey_version(target, "rgb")).max() <= 1
        grey = grey_version(target, "rgb")  # the same input evaluate used, so the model output is the same
        output = model.colorize(grey[None]).numpy()[0]
        for kind, picture in (("model", output), ("grey_baseline", np.repeat(grey, 3, -1))):
            for key, value in independent_scores(picture, target).items():
                expected[kind].setdefault(key, []).append(value)
    for kind, values in expected.items():
        means = summary["means"][kind]
        assert means["rmsd_255"] == pytest.approx(np.mean(values["rmsd_255"]), rel=1e-4)
        assert means["rmsd_01"] == pytest.approx(np.mean(values["rmsd_255"]) / 255, rel=1e-4)
        assert means["ssim_study"] == pytest.approx(np.mean(values["ssim_study"]), abs=1e-9)
        assert means["rmsd_study_uint8_wrap"] == pytest.approx(np.mean(values["rmsd_study_uint8_wrap"]), rel=1e-9)
        assert means["psnr"] == pytest.approx(np.mean(values["psnr"]), abs=1e-2)
        assert means["ssim"] == pytest.approx(np.mean(values["ssim"]), abs=0.01)
    assert summary["means"]["grey_baseline"]["colorfulness"] == 0.0
    assert summary["means"]["grey_baseline"]["colorfulness_ratio"] == 0.0
    assert {"ssim_study", "rmsd_study_uint8_wrap"} <= {key.removeprefix("baseline_") for key in rows[0]}


@pytest.mark.slow
def test_scores_do_not_depend_on_the_training_augmentation(tmp_path: Path, photo_folder: Path) -> None:
    """A model trained with --scale-jitter (photos cached larger) is scored on the very same pictures."""
    greys = {}
    for scale_jitter in (1.0, 2.0):
        config = Config(image_size=32, ngf=4, dataset="folder", scale_jitter=scale_jitter)
        model = export_generator(build_generator(config), config, tmp_path / f"model_{scale_jitter}", step=1)
        out = tmp_path / f"report_{scale_jitter}"
        assert main(["--model", str(model), "--data-dir", str(photo_folder), "--split", "all",
                     "--out", str(out)]) == 0
        greys[scale_jitter] = json.loads((out / "metrics.json").read_text())["means"]["grey_baseline"]
    assert greys[1.0] == greys[2.0]


def test_any_savedmodel_with_the_serving_signature(tmp_path: Path, photo_folder: Path) -> None:
    """A foreign SavedModel that returns its grey input as RGB must score exactly as the grey baseline."""
    passthrough = save_foreign_model(tmp_path / "passthrough", lambda images: tf.repeat(images[..., :1], 3, -1))
    out = tmp_path / "report"
    assert main(["--model", str(passthrough), "--dataset", "folder", "--data-dir",
                 str(photo_folder), "--split", "all", "--limit", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_images"] == 3 and summary["model_metadata"] == {}
    assert summary["means"]["model"] == summary["means"]["grey_baseline"]


@pytest.mark.slow
def test_lab_model(tmp_path: Path, photo_folder: Path) -> None:
    config = Config(image_size=32, ngf=4, dataset="folder", color_space="lab", data_dir=str(photo_folder))
    export_generator(build_generator(config), config, tmp_path / "lab", step=1)
    # --dataset and --data-dir come from the model's own config
    assert main(["--model", str(tmp_path / "lab"), "--split", "all", "--limit", "2",
                 "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert summary["n_images"] == 2 and summary["model_metadata"]["color_space"] == "lab"


@pytest.mark.slow
def test_errors_are_one_line_and_exit_2(tmp_path: Path, tiny_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["--model", str(tmp_path / "empty"), "--dataset", "folder"]) == 2
    assert "is not a SavedModel" in capsys.readouterr().err
    assert main(["--model", str(tiny_model), "--dataset", "folder"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["--model", str(tiny_model), "--dataset", "folder", "--data-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err

    result = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--model", str(tmp_path / "missing"),
                             "--dataset", "folder"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "evaluate.py: error: model folder" in result.stderr and "Traceback" not in result.stderr


def test_paired_output_equal_to_the_target_scores_perfectly() -> None:
    label_map, photo = skimage.data.coffee()[:48, :64], skimage.data.chelsea()[:48, :64]
    scores = score_pairs([photo], [photo], [label_map], baseline_kind="input")
    assert scores.model["ssim"] == pytest.approx(1.0, abs=1e-6) and scores.model["rmsd_255"] == 0.0
    # the input copy, all three channels as they are
    assert scores.baseline == image_metrics(label_map, photo) | set_metrics([label_map], [photo])
    assert scores.baseline_kind == "input"


@pytest.mark.slow
def test_paired_set_scored_beside_the_input_copy(tmp_path: Path, tfds_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    archive = write_paired_tar(tmp_path / "facades.tar.gz", "facades", {"train": 1, "test": 2})
    config = Config(dataset="facades", data_dir=str(archive), image_size=32, ngf=4)  # BtoA: labels -> photo
    export_generator(build_generator(config), config, tmp_path / "model", step=2)
    out = tmp_path / "report"
    assert main(["--model", str(tmp_path / "model"), "--out", str(out)]) == 0  # the model's own data
    assert "input baseline" in capsys.readouterr().out
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["baseline"] == "input" and set(summary["means"]) == {"model", "input_baseline"}
    assert summary["n_images"] == 2 and (out / "results.png").stat().st_size > 0

    # computed here: the model is given B (the label map) and scored against A (the photo); the baseline is B
    first = next(load_source(config, "test").examples.as_numpy_iterator())
    row = next(csv.DictReader(open(out / "per_image.csv")))
    assert_scores(row, "baseline", independent_scores(first["b"], first["a"]))
    model = tf.saved_model.load(str(tmp_path / "model"))
    output = model.colorize(first["b"][None]).numpy()[0]
    assert_scores(row, "model", independent_scores(output, first["a"]))

    passthrough = save_foreign_model(tmp_path / "passthrough", tf.identity)  # changes nothing: the input copy
    assert main(["--model", str(passthrough), "--dataset", "facades", "--data-dir", str(archive),
                 "--out", str(out)]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["means"]["model"] == summary["means"]["input_baseline"]


@pytest.mark.slow
def test_every_skipped_photo_is_listed_in_the_report_folder(tmp_path: Path, photo_folder: Path, tiny_model: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = ["empty.jpg", "notes.jpg", "sub/truncated.png", "grey.png", "tiny.png"]
    (photo_folder / "empty.jpg").write_bytes(b"")
    (photo_folder / "notes.jpg").write_text("not a picture")
    encoded = (photo_folder / "coffee.png").read_bytes()
    (photo_folder / "sub" / "truncated.png").write_bytes(encoded[: len(encoded) // 2])
    Image.fromarray(skimage.data.camera()).save(photo_folder / "grey.png")
    Image.fromarray(skimage.data.coffee()).resize((3, 2)).save(photo_folder / "tiny.png")
    out = tmp_path / "report"
    assert main(["--model", str(tiny_model), "--data-dir", str(photo_folder), "--split", "all",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"skipped 5 image file(s) that could not be used (all listed in {out / 'skipped_files.txt'})" in printed
    listed = (out / "skipped_files.txt").read_text().splitlines()
    assert sorted(line.split(": ", 1)[0] for line in listed) == sorted(bad)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["files_skipped_count"] == 5 and summary["n_images"] == 4


def test_the_table_says_which_way_each_score_is_better() -> None:
    values = {k: 0.5 for k in METRICS | SET_METRICS}
    table = format_table(Scores(rows=[{}], model=values, baseline=values, target_colorfulness=40.0))
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    assert lines["CIEDE2000"].endswith("lower") and lines["SSIM (study)"].endswith("higher")
    assert lines["colourfulness / truth's"].endswith("nearer 1")  # more colour than the photos is no better
