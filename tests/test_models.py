"""Shapes and parameter counts of the pix2pix networks."""

import numpy as np
import pytest

from pix2pix_tf.config import Config
from pix2pix_tf.models import (
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
@pytest.mark.parametrize("kind", ["unet", "encoder_decoder", "lab"])
def test_every_power_of_two_from_4_up_builds_and_keeps_its_size(size: int, kind: str) -> None:
    """The smallest size the networks build at (a 1x1 bottleneck at 4 px) up to beyond the paper's 256, in RGB
    and in Lab: the generator's output has the input's size, the discriminator gives logits."""
    variant = {"color_space": "lab"} if kind == "lab" else {"generator": kind}
    config = Config(image_size=size, ngf=2, ndf=2, **variant)
    in_ch, out_ch = (1, 2) if kind == "lab" else (3, 3)
    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, in_ch)).astype("float32")
    y = build_generator(config)(x, training=True).numpy()
    assert y.shape == (1, size, size, out_ch)
    logits = build_discriminator(config)([x, y], training=True)
    assert logits.shape == (1, max(size // 8, 1), max(size // 8, 1), 1)
