"""pix2pix networks in the Keras functional API: U-Net / encoder-decoder generator, PatchGAN discriminator.

Layer recipe from Isola et al. 2017 (appendix 6.1.1): 4x4 convolutions with stride 2, Conv-Norm-LeakyReLU(0.2)
encoder blocks (no norm on the first), Deconv-Norm-Dropout(0.5)-ReLU decoder blocks, weights drawn from
N(0, 0.02). Layers that end in float32 (tanh output, discriminator logits) keep the loss math in float32
under mixed precision.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from pix2pix_tf import color
from pix2pix_tf.config import Config

KERNEL = 4
# --chroma-head classify (Zhang et al. 2016): the generator predicts a distribution over ab bins of AB_BIN_SIZE a*b*
# units a side, at 1 / CLASS_STRIDE of the working size, and its output is their annealed mean, upsampled.
AB_BIN_SIZE = 10.0
CLASS_STRIDE = 4


def init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def channels_for(config: Config) -> tuple[int, int]:
    """(input, output) channels: Lab maps L -> ab, RGB and paired sets map 3 -> 3."""
    return (1, 2) if config.color_space == "lab" else (3, 3)


def generator_depth(image_size: int) -> int:
    """Number of stride-2 downsamplings: 8 at 256, 7 at 128, 6 at 64 (down to a 1x1 bottleneck)."""
    depth = int(round(math.log2(image_size)))
    if 2**depth != image_size:
        raise ValueError(f"image_size must be a power of two for the generator, got {image_size}")
    return depth


class FusedBatchNormalization(layers.BatchNormalization):
    """Keras BatchNormalization over the channels of NHWC tensors, computed by TensorFlow's fused kernel.

    Same variables, statistics (biased batch variance, `momentum` moving averages) and outputs as the Keras
    layer, whose TensorFlow backend upcasts to float32 and normalises in separate element-wise ops; the fused
    op reads bfloat16/float16 activations directly and does each direction in one pass. Synchronised
    (cross-replica) statistics fall back to the Keras implementation.
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


class SubPixelDeconvolution(layers.Layer):
    """Inference form of a stride-2, 4x4, 'same' Conv2DTranspose: a 3x3 convolution to 4 x filters channels
    and depth_to_space(2), with weights from `subpixel_kernel`. Same outputs up to summation order; oneDNN runs
    the transposed form of a layer with few output channels (the generator's 3-channel output) slowly."""

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


class PhaseDeconvolution(layers.Layer):
    """Inference form of a stride-2, 4x4, 'same' Conv2DTranspose without bias: four 2x2 'valid' convolutions,
    one per output phase, of the input padded by 1 (`phase_kernels`), interleaved by depth_to_space(2).

    Same outputs and multiply-adds as the transposed form, up to summation order. It is made of forward
    convolutions, so in a process told that weights never change (TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1, as the
    inference tools run) oneDNN converts its kernels to its blocked layout once; a transposed convolution's it
    converts on every call, which on a CPU costs more than the arithmetic itself for the generator's inner
    layers (small pictures, up to 8 M weights each).
    """

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
    # tf.slice, not Python slicing: its gradient is a pad, while a strided slice's is a scatter several times slower.
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
    # The quarters come out of one transpose and an unstack, never strided slices, whose scatter gradients cost
    # more than the matrix product; the crop is a tf.slice, whose gradient is a pad.
    quarters = tf.unstack(tf.reshape(tf.transpose(patches, [3, 5, 0, 1, 2, 4, 6, 7]),
                                     [4, batch, height, width, 2, 2, filters]))  # (a, b) order
    blocks = tf.add_n([tf.pad(quarters[2 * a + b], [[0, 0], [a, 1 - a], [b, 1 - b], [0, 0], [0, 0], [0, 0]])
                       for a in (0, 1) for b in (0, 1)])  # [N, H + 1, W + 1, r, s, C_out]
    pixels = tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4, 5]), [batch, 2 * height + 2, 2 * width + 2, filters])
    return tf.slice(pixels, [0, 1, 1, 0], [-1, 2 * height, 2 * width, -1])


class MatmulConv2D(layers.Conv2D):
    """A 4x4, stride-2, 'same' Conv2D computed by `stride2_conv_as_matmul`: the same variables and outputs (up to
    summation order). On a CPU it trains faster for the generator's inner layers, small pictures with large kernels,
    where oneDNN's per-call conversion of the kernel to its own layout costs more than the arithmetic."""

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return stride2_conv_as_matmul(inputs, kernel)


class MatmulConv2DTranspose(layers.Conv2DTranspose):
    """A 4x4, stride-2, 'same' Conv2DTranspose computed by `stride2_transposed_conv_as_matmul`: the same variables
    and outputs (up to summation order), faster to train on a CPU (`MatmulConv2D`)."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        outputs = stride2_transposed_conv_as_matmul(inputs, self.kernel)
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


def conv_kernel_gradient_as_matmuls(inputs: tf.Tensor, output_gradient: tf.Tensor, strides: int) -> tf.Tensor:
    """The kernel gradient of a 4x4, 'same' convolution of stride 1 or 2, as one matrix product per tap.

    Stride 1: tap (i, j) met the padded input shifted by (i, j), so its [C_in, C_out] gradient is that view's
    pixels (rows) transposed times the output gradient's. Stride 2: on the padded input's 2x2 blocks
    (space_to_depth, as in `stride2_conv_as_matmul`) the convolution has stride 1 and 2x2 taps, each a
    [4 C_in, C_out] product. Same multiply-adds as oneDNN's kernel gradient, which on a CPU runs at about two
    thirds of the rate of its forward convolution (bench/README.md).
    """
    height, width, channels = tf.shape(inputs)[1], tf.shape(inputs)[2], inputs.shape[-1]
    gradient_rows = tf.reshape(output_gradient, [-1, output_gradient.shape[-1]])
    if strides == 1:  # TensorFlow's 'same' padding puts the odd pixel after
        padded, taps, out_h, out_w = tf.pad(inputs, [[0, 0], [1, 2], [1, 2], [0, 0]]), 4, height, width
    else:
        padded = tf.nn.space_to_depth(tf.pad(inputs, [[0, 0], [1, 1 + height % 2], [1, 1 + width % 2], [0, 0]]), 2)
        taps, out_h, out_w = 2, (height + 1) // 2, (width + 1) // 2
    per_tap = [tf.matmul(tf.reshape(tf.slice(padded, [0, i, j, 0], [-1, out_h, out_w, -1]), [-1, padded.shape[-1]]),
                         gradient_rows, transpose_a=True)
               for i in range(taps) for j in range(taps)]
    if strides == 1:
        return tf.reshape(tf.stack(per_tap), [4, 4, channels, -1])
    blocks = tf.reshape(tf.stack(per_tap), [2, 2, 2, 2, channels, -1])  # tap (a, b), then (dy, dx) in the block
    return tf.reshape(tf.transpose(blocks, [0, 2, 1, 3, 4, 5]), [4, 4, channels, -1])  # kernel row 2a + dy


class MatmulGradientConv2D(layers.Conv2D):
    """A 4x4, 'same' Conv2D of stride 1 or 2 whose kernel gradient is `conv_kernel_gradient_as_matmuls`: the same
    variables, outputs and input gradient as Keras's layer (oneDNN's convolutions), a faster kernel gradient on a
    CPU for mid-sized pictures."""

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        strides = self.strides[0]

        @tf.custom_gradient
        def convolve(x: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, Any]:  # k: a tensor, never the variable
            def gradients(output_gradient: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                input_gradient = tf.nn.conv2d_transpose(output_gradient, k, tf.shape(x), strides, "SAME")
                return input_gradient, conv_kernel_gradient_as_matmuls(x, output_gradient, strides)
            return tf.nn.conv2d(x, k, strides, "SAME"), gradients

        return convolve(inputs, tf.convert_to_tensor(kernel))


# Where the networks train with the forms above instead of oneDNN's (transposed) convolutions, on a CPU
# (bench/README.md, "Every layer in its fastest form"). Measured forward + backward per layer, bf16, batch 1-8:
# `MatmulConv2D` is fastest for a stride-2 convolution fed at most MATMUL_MAX_ENCODER_PIXELS (batch x height x
# width, at the working size); `MatmulGradientConv2D` for the larger ones fed up to MATMUL_GRADIENT_MAX_SIDE px a
# side, and for stride 1; `MatmulConv2DTranspose` for a decoder layer fed at most MATMUL_MAX_DECODER_PIXELS (at
# 4096, oneDNN's transposed convolution was as fast at batch 4 and faster at batch 1, and beyond that faster).
MATMUL_MAX_ENCODER_PIXELS = 1024
MATMUL_GRADIENT_MAX_SIDE = 128
MATMUL_MAX_DECODER_PIXELS = 2048


def use_matmul_forms() -> bool:
    """The matrix-product forms are measured on CPUs only; a GPU keeps cuDNN's convolutions."""
    return not tf.config.list_physical_devices("GPU")


def conv_class(fed_side: int, batch_size: int, strides: int = 2) -> type[layers.Conv2D]:
    """The form of a hidden 4x4 'same' convolution (at least 64 input channels) fed `fed_side` pixels a side at
    the working size that trains fastest on this device: Keras's, `MatmulConv2D` or `MatmulGradientConv2D` (the
    same variables and outputs)."""
    if not use_matmul_forms():
        return layers.Conv2D
    if strides == 2 and batch_size * fed_side**2 <= MATMUL_MAX_ENCODER_PIXELS:
        return MatmulConv2D
    if strides == 1 or fed_side <= MATMUL_GRADIENT_MAX_SIDE:
        return MatmulGradientConv2D
    return layers.Conv2D


def normalization(kind: str, name: str, synchronized: bool = False) -> layers.Layer:
    """`synchronized` batch norm computes its statistics over the global batch, across all replicas."""
    if kind == "batch":
        return FusedBatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    raise ValueError(f"unknown normalization {kind!r}")


def down_block(x: keras.KerasTensor, filters: int, norm: str, name: str, leaky: bool = True,
               sync: bool = False, conv: type[layers.Conv2D] = layers.Conv2D) -> keras.KerasTensor:
    """Conv(4, stride 2) -> [Norm] -> LeakyReLU(0.2) (or ReLU, for the innermost block); `conv`: the convolution's
    form (`conv_class`)."""
    x = conv(filters, KERNEL, strides=2, padding="same", kernel_initializer=init(),
             use_bias=norm == "none", name=f"{name}_conv")(x)
    if norm != "none":
        x = normalization(norm, f"{name}_norm", sync)(x)
    if leaky:
        return layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def up_block(x: keras.KerasTensor, filters: int, dropout: float, name: str,
             sync: bool = False, matmul: bool = False) -> keras.KerasTensor:
    """ConvTranspose(4, stride 2) -> BatchNorm -> [Dropout] -> ReLU; `matmul`: the transposed convolution in its
    `MatmulConv2DTranspose` form."""
    deconv = MatmulConv2DTranspose if matmul else layers.Conv2DTranspose
    x = deconv(filters, KERNEL, strides=2, padding="same", kernel_initializer=init(),
               use_bias=False, name=f"{name}_deconv")(x)
    x = normalization("batch", f"{name}_norm", sync)(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)


@functools.cache
def ab_bin_centres() -> np.ndarray:
    """[Q, 2] centres, in the network's [-1, 1] units, of the AB_BIN_SIZE-sided a*b* bins that sRGB colours reach
    (Q = 261; Zhang et al., who count differently, have 313), found by converting a 48-level grid of sRGB
    colours."""
    levels = np.linspace(0.0, 1.0, 48, dtype=np.float32)
    rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    ab = color.rgb_to_lab(rgb).numpy()[:, 1:]
    cells = np.unique(np.round(ab / AB_BIN_SIZE), axis=0)
    return (cells * AB_BIN_SIZE / color.AB_SCALE).astype(np.float32)


class AnnealedMean(layers.Layer):
    """Logits over the ab bins [..., Q] -> ab [..., 2]: the mean of the bin centres under softmax(logits / T).

    T = 1 is the distribution's mean, which averages plausible colours into grey; T -> 0 its mode, which may
    flicker between neighbouring pixels. Zhang et al. 2016 interpolate with T = 0.38.
    """

    def __init__(self, temperature: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, logits: tf.Tensor) -> tf.Tensor:
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32) / self.temperature, axis=-1)
        return tf.tensordot(probabilities, tf.constant(ab_bin_centres()), axes=[[-1], [0]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}


class BilinearUpsampling(layers.Layer):
    """Pictures of any size scaled up `factor` times, bilinearly (Keras's UpSampling2D needs a fixed size)."""

    def __init__(self, factor: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(inputs, tf.shape(inputs)[1:3] * self.factor, method="bilinear")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


def build_generator(config: Config) -> keras.Model:
    """U-Net (skips on) or encoder-decoder (skips off) with depth log2(image_size).

    On a CPU the encoder's convolutions after the first take the forms of `conv_class`, and the decoder's layers
    `MatmulConv2DTranspose` (chosen by their input size at `config.image_size` and `config.batch_size`): the same
    network and variables.

    With `config.chroma_head == "classify"` the decoder stops at 1 / CLASS_STRIDE of the size, where a 1x1
    convolution gives logits over the ab bins (layer "chroma_logits"); the output is their `AnnealedMean` at
    `config.annealed_temperature`, upsampled bilinearly to the working size.
    """
    in_ch, out_ch = channels_for(config)
    depth = generator_depth(config.image_size)
    skips_on = config.generator == "unet"
    filters = [min(config.ngf * 2**i, config.ngf * 8) for i in range(depth)]
    decoder_matmul = [use_matmul_forms() and config.batch_size * 4**i <= MATMUL_MAX_DECODER_PIXELS
                      for i in range(depth - 1)]

    inputs = keras.Input((None, None, in_ch), name="input_image")
    x = inputs
    skips = []
    for i, f in enumerate(filters):
        # No norm on the first block (the paper) nor on the 1x1 innermost one, which has nothing to normalise
        # over at batch size 1; the innermost output feeds the decoder, whose blocks start with ReLU.
        innermost = i == depth - 1
        norm = "none" if i == 0 or innermost else "batch"
        x = down_block(x, f, norm, name=f"down{i + 1}", leaky=not innermost, sync=config.sync_batchnorm,
                       conv=conv_class(config.image_size >> i, config.batch_size) if i > 0 else layers.Conv2D)
        skips.append(x)

    classify = config.chroma_head == "classify"
    decoder_filters = list(reversed(filters[:-1]))
    if classify:  # the blocks that would go past 1 / CLASS_STRIDE of the size
        decoder_filters = decoder_filters[:len(decoder_filters) + 1 - int(math.log2(CLASS_STRIDE))]
    for i, f in enumerate(decoder_filters):
        x = up_block(x, f, config.g_dropout if i < 3 else 0.0, name=f"up{depth - 1 - i}",
                     sync=config.sync_batchnorm, matmul=decoder_matmul[i])
        if skips_on:
            x = layers.Concatenate(name=f"skip{depth - 1 - i}")([x, skips[depth - 2 - i]])

    if classify:
        logits = layers.Conv2D(len(ab_bin_centres()), 1, kernel_initializer=init(), dtype="float32",
                               name="chroma_logits")(x)
        ab = AnnealedMean(config.annealed_temperature, dtype="float32", name="annealed_mean")(logits)
        outputs = BilinearUpsampling(CLASS_STRIDE, dtype="float32", name="output")(ab)
        return keras.Model(inputs, outputs, name=f"{config.generator}_classifying_generator")

    # The output layer's matrix-product form trained 1.2-1.4x as fast at 128 px (few output channels, small patches).
    output_deconv = MatmulConv2DTranspose if use_matmul_forms() else layers.Conv2DTranspose
    x = output_deconv(out_ch, KERNEL, strides=2, padding="same", kernel_initializer=init(), name="output_deconv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=f"{config.generator}_generator")


def build_discriminator(config: Config) -> keras.Model:
    """PatchGAN on the concatenated (input, target) pair; returns logits, one per patch.

    With d_layers=3 the receptive field is 70x70. Norm follows `d_norm`; `d_dropout` adds dropout after each
    normalised block (the study's BN + dropout discriminator). The hidden convolutions take the forms of
    `conv_class` (the same network and variables).
    """
    in_ch, out_ch = channels_for(config)
    source = keras.Input((None, None, in_ch), name="input_image")
    target = keras.Input((None, None, out_ch), name="target_image")
    x = layers.Concatenate(name="pair")([source, target])

    x = down_block(x, config.ndf, "none", name="d1")
    for i in range(1, config.d_layers + 1):
        filters = config.ndf * min(2**i, 8)
        strides = 2 if i < config.d_layers else 1
        conv = conv_class(config.image_size >> i, config.batch_size, strides)
        x = conv(filters, KERNEL, strides=strides, padding="same", kernel_initializer=init(),
                 use_bias=config.d_norm == "none", name=f"d{i + 1}_conv")(x)
        if config.d_norm != "none":
            x = normalization(config.d_norm, f"d{i + 1}_norm", config.sync_batchnorm)(x)
        if config.d_dropout > 0:
            x = layers.Dropout(config.d_dropout, name=f"d{i + 1}_dropout")(x)
        x = layers.LeakyReLU(0.2, name=f"d{i + 1}_act")(x)
    x = layers.Conv2D(1, KERNEL, strides=1, padding="same", kernel_initializer=init(), name="logits_conv")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model([source, target], logits, name="patchgan_discriminator")
