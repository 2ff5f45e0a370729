"""Shared tiny fixtures: real colour photos from scikit-image, small folders of them on disk, fake Berkeley
pix2pix archives (A | B side by side), a TFDS data dir of each test's own, and a local HTTP server."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools  # noqa: E402
import io  # noqa: E402
import socket  # noqa: E402
import tarfile  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

PhotoFolderFactory = Callable[..., Path]


@pytest.fixture(autouse=True)
def float32_policy_after_each_test() -> Iterator[None]:
    """A Trainer sets Keras's global dtype policy for its precision (mixed_bfloat16 on a CPU with bf16); put the
    default back, so that no test builds models under a policy an earlier one left."""
    yield
    import keras

    keras.mixed_precision.set_global_policy("float32")


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


def jpeg(pixels: np.ndarray) -> bytes:
    """uint8 RGB pixels as JPEG bytes (quality 95)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def skimage_crop(index: int, height: int = 256, width: int = 256) -> np.ndarray:
    """A distinct crop of a real skimage photo."""
    source = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()][index % 3]
    top, left = (index * 13) % (source.shape[0] - height), (index * 29) % (source.shape[1] - width)
    return np.ascontiguousarray(source[top:top + height, left:left + width])


def pair_image(index: int, height: int = 64, width: int = 64) -> np.ndarray:
    """A | B side by side: skimage_crop(index) | skimage_crop(index + 1)."""
    return np.concatenate([skimage_crop(index, height, width), skimage_crop(index + 1, height, width)], axis=1)


def write_paired_tar(path: Path, name: str, splits: dict[str, int]) -> Path:
    """A Berkeley-style <name>.tar.gz: <name>/<split>/<i>.jpg, each pair_image(i - 1), 64 x 128."""
    with tarfile.open(path, "w:gz") as archive:
        for split, count in splits.items():
            for i in range(count):
                payload = jpeg(pair_image(i))
                info = tarfile.TarInfo(f"{name}/{split}/{i + 1}.jpg")
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def tfds_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TFDS data dir of this test's own; the dataset URLs point where nothing answers."""
    directory = tmp_path / "tfds"
    monkeypatch.setenv("TFDS_DATA_DIR", str(directory))
    monkeypatch.setenv("PIX2PIX_CVCL_URL", "http://127.0.0.1:9/unused.zip")
    monkeypatch.setenv("PIX2PIX_BERKELEY_URL_BASE", "http://127.0.0.1:9/unused")
    return directory


class Server:
    """A local HTTP server for one folder that records the paths asked for."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, *args: object) -> None:
                outer.requests.append(self.path)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    with Server(root) as server:
        yield server


@pytest.fixture
def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
