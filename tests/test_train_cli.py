"""train.py end to end in subprocesses (the README's first run, resuming after SIGKILL) and in this process: a
full disk, the export after a time budget, the advice after a grey calibration, which errors are one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from pix2pix_tf.config import Config

pytest_plugins = ("fake_training_data",)  # the photos and fake_data fixtures

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def train_command(tmp_path: Path, *flags: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--dataset", "sample", "--run-dir", str(tmp_path / "run"),
            "--export-dir", str(tmp_path / "model"), *flags]


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_one_epoch_on_the_sample_set_writes_everything(tmp_path: Path) -> None:
    result = run(train_command(tmp_path, "--image-size", "64", "--epochs", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert (run_dir / "config.json").exists()
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    tags = {value.tag for events in (run_dir / "logs").glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(events)) for value in event.summary.value}
    assert {"generator/g_gan", "generator/g_l1", "generator/g_total", "discriminator/d_real",
            "discriminator/d_fake", "learning_rate/g", "learning_rate/d", "speed/images_per_second",
            "input_output_target", "config"} <= tags
    assert (run_dir / "progress.gif").stat().st_size > 0
    assert len(list((run_dir / "progress").glob("epoch_*.png"))) == 1
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    assert "serving_default" in loaded.signatures
    assert re.search(r"epoch 1/1 step \d+: g_gan", result.stdout)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_and_ends_at_the_same_step(tmp_path: Path) -> None:
    total = 40
    command = train_command(tmp_path, "--image-size", "64", "--ngf", "8", "--ndf", "8", "--steps", str(total),
                            "--checkpoint-every", "2", "--progress-samples", "0")
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + 240
    try:
        while tf.train.latest_checkpoint(str(checkpoints)) is None:
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "model").exists()

    resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start = int(re.search(r"resuming at step (\d+)", resumed.stdout).group(1))
    assert 0 < start < total
    assert f"done at step {total}" in resumed.stdout
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    grey = tf.zeros([1, 40, 52, 1], tf.uint8)
    assert loaded.signatures["serving_default"](grey)


@pytest.mark.slow
def test_a_full_disk_stops_with_a_message_and_the_run_resumes_from_the_kept_checkpoint(
        tmp_path: Path, monkeypatch, capsys) -> None:
    from pix2pix_tf import train
    from pix2pix_tf.checkpoints import RunCheckpoints

    flags = ["--dataset", "sample", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "model"),
             "--image-size", "64", "--ngf", "8", "--ndf", "8", "--steps", "6", "--checkpoint-every", "2",
             "--progress-samples", "0"]
    save = RunCheckpoints.save
    saves = []

    def save_until_the_disk_fills(self: RunCheckpoints) -> None:
        saves.append(int(self.step.numpy()))
        if len(saves) > 1:
            raise tf.errors.ResourceExhaustedError(
                None, None, "{{function_node __wrapped__SaveV2_dtypes_9}} run/checkpoints/ckpt-4_temp/part-0; "
                            "No space left on device [Op:SaveV2]")
        save(self)

    monkeypatch.setattr(RunCheckpoints, "save", save_until_the_disk_fills)
    assert train.main(flags) == 1
    error = capsys.readouterr().err
    assert "train.py: error: run/checkpoints/ckpt-4_temp/part-0; No space left on device [Op:SaveV2]." in error
    assert "re-run the same command to resume" in error and "Traceback" not in error and "{{" not in error
    assert saves == [2, 4] and not (tmp_path / "model").exists()

    monkeypatch.setattr(RunCheckpoints, "save", save)
    assert train.main(flags) == 0
    out = capsys.readouterr().out
    assert "resuming at step 2" in out and "done at step 6" in out


# --- in this process, on a stand-in dataset -------------------------------------------------------------------


def tiny(**changes: object) -> Config:
    base = Config(image_size=64, ngf=8, ndf=8, batch_size=4, g_dropout=0.0, progress_samples=0, run_dir="unused")
    return base.replace(**changes)


@pytest.fixture
def exports(monkeypatch) -> list[tuple[float | None, int]]:
    """(chroma_scale, step) of every export, which writes nothing."""
    made: list[tuple[float | None, int]] = []
    monkeypatch.setattr("pix2pix_tf.export.export_generator", lambda generator, config, export_dir, step:
                        made.append((config.chroma_scale, step)) or Path(export_dir))
    return made


@pytest.mark.slow
def test_a_run_stopped_by_its_time_budget_is_exported(fake_data, exports, tmp_path: Path) -> None:
    from pix2pix_tf.train import train_and_export

    config = tiny(run_dir=str(tmp_path / "run"), epochs=50, epochs_decay=0, time_budget=1e-6, chroma_scale=1.0,
                  export_dir=str(tmp_path / "model"))
    lines: list[str] = []
    summary = train_and_export(config, log=lines.append)
    assert summary.stopped_early == "time budget of 1e-06 min spent" and summary.step == 1
    assert exports == [(1.0, 1)] and summary.export_dir == tmp_path / "model"
    assert lines[-1] == f"exported the generator to {tmp_path / 'model'}"


@pytest.mark.slow
def test_a_grey_calibration_says_so_and_a_given_chroma_scale_exports_the_colours(fake_data, exports, monkeypatch,
                                                                                  tmp_path: Path) -> None:
    from pix2pix_tf.calibration import Calibration
    from pix2pix_tf.train import main, train_and_export

    monkeypatch.setattr("pix2pix_tf.calibration.calibrate", lambda generator, config: Calibration(
        scale=0.0, colorfulness={"0.0": 0.0, "1.0": 30.0}, ciede2000={"0.0": 10.0, "1.0": 12.0},
        target_colorfulness=2.0, split="val", n_photos=1, n_target_photos=1))
    config = tiny(color_space="lab", run_dir=str(tmp_path / "run"), epochs=1, epochs_decay=1, steps=2)
    lines: list[str] = []
    train_and_export(config, log=lines.append)
    assert any(line.startswith("chroma scale 0: ") for line in lines)
    assert any("the export returns photos grey" in line for line in lines)
    assert (tmp_path / "run" / "calibration.json").exists()
    assert main(["--config", str(tmp_path / "run" / "config.json"), "--chroma-scale", "1"]) == 0
    assert exports == [(0.0, 2), (1.0, 2)]  # the same weights, exported again with the network's colours


def test_only_a_refused_config_is_a_one_line_error(monkeypatch, capsys, tmp_path: Path) -> None:
    from pix2pix_tf import training
    from pix2pix_tf.train import main

    assert main(["--image-size", "100", "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("train.py: error: image_size") and error.endswith("got 100\n") and error.count("\n") == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main(["--config", str(broken)]) == 2
    assert capsys.readouterr().err.startswith(f"train.py: error: {broken} is not valid JSON")

    def buggy_training(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug deep inside training")

    monkeypatch.setattr(training, "train", buggy_training)
    with pytest.raises(ValueError, match="a bug deep inside training"):  # a traceback, not a user error
        main(["--run-dir", str(tmp_path / "run")])
