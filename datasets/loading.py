"""The TFDS builders of this folder as the package's data sources.

`load_source(config, split)` prepares the builder config named by `config.dataset` (downloading it, or
taking the archive / extracted folder given as `config.data_dir`) into TFDS's data dir ($TFDS_DATA_DIR,
default ~/tensorflow_datasets) and returns the split as a `Source`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds
from pix2pix_tf.tfds_builders import archives
from pix2pix_tf.tfds_builders.cvcl_scenes import cvcl_scenes
from pix2pix_tf.tfds_builders.pix2pix_paired import pix2pix_paired

from pix2pix_tf.config import Config
from pix2pix_tf.datasource import Source
from pix2pix_tf.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset the package can load through TFDS."""

    builder: type[tfds.core.GeneratorBasedBuilder]
    paired: bool
    direction: str | None  # usual AtoB / BtoA for paired sets, None for colour sets

    def archive_spec(self, name: str) -> archives.ArchiveSpec:
        module = pix2pix_paired if self.paired else cvcl_scenes
        return module.archive_spec(name)


DATASETS: dict[str, DatasetSpec] = {
    **{name: DatasetSpec(cvcl_scenes.CvclScenes, paired=False, direction=None)
       for name in cvcl_scenes.CATEGORIES},
    **{name: DatasetSpec(pix2pix_paired.Pix2pixPaired, paired=True, direction=direction)
       for name, (_, direction) in pix2pix_paired.SETS.items()},
}


def default_direction(name: str) -> str | None:
    """The usual direction of a paired set (e.g. facades: BtoA, labels -> photo); None for colour sets."""
    return _spec(name).direction


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise UserError(f"Unknown dataset {name!r}; the TFDS-backed ones are: {', '.join(DATASETS)}.")
    return DATASETS[name]


def tfds_data_dir() -> Path:
    """Where prepared datasets go: $TFDS_DATA_DIR (read now, not at import), else ~/tensorflow_datasets."""
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def make_builder(name: str) -> tfds.core.GeneratorBasedBuilder:
    """The TFDS builder for dataset `name` (a builder config), rooted at `tfds_data_dir()`."""
    return _spec(name).builder(config=name, data_dir=os.fspath(tfds_data_dir()))


def manual_dir_for(name: str, data_dir: str | os.PathLike[str]) -> Path:
    """The TFDS manual dir that makes `data_dir` (archive file or extracted folder) usable by the builder."""
    path = Path(data_dir).expanduser()
    spec = _spec(name).archive_spec(name)
    place = (f"pass the {spec.archive_name} file from {spec.url} or the {spec.folder_name}/ folder it "
             "extracts to")
    if not path.exists():
        raise UserError(f"--data-dir {path} does not exist; {place}.")
    if path.is_dir():
        if archives.find_local(path, spec) is None:
            raise UserError(f"--data-dir {path} holds neither {spec.archive_name} nor the extracted "
                            f"{spec.folder_name}/ images; {place}.")
        return path
    if path.name in spec.archive_names:
        return path.parent
    # An archive saved under another name: link it under its usual name in a manual dir of its own.
    manual = tfds_data_dir() / "downloads" / "manual_links" / name
    manual.mkdir(parents=True, exist_ok=True)
    link = manual / spec.archive_name
    link.unlink(missing_ok=True)
    link.symlink_to(path.resolve())
    return manual


def prepare(name: str, data_dir: str | os.PathLike[str] | None = None) -> tfds.core.GeneratorBasedBuilder:
    """Download (or take from `data_dir`) and prepare dataset `name`; a no-op when already prepared."""
    builder = make_builder(name)
    if not builder.is_prepared():
        manual_dir = manual_dir_for(name, data_dir) if data_dir else None
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir and os.fspath(manual_dir))
        builder.download_and_prepare(download_config=download_config)
    return builder


def load_source(config: Config, split: str) -> Source:
    """The `split` of `config.dataset` as a Source: {"image"} for CVCL scenes, {"a", "b"} for paired sets."""
    spec = _spec(config.dataset)
    builder = prepare(config.dataset, config.data_dir)
    splits = builder.info.splits
    if split not in splits:
        raise UserError(f"{config.dataset} has no {split!r} split; available: {', '.join(splits.keys())}.")
    keys = ("a", "b") if spec.paired else ("image",)
    # The JPEGs are decoded here, exactly (as Pillow and OpenCV decode them): TFDS's own decoding uses
    # TensorFlow's fast default, about 2 levels off per pixel.
    examples = builder.as_dataset(split=split, shuffle_files=False, decoders={key: tfds.decode.SkipDecoding()
                                                                              for key in keys},
                                  read_config=tfds.ReadConfig(try_autocache=False))
    examples = examples.map(lambda ex: {key: tf.io.decode_jpeg(ex[key], channels=3, dct_method="INTEGER_ACCURATE")
                                        for key in keys}, num_parallel_calls=tf.data.AUTOTUNE)
    skipped = builder.info.metadata.get("skipped", {}).get(split, [])
    return Source(examples=examples, paired=spec.paired, size=splits[split].num_examples,
                  skipped=list(skipped))
