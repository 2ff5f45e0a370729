"""The exported SavedModel, loaded in a fresh process that never imports pix2pix_tf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import keras
import numpy as np
import pytest
import skimage.data
import skimage.transform
from skimage.color import rgb2lab

from pix2pix_tf.config import Config
from pix2pix_tf.errors import UserError
from pix2pix_tf.export import MIN_SIDE, export_generator, load_exported
from pix2pix_tf.models import build_generator

# Output L* (from the uint8 output) against the L* of the grey input, L* on [0, 100]. Where the colour is inside
# the sRGB gamut only uint8 rounding of R, G, B moves L*: under L_TOLERANCE_IN_GAMUT everywhere. Where the
# network's chroma is out of gamut for that lightness, lab_to_rgb clips a channel to 0 or 255 and L* moves more,
# so over all pixels the bound is on the mean.
L_TOLERANCE_IN_GAMUT = 1.0
L_TOLERANCE_MEAN = 0.3

CHECK_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from skimage.color import rgb2lab

model_dir, photo_path = sys.argv[1], sys.argv[2]
photo = tf.io.decode_png(tf.io.read_file(photo_path)).numpy()          # [300, 451, 3] uint8
model = tf.saved_model.load(model_dir)
out = {"signatures": sorted(model.signatures.keys()), "metadata": json.loads(model.metadata().numpy())}

def error_of(call):
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the message is what is checked
        return f"{type(err).__name__}: {err}"[:400]
    return None

colour = model.colorize(photo[None]).numpy()
grey = np.round(tf.image.rgb_to_grayscale(photo.astype(np.float32)).numpy()).astype(np.uint8)  # [H, W, 1]
grey_out = model.colorize(grey[None]).numpy()
grey3_out = model.colorize(np.repeat(grey, 3, axis=-1)[None]).numpy()
batch = model.colorize(np.zeros((2, 9, 8, 1), np.uint8))
via_signature = model.signatures["serving_default"](images=tf.constant(grey[None]))["output_0"].numpy()
out["shapes"] = {"colour": list(colour.shape), "grey": list(grey_out.shape), "batch": batch.shape.as_list()}
out["dtypes"] = sorted({str(colour.dtype), str(grey_out.dtype), batch.dtype.name})
out["signature_matches_method"] = bool(np.array_equal(via_signature, grey_out))
out["grey1_equals_grey3"] = int(np.abs(grey_out.astype(int) - grey3_out.astype(int)).max())
spread = grey_out[0].max(axis=-1).astype(int) - grey_out[0].min(axis=-1).astype(int)
out["coloured_pixels"] = float((spread >= 2).mean())
l_in = rgb2lab(np.repeat(grey, 3, axis=-1) / 255.0)[..., 0]
l_out = rgb2lab(grey_out[0] / 255.0)[..., 0]
in_gamut = ((grey_out[0] > 0) & (grey_out[0] < 255)).all(axis=-1)  # no channel clipped (or truly 0 / 255)
out["l_diff_mean"] = float(np.abs(l_in - l_out).mean())
out["l_diff_max"] = float(np.abs(l_in - l_out).max())
out["l_diff_max_in_gamut"] = float(np.abs(l_in - l_out)[in_gamut].max())
out["in_gamut"] = float(in_gamut.mean())

encoded = tf.stack([tf.io.encode_png(photo), tf.io.encode_jpeg(photo[:33, :17]), tf.io.encode_png(grey)])
decoded = [tf.io.decode_png(s).numpy() for s in model.colorize_bytes(encoded)]
out["bytes_shapes"] = [list(d.shape) for d in decoded]
out["bytes_matches_colorize"] = int(np.abs(decoded[2].astype(int) - grey_out[0].astype(int)).max())

out["errors"] = {
    "tiny": error_of(lambda: model.colorize(np.zeros((1, 1, 1, 3), np.uint8))),
    "empty": error_of(lambda: model.colorize(np.zeros((1, 0, 20, 1), np.uint8))),
    "two_channels": error_of(lambda: model.colorize(np.zeros((1, 20, 20, 2), np.uint8))),
    "float": error_of(lambda: model.colorize(tf.zeros((1, 20, 20, 3), tf.float32))),
    "float_signature": error_of(lambda: model.signatures["serving_default"](images=tf.zeros((1, 20, 20, 3)))),
    "rank3": error_of(lambda: model.colorize(np.zeros((20, 20, 3), np.uint8))),
    "not_an_image": error_of(lambda: model.colorize_bytes(tf.constant([b"not an image"]))),
}
out["imported_pix2pix"] = any(name.startswith("pix2pix_tf") for name in sys.modules)
print("RESULT " + json.dumps(out))
"""


def run_fresh(model_dir: Path, photo: Path) -> dict:
    """Load and exercise `model_dir` in a new Python process that does not import pix2pix_tf."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(model_dir), str(photo)],
                            capture_output=True, text=True, env=env, cwd=model_dir.parent, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """skimage's astronaut at an odd size, 300 x 451."""
    image = skimage.transform.resize(skimage.data.astronaut(), (300, 451), anti_aliasing=True)
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    imageio.imwrite(path, np.round(image * 255).astype(np.uint8))
    return path


def tiny_config(**changes: object) -> Config:
    return Config(image_size=32, ngf=4, dataset="tiny").replace(**changes)


def tinting_generator(config: Config) -> keras.Model:
    """A random tiny generator (fixed seed) whose last layer is scaled up so that it visibly tints its output."""
    keras.utils.set_random_seed(0)
    generator = build_generator(config)
    layer = generator.get_layer("output_deconv")
    layer.kernel.assign(layer.kernel * 8.0)
    return generator


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
@pytest.mark.slow
def test_round_trip_in_fresh_process(tmp_path: Path, astronaut_png: Path, color_space: str) -> None:
    config = tiny_config(color_space=color_space)
    export_dir = export_generator(tinting_generator(config), config, tmp_path / "model", step=123)
    out = run_fresh(export_dir, astronaut_png)
    measured = ("coloured_pixels", "in_gamut", "l_diff_mean", "l_diff_max_in_gamut", "l_diff_max")
    print(color_space, {key: round(out[key], 3) for key in measured})

    assert not out["imported_pix2pix"]
    assert {"serving_default", "colorize", "colorize_bytes", "metadata"} <= set(out["signatures"])
    meta = out["metadata"]
    assert (meta["color_space"], meta["step"], meta["image_size"], meta["dataset"]) == (color_space, 123, 32,
                                                                                        "tiny")
    assert meta["config"] == config.to_dict() and meta["package_version"] and meta["full_resolution"]

    assert out["shapes"] == {"colour": [1, 300, 451, 3], "grey": [1, 300, 451, 3], "batch": [2, 9, 8, 3]}
    assert out["dtypes"] == ["uint8"]
    assert out["signature_matches_method"]
    assert out["grey1_equals_grey3"] <= 1  # 3 equal channels -> luma = 0.9999 * v
    assert out["coloured_pixels"] > 0.01, "a random generator should tint at least some pixels"
    assert out["in_gamut"] > 0.5 and out["l_diff_max_in_gamut"] < L_TOLERANCE_IN_GAMUT, out
    assert out["l_diff_mean"] < L_TOLERANCE_MEAN, out
    assert out["bytes_shapes"] == [[300, 451, 3], [33, 17, 3], [300, 451, 3]]
    assert out["bytes_matches_colorize"] == 0

    errors = out["errors"]
    assert all(errors.values()), errors
    for key in ("tiny", "empty"):
        assert f"at least {MIN_SIDE}x{MIN_SIDE} pixels" in errors[key]
    assert "1 (grey) or 3 (colour) channels" in errors["two_channels"]
    assert "dtype=tf.float32" in errors["float"] and "dtype=tf.uint8" in errors["float"]
    assert "uint8" in errors["float_signature"]
    assert "shape=(20, 20, 3)" in errors["rank3"] and "shape=(None, None, None, None)" in errors["rank3"]
    assert "Unknown image file format" in errors["not_an_image"]





@pytest.mark.slow
def test_plain_resolution_output(tmp_path: Path) -> None:
    """full_resolution=False: the network's own picture, resized; grey in, same size colour out."""
    import tensorflow as tf

    config = tiny_config(full_resolution=False)
    export_generator(build_generator(config), config, tmp_path / "model", step=1)
    model = tf.saved_model.load(str(tmp_path / "model"))
    out = model.colorize(np.full((1, 40, 57, 1), 128, np.uint8)).numpy()
    assert out.shape == (1, 40, 57, 3) and out.dtype == np.uint8
    assert json.loads(model.metadata().numpy())["full_resolution"] is False


def test_an_earlier_versions_export_loads_and_serves(tmp_path: Path) -> None:
    """An export written before the dark fade and the block filter were removed (metadata and config with their
    keys) loads with load_exported and colorizes."""
    import tensorflow as tf

    from pix2pix_tf.evaluate import source_config

    old_config = {**tiny_config().to_dict(), "chroma_filter": "block", "chroma_fade_low": 10.0,
                  "chroma_fade_high": 40.0}
    old_config.pop("layer_forms")
    old_metadata = json.dumps({"format": "pix2pix-tf-colorizer/1", "color_space": "rgb", "chroma_filter": "block",
                               "chroma_fade": [10.0, 40.0], "config": old_config})

    class Exported(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")])
        def colorize(self, images: tf.Tensor) -> tf.Tensor:
            return tf.tile(images, [1, 1, 1, 3 // tf.shape(images)[3]])

        @tf.function(input_signature=[])
        def metadata(self) -> tf.Tensor:
            return tf.constant(old_metadata)

    module = Exported()
    tf.saved_model.save(module, str(tmp_path / "old"), signatures={"serving_default": module.colorize})
    model = load_exported(tmp_path / "old")
    assert model.metadata["chroma_fade"] == [10.0, 40.0] and model.color_space == "rgb"
    assert model.colorize(np.full([9, 10], 7, np.uint8)).shape == (9, 10, 3)
    assert source_config(model, None, None).image_size == 32  # the evaluator reads its training Config


@pytest.mark.slow
def test_reexport_replaces_and_foreign_dir_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    config = tiny_config()
    generator = build_generator(config)
    export_generator(generator, config, tmp_path / "model", step=1)
    export_generator(generator, config, tmp_path / "model", step=2)
    assert json.loads(tf.saved_model.load(str(tmp_path / "model")).metadata().numpy())["step"] == 2
    assert not (tmp_path / "model.partial").exists()
    stored = sum(f.stat().st_size for f in (tmp_path / "model" / "variables").iterdir())
    weights = sum(w.numpy().nbytes for w in generator.weights)
    assert weights <= stored < 1.2 * weights, "each weight should be stored once"

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "keep.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not a SavedModel"):
        export_generator(generator, config, tmp_path / "photos", step=1)
    assert (tmp_path / "photos" / "keep.jpg").exists()


@pytest.mark.slow
def test_saved_model_cli_lists_signatures(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip("saved_model_cli is not installed next to this Python")
    config = tiny_config()
    export_generator(build_generator(config), config, tmp_path / "model", step=1)
    result = subprocess.run([str(cli), "show", "--dir", str(tmp_path / "model"), "--all"], capture_output=True,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("serving_default", "colorize", "colorize_bytes", "metadata"):
        assert f"signature_def['{name}']" in result.stdout
    assert "DT_UINT8" in result.stdout and "DT_STRING" in result.stdout


@pytest.mark.slow
def test_paired_set_model_translates_its_rgb_input_as_it_is(tmp_path: Path) -> None:
    import tensorflow as tf

    config = Config(dataset="facades", image_size=32, ngf=4)
    keras.utils.set_random_seed(0)
    export_generator(build_generator(config), config, tmp_path / "facades", step=1)
    loaded = tf.saved_model.load(str(tmp_path / "facades"))
    assert json.loads(loaded.metadata().numpy())["paired"] is True
    red = np.zeros([1, 32, 32, 3], np.uint8)
    red[..., 0] = 200
    grey = np.repeat(np.round(np.asarray(red, np.float32) @ [[0.2989], [0.587], [0.114]]), 3, -1).astype(np.uint8)
    serve = loaded.signatures["serving_default"]
    out_red, out_grey = (serve(tf.constant(image))["output_0"].numpy() for image in (red, grey))
    assert out_red.shape == (1, 32, 32, 3)
    assert np.abs(out_red.astype(int) - out_grey.astype(int)).max() > 0  # colour reaches the network


@pytest.mark.slow
def test_chroma_smoothing_removes_fine_chroma_and_keeps_the_luminance(tmp_path: Path) -> None:
    import tensorflow as tf

    grey = skimage.data.camera()[::4, ::4, None]  # a real photo's luminance, 128 x 128
    outputs = {}
    for factor in (1, 8):
        config = Config(image_size=128, ngf=4, color_space="lab", chroma_scale=4.0, chroma_smoothing=factor)
        keras.utils.set_random_seed(0)
        model = tf.saved_model.load(str(export_generator(build_generator(config), config, tmp_path / f"k{factor}", 1)))
        metadata = json.loads(model.metadata().numpy())
        assert metadata["chroma_smoothing"] == factor
        outputs[factor] = rgb2lab(model.signatures["serving_default"](images=tf.constant(grey[None]))["output_0"]
                                  .numpy()[0] / 255.0)

    def fine_chroma(lab: np.ndarray) -> float:  # energy of ab between neighbouring pixels
        ab = lab[..., 1:]
        return float(np.mean(np.abs(np.diff(ab, axis=0))) + np.mean(np.abs(np.diff(ab, axis=1))))

    assert fine_chroma(outputs[8]) < 0.5 * fine_chroma(outputs[1])
    in_gamut = (np.abs(outputs[1][..., 0] - outputs[8][..., 0]))
    assert np.median(in_gamut) < 0.5  # L* is the input's in both (up to uint8 rounding and gamut clipping)



@pytest.mark.parametrize("shape, radius", [((2, 37, 53, 2), 8), ((1, 5, 3, 1), 4), ((1, 16, 16, 3), 1)])
def test_box_mean_is_the_same_average_pool(shape: tuple[int, ...], radius: int) -> None:
    """The box mean (two depthwise sums) equals avg_pool2d's 'SAME' mean, windows larger than the picture included."""
    import tensorflow as tf

    from pix2pix_tf.export import box_mean

    x = tf.constant(np.random.default_rng(1).uniform(-90.0, 90.0, shape).astype(np.float32))
    expected = tf.nn.avg_pool2d(x, 2 * radius + 1, 1, "SAME").numpy()
    np.testing.assert_allclose(box_mean(x, radius).numpy(), expected, atol=1e-4)


def test_guided_chroma_keeps_the_edges_of_the_luminance_and_smooths_the_rest() -> None:
    """Noisy chroma with a step where L* has one: the guided filter keeps the step sharp and removes the noise;
    a plain average over the same windows removes less noise and smears the step."""
    import tensorflow as tf

    from pix2pix_tf.export import guided_chroma

    lightness = np.full((1, 32, 32, 1), 30.0, np.float32)
    lightness[:, :, 16:] = 80.0
    truth = np.zeros((1, 32, 32, 2), np.float32)
    truth[:, :, 16:, 0] = 40.0
    noisy = truth + np.random.default_rng(0).normal(0.0, 10.0, truth.shape).astype(np.float32)
    guided = guided_chroma(tf.constant(noisy), tf.constant(lightness), 4).numpy()
    block = tf.nn.avg_pool2d(tf.constant(noisy), 9, 1, "SAME").numpy()

    def error(ab: np.ndarray) -> float:
        return float(np.sqrt(np.mean((ab - truth) ** 2)))

    assert error(guided) < 0.2 * error(noisy) and error(guided) < 0.5 * error(block)
    step = guided[0, :, 16, 0].mean() - guided[0, :, 15, 0].mean()  # across the edge, one pixel apart
    assert step > 30.0 and (block[0, :, 16, 0].mean() - block[0, :, 15, 0].mean()) < 20.0
    assert np.array_equal(guided_chroma(tf.constant(noisy), tf.constant(lightness), 1).numpy(), noisy)


@pytest.mark.slow
def test_inference_copy_computes_the_generator_faster_forms(tmp_path: Path) -> None:
    """The export's generator: in float32 the decoder layers in phase form; under mixed_bfloat16 the output layer
    in sub-pixel form, the inner decoder layers in matrix-product form and each convolution's weights stored in
    bfloat16 (cast once, not per call); same outputs, normalisation stays float32, and the SavedModel is smaller."""
    import tensorflow as tf

    from pix2pix_tf.export import colorize_graph
    from pix2pix_tf.layer_forms import (
        MatmulConv2DTranspose,
        PhaseDeconvolution,
        SubPixelDeconvolution,
        apply_layer_forms,
    )

    config = Config(image_size=32, ngf=4, color_space="lab", chroma_scale=1.0)
    keras.utils.set_random_seed(0)
    fp32_generator = build_generator(config)
    fp32_copy = apply_layer_forms(fp32_generator, config, "inference")
    assert all(isinstance(fp32_copy.get_layer(f"up{k}_deconv"), PhaseDeconvolution) for k in range(1, 5))
    inputs = tf.random.uniform([2, 32, 32, 1], -1.0, 1.0, seed=1)
    np.testing.assert_allclose(fp32_copy(inputs, training=False).numpy(),
                               fp32_generator(inputs, training=False).numpy(), atol=1e-6)
    fp32_export = export_generator(fp32_generator, config, tmp_path / "fp32", step=1)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        generator = build_generator(config)
        generator.get_layer("down2_norm").moving_mean.assign(tf.fill([8], 0.25))  # not the initial statistics
        copy = apply_layer_forms(generator, config, "inference")
        assert isinstance(copy.get_layer("output_deconv"), SubPixelDeconvolution)
        # up1 has 4 outputs at ngf 4, few enough for the sub-pixel form
        assert all(isinstance(copy.get_layer(f"up{k}_deconv"), MatmulConv2DTranspose) for k in range(2, 5))
        kernels = {v.dtype for layer in copy.layers for v in layer.weights if "conv" in layer.name}
        norms = {v.dtype for layer in copy.layers for v in layer.weights if "norm" in layer.name}
        assert kernels == {"bfloat16"} and norms == {"float32"}
        # bfloat16 keeps 8 bits of mantissa: the output layer's other summation order may move one rounding step
        np.testing.assert_allclose(copy(inputs, training=False).numpy(), generator(inputs, training=False).numpy(),
                                   atol=2**-7)
        photos = tf.constant(np.random.default_rng(0).integers(0, 256, [2, 40, 48, 1], np.uint8))
        expected = colorize_graph(photos, generator, config).numpy()
        bf16_export = export_generator(generator, config, tmp_path / "bf16", step=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    loaded = tf.saved_model.load(str(bf16_export))
    exported = loaded.signatures["serving_default"](images=photos)["output_0"].numpy()
    assert np.abs(exported.astype(int) - expected.astype(int)).max() <= 1

    def weight_bytes(path: Path) -> int:
        return sum(f.stat().st_size for f in (path / "variables").iterdir())

    assert weight_bytes(bf16_export) < 0.6 * weight_bytes(fp32_export)


FROZEN_WEIGHTS_CHILD = """
import sys
import numpy as np
import tensorflow as tf
photos = np.load(sys.argv[2])
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
outputs = [serve(images=tf.constant(photos))["output_0"].numpy() for _ in range(3)]
np.save(sys.argv[3], np.stack(outputs))
"""


@pytest.mark.slow
def test_export_computes_the_same_with_frozen_weights_assumed(tmp_path: Path) -> None:
    """A process that loads the export with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 (as evaluate and colorize run)
    gets the same pictures as one without, on every call, not just the first (oneDNN keeps converted weights)."""
    from pix2pix_tf.cli import FROZEN_WEIGHTS_VARIABLE

    config = Config(image_size=32, ngf=4, color_space="lab", chroma_scale=1.0)
    keras.utils.set_random_seed(0)
    export_generator(build_generator(config), config, tmp_path / "model", step=1)
    photos = tmp_path / "photos.npy"
    np.save(photos, np.random.default_rng(0).integers(0, 256, [2, 32, 40, 3], np.uint8))
    results = {}
    for frozen in ("0", "1"):
        out = tmp_path / f"out{frozen}.npy"
        done = subprocess.run([sys.executable, "-c", FROZEN_WEIGHTS_CHILD, str(tmp_path / "model"), str(photos),
                               str(out)], capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, FROZEN_WEIGHTS_VARIABLE: frozen, "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert done.returncode == 0, done.stderr[-2000:]
        results[frozen] = np.load(out).astype(int)
    assert np.abs(results["1"] - results["0"]).max() <= 1
    assert np.ptp(results["1"], axis=0).max() == 0  # every call alike


@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_colour_conversions_under_xla_match_the_plain_ops(color_space: str) -> None:
    """The XLA-compiled colour conversions that pictures of the working size take give the plain ops' numbers
    (float rounding apart: uint8 pixels within 1 level), for both kinds of model."""
    import tensorflow as tf

    from pix2pix_tf import export

    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, [2, 16, 24, 3], np.uint8))
    for plain, fused in zip(export._grey_input(images, color_space), export._grey_input_xla(images, color_space),
                            strict=True):
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), atol=1e-3)
    channels = 3 if color_space == "rgb" else 2
    network_input = tf.constant(rng.uniform(-1, 1, [2, 16, 24, 3 if color_space == "rgb" else 1]), tf.float32)
    network_output = tf.constant(rng.uniform(-1, 1, [2, 16, 24, channels]), tf.float32)
    lab_plain = export._network_lab(network_input, network_output, color_space)
    lab_fused = export._network_lab_xla(network_input, network_output, color_space)
    for plain, fused in zip(lab_plain, lab_fused, strict=True):
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), atol=1e-3)
    plain_pixels = export._lab_to_uint8(*lab_plain).numpy().astype(int)
    fused_pixels = export._lab_to_uint8_xla(*lab_plain).numpy().astype(int)
    assert np.abs(fused_pixels - plain_pixels).max() <= 1
    assert np.mean(fused_pixels != plain_pixels) < 0.01


def test_working_size_photos_take_the_xla_path_with_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """colorize_graph sends a photo of the working size through the XLA-compiled conversions and any other size
    through the plain ops; with those swapped for the plain ones the working-size photo gets the same pixels."""
    import tensorflow as tf

    from pix2pix_tf import export

    config = Config(image_size=32, ngf=4, color_space="rgb", chroma_scale=1.0)
    keras.utils.set_random_seed(0)
    generator = build_generator(config)
    photo = tf.constant(np.random.default_rng(1).integers(0, 256, [2, 32, 32, 3], np.uint8))
    calls: list[str] = []
    for name in ("_grey_input_xla", "_network_lab_xla", "_lab_to_uint8_xla", "_grey_input", "_lab_to_uint8"):
        function = getattr(export, name)
        monkeypatch.setattr(export, name, lambda *args, _f=function, _n=name: calls.append(_n) or _f(*args))
    fused = export.colorize_graph(photo, generator, config).numpy().astype(int)
    assert calls == ["_grey_input_xla", "_network_lab_xla", "_lab_to_uint8_xla"]  # eager: the taken branch only
    for name, plain in (("_grey_input_xla", "_grey_input"), ("_network_lab_xla", "_network_lab"),
                        ("_lab_to_uint8_xla", "_lab_to_uint8")):
        monkeypatch.setattr(export, name, getattr(export, plain))
    plain_pixels = export.colorize_graph(photo, generator, config).numpy().astype(int)
    assert np.abs(fused - plain_pixels).max() <= 1
    calls.clear()
    export.colorize_graph(photo[:, :, :30], generator, config)
    assert "_grey_input" in calls and "_lab_to_uint8" in calls
