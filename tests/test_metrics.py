"""Metrics against independent numpy / scikit-image computations on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from pix2pix_tf.metrics import PSNR_CAP, colorfulness, image_metrics


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
    assert scores["rmsd_pm1"] == pytest.approx(rmsd_255 * 2 / 255, rel=1e-5)
    assert scores["psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean(diff**2)), abs=1e-3)
    # tf.image.ssim = Gaussian 11x11 window, sigma 1.5, population covariance, mean over channels
    ssim = structural_similarity(output / 255.0, target / 255.0, data_range=1.0, channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert scores["ssim"] == pytest.approx(ssim, abs=0.01)
    ciede = deltaE_ciede2000(rgb2lab(output), rgb2lab(target)).mean()
    assert scores["ciede2000"] == pytest.approx(ciede, rel=1e-4)
    assert scores["colorfulness"] == pytest.approx(colorfulness(output))


def test_identical_pictures_score_perfectly(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, target = pair
    scores = image_metrics(target, target)
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert scores["psnr"] == PSNR_CAP
    assert scores["rmsd_255"] == scores["rmsd_pm1"] == 0.0
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
