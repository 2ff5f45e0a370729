"""The optimisers of G and D: Adam with the paper's betas, updating each variable in one fused kernel, and
scaling the loss under mixed_float16."""

from __future__ import annotations

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):
    """Keras Adam whose per-variable update runs as TensorFlow's fused `ResourceApplyAdam` kernel.

    Same formula and state (Kingma & Ba with Keras's epsilon placement), but one pass over each variable and
    its two moments instead of Keras's chain of element-wise ops, each of which reads and writes the whole
    tensor (what that saves per step: bench/README.md, "Fused Adam").
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


def make_optimizer(learning_rate: float, beta1: float, beta2: float, precision: str,
                   variables: list[tf.Variable]) -> keras.optimizers.Optimizer:
    """A FusedAdam built for `variables`; under mixed_float16 wrapped in a LossScaleOptimizer, which unscales
    the gradients and skips a step whose gradients are not finite."""
    optimizer: keras.optimizers.Optimizer = FusedAdam(learning_rate, beta_1=beta1, beta_2=beta2)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(variables)
    return optimizer


def scaled(optimizer: keras.optimizers.Optimizer, loss: tf.Tensor) -> tf.Tensor:
    """The loss to differentiate: multiplied by the loss scale of a LossScaleOptimizer (call it inside the tape)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss
