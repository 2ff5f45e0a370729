"""A run's checkpoints and config.json: what a re-run of the same command resumes from.

A checkpoint holds G, D (and the averaged G under --g-ema), both optimisers, the global step and the run's
Config. Variables are saved by name, not by device, so a checkpoint restores under any strategy and replica
count. Only the chief writes into the run dir; every worker takes part in a save (a multi-worker save may run
collective ops), the others into a scratch dir that is deleted at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf

from pix2pix_tf import runtime
from pix2pix_tf.config import Config, removed_options
from pix2pix_tf.errors import UserError

MAX_TO_KEEP = 3
# Fields that change the networks' variables: a checkpoint made with other values cannot be resumed.
MODEL_FIELDS = ("color_space", "generator", "ngf", "ndf", "d_layers", "d_norm", "image_size", "dataset")


class RunCheckpoints:
    """The checkpoints of one run: `objects` (tracked under their names) and `step`, with the run's Config."""

    def __init__(self, objects: dict[str, Any], step: tf.Variable, config: Config,
                 strategy: tf.distribute.Strategy) -> None:
        self.config, self.step, self.strategy = config, step, strategy
        self.run_dir = config.resolved_run_dir()
        self.directory = self.run_dir / "checkpoints"
        self.is_chief = runtime.is_chief(strategy)
        # The run's Config travels inside every checkpoint too, so a checkpoint alone says how it was made.
        self.config_record = tf.Variable(config.to_json(), trainable=False, name="config")
        self.objects = objects
        self.checkpoint = tf.train.Checkpoint(**objects, step=step, config=self.config_record)
        self.saved_step: int | None = None
        self._manager: tf.train.CheckpointManager | None = None

    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(str(self.directory))

    def start(self, fresh: bool) -> int:
        """Restore the latest checkpoint unless `fresh`, which deletes the old ones; then write config.json.
        Returns the step to start from."""
        if self.is_chief:  # a checkpoint write that was killed leaves its temporary folder behind
            for partial in self.directory.glob("*_temp*"):
                shutil.rmtree(partial, ignore_errors=True)
        if not fresh:
            self.restore()
        elif self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.record(self.config)
        return int(self.step.numpy())

    def restore(self) -> int:
        """Restore the latest checkpoint of the chief's dir (every worker reads it, so a restarted cluster goes
        on from the same step), refusing one of other networks; returns the step (0 when there is none)."""
        latest = self.latest()
        if latest:
            check_saved_config(self.config, latest)
            # What the checkpoint holds: one written before a part was tracked (the random states) restores
            # all the rest, and that part starts afresh.
            held = {name.split("/")[0] for name, _ in tf.train.list_variables(latest)}
            parts = {name: part for name, part in self.objects.items() if name in held}
            reader = tf.train.Checkpoint(**parts, step=self.step, config=self.config_record)
            reader.restore(latest).assert_existing_objects_matched()
            self.saved_step = int(self.step.numpy())
        return int(self.step.numpy())

    def record(self, config: Config) -> None:
        """From now on the checkpoints and config.json hold `config`."""
        self.config = config
        self.config_record.assign(config.to_json())
        if self.is_chief:
            save_config(config, self.run_dir)

    def save(self) -> None:
        """Save at the current step; every worker must call this, and only the chief's copy stays."""
        manager = self._checkpoint_manager()
        manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.is_chief:
            shutil.rmtree(manager.directory, ignore_errors=True)
        self.saved_step = int(self.step.numpy())

    def save_unless_saved(self) -> None:
        if self.saved_step != int(self.step.numpy()):
            self.save()

    def _checkpoint_manager(self) -> tf.train.CheckpointManager:
        """The chief's manager writes the run's checkpoints; other workers' write to a local scratch dir."""
        if self._manager is None:
            directory = self.directory
            if not self.is_chief:
                resolver = self.strategy.cluster_resolver
                directory = Path(tempfile.gettempdir()) / (
                    f"pix2pix-{resolver.task_type}{resolver.task_id}-{os.getpid()}-checkpoints")
            self._manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=MAX_TO_KEEP,
                                                       step_counter=self.step)
        return self._manager


def save_config(config: Config, run_dir: Path) -> None:
    """Write run_dir/config.json atomically (a reader never sees half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / "config.json.partial"
    config.save(partial)
    os.replace(partial, run_dir / "config.json")


def saved_values(checkpoint_path: str) -> dict[str, Any]:
    """The config stored inside a checkpoint, as the JSON object it was saved as."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    return json.loads(reader.get_tensor("config/.ATTRIBUTES/VARIABLE_VALUE"))


def saved_config(checkpoint_path: str) -> Config:
    """The Config stored inside a checkpoint."""
    return Config.from_dict(saved_values(checkpoint_path))


def check_saved_config(config: Config, checkpoint_path: str) -> None:
    """Refuse to resume a checkpoint whose networks were built differently, or trained with an option that this
    version no longer has."""
    values = saved_values(checkpoint_path)
    removed = removed_options(values)
    if removed:
        options = ", ".join(f"{name}={value!r}" for name, value in removed.items())
        raise UserError(f"{checkpoint_path} was trained with {options}, which this version no longer has; "
                        "an older version of pix2pix-tf resumes it. Use another --run-dir, or --fresh to start "
                        "that run over.")
    saved = Config.from_dict(values)
    changed = [f"{name}: {getattr(saved, name)!r} -> {getattr(config, name)!r}" for name in MODEL_FIELDS
               if getattr(saved, name) != getattr(config, name)]
    if (saved.g_ema > 0) != (config.g_ema > 0):
        changed.append(f"g_ema: {saved.g_ema!r} -> {config.g_ema!r}, which keeps an averaged generator or not; "
                       f"--g-ema {saved.g_ema:g} resumes it")
    if changed:
        raise UserError(f"{checkpoint_path} was trained with different networks ({'; '.join(changed)}). "
                        "Use another --run-dir, or --fresh to start that run over.")
