"""The layers' other forms compute Keras's layers, and each network layer takes the form chosen for it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf import layer_forms
from pix2pix_tf.config import Config
from pix2pix_tf.layer_forms import (
    FP32_PHASE_MAX_SIDE,
    MATMUL_GRADIENT_MAX_SIDE,
    MATMUL_MAX_DECODER_PIXELS,
    MATMUL_MAX_ENCODER_PIXELS,
    MATMUL_MAX_SIDE,
    PHASE_MAX_SIDE,
    FusedBatchNormalization,
    MatmulConv2D,
    MatmulConv2DTranspose,
    MatmulGradientConv2D,
    PhaseDeconvolution,
    SubPixelDeconvolution,
    apply_layer_forms,
    phase_kernels,
    subpixel_kernel,
)
from pix2pix_tf.models import build_discriminator, build_generator

FORMS = (FusedBatchNormalization, MatmulConv2D, MatmulConv2DTranspose, MatmulGradientConv2D, SubPixelDeconvolution,
         PhaseDeconvolution)


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


def outputs_and_gradients(model: keras.Model, inputs: list[tf.Tensor]) -> list[np.ndarray]:
    """The training-mode output and the gradients of a loss on it for every trainable variable."""
    with tf.GradientTape() as tape:
        outputs = tf.cast(model(inputs, training=True), tf.float32)
        loss = tf.reduce_sum(outputs * tf.cos(3.0 * outputs))
    return [outputs.numpy()] + [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("config", [
    Config(image_size=32, ngf=4, ndf=4, g_dropout=0.0),
    Config(image_size=64, batch_size=2, ngf=4, ndf=4, g_dropout=0.0, d_layers=4),
    Config(image_size=32, ngf=4, ndf=4, color_space="lab", g_dropout=0.0),
], ids=["unet-32", "unet-64-batch-2", "lab-32"])
@pytest.mark.slow
def test_fast_and_plain_forms_compute_the_same_networks(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """The networks in their fast training forms give the plain Keras layers' outputs and gradients, and the
    generator's inference copy their inference outputs, from the same weights, to float tolerance. (With the
    AVX2 rules on every CPU, so that every training form is in the networks.)"""
    monkeypatch.setattr(layer_forms, "cpu_has_avx512", lambda: False)
    keras.utils.set_random_seed(0)
    plain_config = config.replace(layer_forms="plain")
    plain_generator, plain_discriminator = build_generator(plain_config), build_discriminator(plain_config)
    assert not any(isinstance(layer, FORMS) for layer in plain_generator.layers + plain_discriminator.layers)
    generator, discriminator = (apply_layer_forms(model, config) for model in (plain_generator, plain_discriminator))
    kinds = {type(layer) for model in (generator, discriminator) for layer in model.layers}
    assert {FusedBatchNormalization, MatmulConv2D, MatmulGradientConv2D, MatmulConv2DTranspose} <= kinds
    in_ch = 1 if config.color_space == "lab" else 3
    rng = np.random.default_rng(0)
    source = tf.constant(rng.uniform(-1, 1, [config.batch_size, config.image_size, config.image_size, in_ch]),
                         tf.float32)
    target = tf.constant(rng.uniform(-1, 1, [*source.shape[:3], 2 if config.color_space == "lab" else 3]),
                         tf.float32)
    for fast, plain, inputs in ((generator, plain_generator, source),
                                (discriminator, plain_discriminator, [source, target])):
        for have, want in zip(outputs_and_gradients(fast, inputs), outputs_and_gradients(plain, inputs), strict=True):
            np.testing.assert_allclose(have, want, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    inference = apply_layer_forms(generator, config, "inference")
    np.testing.assert_allclose(inference(source, training=False).numpy(),
                               plain_generator(source, training=False).numpy(), atol=1e-5)
    assert apply_layer_forms(plain_generator, plain_config, "inference") is plain_generator


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.slow
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
    assert all(type(layer) is FusedBatchNormalization for layer in generator.layers if layer.name.endswith("_norm"))


@pytest.mark.parametrize("policy,avx512", [("float32", False), ("float32", True), ("mixed_bfloat16", True)])
def test_discriminator_trains_its_stride1_and_mid_sized_convolutions_with_matmul_kernel_gradients(
        policy: str, avx512: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 256 px on a CPU: d2 and d3 (fed 128 and 64 px) take MatmulGradientConv2D and the first convolution (6
    input channels) stays Keras's. The stride-1 ones: d4 and the 1-filter logits take MatmulGradientConv2D in
    float32 on AVX2 and stay Keras's in float32 on AVX-512; in bfloat16 d4 takes MatmulGradientConv2D and the
    logits stay Keras's."""
    monkeypatch.setattr(layer_forms, "cpu_has_avx512", lambda: avx512)
    keras.mixed_precision.set_global_policy(policy)
    try:
        discriminator = build_discriminator(Config(image_size=256))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    kinds = {name: type(discriminator.get_layer(name))
             for name in ("d1_conv", "d2_conv", "d3_conv", "d4_conv", "logits_conv")}
    d4, logits = {("float32", False): (MatmulGradientConv2D, MatmulGradientConv2D),
                  ("float32", True): (keras.layers.Conv2D, keras.layers.Conv2D),
                  ("mixed_bfloat16", True): (MatmulGradientConv2D, keras.layers.Conv2D)}[policy, avx512]
    assert kinds == {"d1_conv": keras.layers.Conv2D, "d2_conv": MatmulGradientConv2D, "d3_conv": MatmulGradientConv2D,
                     "d4_conv": d4, "logits_conv": logits}


def test_plain_forms_keep_keras_layers() -> None:
    """--layer-forms plain: every layer of both networks is Keras's own, and the export's copy is the network."""
    config = Config(image_size=64, ngf=4, ndf=4, layer_forms="plain")
    generator, discriminator = build_generator(config), build_discriminator(config)
    assert not any(isinstance(layer, FORMS) for layer in generator.layers + discriminator.layers)
    assert apply_layer_forms(generator, config, "inference") is generator


@pytest.mark.slow
def test_inference_forms_where_the_decoder_input_is_small() -> None:
    """At 128 px in bfloat16 the decoder layer fed 32 x 32 pictures keeps its transposed form; those fed 16 and 8 px
    take the phase form, those fed up to 4 px (MATMUL_MAX_SIDE) the matrix-product form, the output layer the
    sub-pixel form; training's forms of the encoder go back to oneDNN's convolutions; same outputs."""
    config = Config(image_size=128, ngf=8)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    generator = build_generator(config)
    copy = apply_layer_forms(generator, config, "inference")
    kinds = {k: type(copy.get_layer(f"up{k}_deconv")) for k in range(1, 7)}
    assert 128 >> 2 > PHASE_MAX_SIDE >= 128 >> 3 > 128 >> 4 > MATMUL_MAX_SIDE >= 128 >> 5  # up k is fed 64 >> k px
    assert kinds[1] is keras.layers.Conv2DTranspose
    assert kinds[2] is kinds[3] is PhaseDeconvolution
    assert kinds[4] is kinds[5] is kinds[6] is MatmulConv2DTranspose
    assert type(copy.get_layer("output_deconv")) is SubPixelDeconvolution
    assert all(type(copy.get_layer(f"down{k}_conv")) is keras.layers.Conv2D for k in range(1, 8))
    inputs = tf.random.uniform([2, 128, 128, 3], -1.0, 1.0, seed=1)
    np.testing.assert_allclose(tf.cast(copy(inputs, training=False), tf.float32).numpy(),
                               tf.cast(generator(inputs, training=False), tf.float32).numpy(), atol=2**-6)
    assert [layer.name for layer in copy.layers] == [layer.name for layer in generator.layers]


@pytest.mark.parametrize("avx512", [False, True])
@pytest.mark.slow
def test_float32_inference_forms(avx512: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 256 px in float32 (a CPU without bfloat16): every bias-free decoder layer fed up to FP32_PHASE_MAX_SIDE
    pixels a side takes the phase form, the rest stay Keras's transposed convolutions, the output layer too on
    AVX2 and the matrix-product form on AVX-512, and the encoder oneDNN's convolutions; same outputs."""
    monkeypatch.setattr(layer_forms, "cpu_has_avx512", lambda: avx512)
    config = Config(image_size=256, ngf=4)
    keras.utils.set_random_seed(0)
    generator = build_generator(config)
    copy = apply_layer_forms(generator, config, "inference")
    kinds = {k: type(copy.get_layer(f"up{k}_deconv")) for k in range(1, 8)}  # up k is fed 128 >> k px
    assert 128 >> 1 > FP32_PHASE_MAX_SIDE >= 128 >> 2
    assert kinds[1] is keras.layers.Conv2DTranspose
    assert all(kinds[k] is PhaseDeconvolution for k in range(2, 8))
    output_form = MatmulConv2DTranspose if avx512 else keras.layers.Conv2DTranspose
    assert type(copy.get_layer("output_deconv")) is output_form
    assert all(type(copy.get_layer(f"down{k}_conv")) is keras.layers.Conv2D for k in range(1, 9))
    inputs = tf.random.uniform([1, 256, 256, 3], -1.0, 1.0, seed=1)
    np.testing.assert_allclose(copy(inputs, training=False).numpy(), generator(inputs, training=False).numpy(),
                               atol=1e-5)
