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


# Soft targets of the ab classification (Zhang et al. 2016): each pixel's colour spread over its NEIGHBOUR_BINS
# nearest bins with a Gaussian of SOFT_SIGMA a*b* units; CLASS_STRIDE and the bins come from models.
NEIGHBOUR_BINS = 5
SOFT_SIGMA = 5.0


def coarse_chroma(ab: tf.Tensor, stride: int) -> tf.Tensor:
    """The mean ab of each stride x stride block: the resolution the classification head predicts at."""
    return tf.nn.avg_pool2d(tf.cast(ab, tf.float32), stride, stride, "VALID")


def soft_ab_targets(ab: tf.Tensor, centres: tf.Tensor, sigma: float) -> tf.Tensor:
    """ab [..., 2] -> [..., Q] weights over the bins `centres` [Q, 2] (same units): a Gaussian of width `sigma`
    on the NEIGHBOUR_BINS nearest centres, 0 elsewhere, summing to 1."""
    distances = tf.reduce_sum(tf.square(ab[..., None, :] - centres), axis=-1)
    kth_nearest = -tf.math.top_k(-distances, NEIGHBOUR_BINS).values[..., -1:]
    weights = tf.where(distances <= kth_nearest, tf.exp(-distances / (2.0 * sigma**2)), 0.0)
    return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def rebalancing_weights(prior: tf.Tensor, strength: float) -> tf.Tensor:
    """Zhang et al.'s per-bin weights 1 / (strength p + (1 - strength) / Q), scaled so that their mean under the
    colour prior `prior` [Q] is 1; all ones when `strength` is 0."""
    bins = tf.cast(tf.shape(prior)[0], tf.float32)
    weights = 1.0 / (strength * prior + (1.0 - strength) / bins)
    return weights / tf.reduce_sum(prior * weights)


def classification_loss(logits: tf.Tensor, soft_targets: tf.Tensor, bin_weights: tf.Tensor) -> tf.Tensor:
    """Per-example mean over pixels of the cross-entropy of `logits` against `soft_targets`, each pixel weighted
    by `bin_weights` [Q] of its most likely target bin."""
    cross_entropy = -tf.reduce_sum(soft_targets * tf.nn.log_softmax(tf.cast(logits, tf.float32)), axis=-1)
    pixel_weights = tf.gather(bin_weights, tf.argmax(soft_targets, axis=-1))
    return _per_example_mean(pixel_weights * cross_entropy)
