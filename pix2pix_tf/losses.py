"""GAN and L1 losses of pix2pix, with the study's fuzzy (noisy) labels and label flipping.

All losses take float32 tensors and return per-example values (shape [batch]); the training step reduces them
with the global batch size so that distributed replicas sum to the right mean.
"""

from __future__ import annotations

import tensorflow as tf


def _per_example_mean(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def gan_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example GAN loss, the paper's cross-entropy, of `logits` against soft `labels` in [0, 1] (same shape
    as the logits)."""
    logits = tf.cast(logits, tf.float32)
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_labels(logits_shape: tf.Tensor, fuzz: float, flip: float,
                         seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(real, fake) label maps for the discriminator.

    fuzz > 0 draws real labels uniformly in [1 - fuzz, 1] and fake in [0, fuzz]; flip > 0 swaps the two
    maps for each example with that probability. `seed` is a stateless RNG seed of shape [2].
    """
    real = tf.ones(logits_shape)
    fake = tf.zeros(logits_shape)
    if fuzz > 0:
        real -= fuzz * tf.random.stateless_uniform(logits_shape, seed=seed)
        fake += fuzz * tf.random.stateless_uniform(logits_shape, seed=seed + [1, 0])
    if flip > 0:
        batch = logits_shape[0]
        swap = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seed + [2, 0]) < flip
        real, fake = tf.where(swap, fake, real), tf.where(swap, real, fake)
    return real, fake


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor, real_labels: tf.Tensor,
                       fake_labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-example (real, fake) losses; the paper halves their sum to slow D down relative to G."""
    return gan_loss(real_logits, real_labels), gan_loss(fake_logits, fake_labels)


def generator_losses(fake_logits: tf.Tensor, generated: tf.Tensor, target: tf.Tensor,
                     lambda_l1: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per-example (gan, l1, total) generator losses: total = gan + lambda_l1 * l1."""
    adversarial = gan_loss(fake_logits, tf.ones_like(fake_logits, dtype=tf.float32))
    l1 = _per_example_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(generated, tf.float32)))
    return adversarial, l1, adversarial + lambda_l1 * l1

