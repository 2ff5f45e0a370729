"""Other forms of the networks' layers, faster on a CPU: the same function, computed another way.

`models` builds the networks from Keras's own layers. `apply_layer_forms` copies a network with each layer in
the form that computes it fastest for training (on this device, at the run's image and batch size) or for
the export's inference; `--layer-forms plain` keeps Keras's layers. Which layer takes which form was chosen by
measuring each layer both ways (bench/README.md); the rules are `training_form` and `inference_form`.

Training forms keep the Keras layer's variables, so checkpoints are the same:

* `FusedBatchNormalization`: batch norm computed by TensorFlow's fused kernel.
* `MatmulConv2D`, `MatmulConv2DTranspose`: a 4x4, stride-2, 'same' (transposed) convolution as one matrix product,
  where oneDNN's conversion of the kernel to its own layout on every call costs more than the arithmetic.
* `MatmulGradientConv2D`: oneDNN's convolution, with its kernel gradient computed as matrix products.

Inference forms rearrange the trained weights: `SubPixelDeconvolution` and `PhaseDeconvolution` compute a
transposed convolution as forward convolutions, whose weights oneDNN converts once per process when told they
are frozen (`cli.assume_frozen_weights`); and each convolution holds its weights cast once to the compute dtype
instead of on every call. All forms give Keras's outputs up to summation order.
"""

from __future__ import annotations

from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from pix2pix_tf.config import Config
from pix2pix_tf.runtime import cpu_has_avx512

Purpose = Literal["train", "inference"]


class FusedBatchNormalization(layers.BatchNormalization):
    """Keras BatchNormalization over the channels of NHWC tensors, computed by TensorFlow's fused kernel.

    Same variables, statistics (biased batch variance, `momentum` moving averages) and outputs as the Keras
    layer, which upcasts to float32 and normalises in separate element-wise ops; the fused op reads
    bfloat16/float16 activations directly, in one pass each way. Synchronised (cross-replica) statistics fall
    back to the Keras implementation.
    """

    def call(self, inputs: tf.Tensor, training: bool | None = None, mask: tf.Tensor | None = None) -> tf.Tensor:
        if self.synchronized or mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        training = bool(training) and self.trainable
        gamma = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([inputs.shape[-1]], tf.float32)
        beta = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([inputs.shape[-1]], tf.float32)
        if not training:
            return tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance), epsilon=self.epsilon,
                is_training=False).y
        empty = tf.constant([], tf.float32)
        y, mean, unbiased_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
            is_training=True)
        # The kernel returns the variance with Bessel's correction; Keras keeps the biased one.
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = unbiased_variance * tf.maximum(count - 1.0, 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return y


def stride2_conv_as_matmul(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """A 4x4, stride-2, 'same' convolution (`kernel` [4, 4, C_in, C_out]) as one matrix product.

    The padded input goes through space_to_depth(2), so the convolution becomes a 2x2, stride-1 one on blocks
    (kernel row 2a + dy, column 2b + dx). Its four shifted views, put in the kernel's own (a, dy, b, dx, c) order,
    make one row of 16 C_in values per output pixel, and the kernel reshaped (no copy) is the [16 C_in, C_out]
    matrix. Only the small picture is rearranged, never the kernel. Same multiply-adds as the convolution.
    """
    batch, height, width, channels = tf.shape(inputs)[0], tf.shape(inputs)[1], tf.shape(inputs)[2], inputs.shape[-1]
    out_h, out_w = (height + 1) // 2, (width + 1) // 2
    padded = tf.pad(inputs, [[0, 0], [1, 1 + height % 2], [1, 1 + width % 2], [0, 0]])
    blocks = tf.nn.space_to_depth(padded, 2)  # depth order (dy, dx, c)
    # tf.slice, not Python slicing: its gradient is a pad, while a strided slice's is a scatter.
    views = tf.stack([tf.slice(blocks, [0, a, b, 0], [-1, out_h, out_w, -1]) for a in (0, 1) for b in (0, 1)], axis=3)
    views = tf.reshape(views, [batch, out_h, out_w, 2, 2, 2, 2, channels])  # (a, b, dy, dx, c)
    rows = tf.reshape(tf.transpose(views, [0, 1, 2, 3, 5, 4, 6, 7]), [-1, 16 * channels])  # (a, dy, b, dx, c)
    product = tf.matmul(rows, tf.reshape(kernel, [16 * channels, -1]))
    return tf.reshape(product, [batch, out_h, out_w, kernel.shape[-1]])


def stride2_transposed_conv_as_matmul(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """A 4x4, stride-2, 'same' transposed convolution (`kernel` [4, 4, C_out, C_in], Keras's layout) as one
    matrix product and an overlap-add.

    Each input pixel times the [C_in, 16 C_out] kernel matrix gives its 4x4 patch of output contributions.
    Kernel row 2a + r of input row i lands on output row 2 (i + a) + r - 1: in 2x2 output blocks, block i + a at
    phase r, one row late. So the four (a, b) quarters of the patches, each shifted by (a, b) blocks, add up to
    the output in blocks, which interleaved and cropped by one pixel on each side is the picture. Same
    multiply-adds as the transposed convolution.
    """
    batch, height, width, channels = tf.shape(inputs)[0], tf.shape(inputs)[1], tf.shape(inputs)[2], inputs.shape[-1]
    filters = kernel.shape[2]
    patches = tf.matmul(tf.reshape(inputs, [-1, channels]), tf.reshape(kernel, [16 * filters, channels]),
                        transpose_b=True)
    patches = tf.reshape(patches, [batch, height, width, 2, 2, 2, 2, filters])  # kernel row (a, r), column (b, s)
    # The quarters come out of one transpose and an unstack, never strided slices (whose gradients are
    # scatters); the crop is a tf.slice, whose gradient is a pad.
    quarters = tf.unstack(tf.reshape(tf.transpose(patches, [3, 5, 0, 1, 2, 4, 6, 7]),
                                     [4, batch, height, width, 2, 2, filters]))  # (a, b) order
    blocks = tf.add_n([tf.pad(quarters[2 * a + b], [[0, 0], [a, 1 - a], [b, 1 - b], [0, 0], [0, 0], [0, 0]])
                       for a in (0, 1) for b in (0, 1)])  # [N, H + 1, W + 1, r, s, C_out]
    pixels = tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4, 5]), [batch, 2 * height + 2, 2 * width + 2, filters])
    return tf.slice(pixels, [0, 1, 1, 0], [-1, 2 * height, 2 * width, -1])


def conv_kernel_gradient_as_matmuls(inputs: tf.Tensor, output_gradient: tf.Tensor, strides: int) -> tf.Tensor:
    """The kernel gradient of a 4x4, 'same' convolution of stride 1 or 2, as one matrix product per tap.

    Stride 1: tap (i, j) met the padded input shifted by (i, j), so its [C_in, C_out] gradient is that view's
    pixels (rows) transposed times the output gradient's. Stride 2: on the padded input's 2x2 blocks
    (space_to_depth, as in `stride2_conv_as_matmul`) the convolution has stride 1 and 2x2 taps, each a
    [4 C_in, C_out] product. Same multiply-adds as oneDNN's kernel gradient.
    """
    height, width, channels = tf.shape(inputs)[1], tf.shape(inputs)[2], inputs.shape[-1]
    gradient_rows = tf.reshape(output_gradient, [-1, output_gradient.shape[-1]])
    if strides == 1:  # TensorFlow's 'same' padding puts the odd pixel after
        padded, taps, out_h, out_w = tf.pad(inputs, [[0, 0], [1, 2], [1, 2], [0, 0]]), 4, height, width
    else:
        padded = tf.nn.space_to_depth(tf.pad(inputs, [[0, 0], [1, 1 + height % 2], [1, 1 + width % 2], [0, 0]]), 2)
        taps, out_h, out_w = 2, (height + 1) // 2, (width + 1) // 2
    per_tap: list[tf.Tensor] = []
    for i in range(taps):
        for j in range(taps):
            # Each tap's view is copied out only after the previous tap's product, so one view lives at a time.
            with tf.control_dependencies(per_tap[-1:]):
                view = tf.slice(padded, [0, i, j, 0], [-1, out_h, out_w, -1])
            per_tap.append(tf.matmul(tf.reshape(view, [-1, padded.shape[-1]]), gradient_rows, transpose_a=True))
    if strides == 1:
        return tf.reshape(tf.stack(per_tap), [4, 4, channels, -1])
    blocks = tf.reshape(tf.stack(per_tap), [2, 2, 2, 2, channels, -1])  # tap (a, b), then (dy, dx) in the block
    return tf.reshape(tf.transpose(blocks, [0, 2, 1, 3, 4, 5]), [4, 4, channels, -1])  # kernel row 2a + dy


class MatmulConv2D(layers.Conv2D):
    """A 4x4, stride-2, 'same' Conv2D computed by `stride2_conv_as_matmul`."""

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return stride2_conv_as_matmul(inputs, kernel)


class MatmulConv2DTranspose(layers.Conv2DTranspose):
    """A 4x4, stride-2, 'same' Conv2DTranspose computed by `stride2_transposed_conv_as_matmul`."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        outputs = stride2_transposed_conv_as_matmul(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


class MatmulGradientConv2D(layers.Conv2D):
    """A 4x4, 'same' Conv2D of stride 1 or 2: oneDNN's convolution and input gradient, and
    `conv_kernel_gradient_as_matmuls` for the kernel gradient."""

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        strides = self.strides[0]

        @tf.custom_gradient
        def convolve(x: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, Any]:  # k: a tensor, never the variable
            def gradients(output_gradient: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                input_gradient = tf.nn.conv2d_transpose(output_gradient, k, tf.shape(x), strides, "SAME")
                return input_gradient, conv_kernel_gradient_as_matmuls(x, output_gradient, strides)
            return tf.nn.conv2d(x, k, strides, "SAME"), gradients

        return convolve(inputs, tf.convert_to_tensor(kernel))


# Which tap of a stride-2, 4-tap transposed convolution feeds output phase r (0: even, 1: odd) from input
# offset a - 1 (a = 0, 1, 2); derived from y[2i] = z[i] w[1] + z[i-1] w[3], y[2i+1] = z[i+1] w[0] + z[i] w[2].
_PHASE_TAPS = {(0, 0): 3, (0, 1): 1, (1, 1): 2, (1, 2): 0}


def subpixel_kernel(deconv_kernel: np.ndarray) -> np.ndarray:
    """The [3, 3, C_in, 4 C_out] kernel that, followed by depth_to_space(2), computes the stride-2, 4x4, 'same'
    transposed convolution with `deconv_kernel` ([4, 4, C_out, C_in], Keras's layout)."""
    _, _, out_ch, in_ch = deconv_kernel.shape
    kernel = np.zeros([3, 3, in_ch, 4 * out_ch], deconv_kernel.dtype)
    for (row_phase, a), row_tap in _PHASE_TAPS.items():
        for (col_phase, b), col_tap in _PHASE_TAPS.items():
            phase = row_phase * 2 + col_phase
            kernel[a, b, :, phase * out_ch:(phase + 1) * out_ch] = deconv_kernel[row_tap, col_tap].T
    return kernel


def phase_kernels(deconv_kernel: np.ndarray) -> list[np.ndarray]:
    """The four [2, 2, C_in, C_out] kernels, one per output phase (row parity r, column parity s; index 2 r + s),
    that compute the stride-2, 4x4, 'same' transposed convolution with `deconv_kernel` ([4, 4, C_out, C_in],
    Keras's layout) as 'valid' convolutions of the input padded by 1 and cropped at offset (r, s)."""
    _, _, out_ch, in_ch = deconv_kernel.shape
    kernels = [np.zeros([2, 2, in_ch, out_ch], deconv_kernel.dtype) for _ in range(4)]
    for (row_phase, a), row_tap in _PHASE_TAPS.items():
        for (col_phase, b), col_tap in _PHASE_TAPS.items():
            kernel = kernels[row_phase * 2 + col_phase]
            kernel[a - row_phase, b - col_phase] = deconv_kernel[row_tap, col_tap].T
    return kernels


class SubPixelDeconvolution(layers.Layer):
    """A stride-2, 4x4, 'same' Conv2DTranspose as a 3x3 convolution to 4 x filters channels and
    depth_to_space(2), with weights from `subpixel_kernel`."""

    def __init__(self, filters: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape: tuple) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(3, 3, input_shape[-1], 4 * self.filters))
        self.bias = self.add_weight(name="bias", shape=(4 * self.filters,), initializer="zeros")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        outputs = tf.nn.conv2d(inputs, self.kernel, strides=1, padding="SAME") + self.bias
        return tf.nn.depth_to_space(outputs, 2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


class PhaseDeconvolution(layers.Layer):
    """A stride-2, 4x4, 'same' Conv2DTranspose without bias as four 2x2 'valid' convolutions, one per output
    phase, of the input padded by 1 (`phase_kernels`), interleaved by depth_to_space(2)."""

    def __init__(self, filters: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape: tuple) -> None:
        self.phase_kernels = [self.add_weight(name=f"kernel_{phase}", shape=(2, 2, input_shape[-1], self.filters))
                              for phase in range(4)]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
        phases = [tf.nn.conv2d(padded[:, r:r + height + 1, s:s + width + 1], self.phase_kernels[2 * r + s],
                               strides=1, padding="VALID") for r in (0, 1) for s in (0, 1)]
        return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


# The rules' thresholds, as measured (bench/README.md, "What the speed rests on": "Every layer in its fastest form"
# for training; "The export's innermost decoder layers as matrix products", "Weights converted once, and the
# decoder in a form that lets them be" and "Inference copy of the generator" for inference; the float32 ones by
# bench/layer_speed.py on a CPU without bfloat16). Pixels are counted at the working size.
MATMUL_MAX_ENCODER_PIXELS = 1024  # training: MatmulConv2D up to this many pixels fed per batch (stride 2)
MATMUL_GRADIENT_MAX_SIDE = 128  # training: else MatmulGradientConv2D up to this many pixels a side, and stride 1
MATMUL_MAX_DECODER_PIXELS = 2048  # training: MatmulConv2DTranspose up to this many pixels fed per batch
SUBPIXEL_MAX_FILTERS = 4  # inference: SubPixelDeconvolution for at most this many outputs (the output layer)
MATMUL_MAX_SIDE = 4  # inference: MatmulConv2DTranspose for bias-free ones fed at most this many pixels a side
PHASE_MAX_SIDE = 16  # inference: else PhaseDeconvolution up to this many pixels a side
FP32_PHASE_MAX_SIDE = 32  # inference in float32: PhaseDeconvolution for bias-free ones up to this side, else Keras's

PLAIN_CLASS = {FusedBatchNormalization: layers.BatchNormalization, MatmulConv2D: layers.Conv2D,
               MatmulGradientConv2D: layers.Conv2D, MatmulConv2DTranspose: layers.Conv2DTranspose}


def use_matmul_forms() -> bool:
    """The matrix-product forms are for CPUs; a GPU keeps cuDNN's convolutions."""
    return not tf.config.list_physical_devices("GPU")


def is_4x4_same(layer: layers.Layer) -> bool:
    """A 4x4, 'same', undilated (transposed) convolution without activation: what the matrix forms compute."""
    return (isinstance(layer, layers.Conv2D | layers.Conv2DTranspose) and tuple(layer.kernel_size) == (4, 4)
            and layer.padding == "same" and tuple(layer.dilation_rate) == (1, 1)
            and layer.get_config()["activation"] == "linear")


def training_form(layer: layers.Layer, fed_side: int, batch_size: int, role: str) -> type[layers.Layer]:
    """The form that trains `layer` fastest on this device, fed `fed_side` pixels a side at the working size.

    `role`: "input" for the network's first convolution (which reads the few channels of the picture and keeps
    oneDNN's form), "output" for its last, else "hidden". The discriminator's stride-1 convolutions (its last
    hidden layer and its logits) depend on the kernels: in float32 without AVX-512 (oneDNN's AVX2 kernel
    gradients, slow for them, most for the single filter of the logits) both take `MatmulGradientConv2D`; in
    float32 with AVX-512 both keep oneDNN's form; in bfloat16 the hidden one takes `MatmulGradientConv2D` and
    the logits oneDNN's form.
    """
    plain = PLAIN_CLASS.get(type(layer), type(layer))
    if plain is layers.BatchNormalization:
        return FusedBatchNormalization
    if not use_matmul_forms() or not is_4x4_same(layer) or role == "input":
        return plain
    if plain is layers.Conv2DTranspose and tuple(layer.strides) == (2, 2):
        small = batch_size * fed_side**2 <= MATMUL_MAX_DECODER_PIXELS
        return MatmulConv2DTranspose if small or role == "output" else plain
    if plain is not layers.Conv2D:
        return plain
    if layer.strides[0] == 1:
        if layer.compute_dtype == "float32":
            return plain if cpu_has_avx512() else MatmulGradientConv2D
        return plain if role == "output" else MatmulGradientConv2D
    if role == "output" or layer.strides[0] != 2:
        return plain
    if batch_size * fed_side**2 <= MATMUL_MAX_ENCODER_PIXELS:
        return MatmulConv2D
    return MatmulGradientConv2D if fed_side <= MATMUL_GRADIENT_MAX_SIDE else plain


def inference_form(layer: layers.Layer, fed_side: int, role: str = "hidden") -> type[layers.Layer]:
    """The form that computes `layer` fastest in the export, fed `fed_side` pixels a side at the working size
    (`role` as for `training_form`).

    The rules differ by the layer's compute dtype: oneDNN's bfloat16 and float32 kernels (the latter all a CPU
    without bfloat16 has) rank the forms differently, and in float32 so do its AVX-512 and AVX2 kernels for the
    output layer (a matrix product with AVX-512, oneDNN's form with AVX2).
    """
    plain = PLAIN_CLASS.get(type(layer), type(layer))
    if plain is layers.BatchNormalization:
        return FusedBatchNormalization
    if plain is not layers.Conv2DTranspose or not is_4x4_same(layer) or tuple(layer.strides) != (2, 2):
        return plain
    if layer.compute_dtype == "float32":
        if role == "output" and cpu_has_avx512():
            return MatmulConv2DTranspose
        return PhaseDeconvolution if not layer.use_bias and fed_side <= FP32_PHASE_MAX_SIDE else plain
    if layer.filters <= SUBPIXEL_MAX_FILTERS:
        return SubPixelDeconvolution
    if layer.use_bias:
        return plain
    if fed_side <= MATMUL_MAX_SIDE:
        return MatmulConv2DTranspose
    return PhaseDeconvolution if fed_side <= PHASE_MAX_SIDE else plain


def fed_sides(model: keras.Model, image_size: int) -> dict[str, int]:
    """The larger side, in pixels, of the input of each of `model`'s convolutions (in the model's order), for
    inputs of `image_size`."""
    convolutions = [layer for layer in model.layers if isinstance(layer, layers.Conv2D | layers.Conv2DTranspose)]
    probe = keras.Model(model.inputs, {layer.name: layer.input for layer in convolutions})
    shapes = probe.compute_output_shape([(1, image_size, image_size, x.shape[-1]) for x in model.inputs])
    return {layer.name: max(shapes[layer.name][1:3]) for layer in convolutions}


def chosen_forms(model: keras.Model, config: Config, purpose: Purpose) -> dict[str, type[layers.Layer]]:
    """The class each of `model`'s layers takes for `purpose` under `config.layer_forms`, by layer name."""
    if config.layer_forms == "plain":
        return {layer.name: PLAIN_CLASS.get(type(layer), type(layer)) for layer in model.layers}
    sides = fed_sides(model, config.image_size)
    convolutions = list(sides)
    roles = {convolutions[0]: "input", convolutions[-1]: "output"}
    if purpose == "inference":
        return {layer.name: inference_form(layer, sides.get(layer.name, 0), roles.get(layer.name, "hidden"))
                for layer in model.layers}
    return {layer.name: training_form(layer, sides.get(layer.name, 0), config.batch_size,
                                      roles.get(layer.name, "hidden")) for layer in model.layers}


def converted_weights(source: layers.Layer, form: type[layers.Layer]) -> list[np.ndarray]:
    """`source`'s weights rearranged for its copy in `form`."""
    weights = [np.asarray(w) for w in source.get_weights()]
    if form is SubPixelDeconvolution:
        bias = weights[1] if source.use_bias else np.zeros([source.filters], np.float32)
        return [subpixel_kernel(weights[0]), np.tile(bias, 4)]
    if form is PhaseDeconvolution:
        return phase_kernels(weights[0])
    return weights


def apply_layer_forms(model: keras.Model, config: Config, purpose: Purpose = "train") -> keras.Model:
    """A copy of `model` (layer names kept) with each layer in the form `chosen_forms` gives it, holding the
    same weights, or `model` itself when no layer changes.

    For "inference" each convolution also holds its weights in the compute dtype (under a mixed precision
    policy, cast once instead of on every call: a SavedModel half the size), unless `config.layer_forms` is
    "plain".
    """
    forms = chosen_forms(model, config, purpose)
    cast_once = purpose == "inference" and config.layer_forms == "fast"

    def recast(layer: layers.Layer) -> bool:
        return (cast_once and isinstance(layer, layers.Conv2D | layers.Conv2DTranspose)
                and layer.compute_dtype != layer.variable_dtype)

    if not any(forms[layer.name] is not type(layer) or recast(layer) for layer in model.layers):
        return model

    def clone(layer: layers.Layer) -> layers.Layer:
        form = forms[layer.name]
        if form in (SubPixelDeconvolution, PhaseDeconvolution):
            return form(layer.filters, name=layer.name, dtype=layer.compute_dtype)
        options = layer.get_config()
        return form.from_config({**options, "dtype": layer.compute_dtype} if recast(layer) else options)

    copy = keras.models.clone_model(model, clone_function=clone)
    for source, target in zip(model.layers, copy.layers, strict=True):
        for value, variable in zip(converted_weights(source, forms[source.name]), target.weights, strict=True):
            variable.assign(tf.cast(value, variable.dtype))
    return copy
