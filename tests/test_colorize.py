"""colorize: files and folders of any size, grey or colour, broken files named and skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pix2pix_tf.colorize import main, read_image
from pix2pix_tf.config import Config
from pix2pix_tf.export import export_generator
from pix2pix_tf.models import build_generator

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = Config(image_size=32, ngf=4, dataset="folder")
    return export_generator(build_generator(config), config, tmp_path_factory.mktemp("m") / "model", step=1)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """good.jpg (colour, 93 x 141), nested/grey.png (grey, 77 x 60), broken.jpg (not an image), notes.txt."""
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(skimage.data.coffee()).resize((141, 93)).save(folder / "good.jpg", quality=90)
    Image.fromarray(skimage.data.camera()).resize((60, 77)).save(folder / "nested" / "grey.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not an image, not looked at")
    return folder


@pytest.mark.slow
def test_folder_with_good_grey_and_broken(tmp_path: Path, model: Path, inputs: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["--model", str(model), str(inputs), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["in/good.png",
                                                                                  "in/nested/grey.png"]
    good = np.asarray(Image.open(out / "in" / "good.png"))
    grey = np.asarray(Image.open(out / "in" / "nested" / "grey.png"))
    assert good.shape == (93, 141, 3) and grey.shape == (77, 60, 3) and good.dtype == np.uint8
    assert "broken.jpg: unreadable" in captured.err
    assert "colorized 2 image(s)" in captured.out and "skipped 1" in captured.out


@pytest.mark.slow
def test_single_files_and_name_clash(tmp_path: Path, model: Path, inputs: Path) -> None:
    Image.fromarray(skimage.data.chelsea()).save(tmp_path / "good.png")
    out = tmp_path / "out"
    assert main(["--model", str(model), str(inputs / "good.jpg"), str(tmp_path / "good.png"),
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["good-2.png", "good.png"]
    assert np.asarray(Image.open(out / "good-2.png")).shape == (*skimage.data.chelsea().shape[:2], 3)


@pytest.mark.slow
def test_nothing_colorized_exits_nonzero(tmp_path: Path, model: Path, inputs: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "tiny.png")
    assert main(["--model", str(model), str(inputs / "broken.jpg"), str(tmp_path / "tiny.png"),
                 str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "broken.jpg: unreadable" in err and "missing.jpg: no such file" in err
    assert "tiny.png: refused by the model" in err and "at least 8x8" in err


@pytest.mark.slow
def test_an_output_folder_that_cannot_be_made_is_one_line_not_a_traceback(
        tmp_path: Path, model: Path, inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("a file where the output folder should go")
    assert main(["--model", str(model), str(inputs / "good.jpg"), "--out", str(tmp_path / "taken" / "out")]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("pix2pix-colorize: error: [Errno 20] Not a directory: ") and "taken" in last
    assert "Traceback" not in err


def test_read_image_modes(tmp_path: Path) -> None:
    grey16 = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert read_image(tmp_path / "grey16.png").shape == (20, 30, 1)
    rgba = np.zeros((10, 12, 4), np.uint8)  # fully transparent black -> white
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    assert (read_image(tmp_path / "clear.png") == 255).all()


@pytest.mark.slow
def test_module_entry_point_bad_model(tmp_path: Path, inputs: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pix2pix_tf.colorize", "--model", str(tmp_path / "nope"),
                             str(inputs), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            cwd=REPO, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2
    assert "pix2pix-colorize: error: model folder" in result.stderr and "Traceback" not in result.stderr


def test_inference_entry_points_assume_frozen_weights_but_keep_a_users_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The processes of `pix2pix-colorize`, `pix2pix-evaluate`, `python evaluate.py` and `python -m
    pix2pix_tf.colorize` / `pix2pix_tf.evaluate` tell oneDNN the weights never change (they only run
    inference); `main` itself, which may share a process with training, does not; a user's value is kept."""
    import configparser

    from pix2pix_tf import cli, colorize, evaluate

    variable = cli.FROZEN_WEIGHTS_VARIABLE
    for module in (colorize, evaluate):
        for preset, expected in ((None, "1"), ("0", "0")):
            environ = {key: value for key, value in os.environ.items() if key != variable}
            environ.update({variable: preset} if preset is not None else {})
            monkeypatch.setattr(os, "environ", environ)
            seen: list[str | None] = []
            monkeypatch.setattr(module, "main", lambda argv=None, seen=seen: seen.append(os.environ.get(variable)) or 0)
            assert module.inference_process_main([]) == 0
            assert seen == [expected]
    scripts = configparser.ConfigParser()
    scripts.read(REPO / "setup.cfg")
    entry_points = scripts["options.entry_points"]["console_scripts"]
    assert "pix2pix_tf.colorize:inference_process_main" in entry_points
    assert "pix2pix_tf.evaluate:inference_process_main" in entry_points
    assert "inference_process_main()" in (REPO / "evaluate.py").read_text()
    for module_file in ("colorize.py", "evaluate.py"):
        assert 'if __name__ == "__main__":\n    raise SystemExit(inference_process_main())' in (
            REPO / "pix2pix_tf" / module_file).read_text()


@pytest.mark.slow
def test_every_skipped_input_is_named_and_listed_in_the_output_folder(tmp_path: Path, model: Path, inputs: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (inputs / "empty.png").write_bytes(b"")
    (inputs / "nested" / "text.jpg").write_text("a text file named .jpg")
    Image.fromarray(skimage.data.coffee()).resize((4, 4)).save(inputs / "tiny.png")  # under the 8 px minimum
    out = tmp_path / "out"
    assert main(["--model", str(model), str(inputs), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    listed = (out / "skipped_files.txt").read_text().splitlines()
    names = ["broken.jpg", "empty.png", "nested/text.jpg", "tiny.png"]
    assert len(listed) == 4 and all(any(name in line for line in listed) for name in names)
    assert all(name in captured.err for name in names)
    assert "skipped 4" in captured.out and str(out / "skipped_files.txt") in captured.out
