"""sRGB <-> CIE Lab in TensorFlow ops against scikit-image, and the network scalings."""

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from pix2pix_tf import color


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return skimage.data.astronaut()[::4, ::4] / 255.0


def test_rgb_to_lab_matches_skimage(photo: np.ndarray) -> None:
    random_colours = np.random.default_rng(0).uniform(0, 1, (4096, 3))
    for rgb in (photo, random_colours, np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.01, 0.02, 0.03]])):
        np.testing.assert_allclose(color.rgb_to_lab(rgb).numpy(), skimage.color.rgb2lab(rgb), atol=1e-3)


def test_lightness_alone_equals_the_l_channel_of_lab(photo: np.ndarray) -> None:
    lab = color.rgb_to_lab(photo).numpy()
    np.testing.assert_allclose(color.rgb_to_lightness(photo).numpy(), lab[..., :1], atol=1e-4)
    grey = color.rgb_to_gray(tf.constant(photo, tf.float32))
    np.testing.assert_allclose(color.rgb_to_lightness(grey).numpy(),
                               color.rgb_to_lab(tf.repeat(grey, 3, axis=-1)).numpy()[..., :1], atol=1e-4)


def test_uint8_table_equals_the_formula() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    np.testing.assert_allclose(color.uint8_to_linear(values).numpy(),
                               color.srgb_to_linear(tf.constant(values / 255.0, tf.float32)).numpy(), rtol=1e-6)
    photo = skimage.data.astronaut()[::8, ::8]
    np.testing.assert_allclose(color.linear_to_lightness(color.uint8_to_linear(photo)).numpy(),
                               skimage.color.rgb2lab(photo)[..., :1], atol=1e-3)


def test_lab_to_rgb_matches_skimage_in_and_out_of_gamut() -> None:
    lab = np.random.default_rng(1).uniform([0, -110, -110], [100, 110, 110], (4096, 3))
    with np.errstate(all="ignore"), pytest.warns(UserWarning):  # skimage warns about clipped negative Z
        expected = skimage.color.lab2rgb(lab)
    np.testing.assert_allclose(color.lab_to_rgb(lab).numpy(), expected, atol=1e-3)


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_pairs_round_trip_to_the_photo(photo: np.ndarray, space: str) -> None:
    network_input, target = color.make_pair(tf.constant(photo, tf.float32), space)
    assert float(tf.reduce_min(network_input)) >= -1.0 and float(tf.reduce_max(network_input)) <= 1.0
    assert float(tf.reduce_min(target)) >= -1.0 and float(tf.reduce_max(target)) <= 1.0
    np.testing.assert_allclose(color.output_to_rgb(network_input, target, space).numpy(), photo, atol=2e-3)


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_grey_input_shows_as_a_grey_picture_of_the_photo_luminance(photo: np.ndarray, space: str) -> None:
    network_input, _ = color.make_pair(tf.constant(photo, tf.float32), space)
    grey = color.input_to_rgb(network_input, space).numpy()
    assert grey.shape == photo.shape
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=2e-3)  # no colour left
    if space == "lab":  # the grey keeps the photo's L* exactly; rgb mode uses BT.601 luma instead
        expected = skimage.color.rgb2lab(photo)[..., 0]
        np.testing.assert_allclose(skimage.color.rgb2lab(grey)[..., 0], expected, atol=0.05)
