"""Download, locate and unpack the archives behind the builders in this folder, and decode their images.

Shared by every builder: one download attempt with urllib (no silent retries, so an offline machine gets an
answer at once), archives and extracted folders accepted from the TFDS manual dir, and every failure turned
into one `UserError` paragraph that says what failed, the URL, and where to put the file instead.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from pix2pix_tf.errors import UserError

TIMEOUT_S = 60.0
_CHUNK = 1 << 20
_DONE_MARKER = ".extracted"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveSpec:
    """What one builder config needs: where its archive lives and how to recognise its extracted folder."""

    title: str  # human name for messages, e.g. "MIT CVCL scenes"
    url: str
    archive_names: Sequence[str]  # accepted file names; the first is the one downloaded
    folder_names: Sequence[str]  # accepted top folders inside the archive; the first is the usual one
    is_root: Callable[[Path], bool]  # True for the folder that holds the data
    contents: str  # what that folder holds, for messages, e.g. "coast_*.jpg images"
    url_env: str  # environment variable that overrides the URL (base)

    @property
    def archive_name(self) -> str:
        return self.archive_names[0]

    @property
    def folder_name(self) -> str:
        return self.folder_names[0]


def manual_dir_of(dl_manager: object) -> Path | None:
    """The TFDS manual dir when it exists and holds something, else None."""
    try:
        return Path(dl_manager.manual_dir)  # type: ignore[attr-defined]
    except (AssertionError, ValueError):
        return None


def find_root(base: Path, spec: ArchiveSpec) -> Path | None:
    """The data folder: `base/<one of the folder names>` or `base` itself, if either holds the data."""
    for candidate in [*(base / name for name in spec.folder_names), base]:
        if candidate.is_dir() and spec.is_root(candidate):
            return candidate
    return None


def find_local(manual_dir: Path, spec: ArchiveSpec) -> Path | None:
    """An extracted folder or an archive (under one of its accepted names) in `manual_dir`, else None."""
    root = find_root(manual_dir, spec)
    if root is not None:
        return root
    for name in spec.archive_names:
        if (manual_dir / name).is_file():
            return manual_dir / name
    return None


def prepare_root(spec: ArchiveSpec, manual_dir: Path | None, download_dir: Path) -> Path:
    """The folder holding the data: from the manual dir if it has it, else downloaded, unpacked once."""
    local = find_local(manual_dir, spec) if manual_dir is not None else None
    if local is not None and local.is_dir():
        return local
    downloaded = local is None
    archive = local or download(spec, manual_dir or download_dir / "manual", download_dir)
    return unpack(archive, spec, download_dir / "extracted", remove_if_corrupt=downloaded)


def download(spec: ArchiveSpec, manual_dir: Path, download_dir: Path) -> Path:
    """Fetch `spec.url` into `download_dir` (reusing a complete earlier download) and return its path.

    `manual_dir` is only named in the error message, as the place to put the file by hand.
    """
    dest = download_dir / spec.archive_name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    log.info("downloading %s from %s", spec.title, spec.url)
    try:
        with urllib.request.urlopen(spec.url, timeout=TIMEOUT_S) as response, partial.open("wb") as out:
            expected = int(response.headers.get("Content-Length") or 0)
            with tqdm(total=expected or None, unit="B", unit_scale=True, desc=spec.archive_name,
                      disable=None) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        got = partial.stat().st_size
        if expected and got != expected:
            raise OSError(f"connection closed after {got} of {expected} bytes")
    except urllib.error.HTTPError as e:
        partial.unlink(missing_ok=True)
        raise UserError(_offline_message(spec, f"HTTP error {e.code} {e.reason}", manual_dir)) from None
    except urllib.error.URLError as e:
        partial.unlink(missing_ok=True)
        raise UserError(_offline_message(spec, str(e.reason), manual_dir)) from None
    except (OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        raise UserError(_offline_message(spec, str(e) or type(e).__name__, manual_dir)) from None
    partial.replace(dest)
    return dest


def _offline_message(spec: ArchiveSpec, reason: str, manual_dir: Path) -> str:
    """One paragraph: what failed, the URL, where to put the file by hand."""
    return (
        f"Could not download the {spec.title} archive from {spec.url} ({reason}). "
        f"On a machine without internet, fetch that file elsewhere and pass it with "
        f"--data-dir PATH/{spec.archive_name} (or the folder it extracts to, {spec.folder_name}/), "
        f"or put it in the TFDS manual dir {manual_dir}. To download from a mirror instead, set {spec.url_env}."
    )


def unpack(archive: Path, spec: ArchiveSpec, extract_dir: Path, *, remove_if_corrupt: bool) -> Path:
    """Extract a .zip or .tar(.gz) once into `extract_dir` and return the data folder inside it."""
    stat = archive.stat()
    target = extract_dir / f"{archive.name}-{stat.st_size}"
    if not (target / _DONE_MARKER).is_file():
        shutil.rmtree(target, ignore_errors=True)
        partial = target.with_name(target.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            _extract(archive, partial)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError) as e:
            shutil.rmtree(partial, ignore_errors=True)
            if remove_if_corrupt:
                archive.unlink(missing_ok=True)
            again = "it was deleted; run again to download it anew" if remove_if_corrupt else (
                f"replace it with a fresh copy of {spec.url}")
            reason = " ".join(str(e).split()) or type(e).__name__
            raise UserError(f"{archive} is not a readable .zip or .tar.gz archive ({reason}); {again}.") from None
        (partial / _DONE_MARKER).touch()
        partial.replace(target)
    root = find_root(target, spec)
    if root is None:
        raise UserError(
            f"{archive} is not the {spec.title} archive: it has no {spec.folder_name}/ folder with "
            f"{spec.contents}. Use the file from {spec.url}."
        )
    return root


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into `dest`, refusing members that would land outside it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not _inside(dest, member):
                    raise OSError(f"member {member!r} points outside the archive")
            zf.extractall(dest)
        return
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.ReadError:
        raise tarfile.ReadError("neither a zip nor a (compressed) tar file") from None
    with tf:
        tf.extractall(dest, filter="data")


def _inside(dest: Path, member: str) -> bool:
    target = os.path.normpath(os.path.join(dest, member))
    return target == str(dest) or target.startswith(str(dest) + os.sep)


class Decoded(NamedTuple):
    """A decoded image: uint8 [H, W, 3] pixels, and whether the bytes already are a 3-channel JPEG."""

    pixels: np.ndarray
    rgb_jpeg: bool


def decode_rgb(data: bytes) -> Decoded | str:
    """The image as RGB pixels, or the reason it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb_jpeg = image.format == "JPEG" and image.mode == "RGB"
            return Decoded(np.asarray(image.convert("RGB"), dtype=np.uint8), rgb_jpeg)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"unreadable image ({e})"


def image_files(folder: Path, pattern: str = "*") -> list[Path]:
    """The .jpg / .jpeg / .png files in `folder` matching `pattern`, sorted by name."""
    return sorted(p for p in folder.glob(pattern)
                  if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def builder_paths(module_file: str) -> tuple[Any, Any]:
    """(pkg_dir_path, code_path) for a builder defined in `module_file`. Installed as pix2pix_tf.tfds_builders.*,
    TFDS cannot infer them from the module name (and its inference needs the `importlib_resources` backport)."""
    from etils import epath

    return epath.Path(module_file).parent, epath.Path(module_file)
