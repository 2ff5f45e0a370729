"""GAN and L1 losses against hand computations."""

import numpy as np
import tensorflow as tf

from pix2pix_tf import losses


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
