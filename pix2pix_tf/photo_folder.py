"""The `folder` dataset: any folder of the user's colour photos, split by a hash of each photo's path."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pix2pix_tf.config import Config
from pix2pix_tf.datasource import SPLITS, Source, images_dataset, load_size
from pix2pix_tf.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
SPLIT_FRACTIONS = {"train": 0.90, "val": 0.05, "test": 0.05}
MIN_SIDE_DIVISOR = 4  # photos whose short side is under image_size / 4 are skipped as too small
MIN_CHROMA = 2.0  # mean (max - min over R, G, B) in 8-bit units; below it a photo has no colour to learn
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}



@dataclass
class FolderScan:
    """Every usable photo of a folder (relative posix path -> uint8 RGB), in path order, and what was left out."""

    photos: dict[str, np.ndarray]
    skipped: list[str]
    scanned: int


_SCANS: dict[tuple[str, int, int], FolderScan] = {}


def folder_source(config: Config, split: str) -> Source:
    """One split of `config.data_dir`, a folder of colour photos searched recursively.

    Files: .jpg/.jpeg/.png/.webp/.bmp in any case. Each is decoded once per process with Pillow (EXIF rotation
    applied) and kept in memory with its short side shrunk to the load size (about 300 KB per photo at 256 px).
    Converted: CMYK, 16-bit, palette, YCbCr -> 8-bit RGB; transparency is composited over white.
    Skipped, each listed in `Source.skipped` as "path: reason": empty, unreadable, truncated or corrupt files;
    greyscale photos (grey modes, or RGB with mean chroma under MIN_CHROMA: there is no colour to learn);
    photos whose short side is under image_size / MIN_SIDE_DIVISOR. Larger photos smaller than the crop are
    upscaled by the pipeline.

    Split rule (stable across machines, independent of file-system order): a photo's relative path is hashed
    (SHA-1) to a number in [0, 1): below 0.90 is train, below 0.95 val, the rest test. If that leaves a split
    empty, it takes the photo with the highest hash from the largest split. With fewer than 3 photos nothing
    can be held out: every split is the whole folder.
    """
    scan = scan_folder(_folder_root(config), load_size(config), config.image_size // MIN_SIDE_DIVISOR)
    names = assign_splits(list(scan.photos))[split]
    return Source(examples=images_dataset([scan.photos[name] for name in names]), paired=False,
                  size=len(names), skipped=scan.skipped, scanned=scan.scanned, origins=names)


def _folder_root(config: Config) -> Path:
    if not config.data_dir:
        raise UserError("--dataset folder needs --data-dir: a folder of colour photos")
    root = Path(config.data_dir).expanduser()
    if not root.exists():
        raise UserError(f"photo folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"--data-dir {root} is not a folder (--dataset folder wants a folder of photos)")
    return root.resolve()


def scan_folder(root: Path, max_short_side: int, min_short_side: int) -> FolderScan:
    """Decode every image file under `root` once per process (cached); raise UserError if none is usable."""
    key = (str(root), max_short_side, min_short_side)
    if key not in _SCANS:
        paths = sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                       key=lambda p: p.relative_to(root).as_posix())
        looked_for = f"{'/'.join(IMAGE_EXTENSIONS)} files, any case, in all subfolders"
        if not paths:
            raise UserError(f"no photos in {root} (looked for {looked_for})")
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = list(pool.map(lambda p: read_photo(p, max_short_side, min_short_side), paths))
        photos: dict[str, np.ndarray] = {}
        skipped: list[str] = []
        for path, result in zip(paths, results, strict=True):
            name = path.relative_to(root).as_posix()
            if isinstance(result, str):
                skipped.append(f"{name}: {result}")
            else:
                photos[name] = result
        if not photos:
            reasons = "; ".join(skipped[:5]) + (f"; ... ({len(skipped) - 5} more)" if len(skipped) > 5 else "")
            raise UserError(f"none of the {len(paths)} image files in {root} is a usable colour photo: {reasons}")
        _SCANS[key] = FolderScan(photos=photos, skipped=skipped, scanned=len(paths))
    return _SCANS[key]


def read_photo(path: Path, max_short_side: int, min_short_side: int) -> np.ndarray | str:
    """A photo file -> uint8 RGB [H, W, 3] with short side <= max_short_side, or the reason to skip it."""
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            image.draft(image.mode, (max_short_side, max_short_side))  # JPEG: decode at a reduced scale
            image.load()
            image = ImageOps.exif_transpose(image)
            mode = image.mode
            if mode in _GREY_MODES:
                return f"no colour (greyscale, mode {mode})"
            if min(image.size) < min_short_side:
                return f"too small ({image.width}x{image.height}, short side under {min_short_side} px)"
            image = _to_rgb(image)
            scale = max_short_side / min(image.size)
            if scale < 1:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.LANCZOS)
            rgb = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        return "not a readable image"
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... for broken files
        return f"cannot decode ({type(error).__name__}: {error})"
    chroma = float(np.mean(rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)))
    if chroma < MIN_CHROMA:
        return f"no colour (mean chroma {chroma:.1f} < {MIN_CHROMA})"
    return rgb


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any colour mode -> RGB; transparency (RGBA, LA, palette with a transparent index) over white."""
    if (image.mode == "P" and "transparency" in image.info) or image.mode in ("RGBA", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def split_key(name: str) -> float:
    """A relative path -> a stable number in [0, 1) that decides its split."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def assign_splits(names: list[str]) -> dict[str, list[str]]:
    """Relative paths -> {split: sorted paths}, by the rule in `folder_source`'s docstring."""
    if len(names) < 3:
        return {split: sorted(names) for split in SPLITS}
    bounds = np.cumsum([SPLIT_FRACTIONS[split] for split in SPLITS])
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in names:
        index = min(int(np.searchsorted(bounds, split_key(name), side="right")), len(SPLITS) - 1)
        splits[SPLITS[index]].append(name)
    for split in SPLITS:
        if not splits[split]:
            donor = max(SPLITS, key=lambda s: len(splits[s]))  # first of the largest, in SPLITS order
            moved = max(splits[donor], key=split_key)
            splits[donor].remove(moved)
            splits[split].append(moved)
    return {split: sorted(splits[split]) for split in SPLITS}
