"""MIT CVCL "Urban and Natural Scene Categories" (Oliva & Torralba 2001): one config per outdoor category."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensorflow_datasets as tfds
from pix2pix_tf.tfds_builders import archives

URL_ENV = "PIX2PIX_CVCL_URL"
DEFAULT_URL = ("http://people.csail.mit.edu/torralba/code/spatialenvelope/"
               "spatial_envelope_256x256_static_8outdoorcategories.zip")
FOLDER = "spatial_envelope_256x256_static_8outdoorcategories"
SIZE = 256

# category -> number of images in the published set
CATEGORIES: dict[str, int] = {
    "opencountry": 410, "forest": 328, "coast": 360, "mountain": 374,
    "highway": 260, "street": 292, "insidecity": 308, "tallbuilding": 356,
}
# No official split exists: a file's split follows from a hash of its name (the same on every machine).
SPLIT_PERCENT = {"train": 90, "val": 5, "test": 5}

_CITATION = """\
@article{oliva2001modeling,
  title   = {Modeling the Shape of the Scene: A Holistic Representation of the Spatial Envelope},
  author  = {Oliva, Aude and Torralba, Antonio},
  journal = {International Journal of Computer Vision},
  volume  = {42},
  number  = {3},
  pages   = {145--175},
  year    = {2001}
}
"""


def split_of(file_name: str) -> str:
    """train / val / test for a file name: SHA-256 of the name into 100 buckets, 90 / 5 / 5."""
    bucket = int(hashlib.sha256(file_name.encode("utf-8")).hexdigest()[:8], 16) % 100
    upper = 0
    for split, percent in SPLIT_PERCENT.items():
        upper += percent
        if bucket < upper:
            return split
    raise AssertionError("SPLIT_PERCENT must sum to 100")


def archive_spec(category: str) -> archives.ArchiveSpec:
    """Where the category's images come from; the URL honours $PIX2PIX_CVCL_URL."""
    return archives.ArchiveSpec(
        title="MIT CVCL scenes",
        url=os.environ.get(URL_ENV) or DEFAULT_URL,
        archive_names=(f"{FOLDER}.zip", f"{category}.zip"),
        folder_names=(FOLDER, category),
        is_root=lambda folder: bool(archives.image_files(folder, f"{category}_*")),
        contents=f"{category}_*.jpg images",
        url_env=URL_ENV,
    )


class CvclScenes(tfds.core.GeneratorBasedBuilder):
    """The eight outdoor scene categories of Oliva & Torralba, 256x256 colour photos."""

    name = "cvcl_scenes"
    pkg_dir_path, code_path = archives.builder_paths(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 90/5/5 split by hash of the file name."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=category, description=f"{count} '{category}' scenes")
        for category, count in CATEGORIES.items()
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {FOLDER}.zip (from {DEFAULT_URL}) or the folder it extracts to in the manual dir. "
        "The per-category zips of http://cvcl.mit.edu/scenedatabase/<category>.zip work too."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Urban and natural outdoor scenes (MIT CVCL), used as colour targets.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(SIZE, SIZE, 3), encoding_format="jpeg"),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=None,
            homepage="https://people.csail.mit.edu/torralba/code/spatialenvelope/",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        category = self.builder_config.name
        root = archives.prepare_root(archive_spec(category), archives.manual_dir_of(dl_manager),
                                     Path(dl_manager.download_dir))
        by_split: dict[str, list[Path]] = {split: [] for split in SPLIT_PERCENT}
        for path in archives.image_files(root, f"{category}_*"):
            by_split[split_of(path.name)].append(path)
        self.info.metadata["skipped"] = {}
        return {split: self._generate_examples(split, files) for split, files in by_split.items() if files}

    def _generate_examples(self, split: str, files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Valid 256x256 RGB JPEGs go in as they are; others are converted, unreadable ones skipped."""
        skipped: list[str] = []
        for path in files:
            data = path.read_bytes()
            decoded = archives.decode_rgb(data)
            if isinstance(decoded, str):
                skipped.append(f"{path.name}: {decoded}")
                continue
            height, width = decoded.pixels.shape[:2]
            if (height, width) != (SIZE, SIZE):
                skipped.append(f"{path.name}: expected {SIZE}x{SIZE}, got {width}x{height}")
                continue
            yield path.name, {"image": data if decoded.rgb_jpeg else decoded.pixels, "file_name": path.name}
        self.info.metadata["skipped"][split] = skipped

