"""A full disk in the middle of a checkpoint or an export keeps the last good one; random kills are survived."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf import train

REPO = Path(__file__).resolve().parents[1]


def flags(tmp_path: Path, steps: int) -> list[str]:
    return ["--dataset", "sample", "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "model"),
            "--image-size", "32", "--ngf", "4", "--ndf", "4", "--steps", str(steps), "--checkpoint-every", "2",
            "--progress-samples", "0", "--chroma-scale", "1"]


def exported_step(model_dir: Path) -> int:
    """The step of the export in `model_dir`, after checking that it still colours a grey picture."""
    model = tf.saved_model.load(str(model_dir))
    out = model.signatures["serving_default"](images=tf.zeros([1, 24, 24, 1], tf.uint8))["output_0"]
    assert out.shape == (1, 24, 24, 3) and out.dtype == tf.uint8
    return json.loads(model.metadata().numpy())["step"]


@pytest.mark.slow
def test_a_disk_that_fills_during_a_checkpoint_write_keeps_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    save = tf.train.CheckpointManager.save
    saves = []

    def fill_the_disk_halfway(self: tf.train.CheckpointManager, *args: object, **kwargs: object) -> str:
        saves.append(kwargs.get("checkpoint_number"))
        if len(saves) == 2:  # the second checkpoint: half written, then the disk is full
            partial = Path(self.directory) / f"ckpt-{saves[-1]}_temp" / "part-00000-of-00001"
            partial.parent.mkdir(parents=True)
            partial.write_bytes(b"\0" * 1000)
            raise tf.errors.ResourceExhaustedError(None, None, f"{partial}; No space left on device")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", fill_the_disk_halfway)
    assert train.main(flags(tmp_path, 6)) == 1
    error = capsys.readouterr().err
    assert "No space left on device" in error and "Traceback" not in error
    assert tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")).endswith("ckpt-2")
    assert not (tmp_path / "model").exists()

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)
    assert train.main(flags(tmp_path, 6)) == 0
    assert "resuming at step 2" in capsys.readouterr().out
    assert exported_step(tmp_path / "model") == 6


@pytest.mark.slow
def test_a_disk_that_fills_during_an_export_keeps_the_previous_export(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(flags(tmp_path, 2)) == 0
    assert exported_step(tmp_path / "model") == 2
    save = tf.saved_model.save

    def fill_the_disk_halfway(obj: object, export_dir: str, *args: object, **kwargs: object) -> None:
        Path(export_dir, "variables").mkdir(parents=True)
        Path(export_dir, "saved_model.pb").write_bytes(b"\x08\x01")  # the start of a file, then no more room
        raise OSError(errno.ENOSPC, "No space left on device", export_dir)

    monkeypatch.setattr(tf.saved_model, "save", fill_the_disk_halfway)
    capsys.readouterr()
    assert train.main(flags(tmp_path, 4)) == 1
    error = capsys.readouterr().err
    assert "No space left on device" in error and "Traceback" not in error
    assert exported_step(tmp_path / "model") == 2  # the previous export, whole

    monkeypatch.setattr(tf.saved_model, "save", save)
    assert train.main(flags(tmp_path, 4)) == 0
    assert exported_step(tmp_path / "model") == 4
    assert not (tmp_path / "model.partial").exists()


@pytest.mark.slow
def test_a_checkpoint_written_before_the_random_states_were_tracked_still_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pix2pix_tf.training import Trainer

    checkpointed = Trainer.checkpointed
    monkeypatch.setattr(Trainer, "checkpointed",
                        lambda self: {k: v for k, v in checkpointed(self).items() if k != "random_states"})
    assert train.main(flags(tmp_path, 2)) == 0
    held = {name.split("/")[0] for name, _ in tf.train.list_variables(str(tmp_path / "run" / "checkpoints"))}
    assert "generator" in held and "random_states" not in held
    monkeypatch.setattr(Trainer, "checkpointed", checkpointed)
    capsys.readouterr()
    assert train.main(flags(tmp_path, 4)) == 0
    assert "resuming at step 2" in capsys.readouterr().out
    assert exported_step(tmp_path / "model") == 4


@pytest.mark.slow
def test_three_random_kills_are_survived(tmp_path: Path) -> None:
    """The fault bench, short: killed during a checkpoint write, the progress GIF and the export."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import faults
    finally:
        sys.path.remove(str(REPO / "bench"))
    out = tmp_path / "faults.json"
    assert faults.main(["--kills", "3", "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [k["aim"] for k in result["kills"]] == ["checkpoint", "gif", "export"]
    assert result["ok"] and result["resumed"] == result["killed"] == 3
    assert result["final_step"] == result["planned_step"] and result["losses_not_as_unkilled"] == 0
    assert result["losses_as_unkilled"] > 0 and np.isfinite(result["scalar_gap"])
