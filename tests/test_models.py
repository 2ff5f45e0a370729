"""Shapes and parameter counts of the pix2pix networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.color import AB_SCALE, rgb_to_lab
from pix2pix_tf.config import Config
from pix2pix_tf.models import (
    CLASS_STRIDE,
    MATMUL_GRADIENT_MAX_SIDE,
    MATMUL_MAX_DECODER_PIXELS,
    MATMUL_MAX_ENCODER_PIXELS,
    AnnealedMean,
    FusedBatchNormalization,
    MatmulConv2D,
    MatmulConv2DTranspose,
    MatmulGradientConv2D,
    PhaseDeconvolution,
    SubPixelDeconvolution,
    ab_bin_centres,
    build_discriminator,
    build_generator,
    generator_depth,
    phase_kernels,
    subpixel_kernel,
)


def trainable_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Exact trainable parameter counts at ngf = ndf = 64 (3 -> 3 channels). The paper's U-Net-256 is "~54.4M";
# the 70x70 PatchGAN "~2.77M".
GENERATOR_PARAMS = {64: 29_244_611, 128: 41_829_571, 256: 54_414_531}
DISCRIMINATOR_PARAMS = 2_768_705


@pytest.mark.parametrize("size", [64, 128, 256])
def test_paper_networks_have_the_stated_parameter_counts(size: int) -> None:
    config = Config(image_size=size)
    assert generator_depth(size) == {64: 6, 128: 7, 256: 8}[size]
    assert trainable_count(build_generator(config)) == GENERATOR_PARAMS[size]
    assert trainable_count(build_discriminator(config)) == DISCRIMINATOR_PARAMS


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("color_space,in_ch,out_ch", [("rgb", 3, 3), ("lab", 1, 2)])
def test_output_shapes_follow_size_and_colour_space(size: int, color_space: str, in_ch: int, out_ch: int) -> None:
    config = Config(image_size=size, color_space=color_space, ngf=4, ndf=4)
    generator, discriminator = build_generator(config), build_discriminator(config)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, in_ch)).astype("float32")
    y = generator(x, training=False).numpy()
    assert y.shape == (2, size, size, out_ch)
    assert np.all(np.abs(y) <= 1.0)
    logits = discriminator([x, y], training=False)
    assert logits.shape == (2, size // 8, size // 8, 1)  # 3 stride-2 layers, then two stride-1 ones


def test_ab_bins_cover_the_srgb_gamut_and_nothing_far_outside() -> None:
    centres = ab_bin_centres() * AB_SCALE
    assert 200 < len(centres) < 330  # Zhang et al. count 313 in-gamut bins of 10 x 10
    assert np.allclose(centres / 10.0, np.round(centres / 10.0), atol=1e-4)
    levels = np.linspace(0.0, 1.0, 7, dtype=np.float32)  # any sRGB colour lies within a bin's half-diagonal
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    ab = rgb_to_lab(colours).numpy()[:, 1:]
    nearest = np.min(np.linalg.norm(ab[:, None] - centres[None], axis=-1), axis=1)
    assert nearest.max() <= 5.0 * np.sqrt(2) + 1e-3


def test_annealed_mean_goes_from_the_mean_at_t1_to_the_mode_as_t_falls() -> None:
    centres = ab_bin_centres()
    logits = np.full([1, 1, 1, len(centres)], -30.0, np.float32)
    first, second = 10, len(centres) - 10
    logits[..., first], logits[..., second] = 1.0, 1.0 - np.log(2.0)  # probabilities 2/3 and 1/3
    mean = AnnealedMean(1.0)(logits).numpy()[0, 0, 0]
    assert np.allclose(mean, (2 * centres[first] + centres[second]) / 3, atol=1e-5)
    sharper = AnnealedMean(0.38)(logits).numpy()[0, 0, 0]
    weight = 2 ** (1 / 0.38)  # the odds 2 : 1 raised to 1 / T
    assert np.allclose(sharper, (weight * centres[first] + centres[second]) / (weight + 1), atol=1e-5)
    assert np.allclose(AnnealedMean(0.01)(logits).numpy()[0, 0, 0], centres[first], atol=1e-5)


@pytest.mark.parametrize("size", [64, 128])
def test_classifying_generator_predicts_bins_at_a_quarter_size_and_outputs_their_annealed_mean(size: int) -> None:
    config = Config(image_size=size, color_space="lab", chroma_head="classify", ngf=4)
    generator = build_generator(config)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 1)).astype("float32")
    logits = keras.Model(generator.inputs, generator.get_layer("chroma_logits").output)(x).numpy()
    assert logits.shape == (2, size // CLASS_STRIDE, size // CLASS_STRIDE, len(ab_bin_centres()))
    y = generator(x, training=False).numpy()
    assert y.shape == (2, size, size, 2)
    coarse = AnnealedMean(config.annealed_temperature)(logits).numpy()
    # Bilinear upsampling by 4 puts each coarse value at the centre of its block: the block's mean is close to it.
    blocks = y.reshape(2, size // 4, 4, size // 4, 4, 2).mean(axis=(2, 4))
    assert np.allclose(blocks[:, 1:-1, 1:-1], coarse[:, 1:-1, 1:-1], atol=0.02)
    assert np.all(np.abs(y) <= np.abs(ab_bin_centres()).max() + 1e-6)
    names = {layer.name for layer in generator.layers}  # the two outermost decoder layers are not built
    assert "up2_deconv" in names and not {"up1_deconv", "output_deconv"} & names


def test_encoder_decoder_has_no_skips_and_fewer_parameters() -> None:
    unet = build_generator(Config(image_size=64, ngf=8))
    plain = build_generator(Config(image_size=64, ngf=8, generator="encoder_decoder"))
    assert any(layer.name.startswith("skip") for layer in unet.layers)
    assert not any(layer.name.startswith("skip") for layer in plain.layers)
    assert trainable_count(plain) < trainable_count(unet)


def test_discriminator_options_change_the_network() -> None:
    base = Config(image_size=64, ndf=8)
    names = {layer.name for layer in build_discriminator(base.replace(d_dropout=0.3)).layers}
    assert "d2_dropout" in names and "d2_norm" in names
    instance = build_discriminator(base.replace(d_norm="instance"))
    assert type(instance.get_layer("d2_norm")).__name__ == "GroupNormalization"
    plain = build_discriminator(base.replace(d_norm="none"))
    assert not any(layer.name.endswith("_norm") for layer in plain.layers)
    deeper = build_discriminator(base.replace(d_layers=4))
    assert trainable_count(deeper) > trainable_count(build_discriminator(base))


def test_generator_refuses_sizes_that_are_not_powers_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        build_generator(Config(image_size=96))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("shape", [(1, 2, 2, 8), (4, 16, 16, 8)])
def test_fused_batch_norm_matches_keras_batch_norm(policy: str, shape: tuple[int, ...]) -> None:
    """Same outputs, gradients and moving statistics as keras.layers.BatchNormalization, train and inference."""
    x = tf.random.normal(shape, seed=0) * 3.0 + 1.0
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    fused_bn = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    for layer in (keras_bn, fused_bn):
        layer.build(shape)
        layer.gamma.assign(tf.linspace(0.5, 2.0, shape[-1]))
        layer.beta.assign(tf.linspace(-1.0, 1.0, shape[-1]))

    def run(layer: keras.layers.Layer) -> list[np.ndarray]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x, training=True), tf.float32)
            loss = tf.reduce_sum(y * tf.cos(x))
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        inference = tf.cast(layer(x, training=False), tf.float32)
        return [t.numpy() for t in [y, *grads, layer.moving_mean, layer.moving_variance, inference]]

    tolerance = 1e-5 if policy == "float32" else 1e-2
    for expected, got in zip(run(keras_bn), run(fused_bn), strict=True):
        np.testing.assert_allclose(got, expected, atol=tolerance * max(1.0, float(np.abs(expected).max())))
    assert keras_bn(x, training=True).dtype == fused_bn(x, training=True).dtype


@pytest.mark.parametrize("height, width", [(6, 6), (5, 7), (1, 1)])
def test_subpixel_form_computes_the_transposed_convolution(height: int, width: int) -> None:
    """A 3x3 convolution to 4 C channels and depth_to_space(2), with `subpixel_kernel`'s weights, equals Keras's
    stride-2 4x4 'same' Conv2DTranspose, borders included, for any input size."""
    keras.utils.set_random_seed(0)
    deconv = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same")
    inputs = tf.random.normal([2, height, width, 5], seed=1)
    deconv.build(inputs.shape)
    deconv.bias.assign(tf.random.normal([3], seed=2))
    expected = deconv(inputs).numpy()
    subpixel = SubPixelDeconvolution(3)
    subpixel.build(inputs.shape)
    subpixel.set_weights([subpixel_kernel(deconv.kernel.numpy()), np.tile(deconv.bias.numpy(), 4)])
    assert subpixel(inputs).shape == (2, 2 * height, 2 * width, 3)
    np.testing.assert_allclose(subpixel(inputs).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("height, width", [(6, 6), (5, 7), (1, 1)])
def test_phase_form_computes_the_transposed_convolution(height: int, width: int) -> None:
    """Four 2x2 convolutions of the padded input, one per output phase, with `phase_kernels`'s weights, equal
    Keras's stride-2 4x4 'same' Conv2DTranspose (no bias, as in the decoder), borders included."""
    keras.utils.set_random_seed(0)
    deconv = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same", use_bias=False)
    inputs = tf.random.normal([2, height, width, 5], seed=1)
    expected = deconv(inputs).numpy()
    phased = PhaseDeconvolution(6)
    phased.build(inputs.shape)
    phased.set_weights(phase_kernels(deconv.kernel.numpy()))
    assert phased(inputs).shape == (2, 2 * height, 2 * width, 6)
    np.testing.assert_allclose(phased(inputs).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("height, width", [(8, 8), (5, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("plain_class, form, strides", [
    (keras.layers.Conv2D, MatmulConv2D, 2),
    (keras.layers.Conv2DTranspose, MatmulConv2DTranspose, 2),
    (keras.layers.Conv2D, MatmulGradientConv2D, 1),
    (keras.layers.Conv2D, MatmulGradientConv2D, 2),
])
def test_training_forms_compute_the_convolutions(height: int, width: int, plain_class: type, form: type,
                                                 strides: int) -> None:
    """MatmulConv2D, MatmulConv2DTranspose and MatmulGradientConv2D give Keras's 4x4 'same' layer's outputs and
    gradients (input, kernel and bias) from the same variables, borders and odd sizes included."""
    keras.utils.set_random_seed(0)
    inputs = tf.random.normal([2, height, width, 5], seed=1)
    options = {"filters": 6, "kernel_size": 4, "strides": strides, "padding": "same", "use_bias": True}
    plain, matmul = plain_class(**options), form(**options)
    plain.build(inputs.shape)
    matmul.build(inputs.shape)
    matmul.set_weights([w + 0.1 for w in plain.get_weights()])  # a non-zero bias
    plain.set_weights(matmul.get_weights())

    def run(layer: keras.layers.Layer) -> list[np.ndarray]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs)
            loss = tf.reduce_sum(outputs * tf.cos(outputs))
        return [t.numpy() for t in [outputs, *tape.gradient(loss, [inputs, layer.kernel, layer.bias])]]

    expected, got = run(plain), run(matmul)
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape
        np.testing.assert_allclose(have, want, atol=1e-5)


def test_matmul_forms_compute_in_the_policy_dtype() -> None:
    """Under mixed_bfloat16 the training forms compute in bfloat16 from float32 variables, and the per-tap kernel
    gradient of MatmulGradientConv2D reaches its float32 kernel with the kernel's shape."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        conv, deconv = MatmulConv2D(4, 4, strides=2, padding="same"), MatmulConv2DTranspose(4, 4, strides=2,
                                                                                          padding="same")
        gradient_conv = MatmulGradientConv2D(4, 4, strides=1, padding="same")
        assert conv(tf.zeros([1, 4, 4, 3])).dtype == tf.bfloat16
        assert deconv(tf.zeros([1, 4, 4, 3])).dtype == tf.bfloat16
        inputs = tf.random.normal([1, 5, 5, 3], seed=2)
        with tf.GradientTape() as tape:
            outputs = gradient_conv(inputs)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 2)
        kernel_gradient = tape.gradient(loss, gradient_conv.kernel)
        assert outputs.dtype == tf.bfloat16
        assert kernel_gradient.dtype == tf.float32 and kernel_gradient.shape == (4, 4, 3, 4)
        assert float(tf.reduce_max(tf.abs(kernel_gradient))) > 0
        assert conv.kernel.dtype == deconv.kernel.dtype == gradient_conv.kernel.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("batch_size", [1, 4])
def test_generator_trains_with_the_fastest_form_of_each_layer_on_a_cpu(batch_size: int) -> None:
    """At 256 px: encoder layers after the first fed at most MATMUL_MAX_ENCODER_PIXELS pixels per batch take
    MatmulConv2D, the others fed up to MATMUL_GRADIENT_MAX_SIDE a side MatmulGradientConv2D; decoder layers fed at
    most MATMUL_MAX_DECODER_PIXELS, and the output layer, MatmulConv2DTranspose; the rest stay Keras's."""
    generator = build_generator(Config(image_size=256, batch_size=batch_size, ngf=8))
    encoder = {k: type(generator.get_layer(f"down{k}_conv")) for k in range(1, 9)}  # down k is fed 512 >> k px
    decoder = {k: type(generator.get_layer(f"up{k}_deconv")) for k in range(1, 8)}  # up k is fed 2 ** (7 - k) px
    matmul = [k for k in encoder if k > 1 and batch_size * (512 >> k) ** 2 <= MATMUL_MAX_ENCODER_PIXELS]
    gradient = [k for k in encoder if k > 1 and k not in matmul and 512 >> k <= MATMUL_GRADIENT_MAX_SIDE]
    assert (matmul, gradient) == (([4, 5, 6, 7, 8], [2, 3]) if batch_size == 1 else ([5, 6, 7, 8], [2, 3, 4]))
    assert [k for k, kind in encoder.items() if kind is MatmulConv2D] == matmul
    assert [k for k, kind in encoder.items() if kind is MatmulGradientConv2D] == gradient
    assert encoder[1] is keras.layers.Conv2D
    expected_decoder = [k for k in decoder if batch_size * 4 ** (7 - k) <= MATMUL_MAX_DECODER_PIXELS]
    assert expected_decoder == ([2, 3, 4, 5, 6, 7] if batch_size == 1 else [3, 4, 5, 6, 7])
    assert [k for k, kind in decoder.items() if kind is MatmulConv2DTranspose] == expected_decoder
    assert all(kind is keras.layers.Conv2DTranspose for k, kind in decoder.items() if k not in expected_decoder)
    assert type(generator.get_layer("output_deconv")) is MatmulConv2DTranspose
    assert trainable_count(build_generator(Config(image_size=256, batch_size=batch_size))) == GENERATOR_PARAMS[256]


def test_discriminator_trains_its_stride1_and_mid_sized_convolutions_with_matmul_kernel_gradients() -> None:
    """At 256 px on a CPU: d2 and d3 (fed 128 and 64 px) and d4 (stride 1) take MatmulGradientConv2D, the first
    convolution (6 input channels) and the 1-channel logits stay Keras's; the paper's parameter count is kept."""
    discriminator = build_discriminator(Config(image_size=256))
    kinds = {name: type(discriminator.get_layer(name))
             for name in ("d1_conv", "d2_conv", "d3_conv", "d4_conv", "logits_conv")}
    assert kinds == {"d1_conv": keras.layers.Conv2D, "d2_conv": MatmulGradientConv2D, "d3_conv": MatmulGradientConv2D,
                     "d4_conv": MatmulGradientConv2D, "logits_conv": keras.layers.Conv2D}
    assert trainable_count(discriminator) == DISCRIMINATOR_PARAMS
