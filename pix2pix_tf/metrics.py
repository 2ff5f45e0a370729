"""Per-image scores of a colour picture against its colour target (both uint8 RGB [H, W, 3], same size).

* ssim: `tf.image.ssim` on RGB in [0, 1], max_val 1 (11x11 Gaussian window, smaller for tiny images).
* psnr: `tf.image.psnr` on RGB in [0, 1], in dB; identical pictures are capped at `PSNR_CAP`.
* rmsd_255: root-mean-square difference over all pixels and channels, on the [0, 255] scale.
* rmsd_01: the same on [0, 1] (= rmsd_255 / 255): what the study's RMSD formula gives without its wrap-around.
* ciede2000: `skimage.color.deltaE_ciede2000` between the Lab pictures, mean over pixels.
* colorfulness: Hasler & Suesstrunk (2003) M of the picture scored (target-independent).

Over a whole set of pictures (`set_metrics`), colour as a distribution rather than per pixel:

* ab_intersection: the intersection of the pooled a*b* histograms of the outputs and of the targets (bins of
  `AB_BIN` units over [-128, 128)^2, each histogram summing to 1): 1 when the outputs use the targets' colours
  as often as the targets do, low for grey (all of it in the centre bins) and for wrong hues.
* colorfulness_ratio: the outputs' mean colourfulness over the targets' (1 = as colourful as the photos).

The original study's two numbers, as its public evaluation code computes them:

* ssim_study: scikit-image's `structural_similarity` with its defaults on the uint8 RGB pictures (7x7 uniform
  window, sample covariance, data range 255, mean over channels; the old `compare_ssim(a, b,
  multichannel=True)`); the window shrinks to the largest odd size that fits a tiny picture.
* rmsd_study_uint8_wrap: `norm(out - ref) / (255 * sqrt(ref.size))` with `out - ref` taken on uint8 arrays, so
  every difference wraps modulo 256: a pixel one level too dark counts as 255 levels off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

PSNR_CAP = 100.0  # dB, reported for identical pictures instead of infinity
AB_BIN = 8.0  # a*b* histogram bin width of `ab_intersection`, in CIELAB units

# name -> (label for tables, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "ssim": ("SSIM", True),
    "psnr": ("PSNR (dB)", True),
    "rmsd_255": ("RMSD [0,255]", False),
    "rmsd_01": ("RMSD [0,1]", False),
    "ciede2000": ("CIEDE2000", False),
    "colorfulness": ("colourfulness", True),
    "ssim_study": ("SSIM (study)", True),
    "rmsd_study_uint8_wrap": ("RMSD (study, wraps)", False),
}


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003): sigma_rgyb + 0.3 * mu_rgyb, with rg = R - G, yb = (R + G) / 2 - B on [0, 255]."""
    r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def ssim_study(output: np.ndarray, target: np.ndarray) -> float:
    """The study's SSIM: scikit-image's defaults on uint8 RGB (see the module docstring)."""
    window = min(7, *output.shape[:2])
    window -= 1 - window % 2  # the largest odd size that fits
    return float(structural_similarity(output, target, win_size=window, channel_axis=-1, data_range=255))


def rmsd_study_uint8_wrap(output: np.ndarray, target: np.ndarray) -> float:
    """The study's RMSD: the difference of the uint8 arrays wraps modulo 256 (see the module docstring)."""
    wrapped = np.asarray(output, np.uint8) - np.asarray(target, np.uint8)
    return float(np.linalg.norm(wrapped) / (255 * np.sqrt(target.size)))


def mean_ciede2000(output: np.ndarray, target: np.ndarray) -> float:
    """Mean over pixels of CIEDE2000 between two uint8 RGB pictures of equal size."""
    return float(np.mean(deltaE_ciede2000(rgb2lab(output), rgb2lab(target))))


def _unit(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    return rgb.astype(np.float32) / 255.0


def image_metrics(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Every metric of METRICS for one picture (see the module docstring)."""
    out, tgt = _unit(output), _unit(target)
    if out.shape != tgt.shape:
        raise ValueError(f"output {out.shape} and target {tgt.shape} differ in size")
    window = min(11, *out.shape[:2])
    ssim = float(tf.image.ssim(out, tgt, max_val=1.0, filter_size=window))
    mse = float(np.mean((out.astype(np.float64) - tgt) ** 2))
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, float(tf.image.psnr(out, tgt, max_val=1.0)))
    rmsd_unit = float(np.sqrt(mse))
    return {
        "ssim": ssim,
        "psnr": psnr,
        "rmsd_255": rmsd_unit * 255.0,
        "rmsd_01": rmsd_unit,
        "ciede2000": mean_ciede2000(output, target),
        "colorfulness": colorfulness(output),
        "ssim_study": ssim_study(output, target),
        "rmsd_study_uint8_wrap": rmsd_study_uint8_wrap(output, target),
    }


# name -> (label for tables, True when higher is better), for the scores of a whole set (`set_metrics`)
SET_METRICS: dict[str, tuple[str, bool]] = {
    "ab_intersection": ("a*b* histogram intersection", True),
    "colorfulness_ratio": ("colourfulness / truth's", True),
}
# Scores that are best at one value, not at an extreme: more colour than the photos' is no better than less.
IDEAL_VALUES: dict[str, float] = {"colorfulness_ratio": 1.0}


def better(key: str) -> str:
    """Which way score `key` improves: "higher", "lower", or "nearer N" for a score with an ideal value N."""
    if key in IDEAL_VALUES:
        return f"nearer {IDEAL_VALUES[key]:g}"
    return "higher" if (METRICS | SET_METRICS)[key][1] else "lower"


def ab_histogram(pictures: Sequence[np.ndarray]) -> np.ndarray:
    """The pooled a*b* histogram of uint8 RGB pictures (bins of AB_BIN over [-128, 128)^2), summing to 1."""
    edges = np.arange(-128.0, 128.0 + AB_BIN, AB_BIN)
    counts = np.zeros((len(edges) - 1,) * 2)
    for picture in pictures:
        lab = rgb2lab(picture).reshape(-1, 3)
        counts += np.histogram2d(lab[:, 1], lab[:, 2], bins=(edges, edges))[0]
    return counts / counts.sum()


def set_metrics(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> dict[str, float]:
    """Every metric of SET_METRICS for a set of outputs and their targets (see the module docstring)."""
    truth = float(np.mean([colorfulness(t) for t in targets]))
    made = float(np.mean([colorfulness(o) for o in outputs]))
    return {"ab_intersection": float(np.minimum(ab_histogram(outputs), ab_histogram(targets)).sum()),
            "colorfulness_ratio": made / truth if truth > 0 else float("nan")}
