"""Metrics against independent numpy / scikit-image computations on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from pix2pix_tf.metrics import PSNR_CAP, colorfulness, image_metrics, rmsd_study_uint8_wrap, set_metrics


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A real photo (coffee, 61 x 77 crop) and a darkened, channel-shifted copy of it."""
    target = skimage.data.coffee()[100:161, 200:277]
    output = np.clip(target.astype(int) * [0.8, 0.9, 1.0] + [0, 10, -5], 0, 255).astype(np.uint8)
    return output, target


def test_metrics_match_independent_computation(pair: tuple[np.ndarray, np.ndarray]) -> None:
    output, target = pair
    scores = image_metrics(output, target)
    diff = output.astype(np.float64) - target
    rmsd_255 = np.sqrt(np.mean(diff**2))
    assert scores["rmsd_255"] == pytest.approx(rmsd_255, rel=1e-5)
    assert scores["rmsd_01"] == pytest.approx(rmsd_255 / 255, rel=1e-5)
    assert scores["psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-3)
    # tf.image.ssim = Gaussian 11x11 window, sigma 1.5, population covariance, mean over channels
    ssim = structural_similarity(output / 255.0, target / 255.0, data_range=1.0, channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert scores["ssim"] == pytest.approx(ssim, abs=0.01)
    ciede = deltaE_ciede2000(rgb2lab(output), rgb2lab(target)).mean()
    assert scores["ciede2000"] == pytest.approx(ciede, rel=1e-4)
    assert scores["colorfulness"] == pytest.approx(colorfulness(output))
    # The study's SSIM: scikit-image called with its defaults on uint8 RGB (7x7 uniform window, range 255).
    assert scores["ssim_study"] == structural_similarity(output, target, channel_axis=-1)


def test_identical_pictures_score_perfectly(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, target = pair
    scores = image_metrics(target, target)
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert scores["psnr"] == PSNR_CAP
    assert scores["rmsd_255"] == scores["rmsd_01"] == scores["rmsd_study_uint8_wrap"] == 0.0
    assert scores["ssim_study"] == pytest.approx(1.0)
    assert scores["ciede2000"] == pytest.approx(0.0, abs=1e-6)


def test_colorfulness() -> None:
    grey = np.full((8, 8, 3), 120, np.uint8)
    assert colorfulness(grey) == 0.0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200  # rg = 200, yb = 100, no spread -> 0.3 * hypot(200, 100)
    assert colorfulness(red) == pytest.approx(0.3 * np.hypot(200, 100))
    assert colorfulness(skimage.data.coffee()) > colorfulness(np.repeat(skimage.data.camera()[..., None], 3, -1))


def test_tiny_and_mismatched_pictures() -> None:
    small = skimage.data.coffee()[::50, ::64][:8, :9]
    assert small.shape == (8, 9, 3)
    assert 0 < image_metrics(small // 2 + 60, small)["ssim"] < 1  # the SSIM window shrinks to 8 px
    with pytest.raises(ValueError, match="differ in size"):
        image_metrics(small, small[:, :8])
    with pytest.raises(ValueError, match="uint8"):
        image_metrics(small.astype(np.float32), small)


def test_study_rmsd_wraps_differences_modulo_256() -> None:
    target = np.full((4, 4, 3), 100, np.uint8)
    darker, lighter = target - 1, target + 1
    # One level too light is 1/255 off; one level too dark wraps to 255 levels off.
    assert rmsd_study_uint8_wrap(lighter, target) == pytest.approx(1 / 255)
    assert rmsd_study_uint8_wrap(darker, target) == pytest.approx(1.0)
    assert image_metrics(darker, target)["rmsd_01"] == pytest.approx(1 / 255)
    # The formula as the study's code writes it, on a real photo and a noisy copy.
    photo = skimage.data.astronaut()[:40, :50]
    noisy = np.clip(photo + np.random.default_rng(0).integers(-3, 4, photo.shape), 0, 255).astype(np.uint8)
    expected = np.linalg.norm(noisy - photo) / (255 * np.sqrt(photo.size))
    assert rmsd_study_uint8_wrap(noisy, photo) == pytest.approx(expected)
    assert expected > 10 * image_metrics(noisy, photo)["rmsd_01"]


def test_colour_distribution_scores_grey_worst() -> None:
    photos = [skimage.data.coffee()[::8, ::8], skimage.data.astronaut()[::8, ::8], skimage.data.chelsea()[::8, ::8]]
    grey = [np.repeat(np.round(p @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None], 3, -1) for p in photos]
    hue_shifted = [p[..., [1, 2, 0]] for p in photos]  # red -> blue, green -> red, blue -> green
    faded = [np.round(0.5 * p + 0.5 * g).astype(np.uint8) for p, g in zip(photos, grey, strict=True)]
    truth = set_metrics(photos, photos)
    assert truth == pytest.approx({"ab_intersection": 1.0, "colorfulness_ratio": 1.0})
    scores = {name: set_metrics(outputs, photos) for name, outputs in
              [("grey", grey), ("hue shifted", hue_shifted), ("faded", faded)]}
    assert scores["grey"]["colorfulness_ratio"] == pytest.approx(0.0, abs=0.01)
    assert scores["faded"]["colorfulness_ratio"] == pytest.approx(0.5, abs=0.1)
    assert scores["grey"]["ab_intersection"] < scores["faded"]["ab_intersection"] < 1.0
    assert scores["grey"]["ab_intersection"] < scores["hue shifted"]["ab_intersection"] < 0.6
