"""GAN, L1 and ab-classification losses against hand computations."""

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf import losses
from pix2pix_tf.color import AB_SCALE
from pix2pix_tf.models import ab_bin_centres


def test_vanilla_gan_loss_is_binary_cross_entropy_on_logits() -> None:
    logits = tf.constant([[[[2.0]], [[-1.0]]], [[[0.0]], [[0.5]]]])  # [2, 2, 1, 1]
    labels = tf.constant([[[[1.0]], [[0.0]]], [[[0.9]], [[0.1]]]])
    x, z = logits.numpy(), labels.numpy()
    expected = (np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(losses.gan_loss(logits, labels).numpy(), expected, rtol=1e-6)


def test_generator_losses_weight_l1_by_lambda() -> None:
    fake_logits = tf.zeros([2, 4, 4, 1])
    generated = tf.zeros([2, 8, 8, 3])
    target = tf.fill([2, 8, 8, 3], 0.5)
    gan, l1, total = losses.generator_losses(fake_logits, generated, target, lambda_l1=20.0)
    np.testing.assert_allclose(gan.numpy(), [np.log(2.0)] * 2, rtol=1e-6)
    np.testing.assert_allclose(l1.numpy(), [0.5, 0.5])
    np.testing.assert_allclose(total.numpy(), gan.numpy() + 20.0 * 0.5, rtol=1e-6)


def test_soft_targets_spread_each_colour_over_its_five_nearest_bins() -> None:
    centres = tf.constant(ab_bin_centres())
    ab = tf.constant([[0.0, 0.0], [0.3, -0.2], [0.123, 0.456]])
    soft = losses.soft_ab_targets(ab, centres, losses.SOFT_SIGMA / AB_SCALE).numpy()
    distances = np.linalg.norm(ab.numpy()[:, None] - centres.numpy()[None], axis=-1)
    assert np.allclose(soft.sum(axis=-1), 1.0, atol=1e-6)
    assert np.all(np.count_nonzero(soft, axis=-1) == losses.NEIGHBOUR_BINS)
    for row, dist in zip(soft, distances, strict=True):
        assert set(np.flatnonzero(row)) == set(np.argsort(dist)[:losses.NEIGHBOUR_BINS])
        assert np.argmax(row) == np.argmin(dist)


def test_rebalancing_weights_favour_rare_colours_and_average_one_under_the_prior() -> None:
    prior = tf.constant([0.7, 0.2, 0.1, 0.0])
    weights = losses.rebalancing_weights(prior, 0.5).numpy()
    assert np.sum(prior.numpy() * weights) == pytest.approx(1.0)
    assert weights[0] < weights[1] < weights[2] < weights[3]
    assert np.allclose(losses.rebalancing_weights(prior, 0.0).numpy(), 1.0)


def test_classification_loss_is_the_weighted_cross_entropy_per_example() -> None:
    soft = tf.constant([[[[0.75, 0.25, 0.0]]], [[[0.0, 0.0, 1.0]]]])
    logits = tf.constant([[[[2.0, 1.0, 0.0]]], [[[0.0, 1.0, 3.0]]]])
    bin_weights = tf.constant([1.0, 1.0, 4.0])
    log_p = tf.nn.log_softmax(logits).numpy()
    expected = [-(0.75 * log_p[0, 0, 0, 0] + 0.25 * log_p[0, 0, 0, 1]), -4.0 * log_p[1, 0, 0, 2]]
    assert np.allclose(losses.classification_loss(logits, soft, bin_weights).numpy(), expected, atol=1e-6)
