"""The pix2pix training loop: a custom `tf.function` GradientTape step under a tf.distribute strategy.

One iteration = (d_steps - 1) extra D updates, one joint G + D update (the paper's step: one G forward
pass, two tapes), then (g_steps - 1) extra G updates, all on the same batch. The run is resumable: the
checkpoint holds G, D, both optimisers and the global step, and the data pipeline is a pure function of
(seed, epoch), so a resumed run skips to the exact batch it stopped at.
"""

from __future__ import annotations

import collections
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pix2pix_tf import data, losses, runtime, sources
from pix2pix_tf.color import AB_SCALE, input_to_rgb, output_to_rgb
from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.models import CLASS_STRIDE, ab_bin_centres, build_discriminator, build_generator
from pix2pix_tf.visualize import grid, save_gif, save_png

LOSS_NAMES = ("g_gan", "g_l1", "g_class", "g_total", "d_real", "d_fake")  # g_class: --chroma-head classify
FIT_MARGIN = 0.95  # share of the budget's remaining time that a fitted schedule plans to use
FIT_PACE_EPOCHS = 5  # the pace a fitted schedule plans with: that of the last epochs, at most this many
FIT_GROWTH = 0.02  # a fitted schedule grows back only by at least this share of its length
PRIOR_BATCHES = 500  # --class-rebalance: batches of the first epoch whose colours make the prior


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def learning_rate_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for `epochs`, then linear decay towards 0 over `epochs_decay` (the paper's schedule); 0 after
    that (a `--steps` past the schedule's end trains no further, it never climbs the loss)."""
    return max(0.0, 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1))


def fitted_schedule(config: Config, planned: Config, epochs_done: int, epochs_affordable: int) -> Config | None:
    """`config` with --epochs and --epochs-decay re-planned to end after `epochs_affordable` epochs (at least one
    more than `epochs_done`, at most `planned`'s schedule) in `planned`'s proportion; None if nothing changes.

    Epochs already trained keep the rate they had. While the rate is still constant the schedule may shrink or
    grow back (a slow spell has passed), but its constant phase never ends before `epochs_done`; once the rate
    decays, the schedule may only get shorter, so the rate never rises again.
    """
    if planned.total_epochs == 0:
        return None
    total = max(min(epochs_affordable, planned.total_epochs), epochs_done + 1)
    if epochs_done < config.epochs:
        epochs = max(epochs_done, round(total * planned.epochs / planned.total_epochs))
    else:
        total, epochs = min(total, config.total_epochs), config.epochs
    if (epochs, total - epochs) == (config.epochs, config.epochs_decay):
        return None
    return config.replace(epochs=epochs, epochs_decay=total - epochs)


@dataclass
class RunSummary:
    """What a finished (or stopped) run reports back."""

    step: int
    epochs_done: float
    losses: dict[str, float]
    images_per_second: float
    stopped_early: str | None
    export_dir: Path | None


class FusedAdam(keras.optimizers.Adam):
    """Keras Adam whose per-variable update runs as TensorFlow's fused `ResourceApplyAdam` kernel.

    Same formula and state (Kingma & Ba with Keras's epsilon placement), but one pass over each variable and
    its two moments instead of Keras's chain of element-wise ops, each of which reads and writes the whole
    tensor: with 57 M parameters that chain is a large share of a batch-1 CPU step.
    """

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable, learning_rate: tf.Tensor) -> None:
        if self.amsgrad:
            super().update_step(gradient, variable, learning_rate)
            return
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta1, beta2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta1, step), beta2_power=tf.pow(beta2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta1, beta2=beta2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


# --g-ema updates the averaged generator every AVERAGE_EVERY steps, with the decay raised to that power: an
# average over the same window (about 700 steps at 0.999) sampled at every 4th step, at a quarter of the cost.
AVERAGE_EVERY = 4


class Trainer:
    """Builds models, optimisers and checkpoints for one Config, and trains them."""

    def __init__(self, config: Config) -> None:
        runtime.configure_devices(config.cpu_devices)
        runtime.keep_freed_memory()
        self.config = config
        self.precision = runtime.apply_precision(config)
        self.strategy = runtime.make_strategy(config)
        self.is_chief = _is_chief(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise UserError(f"--batch-size {config.batch_size} is the global batch: it must be a multiple of the "
                            f"{replicas} replicas of --strategy {config.strategy}")
        self.run_dir = config.resolved_run_dir()
        with self.strategy.scope():
            self.generator = build_generator(config)
            self.averaged_generator = build_generator(config) if config.g_ema else None
            if self.averaged_generator is not None:
                self.averaged_generator.set_weights(self.generator.get_weights())
            self.discriminator = build_discriminator(config)
            self.g_optimizer = self._make_optimizer(config.lr_g)
            self.d_optimizer = self._make_optimizer(config.lr_d)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            # --chroma-head classify: the same generator, also returning its logits for the cross-entropy.
            self.classifier = (keras.Model(self.generator.inputs, [self.generator.output,
                                                                   self.generator.get_layer("chroma_logits").output])
                               if config.chroma_head == "classify" else None)
        self.bin_weights: tf.Tensor | None = None  # the cross-entropy's weight of each ab bin
        if self.classifier is not None:
            self.bin_weights = (losses.rebalancing_weights(colour_prior(config), config.class_rebalance)
                                if config.class_rebalance > 0 else tf.ones([len(ab_bin_centres())]))
        # The run's Config travels inside every checkpoint too, so a checkpoint alone says how it was made.
        self.config_record = tf.Variable(config.to_json(), trainable=False, name="config")
        parts = {"averaged_generator": self.averaged_generator} if self.averaged_generator is not None else {}
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator, discriminator=self.discriminator,
            g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, step=self.step,
            config=self.config_record, **parts)
        self.jit_compile = runtime.resolve_jit_compile(config)
        self._steps: dict[bool, Callable] = {}
        self._average_step: Callable | None = None

    # --- construction -------------------------------------------------------------------------------------
    def _make_optimizer(self, learning_rate: float) -> keras.optimizers.Optimizer:
        optimizer = FusedAdam(learning_rate, beta_1=self.config.beta1, beta_2=self.config.beta2)
        if self.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    @property
    def output_generator(self) -> keras.Model:
        """The generator that progress pictures, calibration and exports use: the average under --g-ema."""
        return self.averaged_generator if self.averaged_generator is not None else self.generator

    @property
    def global_batch_size(self) -> int:
        """`config.batch_size` is the global batch, split evenly over every replica of every worker."""
        return self.config.batch_size

    # --- the step -----------------------------------------------------------------------------------------
    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    @staticmethod
    def _scaled(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
        """The loss to differentiate: multiplied by the loss scale under mixed_float16 (inside the tape)."""
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.scale_loss(loss)
        return loss

    @staticmethod
    def _apply(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape, scaled_loss: tf.Tensor,
               variables: list) -> None:
        """Differentiate and update; a LossScaleOptimizer unscales and skips non-finite steps itself."""
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)

    def _generate(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The generator's output in training mode, and its ab logits under --chroma-head classify."""
        if self.classifier is None:
            return self.generator(inputs, training=True), None
        return tuple(self.classifier(inputs, training=True))

    def _d_loss(self, inputs: tf.Tensor, targets: tf.Tensor, fake: tf.Tensor,
                seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        if self.classifier is not None:  # real colour as coarse as the generator's, so D judges colour, not detail
            coarse = losses.coarse_chroma(targets, CLASS_STRIDE)
            targets = tf.image.resize(coarse, tf.shape(targets)[1:3], method="bilinear")
        real_logits = self.discriminator([inputs, targets], training=True)
        fake_logits = self.discriminator([inputs, fake], training=True)
        real_labels, fake_labels = losses.discriminator_labels(
            tf.shape(real_logits), self.config.label_fuzz, self.config.label_flip, seed)
        d_real, d_fake = losses.discriminator_loss(real_logits, fake_logits, real_labels, fake_labels,
                                                   self.config.gan_loss)
        d_real, d_fake = self._average(d_real), self._average(d_fake)
        return d_real, d_fake, fake_logits

    def _g_loss(self, fake_logits: tf.Tensor, fake: tf.Tensor, targets: tf.Tensor,
                chroma_logits: tf.Tensor | None) -> dict[str, tf.Tensor]:
        """g_gan, g_l1 and g_total (g_gan + lambda_l1 g_l1); under --chroma-head classify also g_class, the
        cross-entropy, and g_total = g_gan + lambda_class g_class (g_l1 is then only reported)."""
        g_gan, g_l1, g_total = losses.generator_losses(fake_logits, fake, targets, self.config.gan_loss,
                                                       self.config.lambda_l1)
        result = {"g_gan": g_gan, "g_l1": g_l1, "g_total": g_total}
        if chroma_logits is not None:
            soft_targets = losses.soft_ab_targets(losses.coarse_chroma(targets, CLASS_STRIDE),
                                                  tf.constant(ab_bin_centres()), losses.SOFT_SIGMA / AB_SCALE)
            result["g_class"] = losses.classification_loss(chroma_logits, soft_targets, self.bin_weights)
            result["g_total"] = g_gan + self.config.lambda_class * result["g_class"]
        return {name: self._average(value) for name, value in result.items()}

    def _replica_step(self, inputs: tf.Tensor, targets: tf.Tensor, step: tf.Tensor,
                      train_d: bool) -> dict[str, tf.Tensor]:
        """One iteration on this replica's share of the batch; returns its share of each mean loss."""
        c = self.config
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        base_seed = tf.stack([tf.cast(c.seed, tf.int64) * 1000 + replica, step * 16])

        for extra in range(c.d_steps - 1 if train_d else 0):
            fake, _ = self._generate(inputs)
            with tf.GradientTape() as d_tape:
                d_real, d_fake, _ = self._d_loss(inputs, targets, fake, base_seed + [0, extra + 1])
                d_objective = self._scaled(self.d_optimizer, 0.5 * (d_real + d_fake))
            self._apply(self.d_optimizer, d_tape, d_objective, d_vars)

        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake, chroma_logits = self._generate(inputs)
            d_real, d_fake, fake_logits = self._d_loss(inputs, targets, fake, base_seed)
            d_objective = self._scaled(self.d_optimizer, 0.5 * (d_real + d_fake))
            g_losses = self._g_loss(fake_logits, fake, targets, chroma_logits)
            g_objective = self._scaled(self.g_optimizer, g_losses["g_total"])
        self._apply(self.g_optimizer, g_tape, g_objective, g_vars)
        if train_d:
            self._apply(self.d_optimizer, d_tape, d_objective, d_vars)

        for _ in range(c.g_steps - 1):
            with tf.GradientTape() as g_tape:
                fake, chroma_logits = self._generate(inputs)
                fake_logits = self.discriminator([inputs, fake], training=True)
                g_losses = self._g_loss(fake_logits, fake, targets, chroma_logits)
                g_objective = self._scaled(self.g_optimizer, g_losses["g_total"])
            self._apply(self.g_optimizer, g_tape, g_objective, g_vars)

        return {**g_losses, "d_real": d_real, "d_fake": d_fake}

    def train_step(self, batch: tuple[tf.Tensor, tf.Tensor], train_d: bool = True) -> dict[str, tf.Tensor]:
        """Run one distributed iteration on a (distributed) batch; returns the global mean losses."""
        if train_d not in self._steps:
            def step_fn(inputs: tf.Tensor, targets: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
                per_replica = self.strategy.run(self._replica_step, args=(inputs, targets, step, train_d))
                return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                        for k, v in per_replica.items()}
            self._steps[train_d] = tf.function(step_fn, jit_compile=self.jit_compile)
        inputs, targets = batch
        step = tf.convert_to_tensor(self.step)
        losses = self._steps[train_d](inputs, targets, step)
        if self.averaged_generator is not None and int(step) % AVERAGE_EVERY == 0:
            if self._average_step is None:
                self._average_step = tf.function(self._update_average)
            self._average_step(step)
        return losses

    def _update_average(self, step: tf.Tensor) -> None:
        """averaged <- d * averaged + (1 - d) * live for each trainable weight, with d = min(g_ema, (1 + step) /
        (10 + step)) ** AVERAGE_EVERY (early weights fade fast); normalisation statistics are copied as they are."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.config.g_ema, (1.0 + step) / (10.0 + step)) ** AVERAGE_EVERY
        averaged, live = self.averaged_generator, self.generator
        for mine, theirs in zip(averaged.trainable_variables, live.trainable_variables, strict=True):
            mine.assign_sub((1.0 - decay) * (mine - theirs))
        for mine, theirs in zip(averaged.non_trainable_variables, live.non_trainable_variables, strict=True):
            mine.assign(theirs)

    def any_worker(self, flag: bool) -> bool:
        """Whether `flag` holds on any worker of the cluster (one collective); in one process, `flag`. Workers
        that decide on their own clocks to stop must agree, or the others wait in their next step forever."""
        if _in_one_process(self.strategy):
            return flag
        flags = self.strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(1.0 if flag else 0.0))
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None)) > 0

    # --- the loop -----------------------------------------------------------------------------------------
    def set_learning_rates(self, epoch: int) -> float:
        factor = learning_rate_factor(epoch, self.config.epochs, self.config.epochs_decay)
        self.g_optimizer.learning_rate = self.config.lr_g * factor
        self.d_optimizer.learning_rate = self.config.lr_d * factor
        return factor

    def restore(self, fresh: bool) -> int:
        """Restore the chief's latest checkpoint unless `fresh`; returns the step to start from.

        Every worker reads the chief's directory, so a restarted cluster goes on from the same step. Variables
        are saved by name, not by device, so a checkpoint restores under any strategy and replica count.
        """
        latest = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints"))
        if latest and not fresh:
            _check_saved_config(self.config, latest)
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            self.config_record.assign(self.config.to_json())  # from here on, checkpoints hold this run's Config
        return int(self.step.numpy())

    def checkpoint_manager(self) -> tf.train.CheckpointManager:
        """The chief's manager writes the run's checkpoints; other workers' write to a local scratch dir."""
        if not hasattr(self, "_manager"):
            directory = self.run_dir / "checkpoints"
            if not self.is_chief:
                resolver = self.strategy.cluster_resolver
                directory = Path(tempfile.gettempdir()) / (
                    f"pix2pix-{resolver.task_type}{resolver.task_id}-{os.getpid()}-checkpoints")
            self._manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=3,
                                                       step_counter=self.step)
        return self._manager

    def save_checkpoint(self) -> None:
        """Every worker must call this (a multi-worker save may run collective ops); only the chief's copy stays."""
        manager = self.checkpoint_manager()
        manager.save(checkpoint_number=int(self.step.numpy()))
        if not self.is_chief:
            shutil.rmtree(manager.directory, ignore_errors=True)

    def epoch_batches(self, epoch: int, skip: int) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """The epoch's global batches from batch `skip` on, each split evenly over the replicas.

        Every worker builds the same deterministic pipeline of global batches and keeps its replicas' slices of
        each (DATA sharding: the examples live in memory, not in files to share out), so any number of replicas
        sees exactly the examples one device would, in the same steps. One replica iterates the plain dataset:
        the distributed one runs tf.data's autotuning again, whose thread stalls new epochs for up to a minute
        (`data.without_autotuning`, bench/README.md "The epoch's pipeline"); several replicas still pay that.
        """
        dataset = data.train_dataset(self.config, epoch)
        if skip:
            dataset = dataset.skip(skip)
        if self.strategy.num_replicas_in_sync == 1:
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def generate(self, inputs: np.ndarray) -> np.ndarray:
        """Colour pictures in [0, 1] for network inputs (inference mode)."""
        outputs = self.output_generator(inputs, training=False)
        return output_to_rgb(inputs, outputs, self._pair_space()).numpy()

    def _pair_space(self) -> str:
        """How to turn network tensors into pictures: paired sets are RGB both ways."""
        return "rgb" if sources.is_paired(self.config) else self.config.color_space

    def comparison_rows(self, inputs: np.ndarray, targets: np.ndarray) -> list[list[np.ndarray]]:
        """INPUT | OUTPUT | TARGET rows as pictures in [0, 1]."""
        space = self._pair_space()
        shown_inputs = input_to_rgb(inputs, space).numpy()
        shown_targets = output_to_rgb(inputs, targets, space).numpy()
        outputs = self.generate(inputs)
        return [[i, o, t] for i, o, t in zip(shown_inputs, outputs, shown_targets, strict=True)]


def train(config: Config, fresh: bool = False, log: Callable[[str], None] = print) -> RunSummary:
    """Train (or resume) the run described by `config`, then export the generator."""
    trainer = Trainer(config)
    run_dir = trainer.run_dir
    steps_per_epoch = data.steps_per_epoch(config)
    total_steps = config.steps or config.total_epochs * steps_per_epoch
    is_chief = trainer.is_chief  # only the chief writes into run_dir (checkpoints, logs, progress) and exports
    if is_chief:
        _save_config(config, run_dir)
        if fresh:
            for stale in ("checkpoints", "progress"):
                shutil.rmtree(run_dir / stale, ignore_errors=True)
    start_step = trainer.restore(fresh)
    # Several workers would each fit the schedule to their own clock and disagree; they keep the one asked for.
    fitting = (config.time_budget is not None and config.fit_schedule and not config.steps
               and _in_one_process(trainer.strategy))
    planned = config  # the schedule asked for; a fitted one never grows past it
    if start_step and fitting:
        config = trainer.config = _resumed_schedule(config, run_dir)
        trainer.config_record.assign(config.to_json())
        total_steps = config.total_epochs * steps_per_epoch
        if is_chief:
            _save_config(config, run_dir)
    writer = tf.summary.create_file_writer(str(run_dir / "logs")) if is_chief else tf.summary.create_noop_writer()
    samples = (data.fixed_examples(config, config.progress_samples)
               if config.progress_samples and is_chief else None)

    with writer.as_default():
        tf.summary.text("config", "```\n" + config.to_json() + "\n```", step=start_step)
    log(f"pix2pix: {config.dataset}, {steps_per_epoch} steps/epoch, {total_steps} steps in all, "
        f"precision {trainer.precision}, {trainer.strategy.num_replicas_in_sync} replica(s), run dir {run_dir}"
        + (f", resuming at step {start_step}" if start_step else ""))
    if total_steps > (schedule_end := config.total_epochs * steps_per_epoch):
        log(f"note: --steps {total_steps} runs past the learning-rate schedule's end at step {schedule_end} "
            f"(--epochs {config.epochs} + --epochs-decay {config.epochs_decay}); the rate is 0 after it, so "
            "those steps leave the trained weights as they are (BatchNorm statistics and a --g-ema average still "
            "move). Raise --epochs or --epochs-decay to train on.")

    started = time.monotonic()
    images_per_second = 0.0
    last_losses: dict[str, float] = {}
    stopped_early: str | None = None
    step = saved_step = start_step
    paces: collections.deque[tuple[float, int]] = collections.deque(maxlen=FIT_PACE_EPOCHS + 1)  # (clock, step)
    while step < total_steps and stopped_early is None:
        epoch, skip = divmod(step, steps_per_epoch)
        factor = trainer.set_learning_rates(epoch)
        train_d = epoch >= config.g_only_epochs
        steps_this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        progress = keras.utils.Progbar(steps_this_epoch, stateful_metrics=["img/s", *LOSS_NAMES],
                                       unit_name="step")
        progress.update(skip)
        epoch_started = time.monotonic()
        epoch_images = 0
        batches = iter(trainer.epoch_batches(epoch, skip))
        runtime.keep_freed_memory()  # again: building the pipeline may have reset it (see its docstring)
        for batch in batches:
            t0 = time.monotonic()
            result = trainer.train_step(batch, train_d=train_d)
            last_losses = {k: float(v) for k, v in result.items()}
            if not all(math.isfinite(v) for v in last_losses.values()):
                raise TrainingDiverged(
                    f"loss became NaN/inf at step {step + 1} ({_format(last_losses)}); the last good checkpoint "
                    f"in {run_dir / 'checkpoints'} is kept. Try a lower learning rate or --precision fp32.")
            step += 1
            trainer.step.assign(step)
            if not paces:  # the pace is timed from the end of this process's first step, once traced
                paces.append((time.monotonic(), step))
            images_per_second = config.batch_size / max(time.monotonic() - t0, 1e-9)
            epoch_images += config.batch_size
            progress.update(step - epoch * steps_per_epoch,
                            values=[("img/s", images_per_second), *last_losses.items()])
            with writer.as_default(step=step):
                for name, value in last_losses.items():
                    group = "generator" if name.startswith("g_") else "discriminator"
                    tf.summary.scalar(f"{group}/{name}", value)
                tf.summary.scalar("learning_rate/g", config.lr_g * factor)
                tf.summary.scalar("learning_rate/d", config.lr_d * factor)
                tf.summary.scalar("speed/images_per_second", images_per_second)
                if samples is not None and step % config.image_every == 0:
                    picture = grid(trainer.comparison_rows(*samples))
                    tf.summary.image("input_output_target", picture[None], step=step)
            if step % config.checkpoint_every == 0:
                trainer.save_checkpoint()
                saved_step = step
            if config.time_budget is not None and trainer.any_worker(
                    time.monotonic() - started > config.time_budget * 60):
                stopped_early = f"time budget of {config.time_budget:g} min spent"
            if step >= total_steps or stopped_early:
                break
        finishing = step >= total_steps or stopped_early is not None
        if finishing and saved_step != step:
            trainer.save_checkpoint()
            saved_step = step
        if samples is not None:
            if step % steps_per_epoch == 0:
                _write_frame(trainer, samples, run_dir, epoch + 1)
            if finishing:  # from every frame so far, so its cost grows with the run: once, at the end
                _write_gif(run_dir)
        seconds = max(time.monotonic() - epoch_started, 1e-9)
        log(f"epoch {epoch + 1}/{math.ceil(total_steps / steps_per_epoch)} step {step}: "
            f"{_format(last_losses)}, {epoch_images / seconds:.2f} img/s, lr x{factor:.3f}"
            + (f" ({stopped_early})" if stopped_early else ""))
        if fitting and not finishing and paces and step > paces[-1][1]:
            now = time.monotonic()
            paces.append((now, step))
            seconds_per_step = (now - paces[0][0]) / (step - paces[0][1])
            remaining = config.time_budget * 60 - (now - started)
            affordable = int((step + FIT_MARGIN * remaining / seconds_per_step) // steps_per_epoch)
            fitted = fitted_schedule(config, planned, step // steps_per_epoch, affordable)
            # It shrinks whenever it must; it grows back only by a real margin, or checkpoint epochs (a little
            # slower) would make its length flicker by an epoch.
            if fitted is not None and (fitted.total_epochs < config.total_epochs or fitted.total_epochs
                                       - config.total_epochs >= FIT_GROWTH * config.total_epochs):
                log(f"the time budget holds {fitted.total_epochs} epochs, not {config.total_epochs}, at the last "
                    f"epochs' {seconds_per_step:.3f} s/step: fitted to --epochs {fitted.epochs} --epochs-decay "
                    f"{fitted.epochs_decay}, which config.json and the checkpoints now hold")
                config = trainer.config = fitted
                trainer.config_record.assign(config.to_json())
                total_steps = config.total_epochs * steps_per_epoch
                if is_chief:
                    _save_config(config, run_dir)
    writer.flush()

    export_dir = None
    if is_chief:
        from pix2pix_tf.calibration import calibrate
        from pix2pix_tf.export import export_generator

        export_config = config
        if config.chroma_scale is None and not sources.is_paired(config):
            calibration = calibrate(trainer.output_generator, config)
            calibration.save(run_dir / "calibration.json")
            export_config = config.replace(chroma_scale=calibration.scale)
            log(f"chroma scale {calibration.scale:g} (lowest mean CIEDE2000 on {calibration.n_photos} "
                f"{calibration.split} photo(s): {_format(calibration.ciede2000)})")
            if calibration.scale == 0:
                log(f"the export returns photos grey: any colour scored worse than grey on the {calibration.split} "
                    f"photos. To export the network's colours anyway: python train.py --config "
                    f"{run_dir / 'config.json'} --steps {step} --chroma-scale 1")
        export_dir = export_generator(trainer.output_generator, export_config, config.resolved_export_dir(), step)
        log(f"exported the generator to {export_dir}")
    return RunSummary(step=step, epochs_done=step / steps_per_epoch, losses=last_losses,
                      images_per_second=images_per_second, stopped_early=stopped_early, export_dir=export_dir)


def _format(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in values.items())


def _in_one_process(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy trains in this process alone: no cluster of workers, each with its own clock."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    if _in_one_process(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                              and "chief" not in resolver.cluster_spec().as_dict())


def _save_config(config: Config, run_dir: Path) -> None:
    """Write run_dir/config.json atomically (a reader never sees half a file)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / "config.json.partial"
    config.save(partial)
    os.replace(partial, run_dir / "config.json")


MODEL_FIELDS = ("color_space", "chroma_head", "generator", "ngf", "ndf", "d_layers", "d_norm", "image_size", "dataset")


def colour_prior(config: Config) -> tf.Tensor:
    """[Q] share of each ab bin among the training targets' coarse pixels (at most PRIOR_BATCHES batches of the
    first epoch), smoothed over the bins with a Gaussian of losses.SOFT_SIGMA a*b* units, as Zhang et al. do."""
    centres = tf.constant(ab_bin_centres())
    counts = tf.zeros([centres.shape[0]])
    for _, targets in data.train_dataset(config, 0).take(PRIOR_BATCHES):
        ab = tf.reshape(losses.coarse_chroma(targets, CLASS_STRIDE), [-1, 1, 2])
        nearest = tf.argmin(tf.reduce_sum(tf.square(ab - centres), axis=-1), axis=-1)
        counts += tf.math.bincount(tf.cast(nearest, tf.int32), minlength=centres.shape[0], dtype=tf.float32)
    sigma = losses.SOFT_SIGMA / AB_SCALE
    kernel = tf.exp(-tf.reduce_sum(tf.square(centres[:, None] - centres[None]), axis=-1) / (2.0 * sigma**2))
    smoothed = tf.linalg.matvec(kernel / tf.reduce_sum(kernel, axis=1, keepdims=True), counts, transpose_a=True)
    return smoothed / tf.reduce_sum(smoothed)


def saved_config(checkpoint_path: str) -> Config:
    """The Config stored inside a checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    return Config.from_dict(json.loads(reader.get_tensor("config/.ATTRIBUTES/VARIABLE_VALUE")))


def _resumed_schedule(config: Config, run_dir: Path) -> Config:
    """`config` with the schedule that its latest checkpoint was fitted to, when that is shorter: a budgeted run
    resumed by its first command goes on with the rate it had, not the paper's schedule it started from."""
    saved = saved_config(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    if saved.time_budget is not None and saved.fit_schedule and saved.total_epochs < config.total_epochs:
        return config.replace(epochs=saved.epochs, epochs_decay=saved.epochs_decay)
    return config


def _check_saved_config(config: Config, checkpoint_path: str) -> None:
    """Refuse to resume a checkpoint whose networks were built differently."""
    saved = saved_config(checkpoint_path)
    changed = [f"{name}: {getattr(saved, name)!r} -> {getattr(config, name)!r}" for name in MODEL_FIELDS
               if getattr(saved, name) != getattr(config, name)]
    if (saved.g_ema > 0) != (config.g_ema > 0):
        changed.append(f"g_ema: {saved.g_ema!r} -> {config.g_ema!r}, which keeps an averaged generator or not; "
                       f"--g-ema {saved.g_ema:g} resumes it")
    if changed:
        raise UserError(f"{checkpoint_path} was trained with different networks ({'; '.join(changed)}). "
                        "Use another --run-dir, or --fresh to start that run over.")


def _write_frame(trainer: Trainer, samples: tuple[np.ndarray, np.ndarray], run_dir: Path, epoch: int) -> None:
    """One INPUT | OUTPUT | TARGET grid of the fixed samples per epoch: progress/epoch_NNNN.png."""
    save_png(grid(trainer.comparison_rows(*samples)), run_dir / "progress" / f"epoch_{epoch:04d}.png")


def _write_gif(run_dir: Path) -> None:
    """The study's transition-with-time: progress.gif over every epoch's frame so far."""
    import imageio.v2 as imageio

    frames = [imageio.imread(path) for path in sorted((run_dir / "progress").glob("epoch_*.png"))]
    if frames:
        save_gif(frames, run_dir / "progress.gif")
