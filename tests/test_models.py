"""Shapes and parameter counts of the pix2pix networks."""

import keras
import numpy as np
import pytest

from pix2pix_tf.color import AB_SCALE, rgb_to_lab
from pix2pix_tf.config import Config
from pix2pix_tf.models import (
    CLASS_STRIDE,
    AnnealedMean,
    ab_bin_centres,
    build_discriminator,
    build_generator,
    generator_depth,
)


def trainable_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# Exact trainable parameter counts at ngf = ndf = 64 (3 -> 3 channels). The paper's U-Net-256 is "~54.4M";
# the 70x70 PatchGAN "~2.77M".
GENERATOR_PARAMS = {64: 29_244_611, 128: 41_829_571, 256: 54_414_531}
DISCRIMINATOR_PARAMS = 2_768_705


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.slow
def test_paper_networks_have_the_stated_parameter_counts(size: int) -> None:
    config = Config(image_size=size)
    assert generator_depth(size) == {64: 6, 128: 7, 256: 8}[size]
    assert trainable_count(build_generator(config)) == GENERATOR_PARAMS[size]
    assert trainable_count(build_discriminator(config)) == DISCRIMINATOR_PARAMS


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("color_space,in_ch,out_ch", [("rgb", 3, 3), ("lab", 1, 2)])
@pytest.mark.slow
def test_output_shapes_follow_size_and_colour_space(size: int, color_space: str, in_ch: int, out_ch: int) -> None:
    config = Config(image_size=size, color_space=color_space, ngf=4, ndf=4)
    generator, discriminator = build_generator(config), build_discriminator(config)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, in_ch)).astype("float32")
    y = generator(x, training=False).numpy()
    assert y.shape == (2, size, size, out_ch)
    assert np.all(np.abs(y) <= 1.0)
    logits = discriminator([x, y], training=False)
    assert logits.shape == (2, size // 8, size // 8, 1)  # 3 stride-2 layers, then two stride-1 ones


def test_networks_follow_the_papers_layer_lists() -> None:
    """At 256 px: encoder C64-C128-C256-C512-C512-C512-C512-C512, decoder CD512-CD512-CD512-C512-C256-C128-C64,
    PatchGAN C64-C128-C256-C512 (Isola et al. 2017, appendix 6.1); no norm on the first blocks."""
    config = Config(image_size=256, layer_forms="plain")
    generator, discriminator = build_generator(config), build_discriminator(config)
    names = {layer.name for layer in generator.layers}
    assert [generator.get_layer(f"down{k}_conv").filters for k in range(1, 9)] == [64, 128, 256] + [512] * 5
    assert [generator.get_layer(f"up{k}_deconv").filters for k in range(7, 0, -1)] == [512] * 4 + [256, 128, 64]
    assert [f"up{k}_dropout" in names for k in range(7, 0, -1)] == [True] * 3 + [False] * 4
    assert "down1_norm" not in names and "down2_norm" in names
    assert [discriminator.get_layer(f"d{k}_conv").filters for k in range(1, 5)] == [64, 128, 256, 512]
    assert [discriminator.get_layer(f"d{k}_conv").strides for k in range(1, 5)] == [(2, 2)] * 3 + [(1, 1)]


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
    logits = keras.Model(generator.input, generator.get_layer("chroma_logits").output)(x).numpy()
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


@pytest.mark.parametrize("size", [4, 8, 16, 512])
@pytest.mark.parametrize("kind", ["unet", "encoder_decoder", "classify"])
def test_every_power_of_two_from_4_up_builds_and_keeps_its_size(size: int, kind: str) -> None:
    """The smallest size the networks build at (a 1x1 bottleneck under the classifying head's quarter size) up
    to beyond the paper's 256: the generator's output has the input's size, the discriminator gives logits."""
    head = {"chroma_head": "classify", "color_space": "lab"} if kind == "classify" else {"generator": kind}
    config = Config(image_size=size, ngf=2, ndf=2, **head)
    in_ch, out_ch = (1, 2) if kind == "classify" else (3, 3)
    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, in_ch)).astype("float32")
    y = build_generator(config)(x, training=True).numpy()
    assert y.shape == (1, size, size, out_ch)
    logits = build_discriminator(config)([x, y], training=True)
    assert logits.shape == (1, max(size // 8, 1), max(size // 8, 1), 1)
