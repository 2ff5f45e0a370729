"""Which source each dataset name comes from: `sample` (photos shipped inside installed packages), `folder`
(the user's photos) and the TFDS builders of the top-level `datasets/` folder (installed as
`pix2pix_tf.tfds_builders`) for the MIT CVCL scenes and the Berkeley paired sets.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from pix2pix_tf import photo_folder, sample
from pix2pix_tf.config import Config
from pix2pix_tf.datasource import SPLITS, Source
from pix2pix_tf.errors import UserError

OWN_DATASETS = ("sample", "folder")
Example = dict[str, np.ndarray]  # {"image"} for colour sets, {"a", "b"} for paired sets


def _tfds() -> ModuleType:
    """The TFDS-backed datasets, imported on first use: tensorflow_datasets takes seconds to import."""
    from pix2pix_tf.tfds_builders import loading

    return loading


def known_datasets() -> list[str]:
    """Every dataset name `load_source` accepts."""
    return [*OWN_DATASETS, *sorted(_tfds().DATASETS)]


def is_paired(config: Config) -> bool:
    """Paired sets (facades, ...) map an A picture to a B picture; the others are colour photos."""
    if config.dataset in OWN_DATASETS:
        return False
    tfds_sets = _tfds()
    return config.dataset in tfds_sets.DATASETS and tfds_sets.default_direction(config.dataset) is not None


def resolve_direction(config: Config) -> str:
    """AtoB / BtoA for a paired set: the flag, else the dataset's usual direction, else AtoB."""
    if config.direction:
        return config.direction
    if config.dataset in OWN_DATASETS:
        return "AtoB"
    return _tfds().default_direction(config.dataset) or "AtoB"


def load_source(config: Config, split: str) -> Source:
    """The Source for `config.dataset` and `split` (train / val / test)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if config.dataset == "sample":
        return sample.load_source(split)
    if config.dataset == "folder":
        return photo_folder.folder_source(config, split)
    tfds_sets = _tfds()
    if config.dataset in tfds_sets.DATASETS:
        return tfds_sets.load_source(config, split)
    raise UserError(f"unknown dataset {config.dataset!r}; known datasets: {', '.join(known_datasets())}")


def split_examples(config: Config, split: str, limit: int | None = None) -> tuple[list[tuple[str, Example]], list[str]]:
    """[(name, example)] of `split` ("all": every split; an example that an earlier split already gave, as a
    folder of under 3 photos does, is left out) and the files the source skipped ("path: reason")."""
    examples: list[tuple[str, Example]] = []
    earlier: set[str] = set()
    skipped: list[str] = []
    for part in SPLITS if split == "all" else (split,):
        source = load_source(config, part)
        skipped += [entry for entry in source.skipped if entry not in skipped]  # a folder lists its skips per split
        counts: dict[str, int] = {}
        for index, example in enumerate(source.examples.as_numpy_iterator()):
            origin = source.origins[index] if index < len(source.origins) else f"{part}-{index:05d}"
            if origin in earlier:
                continue
            counts[origin] = counts.get(origin, 0) + 1  # several tiles of one photo: name#2, name#3, ...
            examples.append((origin if counts[origin] == 1 else f"{origin}#{counts[origin]}", example))
            if limit is not None and len(examples) >= limit:
                return examples, skipped
        earlier |= set(counts)
    return examples, skipped
