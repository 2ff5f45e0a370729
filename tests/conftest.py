"""Shared tiny fixtures: real colour photos from scikit-image, small folders of them on disk."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

PhotoFolderFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real colour photo, uint8 [150, 225, 3] (chelsea the cat at half size)."""
    return np.asarray(Image.fromarray(skimage.data.chelsea()).resize((225, 150), Image.Resampling.LANCZOS))


@pytest.fixture(scope="session")
def photo_crops() -> list[np.ndarray]:
    """24 distinct real colour crops, uint8 [48, 64, 3], from four scikit-image photos."""
    crops = []
    for photo in (skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()):
        small = np.asarray(Image.fromarray(photo).resize((photo.shape[1] // 3, photo.shape[0] // 3)))
        crops += [small[y:y + 48, x:x + 64] for y in (0, 40) for x in (0, 40, 80)]
    return crops


@pytest.fixture
def make_photo_folder(tmp_path: Path, photo_crops: list[np.ndarray]) -> PhotoFolderFactory:
    """make_photo_folder(count=12, name="photos") -> a folder of `count` real colour JPEGs, some in a subfolder."""

    def make(count: int = 12, name: str = "photos") -> Path:
        folder = tmp_path / name
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            path = folder / ("sub" if index % 3 == 0 else "") / f"photo_{index:03d}.jpg"
            Image.fromarray(photo_crops[index % len(photo_crops)]).save(path, quality=95)
        return folder

    return make
