"""What a run shows while it trains: a Keras progress bar and a line per epoch on the console; TensorBoard
scalars, INPUT | OUTPUT | TARGET grids and the Config in run_dir/logs; a frame per epoch of fixed samples in
run_dir/progress/epoch_NNNN.png and, at the end, run_dir/progress.gif of them all. Only the chief writes files.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable

import imageio.v2 as imageio
import keras
import numpy as np
import tensorflow as tf

from pix2pix_tf import data, sources
from pix2pix_tf.color import input_to_rgb, output_to_rgb
from pix2pix_tf.config import Config
from pix2pix_tf.train_step import LOSS_NAMES
from pix2pix_tf.visualize import grid, save_gif, save_png


def format_values(values: dict[str, float]) -> str:
    """"name value, ..." with four decimals."""
    return ", ".join(f"{k} {v:.4f}" for k, v in values.items())


def pair_space(config: Config) -> str:
    """How to turn network tensors into pictures: paired sets are RGB both ways."""
    return "rgb" if sources.is_paired(config) else config.color_space


def comparison_rows(generator: keras.Model, inputs: np.ndarray, targets: np.ndarray,
                    space: str) -> list[list[np.ndarray]]:
    """INPUT | OUTPUT | TARGET rows as pictures in [0, 1], the output made in inference mode."""
    shown_inputs = input_to_rgb(inputs, space).numpy()
    shown_targets = output_to_rgb(inputs, targets, space).numpy()
    outputs = output_to_rgb(inputs, generator(inputs, training=False), space).numpy()
    return [[i, o, t] for i, o, t in zip(shown_inputs, outputs, shown_targets, strict=True)]


class Monitor:
    """The console, TensorBoard and progress pictures of one run, fed after every step and epoch."""

    def __init__(self, config: Config, generator: keras.Model, steps_per_epoch: int, is_chief: bool, fresh: bool,
                 log: Callable[[str], None]) -> None:
        self.config, self.generator, self.steps_per_epoch, self.log = config, generator, steps_per_epoch, log
        self.run_dir = config.resolved_run_dir()
        if fresh and is_chief:
            shutil.rmtree(self.run_dir / "progress", ignore_errors=True)
        self.writer = (tf.summary.create_file_writer(str(self.run_dir / "logs")) if is_chief
                       else tf.summary.create_noop_writer())
        self.samples = (data.fixed_examples(config, config.progress_samples)
                        if config.progress_samples and is_chief else None)
        self.images_per_second = 0.0
        self._epoch_first_step = self._epoch_images = 0
        self._epoch_started = self._step_started = time.monotonic()
        self._progress: keras.utils.Progbar | None = None

    def start(self, config: Config, step: int) -> None:
        """The run's Config as TensorBoard text at its first step."""
        with self.writer.as_default():
            tf.summary.text("config", "```\n" + config.to_json() + "\n```", step=step)

    def start_epoch(self, first_step: int, steps: int, skip: int) -> None:
        """An epoch of `steps` steps from global step `first_step`, `skip` of them trained before."""
        self._epoch_first_step, self._epoch_images = first_step, 0
        self._progress = keras.utils.Progbar(steps, stateful_metrics=["img/s", *LOSS_NAMES], unit_name="step")
        self._progress.update(skip)
        self._epoch_started = time.monotonic()

    def start_step(self) -> None:
        self._step_started = time.monotonic()

    def end_step(self, step: int, losses: dict[str, float], lr_factor: float) -> None:
        """Global step `step` has trained with `losses`: the progress bar, the scalars, every --image-every steps
        a grid of the samples."""
        self.images_per_second = self.config.batch_size / max(time.monotonic() - self._step_started, 1e-9)
        self._epoch_images += self.config.batch_size
        self._progress.update(step - self._epoch_first_step,
                              values=[("img/s", self.images_per_second), *losses.items()])
        with self.writer.as_default(step=step):
            for name, value in losses.items():
                group = "generator" if name.startswith("g_") else "discriminator"
                tf.summary.scalar(f"{group}/{name}", value)
            tf.summary.scalar("learning_rate/g", self.config.lr_g * lr_factor)
            tf.summary.scalar("learning_rate/d", self.config.lr_d * lr_factor)
            tf.summary.scalar("speed/images_per_second", self.images_per_second)
            if self.samples is not None and step % self.config.image_every == 0:
                tf.summary.image("input_output_target", self._picture()[None], step=step)

    def end_epoch(self, epoch: int, step: int, total_steps: int, losses: dict[str, float], lr_factor: float,
                  stopped_early: str | None) -> None:
        """The epoch's line; its frame when the epoch is complete; the GIF when the run ends here."""
        finishing = step >= total_steps or stopped_early is not None
        if self.samples is not None:
            if step % self.steps_per_epoch == 0:
                save_png(self._picture(), self.run_dir / "progress" / f"epoch_{epoch + 1:04d}.png")
            if finishing:  # from every frame so far, so its cost grows with the run: once, at the end
                self._write_gif()
        seconds = max(time.monotonic() - self._epoch_started, 1e-9)
        epochs = math.ceil(total_steps / self.steps_per_epoch)
        self.log(f"epoch {epoch + 1}/{epochs} step {step}: {format_values(losses)}, "
                 f"{self._epoch_images / seconds:.2f} img/s, lr x{lr_factor:.3f}"
                 + (f" ({stopped_early})" if stopped_early else ""))

    def close(self, finished: bool) -> None:
        """Flush TensorBoard; for a finished run, (re)write a GIF that lacks frames (one killed as the GIF was
        written, then resumed at its last step, trains no epoch that would write it)."""
        self.writer.flush()
        frames = sorted((self.run_dir / "progress").glob("epoch_*.png"))
        gif = self.run_dir / "progress.gif"
        if finished and self.samples is not None and frames and (
                not gif.exists() or gif.stat().st_mtime < max(f.stat().st_mtime for f in frames)):
            self._write_gif()

    def _picture(self) -> np.ndarray:
        """One INPUT | OUTPUT | TARGET grid of the fixed samples."""
        return grid(comparison_rows(self.generator, *self.samples, pair_space(self.config)))

    def _write_gif(self) -> None:
        """The study's transition-with-time: progress.gif over every epoch's frame so far."""
        frames = [imageio.imread(path) for path in sorted((self.run_dir / "progress").glob("epoch_*.png"))]
        if frames:
            save_gif(frames, self.run_dir / "progress.gif")
