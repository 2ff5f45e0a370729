"""The paired pix2pix sets of Isola et al. (2017) from Berkeley: each JPEG holds A | B side by side."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from pix2pix_tf.tfds_builders import archives

URL_BASE_ENV = "PIX2PIX_BERKELEY_URL_BASE"
DEFAULT_URL_BASE = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
SPLITS = ("train", "val", "test")

# name -> (what A and B are, the usual direction in the paper / the reference code)
SETS: dict[str, tuple[str, str]] = {
    "facades": ("A: facade photo, B: label map (the paper translates labels -> photo)", "BtoA"),
    "cityscapes": ("A: street photo, B: semantic labels (the paper translates labels -> photo)", "BtoA"),
    "maps": ("A: aerial photo, B: map (aerial -> map)", "AtoB"),
    "edges2shoes": ("A: edges, B: shoe photo", "AtoB"),
    "edges2handbags": ("A: edges, B: handbag photo", "AtoB"),
    "night2day": ("A: night, B: day", "AtoB"),
}

_CITATION = """\
@inproceedings{isola2017image,
  title     = {Image-to-Image Translation with Conditional Adversarial Networks},
  author    = {Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A.},
  booktitle = {CVPR},
  year      = {2017}
}
"""


def archive_spec(name: str) -> archives.ArchiveSpec:
    """Where the set's archive comes from; the URL base honours $PIX2PIX_BERKELEY_URL_BASE."""
    base = (os.environ.get(URL_BASE_ENV) or DEFAULT_URL_BASE).rstrip("/")
    return archives.ArchiveSpec(
        title=f"pix2pix {name}",
        url=f"{base}/{name}.tar.gz",
        archive_names=(f"{name}.tar.gz", f"{name}.tgz", f"{name}.tar"),
        folder_names=(name,),
        is_root=lambda folder: any(archives.image_files(folder / split) for split in SPLITS
                                   if (folder / split).is_dir()),
        contents="train/ (and val/, test/) folders of A|B images",
        url_env=URL_BASE_ENV,
    )


def split_pair(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut an [H, W, 3] image into its left (A) and right (B) halves."""
    half = pixels.shape[1] // 2
    return np.ascontiguousarray(pixels[:, :half]), np.ascontiguousarray(pixels[:, half:2 * half])


class Pix2pixPaired(tfds.core.GeneratorBasedBuilder):
    """facades, cityscapes, maps, edges2shoes, edges2handbags, night2day as (a, b) image pairs."""

    name = "pix2pix_paired"
    pkg_dir_path, code_path = archives.builder_paths(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: splits as in the archives."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name, description=about)
                       for name, (about, _) in SETS.items()]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put <name>.tar.gz (from {DEFAULT_URL_BASE}/<name>.tar.gz) or the <name>/ folder it extracts to "
        "in the manual dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Paired images for pix2pix: each file is A | B side by side, split in half.",
            features=tfds.features.FeaturesDict({
                "a": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "b": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("a", "b"),
            homepage="https://phillipi.github.io/pix2pix/",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        root = archives.prepare_root(archive_spec(self.builder_config.name),
                                     archives.manual_dir_of(dl_manager), Path(dl_manager.download_dir))
        self.info.metadata["skipped"] = {}
        return {split: self._generate_examples(split, archives.image_files(root / split))
                for split in SPLITS if (root / split).is_dir() and archives.image_files(root / split)}

    def _generate_examples(self, split: str, files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
        """One example per readable file; unreadable or too narrow ones are skipped and named."""
        skipped: list[str] = []
        for path in files:
            decoded = archives.decode_rgb(path.read_bytes())
            if isinstance(decoded, str):
                skipped.append(f"{split}/{path.name}: {decoded}")
                continue
            if decoded.pixels.shape[1] < 2:
                skipped.append(f"{split}/{path.name}: too narrow to hold A | B")
                continue
            a, b = split_pair(decoded.pixels)
            yield f"{split}/{path.name}", {"a": a, "b": b, "file_name": path.name}
        self.info.metadata["skipped"][split] = skipped
