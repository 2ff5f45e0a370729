"""Per-image scores of a colour picture against its colour target (both uint8 RGB [H, W, 3], same size).

* ssim: `tf.image.ssim` on RGB in [0, 1], max_val 1 (11x11 Gaussian window, smaller for tiny images).
* psnr: `tf.image.psnr` on RGB in [0, 1], in dB; identical pictures are capped at `PSNR_CAP`.
* rmsd_255: root-mean-square difference over all pixels and channels, on the [0, 255] scale.
* rmsd_pm1: the same on the network's [-1, 1] scale (= rmsd_255 * 2 / 255), to set beside the study's numbers.
* ciede2000: `skimage.color.deltaE_ciede2000` between the Lab pictures, mean over pixels.
* colorfulness: Hasler & Suesstrunk (2003) M of the picture scored (target-independent).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from skimage.color import deltaE_ciede2000, rgb2lab

PSNR_CAP = 100.0  # dB, reported for identical pictures instead of infinity

# name -> (label for tables, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "ssim": ("SSIM", True),
    "psnr": ("PSNR (dB)", True),
    "rmsd_255": ("RMSD [0,255]", False),
    "rmsd_pm1": ("RMSD [-1,1]", False),
    "ciede2000": ("CIEDE2000", False),
    "colorfulness": ("colourfulness", True),
}


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003): sigma_rgyb + 0.3 * mu_rgyb, with rg = R - G, yb = (R + G) / 2 - B on [0, 255]."""
    r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


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
        "rmsd_pm1": rmsd_unit * 2.0,
        "ciede2000": float(np.mean(deltaE_ciede2000(rgb2lab(out), rgb2lab(tgt)))),
        "colorfulness": colorfulness(output),
    }
