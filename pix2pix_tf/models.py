"""The pix2pix networks in the Keras functional API, as Isola et al. 2017 (appendix 6.1) write them.

Ck is a 4x4 convolution with k filters and stride 2 -> BatchNorm -> ReLU (LeakyReLU(0.2) in the encoder and
the discriminator; a transposed convolution in the decoder); CDk has Dropout(0.5) after the norm. Weights are
drawn from N(0, 0.02). At 256 px and ngf = ndf = 64:

* U-Net generator: encoder C64-C128-C256-C512-C512-C512-C512-C512 (no norm on the first block, nor on the 1x1
  innermost one), decoder CD512-CD512-CD512-C512-C256-C128-C64, each decoder block joined by a skip to its
  mirror in the encoder, then a transposed convolution to the output channels and tanh. Smaller images have one
  C512 fewer per halving (down to a 1x1 bottleneck); `ngf` scales the filters. `--generator encoder_decoder`:
  the same without the skips.
* 70x70 PatchGAN discriminator on the (input, target) pair: C64-C128-C256-C512, the first without norm and the
  last of stride 1, then a convolution to one logit per patch; `d_layers`, `d_norm` and `d_dropout` vary it.

Layers that end in float32 (tanh, logits) keep the loss math in float32 under mixed precision. The networks are
built from Keras's own layers, then given the forms `config.layer_forms` asks for (`layer_forms`).
"""

from __future__ import annotations

import math

import keras
from keras import layers

from pix2pix_tf import color
from pix2pix_tf.config import Config
from pix2pix_tf.layer_forms import apply_layer_forms

KERNEL = 4


def init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def generator_depth(image_size: int) -> int:
    """Number of stride-2 downsamplings: 8 at 256, 7 at 128, 6 at 64 (down to a 1x1 bottleneck)."""
    depth = int(round(math.log2(image_size)))
    if 2**depth != image_size:
        raise ValueError(f"image_size must be a power of two for the generator, got {image_size}")
    return depth


def normalization(kind: str, name: str, synchronized: bool = False) -> layers.Layer:
    """`synchronized` batch norm computes its statistics over the global batch, across all replicas."""
    if kind == "batch":
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=synchronized, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    raise ValueError(f"unknown normalization {kind!r}")


def finish_block(x: keras.KerasTensor, name: str, norm: str, dropout: float, activation: str,
                 sync: bool) -> keras.KerasTensor:
    """[Norm] -> [Dropout] -> LeakyReLU(0.2) ("leaky") or ReLU ("relu")."""
    if norm != "none":
        x = normalization(norm, f"{name}_norm", sync)(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    if activation == "leaky":
        return layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def conv_block(x: keras.KerasTensor, filters: int, name: str, strides: int = 2, norm: str = "batch",
               dropout: float = 0.0, activation: str = "leaky", sync: bool = False) -> keras.KerasTensor:
    """Ck / CDk of the encoder and the discriminator: Conv(4, `strides`) -> [Norm] -> [Dropout] -> activation."""
    x = layers.Conv2D(filters, KERNEL, strides=strides, padding="same", kernel_initializer=init(),
                      use_bias=norm == "none", name=f"{name}_conv")(x)
    return finish_block(x, name, norm, dropout, activation, sync)


def deconv_block(x: keras.KerasTensor, filters: int, name: str, dropout: float = 0.0,
                 sync: bool = False) -> keras.KerasTensor:
    """Ck / CDk of the decoder: ConvTranspose(4, stride 2) -> BatchNorm -> [Dropout] -> ReLU."""
    x = layers.Conv2DTranspose(filters, KERNEL, strides=2, padding="same", kernel_initializer=init(),
                               use_bias=False, name=f"{name}_deconv")(x)
    return finish_block(x, name, "batch", dropout, "relu", sync)


def build_generator(config: Config) -> keras.Model:
    """The U-Net (or, `config.generator == "encoder_decoder"`, the same without skips) for `config.image_size`."""
    in_ch, out_ch = color.channels_for(config.color_space)
    encoder = [config.ngf * min(2**i, 8) for i in range(generator_depth(config.image_size))]
    depth, sync = len(encoder), config.sync_batchnorm

    inputs = keras.Input((None, None, in_ch), name="input_image")
    x, skips = inputs, []
    for level, filters in enumerate(encoder, start=1):  # down1 ... down<depth>, the last at 1x1
        innermost = level == depth
        x = conv_block(x, filters, f"down{level}", norm="none" if level == 1 or innermost else "batch",
                       activation="relu" if innermost else "leaky", sync=sync)
        skips.append(x)
    for level in range(depth - 1, 0, -1):  # up<depth - 1> ... up1, each mirroring down<level>
        dropout = config.g_dropout if level >= depth - 3 else 0.0
        x = deconv_block(x, encoder[level - 1], f"up{level}", dropout=dropout, sync=sync)
        if config.generator == "unet":
            x = layers.Concatenate(name=f"skip{level}")([x, skips[level - 1]])

    x = layers.Conv2DTranspose(out_ch, KERNEL, strides=2, padding="same", kernel_initializer=init(),
                               name="output_deconv")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="output")(x)
    return apply_layer_forms(keras.Model(inputs, outputs, name=f"{config.generator}_generator"), config)


def build_discriminator(config: Config) -> keras.Model:
    """The PatchGAN on the concatenated (input, target) pair: logits, one per patch (70x70 at d_layers 3)."""
    in_ch, out_ch = color.channels_for(config.color_space)
    source = keras.Input((None, None, in_ch), name="input_image")
    target = keras.Input((None, None, out_ch), name="target_image")
    x = layers.Concatenate(name="pair")([source, target])

    x = conv_block(x, config.ndf, "d1", norm="none")
    for level in range(2, config.d_layers + 2):  # C128-C256-C512 at d_layers 3, the last of stride 1
        x = conv_block(x, config.ndf * min(2 ** (level - 1), 8), f"d{level}",
                       strides=2 if level <= config.d_layers else 1, norm=config.d_norm,
                       dropout=config.d_dropout, sync=config.sync_batchnorm)
    x = layers.Conv2D(1, KERNEL, strides=1, padding="same", kernel_initializer=init(), name="logits_conv")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(x)
    return apply_layer_forms(keras.Model([source, target], logits, name="patchgan_discriminator"), config)
