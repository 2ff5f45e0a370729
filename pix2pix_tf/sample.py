"""The offline `sample` dataset: 256x256 tiles cut from real colour photos shipped inside installed packages.

Photos: scikit-image's bundled colour photographs of scenes and objects (those in `skimage.data.data_dir`,
never a download; not its microscopy, retina or deep-sky images, whose colours no scene has) and, when
scikit-learn is installed, its `china.jpg` and `flower.jpg`. Each photo is shrunk so its short side is at most
512 px and cut into overlapping 256x256 tiles on a grid with a stride of about 128 px (6 to 15 tiles a photo).
Splits are by photo, fixed in `PHOTO_SPLITS`, so no photo contributes to two splits: 60 training tiles with
scikit-learn (36 without), 6 for validation (chelsea), 12 for test (coffee).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix_tf.datasource import Source, images_dataset

TILE = 256
STRIDE = 128
MAX_SHORT_SIDE = 512

# photo name -> file name in scikit-image's data folder (scikit-learn's below)
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
}
SKLEARN_PHOTOS = {"china": "china.jpg", "flower": "flower.jpg"}
PHOTO_SPLITS = {name: "train" for name in [*SKIMAGE_PHOTOS, *SKLEARN_PHOTOS]} | {"chelsea": "val",
                                                                                  "coffee": "test"}


def photo_paths() -> dict[str, Path]:
    """Photo name -> file, for the photos installed on this machine (in `PHOTO_SPLITS` order)."""
    import skimage.data

    paths = {name: Path(skimage.data.data_dir) / file for name, file in SKIMAGE_PHOTOS.items()}
    try:
        import sklearn.datasets
    except ImportError:
        pass
    else:
        folder = Path(sklearn.datasets.__file__).parent / "images"
        paths |= {name: folder / file for name, file in SKLEARN_PHOTOS.items()}
    return {name: paths[name] for name in PHOTO_SPLITS if name in paths and paths[name].is_file()}


def tile_starts(length: int) -> list[int]:
    """Evenly spread tile offsets covering [0, length) with a stride of at most STRIDE."""
    count = math.ceil(max(length - TILE, 0) / STRIDE) + 1
    return sorted({round(x) for x in np.linspace(0, length - TILE, count)})


def cut_tiles(photo: np.ndarray) -> list[np.ndarray]:
    """A uint8 RGB photo (short side >= TILE) -> its TILExTILE tiles, row by row."""
    height, width = photo.shape[:2]
    return [photo[y:y + TILE, x:x + TILE] for y in tile_starts(height) for x in tile_starts(width)]


def load_photo(path: Path) -> np.ndarray:
    """A photo file -> uint8 RGB with its short side shrunk to MAX_SHORT_SIDE (never below TILE)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = MAX_SHORT_SIDE / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)),
                                 Image.Resampling.LANCZOS)
        if min(image.size) < TILE:
            scale = TILE / min(image.size)
            image = image.resize((max(TILE, round(image.width * scale)), max(TILE, round(image.height * scale))),
                                 Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.uint8)


@functools.cache
def tiles_by_split() -> dict[str, list[tuple[str, np.ndarray]]]:
    """{split: [(photo name, tile), ...]}, built once per process."""
    splits: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for name, path in photo_paths().items():
        splits[PHOTO_SPLITS[name]] += [(name, tile) for tile in cut_tiles(load_photo(path))]
    return splits


def load_source(split: str) -> Source:
    """The tiles of one split, {"image": uint8 [256, 256, 3]}."""
    tiles = tiles_by_split()[split]
    return Source(examples=images_dataset([tile for _, tile in tiles]), paired=False, size=len(tiles),
                  origins=[name for name, _ in tiles])
