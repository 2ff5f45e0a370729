"""One pix2pix iteration: the losses of G and D and their gradient tapes, run on every replica of a strategy.

An iteration is (d_steps - 1) extra D updates, one joint G + D update (the paper's step: one G forward pass,
two tapes), then (g_steps - 1) extra G updates, all on the same batch. D sees (input, target) as real and
(input, G(input)) as fake; G minimises its GAN loss plus lambda_l1 times the L1 distance to the target.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from pix2pix_tf import losses
from pix2pix_tf.config import Config
from pix2pix_tf.optimizers import scaled

LOSS_NAMES = ("g_gan", "g_l1", "g_total", "d_real", "d_fake")
AVERAGE_EVERY = 4  # --g-ema: steps between updates of the averaged generator


class TrainStep:
    """The training step of G and D with their optimisers, compiled once for each of train_d True / False."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, g_optimizer: keras.optimizers.Optimizer,
                 d_optimizer: keras.optimizers.Optimizer, config: Config, strategy: tf.distribute.Strategy,
                 jit_compile: bool = False) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.config, self.strategy = config, strategy
        self._compiled = {train_d: tf.function(self._distributed_step(train_d), jit_compile=jit_compile)
                          for train_d in (True, False)}

    def __call__(self, batch: tuple[tf.Tensor, tf.Tensor], step: tf.Variable | int,
                 train_d: bool = True) -> dict[str, tf.Tensor]:
        """Train on one (distributed) global batch at global step `step`; returns the global mean losses. With
        train_d False, D is frozen (--g-only-epochs)."""
        inputs, targets = batch
        return self._compiled[train_d](inputs, targets, tf.convert_to_tensor(step, tf.int64))

    def _distributed_step(self, train_d: bool) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
        """The step's body: every replica's iteration on its share of the batch, their losses summed."""
        def step_fn(inputs: tf.Tensor, targets: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            per_replica = self.strategy.run(self._replica_step, args=(inputs, targets, step, train_d))
            return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                    for name, value in per_replica.items()}
        return step_fn

    def _replica_step(self, inputs: tf.Tensor, targets: tf.Tensor, step: tf.Tensor,
                      train_d: bool) -> dict[str, tf.Tensor]:
        """One iteration on this replica's share of the batch; returns its share of each mean loss."""
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        seed = tf.stack([tf.cast(self.config.seed, tf.int64) * 1000 + replica, step * 16])
        for extra in range(self.config.d_steps - 1 if train_d else 0):
            fake = self.generator(inputs, training=True)
            with tf.GradientTape() as d_tape:
                d_losses, _ = self._discriminator_losses(inputs, targets, fake, seed + [0, extra + 1])
                d_objective = scaled(self.d_optimizer, 0.5 * (d_losses["d_real"] + d_losses["d_fake"]))
            _apply(self.d_optimizer, d_tape, d_objective, self.discriminator)

        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(inputs, training=True)
            d_losses, fake_logits = self._discriminator_losses(inputs, targets, fake, seed)
            d_objective = scaled(self.d_optimizer, 0.5 * (d_losses["d_real"] + d_losses["d_fake"]))
            g_losses = self._generator_losses(fake_logits, fake, targets)
            g_objective = scaled(self.g_optimizer, g_losses["g_total"])
        _apply(self.g_optimizer, g_tape, g_objective, self.generator)
        if train_d:
            _apply(self.d_optimizer, d_tape, d_objective, self.discriminator)

        for _ in range(self.config.g_steps - 1):
            with tf.GradientTape() as g_tape:
                fake = self.generator(inputs, training=True)
                fake_logits = self.discriminator([inputs, fake], training=True)
                g_losses = self._generator_losses(fake_logits, fake, targets)
                g_objective = scaled(self.g_optimizer, g_losses["g_total"])
            _apply(self.g_optimizer, g_tape, g_objective, self.generator)
        return {**g_losses, **d_losses}

    def _discriminator_losses(self, inputs: tf.Tensor, targets: tf.Tensor, fake: tf.Tensor,
                              seed: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """d_real and d_fake against the (fuzzed, maybe flipped) labels, and D's logits for the fake."""
        real_logits = self.discriminator([inputs, targets], training=True)
        fake_logits = self.discriminator([inputs, fake], training=True)
        real_labels, fake_labels = losses.discriminator_labels(
            tf.shape(real_logits), self.config.label_fuzz, self.config.label_flip, seed)
        d_real, d_fake = losses.discriminator_loss(real_logits, fake_logits, real_labels, fake_labels)
        return {"d_real": self._average(d_real), "d_fake": self._average(d_fake)}, fake_logits

    def _generator_losses(self, fake_logits: tf.Tensor, fake: tf.Tensor, targets: tf.Tensor) -> dict[str, tf.Tensor]:
        """g_gan, g_l1 and g_total (g_gan + lambda_l1 g_l1)."""
        g_gan, g_l1, g_total = losses.generator_losses(fake_logits, fake, targets, self.config.lambda_l1)
        return {name: self._average(value) for name, value in
                {"g_gan": g_gan, "g_l1": g_l1, "g_total": g_total}.items()}

    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        """This replica's share of the global batch's mean: replicas' shares sum to the mean."""
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.config.batch_size)


def _apply(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape, objective: tf.Tensor,
           model: keras.Model) -> None:
    """Differentiate and update `model`; a LossScaleOptimizer unscales and skips non-finite steps itself."""
    variables = model.trainable_variables
    optimizer.apply(tape.gradient(objective, variables), variables)


class WeightAverage:
    """--g-ema: `averaged` follows a moving average of `live`'s weights, updated every AVERAGE_EVERY steps with
    the decay raised to that power (the same averaging window, sampled at every AVERAGE_EVERY-th step)."""

    def __init__(self, averaged: keras.Model, live: keras.Model, decay: float) -> None:
        averaged.set_weights(live.get_weights())
        self.averaged, self.live, self.decay = averaged, live, decay
        self._update = tf.function(self._update_weights)

    def after_step(self, step: int) -> None:
        """Fold the live weights in when `step` (the step just trained's global number, from 0) is due."""
        if step % AVERAGE_EVERY == 0:
            self._update(tf.constant(step, tf.int64))

    def _update_weights(self, step: tf.Tensor) -> None:
        """averaged <- d * averaged + (1 - d) * live for each trainable weight, with d = min(decay, (1 + step) /
        (10 + step)) ** AVERAGE_EVERY (early weights fade fast); normalisation statistics are copied as they are."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step)) ** AVERAGE_EVERY
        for mine, theirs in zip(self.averaged.trainable_variables, self.live.trainable_variables, strict=True):
            mine.assign_sub((1.0 - decay) * (mine - theirs))
        for mine, theirs in zip(self.averaged.non_trainable_variables, self.live.non_trainable_variables,
                                strict=True):
            mine.assign(theirs)

