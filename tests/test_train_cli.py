"""train.py end to end in subprocesses: the README's first run, and resuming after SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def train_command(tmp_path: Path, *flags: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), "--dataset", "sample", "--run-dir", str(tmp_path / "run"),
            "--export-dir", str(tmp_path / "model"), *flags]


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


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


def test_a_full_disk_stops_with_a_message_and_the_run_resumes_from_the_kept_checkpoint(
        tmp_path: Path, monkeypatch, capsys) -> None:
    from pix2pix_tf import train
    from pix2pix_tf.training import Trainer

    flags = ["--dataset", "sample", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "model"),
             "--image-size", "64", "--ngf", "8", "--ndf", "8", "--steps", "6", "--checkpoint-every", "2",
             "--progress-samples", "0"]
    save = Trainer.save_checkpoint
    saves = []

    def save_until_the_disk_fills(self: Trainer) -> None:
        saves.append(int(self.step.numpy()))
        if len(saves) > 1:
            raise tf.errors.ResourceExhaustedError(
                None, None, "{{function_node __wrapped__SaveV2_dtypes_9}} run/checkpoints/ckpt-4_temp/part-0; "
                            "No space left on device [Op:SaveV2]")
        save(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", save_until_the_disk_fills)
    assert train.main(flags) == 1
    error = capsys.readouterr().err
    assert "train.py: error: run/checkpoints/ckpt-4_temp/part-0; No space left on device [Op:SaveV2]." in error
    assert "re-run the same command to resume" in error and "Traceback" not in error and "{{" not in error
    assert saves == [2, 4] and not (tmp_path / "model").exists()

    monkeypatch.setattr(Trainer, "save_checkpoint", save)
    assert train.main(flags) == 0
    out = capsys.readouterr().out
    assert "resuming at step 2" in out and "done at step 6" in out
