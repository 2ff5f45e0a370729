"""Random kills, measured: one small training run killed with SIGKILL at N moments, each time followed by the
same command, checked against the same run left alone.

    python bench/faults.py [--kills 10] [--seed 0] [--work DIR]

Each kill is aimed at a moment of the run: ``random`` (a random delay after the start), ``checkpoint`` (while a
checkpoint is being written: its ``*_temp`` folder exists), ``frame`` (as a progress frame appears), ``gif`` (as
progress.gif is written), ``calibration`` (after the last epoch's line, while the chroma factor is chosen) and
``export`` (while the SavedModel's ``.partial`` folder exists). After the last kill the command runs to its
end, and the run is checked:

* it ended at the planned step, and its export loads with `tf.saved_model.load` and colours a grey picture;
* every resume started from the newest checkpoint on disk at the moment of the kill;
* the TensorBoard scalars and the progress frames have no gap longer than one checkpoint interval;
* every step logged by both runs has the same losses as the unkilled run (data order, augmentation and every
  weight restored exactly, under TensorFlow's deterministic ops).

It prints one line per kill and a total such as "10/10 resumed", and writes the result as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# A run of one to two minutes on two cores: the sample photos at 32 px, 8 epochs of 22 steps, checkpoints every 10.
RUN_FLAGS = ["--dataset", "sample", "--image-size", "32", "--ngf", "4", "--ndf", "4", "--batch-size", "4",
             "--epochs", "4", "--epochs-decay", "4", "--checkpoint-every", "10", "--image-every", "10",
             "--progress-samples", "2"]
CHECKPOINT_EVERY = 10
LOSS_TAGS = ("generator/g_l1", "generator/g_gan", "discriminator/d_real", "discriminator/d_fake")


@dataclass
class Kill:
    """One kill: what it aimed at, when it struck, and what the next run of the command did."""

    aim: str
    seconds: float = 0.0
    killed: bool = False  # False: the run ended by itself before the aimed moment came
    checkpoint_step: int = 0  # the newest checkpoint on disk just after the kill
    resumed_at: int | None = None  # the step the next run said it resumed at
    notes: list[str] = field(default_factory=list)

    @property
    def resumed(self) -> bool:
        return self.killed and self.resumed_at == self.checkpoint_step


def aims(kills: int) -> list[str]:
    """The aim of each kill: checkpoint, random and frame in turn, then the run's end, which comes last in every
    run: gif, calibration and export from 6 kills up, else gif and export."""
    end = ["gif", "calibration", "export"] if kills >= 6 else ["gif", "export"][-kills:]
    middle = ["checkpoint", "random", "frame"]
    return [middle[i % len(middle)] for i in range(kills - len(end))] + end


def command(run_dir: Path, export_dir: Path) -> list[str]:
    return [sys.executable, str(REPO / "train.py"), *RUN_FLAGS, "--run-dir", str(run_dir),
            "--export-dir", str(export_dir)]


def environment() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_DETERMINISTIC_OPS": "1", "PYTHONUNBUFFERED": "1"}


class Watched:
    """One run of the command, its output collected by a thread, killed when `aim` comes."""

    def __init__(self, run_dir: Path, export_dir: Path, log: Path) -> None:
        self.run_dir, self.export_dir = run_dir, export_dir
        self.lines: list[str] = []
        self.started = time.monotonic()
        self.training_started: float | None = None  # when the run printed its start line (imports and data done)
        self.training_ended: float | None = None  # when it printed its last epoch's line
        self._log = open(log, "a")
        self.process = subprocess.Popen(command(run_dir, export_dir), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=environment(), cwd=REPO)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._log.write(line)
            if line.startswith("pix2pix: ") and self.training_started is None:
                self.training_started = time.monotonic()
            if re.match(r"epoch (\d+)/\1 ", line):
                self.training_ended = time.monotonic()

    def aimed_moment(self, aim: str, before: set[str]) -> bool:
        """True when the moment `aim` stands for has come (`before`: the files there were at the start)."""
        if aim == "checkpoint":
            return any("_temp" in p.name and p.name not in before for p in (self.run_dir / "checkpoints").glob("*"))
        if aim == "frame":
            return bool({p.name for p in (self.run_dir / "progress").glob("epoch_*.png")} - before)
        if aim == "gif":
            return (self.run_dir / "progress.gif").exists()
        if aim == "calibration":  # after the last epoch, or at the start of a run resumed at its last step
            resumed = resumed_step(self.lines)
            return self.training_ended is not None or (resumed is not None and resumed == planned_steps(self.lines))
        if aim == "export":
            return self.export_dir.with_name(self.export_dir.name + ".partial").exists()
        raise ValueError(aim)

    def run_until(self, aim: str, delay: float) -> tuple[bool, float]:
        """Kill the run at the aimed moment ("random": `delay` s after its training started); (killed, seconds
        it ran)."""
        started = self.started
        before = {p.name for p in [*(self.run_dir / "progress").glob("epoch_*.png"),
                                   *(self.run_dir / "checkpoints").glob("*")]}
        if aim == "gif":
            (self.run_dir / "progress.gif").unlink(missing_ok=True)  # the GIF of an earlier run is not the moment
        while self.process.poll() is None:
            now = time.monotonic() - started
            training = self.training_started is not None and time.monotonic() - self.training_started
            if (aim == "random" and training and training >= delay) or (
                    aim != "random" and self.aimed_moment(aim, before)):
                self.process.send_signal(signal.SIGKILL)
                self.process.wait()
                self.finish()
                return True, now
            time.sleep(0.002)
        self.finish()
        return False, time.monotonic() - started

    def finish(self) -> int:
        code = self.process.wait()
        self._reader.join()
        self._log.close()
        return code


def newest_checkpoint(run_dir: Path) -> int:
    state = run_dir / "checkpoints" / "checkpoint"
    if not state.exists():
        return 0
    found = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
    return int(found.group(1)) if found else 0


def resumed_step(lines: list[str]) -> int | None:
    """The step a run said it starts from (0: from scratch), None before it said it."""
    for line in lines:
        if line.startswith("pix2pix: "):
            found = re.search(r"resuming at step (\d+)", line)
            return int(found.group(1)) if found else 0
    return None


def planned_steps(lines: list[str]) -> int | None:
    """The step count a run said it trains to."""
    for line in lines:
        found = re.match(r"pix2pix: .*?(\d+) steps in all", line)
        if found:
            return int(found.group(1))
    return None


def scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every TensorBoard scalar in `log_dir` (the last value written for a step wins)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    values: dict[str, dict[int, float]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        try:
            records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
        except tf.errors.DataLossError:  # a file cut short by a kill: keep what was read before
            records = []
        for record in records:
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def largest_gap(steps: list[int], last: int) -> int:
    """The longest run of consecutive steps in 1..last missing from `steps`."""
    marks = [0, *sorted(set(steps)), last + 1]
    return max(b - a - 1 for a, b in zip(marks, marks[1:], strict=False))


def check_export(export_dir: Path) -> tuple[int, str]:
    """(the export's step, "" when it colours a grey picture, else what went wrong)."""
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(str(export_dir))
    step = json.loads(model.metadata().numpy())["step"]
    grey = np.tile(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (40, 1, 1))[None]
    out = model.signatures["serving_default"](images=tf.constant(grey))["output_0"].numpy()
    return step, "" if out.shape == (1, 40, 40, 3) and out.dtype == np.uint8 else f"output {out.shape} {out.dtype}"


def check_run(run_dir: Path, export_dir: Path, reference: dict[str, Any], kills: list[Kill]) -> dict[str, Any]:
    """The checks of the module docstring, on the killed run against the unkilled one."""
    import imageio.v2 as imageio

    step, serving = check_export(export_dir)
    logged = scalars(run_dir / "logs")
    steps = sorted(logged.get(LOSS_TAGS[0], {}))
    frames = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "progress").glob("epoch_*.png"))
    unreadable = []
    for path in sorted((run_dir / "progress").glob("epoch_*.png")) + [run_dir / "progress.gif"]:
        try:
            imageio.imread(path)
        except Exception as error:  # a truncated or missing picture, of any kind
            unreadable.append(f"{path.name}: {type(error).__name__}")
    same = differ = 0
    for tag in LOSS_TAGS:
        for s, value in logged.get(tag, {}).items():
            expected = reference["scalars"].get(tag, {}).get(s)
            if expected is not None:
                if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
                    same += 1
                else:
                    differ += 1
    epochs = reference["epochs"]
    return {
        "planned_step": reference["step"], "final_step": step, "export_serves": serving or "yes",
        "resumed": sum(k.resumed for k in kills), "killed": sum(k.killed for k in kills),
        "scalar_gap": largest_gap(steps, reference["step"]),
        "missing_frames": sorted(set(range(1, epochs + 1)) - set(frames)),
        "frame_gap_epochs": largest_gap(frames, epochs), "unreadable_pictures": unreadable,
        "losses_as_unkilled": same, "losses_not_as_unkilled": differ,
    }


def reference_run(work: Path) -> dict[str, Any]:
    """The same command, never killed: its step count, epochs, training time and scalars."""
    run_dir, export_dir = work / "reference" / "run", work / "reference" / "model"
    run_dir.mkdir(parents=True, exist_ok=True)
    watched = Watched(run_dir, export_dir, work / "reference.log")
    if watched.finish():
        raise SystemExit(f"the unkilled run failed:\n{''.join(watched.lines[-40:])}")
    step, _ = check_export(export_dir)
    epochs = len(list((run_dir / "progress").glob("epoch_*.png")))
    training = (watched.training_ended or 0.0) - (watched.training_started or 0.0)
    return {"step": step, "epochs": epochs, "seconds": time.monotonic() - watched.started,
            "training_seconds": training, "scalars": scalars(run_dir / "logs")}


def killed_run(work: Path, kills: int, seed: int, reference: dict[str, Any]) -> tuple[list[Kill], int]:
    """Run the command, killing it at each aim in turn, then once more to its end; (kills, final exit code)."""
    rng = random.Random(seed)
    run_dir, export_dir, log = work / "killed" / "run", work / "killed" / "model", work / "killed.log"
    run_dir.mkdir(parents=True, exist_ok=True)
    done: list[Kill] = []
    waiting: list[Kill] = []  # kills whose resume no run has reported yet (the next one was killed before)

    def resumes(watched: Watched) -> None:
        if (resumed := resumed_step(watched.lines)) is not None:
            for kill in waiting:
                kill.resumed_at = resumed
            waiting.clear()

    for aim in aims(kills):
        kill = Kill(aim=aim)
        watched = Watched(run_dir, export_dir, log)
        left = 1 - newest_checkpoint(run_dir) / reference["step"]  # of the training, from where it resumes
        delay = rng.uniform(0.05, 0.95) * left * reference["training_seconds"]
        kill.killed, kill.seconds = watched.run_until(aim, delay)
        resumes(watched)
        kill.checkpoint_step = newest_checkpoint(run_dir)
        if kill.killed:
            waiting.append(kill)
        else:
            kill.notes.append("the run ended before the aimed moment")
        done.append(kill)
        print(describe(len(done), kills, kill), flush=True)
    final = Watched(run_dir, export_dir, log)
    code = final.finish()
    resumes(final)
    return done, code


def describe(number: int, total: int, kill: Kill) -> str:
    what = f"killed after {kill.seconds:.1f} s" if kill.killed else "not killed (the run had ended)"
    return f"kill {number}/{total} aimed at {kill.aim}: {what}, newest checkpoint at step {kill.checkpoint_step}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds the random delays")
    parser.add_argument("--work", type=Path, help="folder for the two runs (default: a temporary one, removed)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="pix2pix-faults-"))
    try:
        reference = reference_run(work)
        print(f"unkilled run: {reference['step']} steps, {reference['epochs']} epochs, {reference['seconds']:.0f} s "
              f"({reference['training_seconds']:.0f} s of them training)", flush=True)
        kills, code = killed_run(work, args.kills, args.seed, reference)
        for number, kill in enumerate(kills, 1):
            if kill.killed:
                print(f"kill {number}: the next run resumed at step {kill.resumed_at} "
                      f"({'as it should' if kill.resumed else 'NOT from the newest checkpoint'})")
        result = {"exit_code": code, **check_run(work / "killed" / "run", work / "killed" / "model", reference, kills)}
        ok = (code == 0 and result["final_step"] == result["planned_step"] and result["export_serves"] == "yes"
              and result["resumed"] == len(kills) and result["scalar_gap"] <= CHECKPOINT_EVERY
              and result["frame_gap_epochs"] <= 1 and not result["unreadable_pictures"]
              and result["losses_not_as_unkilled"] == 0)
        print(json.dumps(result, indent=2))
        print(f"{result['resumed']}/{len(kills)} resumed; {'all checks passed' if ok else 'CHECKS FAILED'}")
        if args.out:
            args.out.write_text(json.dumps({"kills": [asdict(k) for k in kills], **result, "ok": ok}, indent=2))
        return 0 if ok else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
