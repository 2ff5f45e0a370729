"""Pictures of results: INPUT | OUTPUT | TARGET grids, the study's progress GIF, matplotlib figures."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats (or uint8 already) -> uint8 with 3 channels."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image


def grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile equally sized images (rows of columns) into one uint8 picture with white gaps."""
    tiles = [[to_uint8(image) for image in row] for row in rows]
    height, width = tiles[0][0].shape[:2]
    n_rows, n_cols = len(tiles), max(len(row) for row in tiles)
    canvas = np.full((n_rows * (height + gap) - gap, n_cols * (width + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas[r * (height + gap):r * (height + gap) + height,
                   c * (width + gap):c * (width + gap) + width] = tile
    return canvas


def _write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """`write` a file next to `path` (hidden, same extension) and move it into place: a kill in the middle leaves
    the earlier file, never half a picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial-{path.name}")
    write(partial)
    os.replace(partial, path)


def save_png(image: np.ndarray, path: str | Path) -> None:
    _write_atomically(path, lambda target: imageio.imwrite(target, to_uint8(image)))


def save_gif(frames: Sequence[np.ndarray], path: str | Path, seconds_per_frame: float = 0.5) -> None:
    """The study's "transition with time": one frame per epoch, looping."""
    pictures = [to_uint8(f) for f in frames]
    _write_atomically(path, lambda target: imageio.mimsave(target, pictures, duration=seconds_per_frame, loop=0))


def save_comparison_figure(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path: str | Path,
                           row_labels: Sequence[str] | None = None) -> None:
    """A matplotlib figure with one column per title (e.g. INPUT | OUTPUT | TARGET) and one row per example (a
    row may be shorter than the titles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), len(titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.4 * n_cols, 2.4 * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            ax = axes[r][c]
            ax.imshow(to_uint8(image))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c])
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], fontsize=8)
        for ax in axes[r][len(row):]:  # a short last row leaves its other panels blank
            ax.axis("off")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
