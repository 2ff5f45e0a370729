"""Training pix2pix: `train` is the paper's loop over epochs of batches, `Trainer` what it trains.

Each step updates D and G on one batch (`train_step.TrainStep`) under a tf.distribute strategy. A run is
resumable: its checkpoints hold G, D, both optimisers and the global step (`checkpoints`), and the data pipeline
is a pure function of (seed, epoch), so a resumed run skips to the exact batch it stopped at. The learning rate
follows the paper's schedule, which --time-budget may fit to the time it has (`schedule`); the console,
TensorBoard and progress pictures are `monitoring`'s. Calibrating and exporting the trained generator is the
command line's part (`pix2pix_tf.train`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from pix2pix_tf import data, runtime, schedule
from pix2pix_tf.checkpoints import RunCheckpoints, saved_config
from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.models import build_discriminator, build_generator
from pix2pix_tf.monitoring import Monitor, format_values
from pix2pix_tf.optimizers import make_optimizer
from pix2pix_tf.train_step import TrainStep, WeightAverage


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunSummary:
    """What a finished (or stopped) run reports back: where it ended, and the generator to export (the average
    under --g-ema) with the Config it was trained to (its schedule as fitted)."""

    step: int
    epochs_done: float
    losses: dict[str, float]
    images_per_second: float
    stopped_early: str | None
    config: Config
    generator: keras.Model
    is_chief: bool  # only the chief exports
    export_dir: Path | None = None  # set by whoever exports it


class Trainer:
    """G and D, their optimisers and the training step for one Config, placed by its precision and strategy."""

    def __init__(self, config: Config) -> None:
        runtime.configure_devices(config.cpu_devices)
        self.config = config
        self.precision = runtime.apply_precision(config)
        runtime.keep_freed_memory(self.precision)
        self.strategy = runtime.make_strategy(config)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise UserError(f"--batch-size {config.batch_size} is the global batch: it must be a multiple of the "
                            f"{replicas} replicas of --strategy {config.strategy}")
        keras.utils.set_random_seed(config.seed)  # the initial weights and the dropout masks follow --seed
        with self.strategy.scope():
            self.generator = build_generator(config)
            averaged = build_generator(config) if config.g_ema else None
            self.discriminator = build_discriminator(config)
            self.g_optimizer = make_optimizer(config.lr_g, config.beta1, config.beta2, self.precision,
                                              self.generator.trainable_variables)
            self.d_optimizer = make_optimizer(config.lr_d, config.beta1, config.beta2, self.precision,
                                              self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.average = WeightAverage(averaged, self.generator, config.g_ema) if averaged is not None else None
            self._train_step = TrainStep(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                                         config, self.strategy, runtime.resolve_jit_compile(config))

    @property
    def averaged_generator(self) -> keras.Model | None:
        return self.average.averaged if self.average is not None else None

    @property
    def output_generator(self) -> keras.Model:
        """The generator that progress pictures, calibration and exports use: the average under --g-ema."""
        return self.averaged_generator or self.generator

    def checkpointed(self) -> dict[str, keras.Model | keras.optimizers.Optimizer | list[tf.Variable]]:
        """What a checkpoint tracks, under the names existing run dirs hold them by (besides step and config), and
        the state of the dropout layers' random generators, so that a resumed run draws the masks an unbroken one
        would have drawn (run dirs made before it was tracked resume too, with fresh masks)."""
        parts: dict[str, keras.Model | keras.optimizers.Optimizer | list[tf.Variable]] = {
            "generator": self.generator, "discriminator": self.discriminator,
            "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}
        if self.averaged_generator is not None:
            parts["averaged_generator"] = self.averaged_generator
        models = [part for part in parts.values() if isinstance(part, keras.Model)]
        parts["random_states"] = [variable.value for model in models for variable in model.non_trainable_variables
                                  if "seed_generator" in variable.path]
        return parts

    def set_learning_rate_factor(self, factor: float) -> None:
        self.g_optimizer.learning_rate = self.config.lr_g * factor
        self.d_optimizer.learning_rate = self.config.lr_d * factor

    def train_step(self, batch: tuple[tf.Tensor, tf.Tensor], train_d: bool = True) -> dict[str, tf.Tensor]:
        """Train on one (distributed) global batch at `self.step`, then fold G into its average when due; returns
        the global mean losses. The caller advances `self.step`."""
        losses = self._train_step(batch, self.step, train_d)
        if self.average is not None:
            self.average.after_step(int(self.step.numpy()))
        return losses


def epoch_batches(config: Config, strategy: tf.distribute.Strategy, epoch: int,
                  skip: int) -> Iterator[tuple[tf.Tensor, tf.Tensor]]:
    """The epoch's global batches from batch `skip` on, each split evenly over the replicas.

    Every worker builds the same deterministic pipeline of global batches and keeps its replicas' slices of
    each (DATA sharding: the examples live in memory, not in files to share out), so any number of replicas
    sees exactly the examples one device would, in the same steps. One replica iterates the plain dataset: the
    distributed one runs tf.data's autotuning again (`data.without_autotuning`). Building the pipeline may
    reset glibc's memory settings, so they are applied again before the first batch.
    """
    dataset = data.train_dataset(config, epoch)
    if skip:
        dataset = dataset.skip(skip)
    if strategy.num_replicas_in_sync > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))
    batches = iter(dataset)
    runtime.keep_freed_memory(runtime.resolve_precision(config.precision))
    return batches


def train(config: Config, fresh: bool = False, log: Callable[[str], None] = print,
          clock: Callable[[], float] = time.monotonic) -> RunSummary:
    """Train (or resume, unless `fresh`) the run described by `config` until its last step or until its time
    budget, timed on `clock`, is spent."""
    run = _Run(config, fresh, log, clock)
    while not run.finished:
        run.train_epoch()
    return run.summary()


class _Run:
    """One call of `train`: the Trainer, its checkpoints, budget and monitor, and how far the run has come."""

    def __init__(self, config: Config, fresh: bool, log: Callable[[str], None],
                 clock: Callable[[], float]) -> None:
        self.trainer = trainer = Trainer(config)
        self.config, self.log = config, log
        self.steps_per_epoch = data.steps_per_epoch(config)
        self.total_steps = schedule.total_steps(config, self.steps_per_epoch)
        self.checkpoints = RunCheckpoints(trainer.checkpointed(), trainer.step, config, trainer.strategy)
        self.step = start_step = self.checkpoints.start(fresh)
        fitting = schedule.fits_schedule(config, trainer.strategy)
        if start_step and fitting:
            self._use_schedule(schedule.resumed_schedule(config, saved_config(self.checkpoints.latest())))
        self.monitor = Monitor(self.config, trainer.output_generator, self.steps_per_epoch,
                               self.checkpoints.is_chief, fresh, log)
        self.monitor.start(self.config, start_step)
        self._log_start(start_step)
        self.losses: dict[str, float] = {}
        self.stopped_early: str | None = None
        self.budget = schedule.Budget(config.time_budget, trainer.strategy, clock)
        # The fitted schedule never grows past the one asked for, `config`'s.
        self.fitter = schedule.ScheduleFitter(config, self.steps_per_epoch, self.budget) if fitting else None

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps or self.stopped_early is not None

    def train_epoch(self) -> None:
        """Train from the current step to the end of its epoch, or of the run, at the epoch's learning rate."""
        epoch, skip = divmod(self.step, self.steps_per_epoch)
        first_step = epoch * self.steps_per_epoch
        factor = schedule.learning_rate_factor(epoch, self.config.epochs, self.config.epochs_decay)
        self.trainer.set_learning_rate_factor(factor)
        train_d = epoch >= self.config.g_only_epochs  # --g-only-epochs: D frozen at first
        self.monitor.start_epoch(first_step, min(self.steps_per_epoch, self.total_steps - first_step), skip)
        for batch in epoch_batches(self.trainer.config, self.trainer.strategy, epoch, skip):
            self.monitor.start_step()
            self.losses = self._finite({name: float(value)
                                        for name, value in self.trainer.train_step(batch, train_d).items()})
            self.step += 1
            self.trainer.step.assign(self.step)
            self.monitor.end_step(self.step, self.losses, factor)
            if self.step % self.config.checkpoint_every == 0:
                self.checkpoints.save()
            if self.budget.spent():
                self.stopped_early = self.budget.reason
            if self.fitter is not None:
                self.fitter.after_step(self.step)
            if self.finished:
                self.checkpoints.save_unless_saved()
                break
        self.monitor.end_epoch(epoch, self.step, self.total_steps, self.losses, factor, self.stopped_early)
        if self.fitter is not None and not self.finished:
            self._refit()

    def summary(self) -> RunSummary:
        self.monitor.close(finished=self.step >= self.total_steps)
        return RunSummary(step=self.step, epochs_done=self.step / self.steps_per_epoch, losses=self.losses,
                          images_per_second=self.monitor.images_per_second, stopped_early=self.stopped_early,
                          config=self.config, generator=self.trainer.output_generator,
                          is_chief=self.checkpoints.is_chief)

    def _finite(self, losses: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(value) for value in losses.values()):
            raise TrainingDiverged(
                f"loss became NaN/inf at step {self.step + 1} ({format_values(losses)}); the last good checkpoint "
                f"in {self.checkpoints.directory} is kept. Try a lower learning rate or --precision fp32.")
        return losses

    def _refit(self) -> None:
        """Re-plan the schedule to the budget's remaining time, when that changes it."""
        refit = self.fitter.refit(self.config, self.step)
        if refit is None:
            return
        fitted, seconds_per_step = refit
        self.log(f"the time budget holds {fitted.total_epochs} epochs, not {self.config.total_epochs}, at the last "
                 f"epochs' {seconds_per_step:.3f} s/step: fitted to --epochs {fitted.epochs} --epochs-decay "
                 f"{fitted.epochs_decay}, which config.json and the checkpoints now hold")
        self._use_schedule(fitted)

    def _use_schedule(self, config: Config) -> None:
        self.config = config
        self.checkpoints.record(config)
        self.total_steps = schedule.total_steps(config, self.steps_per_epoch)

    def _log_start(self, start_step: int) -> None:
        config, trainer = self.config, self.trainer
        self.log(f"pix2pix: {config.dataset}, {self.steps_per_epoch} steps/epoch, {self.total_steps} steps in all, "
                 f"precision {trainer.precision}, {trainer.strategy.num_replicas_in_sync} replica(s), run dir "
                 f"{self.checkpoints.run_dir}" + (f", resuming at step {start_step}" if start_step else ""))
        schedule_end = config.total_epochs * self.steps_per_epoch
        if self.total_steps > schedule_end:
            self.log(f"note: --steps {self.total_steps} runs past the learning-rate schedule's end at step "
                     f"{schedule_end} (--epochs {config.epochs} + --epochs-decay {config.epochs_decay}); the rate is "
                     "0 after it, so those steps leave the trained weights as they are (BatchNorm statistics and a "
                     "--g-ema average still move). Raise --epochs or --epochs-decay to train on.")
        if config.g_only_epochs and config.g_only_epochs * self.steps_per_epoch >= self.total_steps:
            self.log(f"note: --g-only-epochs {config.g_only_epochs} covers all {self.total_steps} steps: the "
                     "discriminator is never trained, so its adversarial term stays that of a random network")
